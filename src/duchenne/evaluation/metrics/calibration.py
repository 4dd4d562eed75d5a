"""Calibration: sigmoid, Brier score, log loss, reliability curve, ECE, temperature fitting
and class-prior (bias) fitting."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from duchenne.evaluation.metrics._checks import _EPS, ArrayLike, _binary, _prob, _real, _same_length


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


def _newton(
    loss: Callable[[np.ndarray], float],
    derivatives: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    start: np.ndarray,
    max_iter: int,
    tol: float,
) -> np.ndarray:
    """Minimiser of a convex ``loss`` by Newton's method with a backtracking (Armijo) line
    search, from ``start``; stops when a step gains less than ``tol`` or none helps.

    ``derivatives`` returns (gradient, Hessian); a singular Hessian (a direction the loss
    ignores, e.g. a common shift of softmax offsets) is solved in the least-squares sense.
    """
    theta = start
    current = loss(theta)
    for _ in range(max_iter):
        grad, hess = derivatives(theta)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t = 1.0
        while t > 1e-10 and loss(theta - t * step) > current - 1e-4 * t * float(grad @ step):
            t /= 2
        if t <= 1e-10:
            break
        theta = theta - t * step
        new = loss(theta)
        done = current - new < tol
        current = new
        if done:
            break
    return theta


def _soft_targets(targets: ArrayLike, k: int) -> np.ndarray:
    """(n, k) rows summing to 1 from integer labels (n,) or vote distributions (n, k)."""
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim == 1:
        labels = t.astype(np.int64)
        if np.any(labels != t) or np.any((labels < 0) | (labels >= k)):
            raise ValueError(f"integer targets must lie in [0, {k})")
        return np.eye(k)[labels]
    if t.shape[1] != k or np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"soft targets must be non-negative (n, {k}), got shape {t.shape}")
    total = t.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("every soft-target row needs a positive sum")
    return t / total


def class_prior(targets: ArrayLike, k: int) -> np.ndarray:
    """Class frequencies of integer labels or (mean) vote distributions, summing to 1."""
    return _soft_targets(targets, k).mean(axis=0)


def fit_class_bias(
    targets: ArrayLike,
    logits: ArrayLike,
    *,
    class_weight: str | ArrayLike = "balanced",
    max_iter: int = 100,
    tol: float = 1e-8,
) -> np.ndarray:
    """Per-class offsets ``b`` so that ``softmax(logits + b)`` fits the weighted targets.

    Why: a classifier trained on skewed data (FER+: a third neutral, 2% disgust) learns
    that skew as part of its logits, and a face with a weak expression is then called
    ``neutral``. With ``class_weight="balanced"`` (each class weighted by 1 / its
    frequency in ``targets``) the fitted ``softmax(logits + b)`` is the posterior under
    a *uniform* class prior, the right one for a set with every expression equally
    common (posed-expression stimuli); adding ``log(prior)`` to it gives the posterior
    under any other prior (Saerens et al. 2002, "Adjusting the outputs of a classifier
    to new a priori probabilities"). ``class_weight=None`` refits to the targets' own
    frequencies.

    The weighted cross-entropy is convex in ``b``, so Newton's method with a backtracking
    line search finds the optimum in a few steps without scipy; ``b`` is returned
    centred (softmax ignores a common shift).

    Args:
        targets: integer labels (n,) or vote distributions (n, k) (FER+ votes).
        logits: (n, k) logits or log-probabilities of the same rows.
        class_weight: ``"balanced"``, ``None`` or k non-negative weights.

    Raises:
        ValueError: bad shapes, non-finite logits, or an empty class under "balanced".
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or not np.all(np.isfinite(z)):
        raise ValueError(f"logits must be a finite (n, k) array, got shape {z.shape}")
    k = z.shape[1]
    q = _soft_targets(targets, k)
    _same_length(q, z)
    if class_weight is None:
        weight = np.ones(k)
    elif isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"class_weight must be 'balanced', None or weights, got {class_weight!r}"
            )
        prior = q.mean(axis=0)
        if np.any(prior <= 0):
            raise ValueError("balanced weights need every class present in the targets")
        weight = 1.0 / prior
    else:
        weight = np.asarray(class_weight, dtype=np.float64)
        if weight.shape != (k,) or np.any(weight < 0) or not np.any(weight > 0):
            raise ValueError(f"class_weight must be {k} non-negative weights")
    a = q * weight  # (n, k) weighted targets
    row = a.sum(axis=1)
    total = row.sum()

    def loss(b: np.ndarray) -> float:
        zb = z + b
        return float(-(a * (zb - np.logaddexp.reduce(zb, axis=1, keepdims=True))).sum() / total)

    def derivatives(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zb = z + b
        p = np.exp(zb - np.logaddexp.reduce(zb, axis=1, keepdims=True))
        grad = (row[:, None] * p - a).sum(axis=0) / total
        hess = (np.diag((row[:, None] * p).sum(axis=0)) - (row[:, None] * p).T @ p) / total
        return grad, hess

    b = _newton(loss, derivatives, np.zeros(k), max_iter, tol)
    return b - b.mean()


def group_weights(groups: ArrayLike) -> np.ndarray:
    """Row weights giving every group the same total weight (mean weight 1).

    Why: a calibration set mixing domains (FER+ Valid: 3,555 crops; MTFL calib: 1,000
    photos) would otherwise be fitted mostly to the largest one; equal group weights make
    0.5 mean the same in each domain.
    """
    g = np.asarray(groups)
    _, index, counts = np.unique(g, return_inverse=True, return_counts=True)
    weight = 1.0 / counts[index]
    return weight * len(g) / weight.sum()


def fit_platt(
    y_true: ArrayLike,
    logits: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[float, float]:
    """Temperature ``T`` and bias ``b`` minimising the (weighted) NLL of
    ``sigmoid(logits / T + b)`` (Platt scaling, Platt 1999).

    Why more than a temperature: a temperature only rescales, so the 0.5 point stays at
    logit 0; when a model leans towards "smiling" on one domain and the other way on
    another, the bias moves the decision point to where the domains agree. The NLL is
    convex in ``(1/T, b)``: Newton's method with a backtracking line search.

    Raises:
        ValueError: bad shapes, non-finite logits, one class only, or logits that rank
            the classes the wrong way round (the fitted slope is not positive).
    """
    y = _binary(y_true)
    z = _real(logits, "logits", len(y))
    w = np.ones(len(y)) if sample_weight is None else _real(sample_weight, "sample_weight", len(y))
    if len(np.unique(y)) < 2:
        raise ValueError("Platt scaling needs both classes")
    x = np.stack([z, np.ones_like(z)], axis=1)

    def loss(theta: np.ndarray) -> float:
        u = x @ theta
        return float(np.sum(w * (np.logaddexp(0.0, u) - y * u)) / w.sum())

    def derivatives(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = sigmoid(x @ theta)
        grad = x.T @ (w * (p - y)) / w.sum()
        hess = (x.T * (w * p * (1 - p))) @ x / w.sum()
        return grad, hess

    theta = _newton(loss, derivatives, np.array([1.0, 0.0]), max_iter, tol)
    slope, bias = float(theta[0]), float(theta[1])
    if slope <= 0:
        raise ValueError(f"the logits rank the classes the wrong way round (slope {slope:.3g})")
    return 1.0 / slope, bias
