"""``duchenne``: the command line entry point. Subcommands live in their own modules."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

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
from duchenne.io.environment import PACKAGE_VARIABLES, misspelt_variables

logger = logging.getLogger(__name__)

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

EXIT_BROKEN_PIPE = 128 + 13
"""128 + SIGPIPE: the status a shell reports for any Unix tool whose reader went away."""


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
    for command_parser in sub.choices.values():  # after the command too, beside its -q
        command_parser.add_argument(
            "--verbose",
            "-v",
            action="store_true",
            default=argparse.SUPPRESS,  # not given here: keep `duchenne -v`'s value
            help="log progress details (as `duchenne -v COMMAND`)",
        )
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
    if args.command != "serve":  # the service names every unknown variable itself
        for message in misspelt_variables(PACKAGE_VARIABLES, near_only=True):
            logger.warning(message)
    command = _quiet_when_reader_leaves(args.func)
    return run_reporting_failure(args.command, command, args, verbose=args.verbose)


def _quiet_when_reader_leaves(func: Callable[[Any], int | None]) -> Callable[[Any], int]:
    """``func`` ending quietly with ``EXIT_BROKEN_PIPE`` when stdout's reader has gone.

    Why: ``duchenne analyze photos/ --format jsonl | head`` closes the pipe after a few
    lines; the next write raised ``BrokenPipeError``, which came out as an error line
    (a traceback under ``--verbose``) for what is a normal end. stdout is flushed here so
    a broken pipe on the last write is caught too, then pointed at the null device so
    the interpreter's own flush at exit does not report it again (the recipe of Python's
    ``signal`` documentation).
    """

    @functools.wraps(func)
    def run(args: Any) -> int:
        try:
            status = int(func(args) or 0)
            sys.stdout.flush()
        except BrokenPipeError:
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, sys.stdout.fileno())
                os.close(null)
            except (OSError, ValueError):  # stdout without a file descriptor (captured)
                pass
            return EXIT_BROKEN_PIPE
        return status

    return run


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
