"""Uncertainty and significance: seeded percentile bootstrap CIs (single and paired) and
McNemar's test."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from duchenne.evaluation.metrics._checks import (
    _MAX_BOOT_CELLS,
    ArrayLike,
    Metric,
    _binary,
    _json_float,
    _same_length,
)
from duchenne.evaluation.metrics.calibration import brier_score
from duchenne.evaluation.metrics.classification import (
    accuracy,
    f1_score,
    precision,
    recall,
    roc_auc,
)


class Estimate(NamedTuple):
    """A point estimate with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe ``{"value", "ci"}`` (nan becomes None)."""
        return {
            "value": _json_float(self.value),
            "ci": [_json_float(self.low), _json_float(self.high)],
        }


def _vec_accuracy(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (np.asarray(y) == np.asarray(pred))[idx].mean(axis=1)


def _vec_counts(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-resample ``(tp, fp, fn)`` as float arrays of shape (B,)."""
    y, pred = _binary(y), _binary(pred, "y_pred")
    tp = (y & pred)[idx].sum(axis=1).astype(np.float64)
    return tp, pred[idx].sum(axis=1) - tp, y[idx].sum(axis=1) - tp


def _safe_div(num: np.ndarray, den: np.ndarray, zero_division: float = 0.0) -> np.ndarray:
    return np.divide(num, den, out=np.full_like(num, zero_division), where=den > 0)


def _vec_precision(
    y: np.ndarray, pred: np.ndarray, idx: np.ndarray, *, zero_division: float = 0.0
) -> np.ndarray:
    tp, fp, _ = _vec_counts(y, pred, idx)
    return _safe_div(tp, tp + fp, zero_division)


def _vec_recall(
    y: np.ndarray, pred: np.ndarray, idx: np.ndarray, *, zero_division: float = 0.0
) -> np.ndarray:
    tp, _, fn = _vec_counts(y, pred, idx)
    return _safe_div(tp, tp + fn, zero_division)


def _vec_f1(
    y: np.ndarray, pred: np.ndarray, idx: np.ndarray, *, zero_division: float = 0.0
) -> np.ndarray:
    tp, fp, fn = _vec_counts(y, pred, idx)
    return _safe_div(2 * tp, 2 * tp + fp + fn, zero_division)


