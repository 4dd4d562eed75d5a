"""Input checks and shared constants of the metrics (labels, probabilities, lengths)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

ArrayLike = Any
Metric = Callable[..., float]

_EPS = 1e-12
_MAX_BOOT_CELLS = 2_000_000  # resampled rows held at once (chunk x n int64), ~16 MB


def _binary(y: ArrayLike, name: str = "y_true") -> np.ndarray:
    """Validate 0/1 labels and return them as an int64 vector."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must contain only 0 and 1")
    return arr.astype(np.int64)


def _real(x: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
    """Validate a finite 1-D float vector (optionally of length ``n``)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values, expected {n}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _prob(p: ArrayLike, n: int, name: str = "prob") -> np.ndarray:
    arr = _real(p, name, n)
    if np.any((arr < 0) | (arr > 1)):
        raise ValueError(f"{name} must lie in [0, 1]")
    return arr


def _same_length(*arrays: np.ndarray) -> int:
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"inputs have different lengths: {sorted(lengths)}")
    return lengths.pop()


def _ratio(num: float, den: float, zero_division: float = 0.0) -> float:
    return float(num) / float(den) if den else float(zero_division)


def _json_float(x: Any) -> float | None:
    """Plain float, or None for nan/inf (JSON has neither)."""
    value = float(x)
    return value if math.isfinite(value) else None
