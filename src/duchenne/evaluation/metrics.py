"""Evaluation metrics for smile detection, smile intensity and emotion, in pure numpy.

Why not scikit-learn/scipy: evaluation runs wherever inference runs, and those are not
runtime dependencies. Every function here is small, documented, and checked against
hand-computed answers in the tests.

Conventions:

* Binary labels are 0/1 (bools accepted); ``prob`` is P(label == 1) in [0, 1];
  ``scores`` is any real-valued score where larger means "more likely positive".
* A metric that is undefined for the given data (e.g. ROC-AUC with one class,
  Spearman of a constant) returns ``nan``; precision/recall/F1 with an empty
  denominator return 0.0 (scikit-learn's ``zero_division=0``).
* Bootstrap CIs are percentile intervals over resamples of the rows, seeded, with the
  same resamples for every metric given the same seed and size, so intervals of
  different metrics in one report are consistent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from duchenne.io.sinks import to_jsonable

__all__ = [
    "Estimate",
    "accuracy",
    "binary_nll",
    "binary_report",
    "bootstrap_ci",
    "brier_score",
    "chi2_sf_1dof",
    "compare_report",
    "confusion_matrix",
    "expected_calibration_error",
    "f1_score",
    "fit_temperature",
    "log_loss",
    "macro_f1",
    "mcnemar",
    "mcnemar_test",
    "multiclass_report",
    "paired_bootstrap",
    "paired_bootstrap_accuracy",
    "paired_bootstrap_auc",
    "per_class_f1",
    "precision",
    "precision_recall_f1",
    "rankdata",
    "recall",
    "reliability_curve",
    "roc_auc",
    "roc_curve",
    "sigmoid",
    "spearman",
]

ArrayLike = Any
Metric = Callable[..., float]

_EPS = 1e-12
_MAX_BOOT_CELLS = 2_000_000  # resampled rows held at once (chunk x n int64), ~16 MB


# --------------------------------------------------------------------------- input checks


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


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


# --------------------------------------------------------------------------- classification


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of exact matches (binary or multi-class labels)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    _same_length(t, p)
    return float(np.mean(t == p)) if len(t) else math.nan


def _counts(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[int, int, int, int]:
    """Return ``(tp, fp, fn, tn)`` of the positive class."""
    t, p = _binary(y_true), _binary(y_pred, "y_pred")
    _same_length(t, p)
    tp = int(np.sum(t & p))
    fp = int(np.sum(p)) - tp
    fn = int(np.sum(t)) - tp
    return tp, fp, fn, len(t) - tp - fp - fn


def precision(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Precision of the positive class: tp / (tp + fp); 0 when nothing is predicted positive."""
    tp, fp, _, _ = _counts(y_true, y_pred)
    return _ratio(tp, tp + fp)


