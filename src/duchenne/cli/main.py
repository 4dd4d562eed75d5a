"""``duchenne``: the command line entry point. Subcommands live in their own modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from duchenne._version import __version__
from duchenne.cli import (
    analyze,
    batch,
    enhance,
    evaluate,
    models,
    serve,
    train,
    train_authenticity,
    video,
)
from duchenne.errors import run_reporting_failure

#: the subcommand modules, each with ``add_parser(sub)``; they import only what declaring
#: their arguments needs (``train`` loads torch only when it runs)
COMMANDS = (
    analyze,
    models,
    video,
    enhance,
    batch,
    serve,
    train,
    train_authenticity,
    evaluate,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duchenne",
        description="Measure smiles: faces, smile probability and 1-10 score, emotions, smile dynamics.",
    )
    parser.add_argument("--version", action="version", version=f"duchenne {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_reporting_failure(args.command, args.func, args, verbose=args.verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
