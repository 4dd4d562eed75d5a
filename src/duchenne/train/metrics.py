"""Validation metrics of the three heads, in numpy (no scikit-learn/scipy dependency).

Why these: the issue's targets are FER+ happy-vs-rest F1, 8-class accuracy against the
plurality vote, smile AUC and the Spearman correlation of the smile score with the
happiness votes; model selection (early stopping) uses a mean of three of them so no
head is sacrificed for another.
"""

from __future__ import annotations

import numpy as np

# the one numpy implementation of each metric lives in duchenne.evaluation.metrics
from duchenne.evaluation.metrics import f1_score, roc_auc, sigmoid, spearman


def smile_metrics(
    labels: np.ndarray, logits: np.ndarray, prefix: str = "smile_"
) -> dict[str, float]:
    """Accuracy, F1 (p >= 0.5), AUC and mean NLL of the smile head."""
    p = sigmoid(logits)
    y = np.asarray(labels) > 0.5
    eps = 1e-7
    nll = -np.mean(np.where(y, np.log(p + eps), np.log(1 - p + eps)))
    return {
        f"{prefix}acc": float(((p >= 0.5) == y).mean()),
        f"{prefix}f1": f1_score(y.astype(int), (p >= 0.5).astype(int)),
        f"{prefix}auc": roc_auc(y.astype(int), logits),
        f"{prefix}nll": float(nll),
    }


def head_metrics(
    label: np.ndarray,
    smile_logit: np.ndarray,
    intensity: np.ndarray,
    emotion_logits: np.ndarray,
    votes: np.ndarray,
    has_votes: np.ndarray,
) -> dict[str, float]:
    """All validation metrics; emotion/intensity ones only over rows with FER+ votes.

    ``intensity`` is the sigmoid output (vote fraction); ``votes`` the normalised
    8-emotion distribution, whose happiness share ranks the same as the vote counts.
    """
    out = smile_metrics(label, smile_logit)
    has = np.asarray(has_votes, bool)
    if has.any():
        plurality = np.argmax(votes[has], axis=1)
        pred = np.argmax(emotion_logits[has], axis=1)
        out["emotion_acc"] = float((pred == plurality).mean())
        recalls = [float((pred[plurality == c] == c).mean()) for c in np.unique(plurality)]
        out["emotion_macro_recall"] = float(np.mean(recalls))
        out["intensity_spearman"] = spearman(intensity[has], votes[has, 1])
        out["intensity_mae"] = float(np.abs(intensity[has] - votes[has, 1]).mean())
    return out


def selection_score(m: dict[str, float]) -> float:
    """Early-stopping criterion: mean of 8-class accuracy, macro recall (rare classes count
    as much as neutral), smile F1 and intensity Spearman."""
    parts = [
        m.get("emotion_acc"),
        m.get("emotion_macro_recall"),
        m.get("smile_f1"),
        m.get("intensity_spearman"),
    ]
    vals = [v for v in parts if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")
