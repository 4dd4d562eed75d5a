"""``duchenne``: the command line entry point. Subcommands live in their own modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from duchenne import __version__
from duchenne.cli import analyze, models

#: modules under duchenne.cli that each define ``add_parser(sub)``; absent ones are skipped
OPTIONAL_COMMANDS = (
    "video",
    "enhance",
    "batch",
    "serve",
    "train",
    "train_authenticity",
    "evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duchenne",
        description="Measure smiles: faces, smile probability and 1-10 score, emotions, smile dynamics.",
    )
    parser.add_argument("--version", action="version", version=f"duchenne {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    analyze.add_parser(sub)
    models.add_parser(sub)
    _add_optional(sub)
    return parser


def _add_optional(sub: argparse._SubParsersAction) -> None:
    """Subcommands whose modules are imported only to declare their arguments (no torch here)."""
    import importlib

    for name in OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(f"duchenne.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"duchenne.cli.{name}":
                raise
            continue
        module.add_parser(sub)


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
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last line of defence: one clear line, no traceback
        from duchenne.errors import DuchenneError

        if not isinstance(exc, DuchenneError) and args.verbose:
            raise
        print(f"duchenne {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
