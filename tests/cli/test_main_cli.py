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


@pytest.mark.parametrize("command", ["analyze", "batch", "enhance", "evaluate", "models", "serve"])
def test_every_flag_says_what_it_does_and_its_default(command) -> None:
    """``--help`` is where a user looks: ``serve --detector``/``--log-level`` and ``batch
    --engine`` had no help at all, and ``batch --chunk-size``/``--part-size``/
    ``--fingerprint``/``--threads``/``--video-fps`` and ``evaluate --split``/``--crops``/
    ``--processes`` did not say the default that docs/batch.md and the code use."""
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[command]._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        flag = action.option_strings[-1]
        assert action.help, f"{command} {flag} has no help"
        default = action.default
        if action.required or default in (None, False, argparse.SUPPRESS, []) or default == 0:
            continue  # nothing to state (unset, off, none or 0, as for --min-face-size)
        assert "default" in action.help, f"{command} {flag}: default {default!r} unstated"


def test_evaluate_split_help_says_what_no_split_means() -> None:
    """Without ``--split`` every sample is evaluated, FER+'s training split included."""
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    split = next(a for a in sub.choices["evaluate"]._actions if a.dest == "split")
    assert "default" in split.help and "training" in split.help
