"""Bounded, growable numeric buffers behind the per-track state."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class _Decimator:
    """Bounded timeline: when full, neighbouring points are averaged (resolution halves)."""

    def __init__(self, max_points: int, width: int) -> None:
        self.max_points = max_points - max_points % 2
        self.data = np.empty((self.max_points, width), np.float64)
        self.n = 0
        self.stride = 1
        self._pending: list[np.ndarray] = []

    def add(self, row: np.ndarray) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.stride:
            self._push(_nanmean_rows(np.stack(self._pending)))
            self._pending = []

    def _push(self, row: np.ndarray) -> None:
        if self.n == self.max_points:
            pairs = self.data.reshape(self.max_points // 2, 2, -1)
            self.data[: self.max_points // 2] = _nanmean_rows(pairs, axis=1)
            self.n = self.max_points // 2
            self.stride *= 2
        self.data[self.n] = row
        self.n += 1

    def values(self) -> np.ndarray:
        rows = self.data[: self.n]
        if self._pending:
            rows = np.vstack([rows, _nanmean_rows(np.stack(self._pending))[None]])
        return rows


def _nanmean_rows(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """NaN-ignoring mean (NaN where all are NaN), without RuntimeWarnings."""
    finite = np.isfinite(x)
    count = finite.sum(axis=axis)
    total = np.where(finite, x, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class _Column:
    """Growable float64 matrix (rows appended one at a time, amortised O(1))."""

    def __init__(self, width: int, capacity: int = 256) -> None:
        self.data = np.empty((capacity, width), np.float64)
        self.n = 0

    def append(self, row: np.ndarray | Sequence[float]) -> None:
        if self.n == len(self.data):
            grown = np.empty((2 * len(self.data), self.data.shape[1]), np.float64)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n] = row
        self.n += 1

    def view(self) -> np.ndarray:
        return self.data[: self.n]

    def drop_first(self, k: int) -> None:
        """Remove the first ``k`` rows (and shrink the storage back when it is mostly empty)."""
        rest = self.data[k : self.n].copy()
        capacity = max(256, 2 * len(rest))
        self.data = np.empty((max(capacity, len(rest)), self.data.shape[1]), np.float64)
        self.data[: len(rest)] = rest
        self.n = len(rest)