def recall(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Recall (sensitivity) of the positive class: tp / (tp + fn); 0 with no positives."""
    tp, _, fn, _ = _counts(y_true, y_pred)
    return _ratio(tp, tp + fn)


def f1_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """F1 of the positive class: 2tp / (2tp + fp + fn); 0 when undefined."""
    tp, fp, fn, _ = _counts(y_true, y_pred)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def precision_recall_f1(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[float, float, float]:
    """Precision, recall and F1 of the positive class in one pass."""
    tp, fp, fn, _ = _counts(y_true, y_pred)
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None
) -> np.ndarray:
    """``(k, k)`` int64 counts, rows = true class, columns = predicted class.

    ``k`` defaults to ``max(label) + 1`` so a class that never occurs still gets a row
    when ``n_classes`` is given.
    """
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    _same_length(t, p)
    if len(t) and min(t.min(), p.min()) < 0:
        raise ValueError("class labels must be non-negative integers")
    k = n_classes if n_classes is not None else int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    if len(t) and max(t.max(), p.max()) >= k:
        raise ValueError(f"labels must be < n_classes={k}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def per_class_f1(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None) -> np.ndarray:
    """One-vs-rest F1 of every class (0 where a class is never true nor predicted)."""
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    tp = np.diag(cm)
    den = cm.sum(axis=0) + cm.sum(axis=1)
    return np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None) -> float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred``.

    Why only those: a class absent from both has an undefined F1; counting it as 0
    (or 1) would move the mean for a reason unrelated to the model.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    if not np.any(present):
        return math.nan
    return float(per_class_f1(y_true, y_pred, cm.shape[0])[present].mean())


# --------------------------------------------------------------------------- ranking


def rankdata(x: ArrayLike) -> np.ndarray:
    """1-based ranks with ties given their average rank (like ``scipy.stats.rankdata``)."""
    arr = np.asarray(x, dtype=np.float64).ravel()
    n = len(arr)
    order = np.argsort(arr, kind="mergesort")
    sorted_x = arr[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]] if n else np.zeros(0, dtype=bool)
    first = np.flatnonzero(starts)
    sizes = np.diff(np.r_[first, n])
    group_rank = first + (sizes + 1) / 2.0
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, sizes)
    return ranks


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve = Mann-Whitney U / (n_pos * n_neg).

    Ties between a positive and a negative count 1/2 (average ranks), so constant
    scores give exactly 0.5. Returns nan when only one class is present.
    """
    y = _binary(y_true)
    s = _real(scores, "scores", len(y))
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(rankdata(s)[y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)`` for every distinct score, highest first.

    Predicting positive when ``score >= thresholds[i]`` gives ``(fpr[i], tpr[i])``; the
    first point is ``(0, 0)`` at threshold ``+inf``. Tied scores form one point, so the
    trapezoid area under this curve equals ``roc_auc``.
    """
    y = _binary(y_true)
    s = _real(scores, "scores", len(y))
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = (
        np.r_[np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), len(s) - 1]
        if len(s)
        else np.zeros(0, int)
    )
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(len(y) - int(y.sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, s_sorted[last]]


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); nan if constant."""
    a = _real(x, "x")
    b = _real(y, "y", len(a))
    ra, rb = rankdata(a) - (len(a) + 1) / 2.0, rankdata(b) - (len(b) + 1) / 2.0
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / den if den > 0 else math.nan


# --------------------------------------------------------------------------- calibration


def sigmoid(z: ArrayLike) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def brier_score(y_true: ArrayLike, prob: ArrayLike) -> float:
    """Mean squared error of ``prob`` against 0/1 labels (lower is better)."""
    y = _binary(y_true)
    p = _prob(prob, len(y))
    return float(np.mean((p - y) ** 2)) if len(y) else math.nan


def log_loss(y_true: ArrayLike, prob: ArrayLike) -> float:
    """Mean binary cross-entropy, with ``prob`` clipped to [1e-12, 1 - 1e-12]."""
    y = _binary(y_true)
    p = np.clip(_prob(prob, len(y)), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))) if len(y) else math.nan


def _calibration_targets(y_true: ArrayLike, prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome) pairs: P(y=1) vs y for binary, max-prob vs correct for (n, k)."""
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim == 2:
        t = np.asarray(y_true, dtype=np.int64)
        _same_length(t, p)
        return p.max(axis=1), (p.argmax(axis=1) == t).astype(np.float64)
    y = _binary(y_true)
    return _prob(p, len(y)), y.astype(np.float64)


def reliability_curve(
    y_true: ArrayLike, prob: ArrayLike, n_bins: int = 15
) -> dict[str, np.ndarray]:
    """Per-bin data of a reliability diagram with ``n_bins`` equal-width bins on [0, 1].

    Bins are ``[k/n, (k+1)/n)``, the last one closed. Binary ``prob`` (n,) is the
    positive-class probability and the outcome is the label; multi-class ``prob``
    (n, k) uses the top-class confidence and whether the top class is right.

    Returns:
        ``edges`` (n_bins + 1), ``confidence`` (mean predicted value per bin, nan if
        empty), ``frequency`` (observed outcome rate per bin, nan if empty) and
        ``count`` (samples per bin).
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    conf, outcome = _calibration_targets(y_true, prob)
    idx = np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, weights=conf, minlength=n_bins) / count
        frequency = np.bincount(idx, weights=outcome, minlength=n_bins) / count
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "confidence": confidence,
        "frequency": frequency,
        "count": count,
    }


def expected_calibration_error(y_true: ArrayLike, prob: ArrayLike, n_bins: int = 15) -> float:
    """ECE = sum over bins of (bin share) * |observed rate - mean confidence| (Guo et al. 2017)."""
    curve = reliability_curve(y_true, prob, n_bins)
    count = curve["count"]
    if count.sum() == 0:
        return math.nan
    gap = np.abs(np.nan_to_num(curve["frequency"] - curve["confidence"]))
    return float(np.sum(count * gap) / count.sum())


