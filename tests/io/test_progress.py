"""``duchenne.io.progress``: the bar every command shows prints its last line once."""

from __future__ import annotations

import io

from duchenne.io.progress import ProgressBar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_final_line_is_printed_once_off_a_terminal() -> None:
    """``duchenne analyze photos/ 2> log.txt`` logged the 100% line twice: the last update
    printed it and ``close()`` printed it again, and ``\\r`` overwrites nothing in a file."""
    log = io.StringIO()
    for _ in ProgressBar(range(3), file=log, mininterval=0):  # every update prints
        pass
    assert log.getvalue().count("3/3") == 1 and log.getvalue().endswith("\n")
    log = io.StringIO()
    with ProgressBar(total=2, file=log, mininterval=0) as bar:
        bar.update(2)
    assert log.getvalue().count("2/2") == 1 and log.getvalue().endswith("\n")


def test_a_final_state_not_printed_yet_is_printed_by_close() -> None:
    log = io.StringIO()
    with ProgressBar(total=2, file=log, mininterval=1e9) as bar:  # no update prints
        bar.update(2)
    assert log.getvalue().count("2/2") == 1 and log.getvalue().endswith("\n")


def test_a_terminal_keeps_the_closing_reprint_that_overwrites_the_line() -> None:
    screen = _Terminal()
    with ProgressBar(total=2, file=screen, mininterval=0) as bar:
        bar.update(2)
    assert screen.getvalue().count("2/2") == 2


def test_a_disabled_bar_prints_nothing() -> None:
    log = io.StringIO()
    with ProgressBar(total=2, file=log, disable=True) as bar:
        bar.update(2)
    assert log.getvalue() == ""
