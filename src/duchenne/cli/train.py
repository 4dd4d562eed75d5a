"""``duchenne train ...``: declared here, implemented in ``duchenne.train.cli`` (torch only on run)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from duchenne.train.arguments import add_train_parser
    from duchenne.train.cli import run_train

    add_train_parser(sub).set_defaults(func=run_train)
