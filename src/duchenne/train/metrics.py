"""Validation metrics of the three heads, in numpy (no scikit-learn/scipy dependency).

Why these: the issue's targets are FER+ happy-vs-rest F1, 8-class accuracy against the
plurality vote, smile AUC and the Spearman correlation of the smile score with the
happiness votes; model selection (early stopping) uses a mean of three of them so no
head is sacrificed for another.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) with ties sharing their mean rank, like scipy's default."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), np.float64)
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson on average ranks); nan if either is constant."""
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney U statistic (ties count one half)."""
    labels = np.asarray(labels) > 0.5
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def binary_f1(labels: np.ndarray, pred: np.ndarray) -> float:
    labels, pred = np.asarray(labels) > 0.5, np.asarray(pred) > 0.5
    tp = float((labels & pred).sum())
    denom = float(labels.sum() + pred.sum())
    return 2 * tp / denom if denom else 0.0


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
        f"{prefix}f1": binary_f1(y, p >= 0.5),
        f"{prefix}auc": roc_auc(y, logits),
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
        out["emotion_acc"] = float((np.argmax(emotion_logits[has], axis=1) == plurality).mean())
        out["intensity_spearman"] = spearman(intensity[has], votes[has, 1])
        out["intensity_mae"] = float(np.abs(intensity[has] - votes[has, 1]).mean())
    return out


def selection_score(m: dict[str, float]) -> float:
    """Early-stopping criterion: mean of 8-class accuracy, smile F1 and intensity Spearman."""
    parts = [m.get("emotion_acc"), m.get("smile_f1"), m.get("intensity_spearman")]
    vals = [v for v in parts if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")