def _vec_brier(y: np.ndarray, prob: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return ((np.asarray(prob, dtype=np.float64) - _binary(y)) ** 2)[idx].mean(axis=1)


def _vec_auc(y: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """ROC-AUC of every resample at once, without sorting each resample.

    Scores are sorted once; each resample becomes row-count weights ``w`` (B, n).
    With tie groups g in ascending score order and P_g/N_g the positive/negative
    weight in g, the Mann-Whitney count is sum_g P_g * (N_<g + N_g / 2).
    """
    y = _binary(y)
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    order = np.argsort(s, kind="mergesort")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    offsets = rank[idx] + (np.arange(len(idx)) * n)[:, None]
    w = np.bincount(offsets.ravel(), minlength=len(idx) * n).reshape(len(idx), n)
    s_sorted, y_sorted = s[order], y[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    pos = np.add.reduceat(w * y_sorted, starts, axis=1)
    neg = np.add.reduceat(w * (1 - y_sorted), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = np.sum(pos * (below + 0.5 * neg), axis=1)
    den = pos.sum(axis=1).astype(np.float64) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


_VECTORISED: dict[Callable[..., float], Callable[..., np.ndarray]] = {
    accuracy: _vec_accuracy,
    precision: _vec_precision,
    recall: _vec_recall,
    f1_score: _vec_f1,
    brier_score: _vec_brier,
    roc_auc: _vec_auc,
}


def _vectorised(metric: Metric) -> Callable[..., np.ndarray] | None:
    """The vectorised twin of ``metric``, also for ``functools.partial(metric, **options)``
    (e.g. ``partial(f1_score, zero_division=math.nan)``) when the twin takes those options."""
    if isinstance(metric, functools.partial) and not metric.args:
        fast = _VECTORISED.get(metric.func)
        if fast is None:
            return None
        try:
            inspect.signature(fast).bind_partial(**metric.keywords)
        except TypeError:  # an option the twin does not know: call the metric per resample
            return None
        return functools.partial(fast, **metric.keywords)
    try:
        return _VECTORISED.get(metric)
    except TypeError:  # an unhashable callable
        return None


def _resample_chunks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield index matrices (chunk, n) of row resamples; same seed -> same resamples."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _MAX_BOOT_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def _bootstrap_values(
    metric: Metric, argsets: Sequence[Sequence[np.ndarray]], n_boot: int, seed: int
) -> np.ndarray:
    """Metric value on each resample for each argument set: array (len(argsets), n_boot).

    All argument sets see the same resampled rows (paired bootstrap). Metrics with a
    twin in ``_VECTORISED`` are evaluated for a whole chunk of resamples in a few
    array operations; any other metric is called once per resample.
    """
    n = _same_length(*[a for args in argsets for a in args])
    fast = _vectorised(metric)
    out = np.empty((len(argsets), n_boot))
    start = 0
    for idx in _resample_chunks(n, n_boot, seed):
        stop = start + len(idx)
        for j, args in enumerate(argsets):
            if fast is not None:
                out[j, start:stop] = fast(*args, idx)
            else:
                out[j, start:stop] = [metric(*(a[row] for a in args)) for row in idx]
        start = stop
    return out


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    metric: Metric, *arrays: ArrayLike, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95
) -> Estimate:
    """Percentile bootstrap interval of ``metric(*arrays)`` over resampled rows.

    Why percentile: it needs no normality assumption and keeps the interval inside
    the metric's range (e.g. AUC stays in [0, 1]). Resamples where the metric is
    undefined (nan, e.g. AUC of a one-class resample) are left out of the percentiles.

    Args:
        metric: Function of the arrays, e.g. ``roc_auc`` or ``lambda y, p: ...``.
        *arrays: Equal-length arrays resampled together by row.
        n_boot: Number of resamples.
        seed: Seed of the resampling generator.
        confidence: Interval coverage (0.95 gives the 2.5th and 97.5th percentiles).
    """
    arrs = [np.asarray(a) for a in arrays]
    if not arrs:
        raise ValueError("bootstrap_ci needs at least one array")
    point = float(metric(*arrs))
    values = _bootstrap_values(metric, [arrs], n_boot, seed)[0]
    return Estimate(point, *_percentiles(values, confidence))


def paired_bootstrap(
    metric: Metric,
    y_true: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(y, a) - metric(y, b)`` on the same resampled rows.

    The two-sided p-value inverts the percentile interval: twice the share of
    resampled differences on the far side of zero (capped at 1), i.e. the smallest
    alpha whose interval excludes 0. Resolution is 1 / n_boot.

    Returns:
        ``{"value", "ci": [low, high], "p_value", "value_a", "value_b", "n_boot"}``.
    """
    y, xa, xb = np.asarray(y_true), np.asarray(a), np.asarray(b)
    va, vb = float(metric(y, xa)), float(metric(y, xb))
    both = _bootstrap_values(metric, [(y, xa), (y, xb)], n_boot, seed)
    diff = both[0] - both[1]
    diff = diff[np.isfinite(diff)]
    lo, hi = _percentiles(diff, confidence)
    p_value = min(1.0, 2.0 * min(np.mean(diff <= 0), np.mean(diff >= 0))) if len(diff) else math.nan
    return {
        "value": _json_float(va - vb),
        "ci": [_json_float(lo), _json_float(hi)],
        "p_value": _json_float(p_value),
        "value_a": _json_float(va),
        "value_b": _json_float(vb),
        "n_boot": int(n_boot),
    }


def paired_bootstrap_auc(
    y_true: ArrayLike,
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap test of ROC-AUC(a) - ROC-AUC(b) on the same samples."""
    return paired_bootstrap(roc_auc, y_true, scores_a, scores_b, n_boot=n_boot, seed=seed)


def paired_bootstrap_accuracy(
    y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap test of accuracy(a) - accuracy(b) on the same samples."""
    return paired_bootstrap(accuracy, y_true, pred_a, pred_b, n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- McNemar


def chi2_sf_1dof(x: float) -> float:
    """Survival function P(X > x) of a chi-square variable with 1 degree of freedom.

    With X = Z^2, P(X > x) = P(|Z| > sqrt(x)) = erfc(sqrt(x / 2)).
    """
    return 1.0 if x <= 0 else math.erfc(math.sqrt(x / 2.0))


def mcnemar(b: int, c: int, *, exact: bool | None = None) -> dict[str, Any]:
    """McNemar's test on the discordant counts of a paired 2x2 table.

    ``b`` = pairs only the first model got right, ``c`` = pairs only the second got
    right. With ``exact=None`` the exact two-sided binomial test is used when
    ``b + c < 25`` (where the chi-square approximation is poor), else the chi-square
    statistic with Edwards' continuity correction ``(|b - c| - 1)^2 / (b + c)``
    (``|b - c| - 1`` floored at 0).
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    use_exact = n < 25 if exact is None else exact
    if n == 0:
        return {
            "b": b,
            "c": c,
            "statistic": 0.0,
            "p_value": 1.0,
            "method": "exact" if use_exact else "chi2",
        }
    if use_exact:
        tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
        return {
            "b": b,
            "c": c,
            "statistic": float(min(b, c)),
            "p_value": min(1.0, 2 * tail / 2**n),
            "method": "exact",
        }
    stat = max(abs(b - c) - 1, 0) ** 2 / n
    return {
        "b": b,
        "c": c,
        "statistic": float(stat),
        "p_value": chi2_sf_1dof(stat),
        "method": "chi2",
    }


def mcnemar_test(
    y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike, *, exact: bool | None = None
) -> dict[str, Any]:
    """McNemar's test of two classifiers' predictions on the same samples (any labels)."""
    t, pa, pb = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    _same_length(t, pa, pb)
    right_a, right_b = pa == t, pb == t
    return mcnemar(int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b)), exact=exact)