def binary_nll(y_true: ArrayLike, logits: ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels under ``sigmoid(logits / T)`` (stable form)."""
    y = _binary(y_true)
    z = _real(logits, "logits", len(y)) / temperature
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def _softmax_nll(y_true: np.ndarray, logits: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    log_norm = np.logaddexp.reduce(z, axis=1)
    return float(np.mean(log_norm - z[np.arange(len(z)), y_true]))


def _golden_section(
    f: Callable[[float], float], lo: float, hi: float, tol: float, max_iter: int
) -> float:
    """Minimiser of a unimodal ``f`` on ``[lo, hi]`` by golden-section search."""
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(max_iter):
        if b - a < tol:
            break
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = f(d)
    return (a + b) / 2.0


def fit_temperature(
    y_true: ArrayLike,
    logits: ArrayLike,
    *,
    bounds: tuple[float, float] = (0.05, 20.0),
    tol: float = 1e-6,
    max_iter: int = 200,
) -> float:
    """Temperature ``T`` minimising the NLL of ``sigmoid(logits / T)`` (Guo et al. 2017).

    Why golden section on ``log T``: the NLL is convex in ``1/T``, hence unimodal in
    ``log T``, so a derivative-free bounded 1-D search is exact enough and needs no
    scipy; searching in log space treats "twice too hot" and "twice too cold" alike.
    ``logits`` of shape (n, k) with integer ``y_true`` fit a softmax temperature.

    Raises:
        ValueError: Bad shapes, non-finite logits or invalid bounds.
    """
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2:
        y = np.asarray(y_true, dtype=np.int64)
        _same_length(y, z)

        def nll(u: float) -> float:
            return _softmax_nll(y, z, math.exp(u))
    else:
        y = _binary(y_true)
        z = _real(z, "logits", len(y))

        def nll(u: float) -> float:
            return binary_nll(y, z, math.exp(u))

    return math.exp(_golden_section(nll, math.log(lo), math.log(hi), tol, max_iter))


# --------------------------------------------------------------------------- bootstrap


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


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _vec_precision(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    tp, fp, _ = _vec_counts(y, pred, idx)
    return _safe_div(tp, tp + fp)


def _vec_recall(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    tp, _, fn = _vec_counts(y, pred, idx)
    return _safe_div(tp, tp + fn)


def _vec_f1(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    tp, fp, fn = _vec_counts(y, pred, idx)
    return _safe_div(2 * tp, 2 * tp + fp + fn)


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
    fast = _VECTORISED.get(metric)
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


# --------------------------------------------------------------------------- reports


def _json_float(x: Any) -> float | None:
    """Plain float, or None for nan/inf (JSON has neither)."""
    value = float(x)
    return value if math.isfinite(value) else None


def binary_report(
    y_true: ArrayLike,
    prob: ArrayLike,
    *,
    scores: ArrayLike | None = None,
    graded: ArrayLike | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    n_bins: int = 15,
) -> dict[str, Any]:
    """Every smile-detection metric with 95% bootstrap CIs, as a JSON-safe dict.

    Args:
        y_true: 0/1 smile labels.
        prob: Calibrated P(smile); thresholded at ``threshold`` for the count metrics.
        scores: Ranking score for ROC-AUC (defaults to ``prob``), e.g. a 1-10 score.
        graded: Graded ground truth (e.g. FER+ happiness vote share) for the Spearman
            correlation with ``scores`` (or ``prob``).
        threshold: Decision threshold on ``prob``.
        n_boot: Bootstrap resamples (0 disables CIs: they are reported as None).
        seed: Bootstrap seed (all metrics share the same resamples).
        n_bins: Equal-width bins of the ECE / reliability curve.
    """
    y = _binary(y_true)
    p = _prob(prob, len(y))
    s = p if scores is None else _real(scores, "scores", len(y))
    pred = (p >= threshold).astype(np.int64)

    def est(metric: Metric, *arrays: np.ndarray) -> dict[str, Any]:
        if n_boot <= 0:
            return Estimate(float(metric(*arrays)), math.nan, math.nan).as_dict()
        return bootstrap_ci(metric, *arrays, n_boot=n_boot, seed=seed).as_dict()

    report: dict[str, Any] = {
        "n": len(y),
        "n_positive": int(y.sum()),
        "n_negative": int(len(y) - y.sum()),
        "threshold": float(threshold),
        "accuracy": est(accuracy, y, pred),
        "precision": est(precision, y, pred),
        "recall": est(recall, y, pred),
        "f1": est(f1_score, y, pred),
        "roc_auc": est(roc_auc, y, s),
        "brier": est(brier_score, y, p),
        "log_loss": _json_float(log_loss(y, p)),
        "ece": est(lambda t, q: expected_calibration_error(t, q, n_bins), y, p),
        "confusion_matrix": confusion_matrix(y, pred, 2),
        "reliability": reliability_curve(y, p, n_bins),
        "bootstrap": {
            "n_boot": int(n_boot),
            "seed": int(seed),
            "confidence": 0.95,
            "method": "percentile",
        },
    }
    if graded is not None:
        report["spearman_graded"] = est(spearman, _real(graded, "graded", len(y)), s)
    return to_jsonable(report)


def compare_report(
    y_true: ArrayLike,
    prob_a: ArrayLike,
    prob_b: ArrayLike,
    *,
    scores_a: ArrayLike | None = None,
    scores_b: ArrayLike | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    names: tuple[str, str] = ("a", "b"),
) -> dict[str, Any]:
    """Compare two smile models on the same samples (differences are a minus b).

    Accuracy is compared with McNemar's test and a paired bootstrap; ROC-AUC (on
    ``scores_*`` if given, else ``prob_*``) with a paired bootstrap.
    """
    y = _binary(y_true)
    pa, pb = _prob(prob_a, len(y), "prob_a"), _prob(prob_b, len(y), "prob_b")
    sa = pa if scores_a is None else _real(scores_a, "scores_a", len(y))
    sb = pb if scores_b is None else _real(scores_b, "scores_b", len(y))
    pred_a, pred_b = (pa >= threshold).astype(np.int64), (pb >= threshold).astype(np.int64)
    boot = {"n_boot": n_boot, "seed": seed}
    report = {
        "n": len(y),
        "names": list(names),
        "threshold": float(threshold),
        "models": {
            names[0]: {"accuracy": accuracy(y, pred_a), "roc_auc": roc_auc(y, sa)},
            names[1]: {"accuracy": accuracy(y, pred_b), "roc_auc": roc_auc(y, sb)},
        },
        "mcnemar": mcnemar_test(y, pred_a, pred_b),
        "delta_accuracy": paired_bootstrap_accuracy(y, pred_a, pred_b, **boot),
        "delta_roc_auc": paired_bootstrap_auc(y, sa, sb, **boot),
        "bootstrap": {**boot, "confidence": 0.95, "method": "paired percentile"},
    }
    return to_jsonable(report)


def per_class_recall(y_true: ArrayLike, y_pred: ArrayLike, k: int) -> list[float | None]:
    """Recall of each class (None for a class absent from ``y_true``).

    Why beside F1: a model that maps every rare emotion to ``neutral`` keeps a high
    accuracy; the recall of each class shows the collapse directly.
    """
    t, p = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    return [float((p[t == c] == c).mean()) if (t == c).any() else None for c in range(k)]


def multiclass_report(
    y_true: ArrayLike,
    probs: ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    n_bins: int = 15,
) -> dict[str, Any]:
    """Emotion metrics: accuracy and macro-F1 with CIs, per-class F1, confusion, ECE.

    Args:
        y_true: Integer class labels (n,).
        probs: Class probabilities (n, k) or hard predictions (n,) (then no ECE).
        labels: Class names, e.g. ``duchenne.datasets.FERPLUS_EMOTIONS``.
    """
    t = np.asarray(y_true, dtype=np.int64)
    q = np.asarray(probs)
    pred = q.argmax(axis=1) if q.ndim == 2 else q.astype(np.int64)
    k = q.shape[1] if q.ndim == 2 else (len(labels) if labels else None)
    names = (
        list(labels) if labels else [str(i) for i in range(k or int(max(t.max(), pred.max())) + 1)]
    )
    report: dict[str, Any] = {
        "n": len(t),
        "labels": names,
        "accuracy": bootstrap_ci(accuracy, t, pred, n_boot=n_boot, seed=seed).as_dict(),
        "macro_f1": bootstrap_ci(
            lambda a, b: macro_f1(a, b, len(names)), t, pred, n_boot=n_boot, seed=seed
        ).as_dict(),
        "per_class_f1": dict(zip(names, per_class_f1(t, pred, len(names)), strict=True)),
        "per_class_recall": dict(zip(names, per_class_recall(t, pred, len(names)), strict=True)),
        "confusion_matrix": confusion_matrix(t, pred, len(names)),
    }
    if q.ndim == 2:
        report["ece"] = _json_float(expected_calibration_error(t, q, n_bins))
    return to_jsonable(report)
