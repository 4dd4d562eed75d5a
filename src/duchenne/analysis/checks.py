"""Validation shared by the option dataclasses (``AnalyzerConfig``, ``VideoOptions``).

Why a module of its own: both refuse a bad count the same way, with the same message, and
neither should import the other (``VideoOptions`` stays free of the model stack).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def whole_number(name: str, value: Any, *, or_none: bool = False) -> int:
    """``value`` as a whole number >= 1, else ``ValueError`` naming the option ``name``.

    Why strict: a float or string count (``max_faces=1.5``, ``detect_every="3"``) used to be
    stored as given and either fail only inside a later analysis, as an ``AnalysisError``
    that calls itself a bug, or be truncated silently; a whole-valued float (``2.0``, from
    JSON or arithmetic) is fine. ``or_none`` only adds "or None" to the message, for
    options whose caller lets None through.

    Example:
        >>> whole_number("threads", 2.0)
        2
    """
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        whole = True
    if not whole or int(value) < 1:
        none = " or None" if or_none else ""
        raise ValueError(f"{name} must be a whole number >= 1{none}, got {value!r}")
    return int(value)
