"""Temperature scaling of the smile logit (Guo et al., 2017).

Why temperature and nothing richer: one scalar keeps the ranking (AUC, F1 at the
sigmoid's 0.5 point) unchanged and fixes over/under-confidence, which class-balanced
losses and EMA weights both introduce. It is fitted on FER+ Valid (never Test) and
stored as ``duchenne.temperature``; inference computes ``sigmoid(logit / T)``.
"""

from __future__ import annotations

import numpy as np

T_MIN, T_MAX = 0.05, 20.0


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean binary cross-entropy of ``sigmoid(logits / temperature)``."""
    z = np.asarray(logits, np.float64) / temperature
    y = np.asarray(labels, np.float64)
    # log(1 + exp(-|z|)) form: stable for large |z|
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iters: int = 80) -> float:
    """The T in [0.05, 20] minimising validation NLL (golden-section search on log T).

    NLL is unimodal in log T for a fixed set of logits, so golden-section converges
    without gradients or a scipy dependency.
    """
    logits = np.asarray(logits, np.float64).reshape(-1)
    labels = np.asarray(labels, np.float64).reshape(-1)
    if len(logits) == 0 or labels.min() == labels.max():
        return 1.0
    lo, hi = np.log(T_MIN), np.log(T_MAX)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, labels, np.exp(a)), nll(logits, labels, np.exp(b))
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, labels, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, labels, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the positive-class probability over equal-width bins (reported, not optimised)."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(probs, edges) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(probs[sel].mean() - labels[sel].mean())
    return float(ece)
