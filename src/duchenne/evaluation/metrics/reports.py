"""The JSON-safe reports the evaluation runner writes (binary, paired comparison,
multiclass)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from duchenne.evaluation.metrics._checks import (
    ArrayLike,
    Metric,
    _binary,
    _json_float,
    _prob,
    _real,
)
from duchenne.evaluation.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    log_loss,
    reliability_curve,
)
from duchenne.evaluation.metrics.classification import (
    accuracy,
    confusion_matrix,
    f1_score,
    macro_f1,
    per_class_f1,
    precision,
    recall,
    roc_auc,
    spearman,
)
from duchenne.evaluation.metrics.significance import (
    Estimate,
    bootstrap_ci,
    mcnemar_test,
    paired_bootstrap_accuracy,
    paired_bootstrap_auc,
)
from duchenne.io.jsonsafe import to_jsonable


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
        # undefined (0/0: no positives, none predicted) is None, as ROC-AUC of one class,
        # and a resample where it is undefined is left out of the CI, not counted as 0
        "precision": est(functools.partial(precision, zero_division=math.nan), y, pred),
        "recall": est(functools.partial(recall, zero_division=math.nan), y, pred),
        "f1": est(functools.partial(f1_score, zero_division=math.nan), y, pred),
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
        "per_class_f1": dict(  # None for a class neither true nor predicted (undefined)
            zip(names, per_class_f1(t, pred, len(names), zero_division=math.nan), strict=True)
        ),
        "per_class_recall": dict(zip(names, per_class_recall(t, pred, len(names)), strict=True)),
        "per_class_support": dict(
            zip(names, np.bincount(t, minlength=len(names)).tolist(), strict=True)
        ),
        "confusion_matrix": confusion_matrix(t, pred, len(names)),
    }
    if q.ndim == 2:
        report["ece"] = _json_float(expected_calibration_error(t, q, n_bins))
    return to_jsonable(report)


def recall_cells(report: dict[str, Any], labels: Sequence[str], support: bool = False) -> list[str]:
    """Table cells of a ``multiclass_report``'s per-class recall ("-" for a class with no
    faces), with each class's face count when asked: one format for ``duchenne evaluate``
    and the model card, so small classes show their size wherever the numbers appear."""
    rec = report["per_class_recall"]
    cells = ["-" if rec[c] is None else f"{rec[c]:.2f}" for c in labels]
    if not support:
        return cells
    n = report["per_class_support"]
    return [
        cell if rec[c] is None else f"{cell} (n={n[c]})"
        for cell, c in zip(cells, labels, strict=True)
    ]
