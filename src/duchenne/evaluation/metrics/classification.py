"""Classification and ranking metrics: accuracy, precision/recall/F1, confusion matrix,
ROC-AUC and curve, Spearman."""

from __future__ import annotations

import math

import numpy as np

from duchenne.evaluation.metrics._checks import ArrayLike, _binary, _ratio, _real, _same_length


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


def precision(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """Precision of the positive class: tp / (tp + fp); ``zero_division`` when nothing is
    predicted positive (0 by default; ``math.nan`` marks it undefined, as the reports do)."""
    tp, fp, _, _ = _counts(y_true, y_pred)
    return _ratio(tp, tp + fp, zero_division)


def recall(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """Recall (sensitivity) of the positive class: tp / (tp + fn); ``zero_division`` with
    no positives."""
    tp, _, fn, _ = _counts(y_true, y_pred)
    return _ratio(tp, tp + fn, zero_division)


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0) -> float:
    """F1 of the positive class: 2tp / (2tp + fp + fn); ``zero_division`` when undefined
    (no positives and none predicted)."""
    tp, fp, fn, _ = _counts(y_true, y_pred)
    return _ratio(2 * tp, 2 * tp + fp + fn, zero_division)


def precision_recall_f1(
    y_true: ArrayLike, y_pred: ArrayLike, *, zero_division: float = 0.0
) -> tuple[float, float, float]:
    """Precision, recall and F1 of the positive class in one pass.

    ``zero_division``: the value of a ratio whose denominator is 0, as in scikit-learn.
    0 (the default) suits a score to maximise; ``math.nan`` says "undefined", so a
    report shows no number and a bootstrap leaves such resamples out instead of counting
    a one-class resample as a total miss.
    """
    tp, fp, fn, _ = _counts(y_true, y_pred)
    return (
        _ratio(tp, tp + fp, zero_division),
        _ratio(tp, tp + fn, zero_division),
        _ratio(2 * tp, 2 * tp + fp + fn, zero_division),
    )


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


def per_class_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    n_classes: int | None = None,
    *,
    zero_division: float = 0.0,
) -> np.ndarray:
    """One-vs-rest F1 of every class (``zero_division`` where a class is never true nor
    predicted: 0 by default, ``math.nan`` to mark it undefined)."""
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    tp = np.diag(cm)
    den = cm.sum(axis=0) + cm.sum(axis=1)
    return np.divide(2 * tp, den, out=np.full_like(tp, zero_division), where=den > 0)


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
