"""``duchenne`` itself: what every command shares (``-v`` placement, a closed stdout)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from duchenne import data
from duchenne.cli.main import EXIT_BROKEN_PIPE, build_parser

ANALYZE = [
    "analyze",
    str(data.path("astronaut.jpg")),
    "-q",
    "--stages",
    "detect",
    "--format",
    "jsonl",
]


@pytest.mark.parametrize("args", [["models"], ["-v", *ANALYZE]], ids=["models", "analyze-v"])
def test_a_reader_that_closed_the_pipe_ends_the_command_quietly(args) -> None:
    """`duchenne ... | head`: stdout's reader is gone. No error line, no traceback (not
    even under -v), no "Exception ignored" at exit: the status a shell gives SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already gone: the first write breaks the pipe
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "duchenne.cli.main", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == EXIT_BROKEN_PIPE


@pytest.mark.parametrize("args", [["-v", "models"], ["models", "-v"], ["models", "--verbose"]])
def test_verbose_goes_before_or_after_the_command(args) -> None:
    """-q follows the command, so -v is taken there too (it was a usage error)."""
    assert build_parser().parse_args(args).verbose is True


def test_not_verbose_unless_asked() -> None:
    assert build_parser().parse_args(["models"]).verbose is False
