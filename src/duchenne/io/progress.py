"""The progress bar every part of duchenne shows: a ``tqdm.auto`` bar that prints its last
line once.

Why: tqdm's ``close()`` prints the bar's state once more (with the overall rate) before
ending the line. On a terminal that reprint overwrites the line the last update printed
(``\\r``); where stderr is a file or a CI log, ``\\r`` moves nowhere, and whenever the last
update had printed the final state (always, on a slow run) the 100% line appeared twice
(``duchenne analyze photos/ 2> log.txt``). Every bar is made here, so that is fixed once.
"""

from __future__ import annotations

from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["ProgressBar"]


class ProgressBar(tqdm):
    """``tqdm.auto.tqdm`` (same arguments) whose ``close()`` does not print the final line
    again off a terminal when the last update printed it already. On a terminal the
    reprint overwrites the line and is kept: it shows the overall rate and elapsed time."""

    _shown_on_close = False

    def close(self) -> None:
        self._shown_on_close = (
            not getattr(self, "disable", True)  # getattr: as tqdm's, safe on a failed init
            and self.n == self.last_print_n
            and not _on_terminal(self.fp)
        )
        super().close()

    def display(self, msg: str | None = None, pos: int | None = None, **kwargs: Any) -> bool:
        if self._shown_on_close and msg is None:  # close()'s reprint of the printed line
            return True
        return bool(super().display(msg, pos, **kwargs))


def _on_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for a file, a pipe, a closed stream)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
