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

from duchenne.evaluation.metrics.calibration import (
    binary_nll,
    brier_score,
    class_prior,
    expected_calibration_error,
    fit_class_bias,
    fit_platt,
    fit_temperature,
    group_weights,
    log_loss,
    reliability_curve,
    sigmoid,
)
from duchenne.evaluation.metrics.classification import (
    accuracy,
    confusion_matrix,
    f1_score,
    macro_f1,
    per_class_f1,
    precision,
    precision_recall_f1,
    rankdata,
    recall,
    roc_auc,
    roc_curve,
    spearman,
)
from duchenne.evaluation.metrics.reports import (
    binary_report,
    compare_report,
    multiclass_report,
    per_class_recall,
    recall_cells,
)
from duchenne.evaluation.metrics.significance import (
    Estimate,
    bootstrap_ci,
    chi2_sf_1dof,
    mcnemar,
    mcnemar_test,
    paired_bootstrap,
    paired_bootstrap_accuracy,
    paired_bootstrap_auc,
)

__all__ = [
    "Estimate",
    "accuracy",
    "binary_nll",
    "binary_report",
    "bootstrap_ci",
    "brier_score",
    "chi2_sf_1dof",
    "class_prior",
    "compare_report",
    "confusion_matrix",
    "expected_calibration_error",
    "f1_score",
    "fit_class_bias",
    "fit_platt",
    "fit_temperature",
    "group_weights",
    "log_loss",
    "macro_f1",
    "mcnemar",
    "mcnemar_test",
    "multiclass_report",
    "paired_bootstrap",
    "paired_bootstrap_accuracy",
    "paired_bootstrap_auc",
    "per_class_f1",
    "per_class_recall",
    "precision",
    "precision_recall_f1",
    "rankdata",
    "recall",
    "recall_cells",
    "reliability_curve",
    "roc_auc",
    "roc_curve",
    "sigmoid",
    "spearman",
]
