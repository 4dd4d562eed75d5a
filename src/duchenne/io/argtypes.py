"""argparse types of numbers: one check, a usage error (exit status 2) for a bad value.

Why here, in the lowest layer that holds generic helpers: every command line checks its
numbers the same way, the ``duchenne`` commands (``cli/``) and the ``train`` command
(``train/``, a layer below ``cli``) alike.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = [
    "finite_non_negative",
    "int_range",
    "non_negative",
    "non_negative_int",
    "positive_int",
    "positive_number",
    "unit_interval",
    "unit_interval_below_one",
]


def _checked(text: str, cast: type, ok: Callable[[Any], bool], need: str) -> Any:
    """``text`` as ``cast`` (int or float) if ``ok`` holds, else argparse's usage error
    ("must be {need}, got ..."): the one shape every number flag below shares."""
    try:
        value = cast(text)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
    if not ok(value):  # comparisons are False for nan, so nan is refused too
        raise argparse.ArgumentTypeError(f"must be {need}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--max-faces``, ``--threads``): a negative count
    would otherwise reach Python slicing and drop faces from the end."""
    return _checked(text, int, lambda v: v >= 1, ">= 1")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (``batch --workers``; 0 analyses in this process)."""
    return _checked(text, int, lambda v: v >= 0, ">= 0")


def non_negative(text: str) -> float:
    """argparse type: a number >= 0 (``--min-face-size``, ``video --start``)."""
    return _checked(text, float, lambda v: v >= 0.0, ">= 0")


def finite_non_negative(text: str) -> float:
    """argparse type: a finite number >= 0 (``train --warmup-epochs``, ``--emotion-balance``,
    ``--distill-weight``): inf would overflow the warm-up's step count or make the loss inf."""
    return _checked(text, float, lambda v: 0.0 <= v < float("inf"), "finite and >= 0")


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0 (``video --fps/--end``, ``batch --max-member-mb``:
    a cap of 0 would fail every member)."""
    return _checked(text, float, lambda v: 0.0 < v < float("inf"), "> 0")


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1] (``--smile-threshold``, ``enhance --amount``)."""
    return _checked(text, float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")


def unit_interval_below_one(text: str) -> float:
    """argparse type: a number in [0, 1) (``train --ema-decay``: from 1 up only the EMA's
    warm-up ramp, which tends to 1, sets the decay, so the evaluated weights freeze)."""
    return _checked(text, float, lambda v: 0.0 <= v < 1.0, "in [0, 1)")


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum`` (and <= ``maximum`` when given), for a
    count whose bounds are not 0 or 1 (``evaluate --n-boot``: too few resamples give a
    meaningless interval; ``train pack --quality``: WebP's 1-100)."""
    need = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"

    def check(text: str) -> int:
        return _checked(
            text, int, lambda v: v >= minimum and (maximum is None or v <= maximum), need
        )

    check.__name__ = f"int_range_{minimum}_{maximum}"  # argparse names a type by it
    return check
