"""Learned posed-vs-spontaneous classifiers over D-Markers (and optional deep features).

Why apart from the rules in :mod:`duchenne.analysis.authenticity`: these are fitted models
with their own persistence and cross-validation; the rules need none of it. Trained on
D-Marker matrices (numpy logistic regression with standardisation and L2, Newton's
method), optionally fused with deep per-frame features by a Hadamard product
(HadaSmileNet's idea, with a fixed projection instead of learned ones);
:func:`cross_validate` runs fold protocols such as UvA-NEMO's 10 subject-independent
folds. Label convention: 1 = spontaneous/genuine, 0 = posed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.analysis.dmarkers import DMARKER_VERSION
from duchenne.analysis.episodes import SmileEpisode

__all__ = [
    "AuthenticityClassifier",
    "CVResult",
    "LogisticRegression",
    "cross_validate",
    "episode_deep_features",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- classifiers


class LogisticRegression:
    """Binary L2-regularised logistic regression on standardised features (numpy only).

    Minimises ``sum_i logloss_i + l2 / 2 * ||w||^2`` (the intercept is not penalised; this
    is scikit-learn's ``C = 1 / l2``) with Newton's method and a backtracking line search:
    a few iterations suffice for the few hundred features of D-Markers, and the L2 term
    keeps the Hessian invertible and the solution finite on separable data.

    Args:
        l2: regularisation strength (> 0).
        max_iter: Newton iterations.
        tol: stop when the largest gradient entry is below this.

    Example:
        >>> clf = LogisticRegression(l2=1.0).fit(X, y)  # doctest: +SKIP
        >>> clf.predict_proba(X)[:3]  # doctest: +SKIP
    """

    def __init__(self, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-6) -> None:
        if l2 <= 0:
            raise ValueError("l2 must be > 0")
        self.l2 = float(l2)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self.n_iter_ = 0

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticRegression:
        """Fit on (n, d) features and (n,) binary labels (0/1 or bool)."""
        X = _as_matrix(X)
        y = _as_labels(y, len(X))
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        Z = np.hstack([np.ones((len(X), 1)), (X - self.mean_) / self.scale_])
        theta = self._newton(Z, y)
        self.intercept_, self.coef_ = float(theta[0]), theta[1:]
        return self

    def _newton(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Newton iterations with backtracking on the penalised log-loss."""
        penalty = np.full(Z.shape[1], self.l2)
        penalty[0] = 1e-10  # intercept: unpenalised (tiny ridge for conditioning)
        theta = np.zeros(Z.shape[1])
        loss = self._loss(Z, y, theta, penalty)
        self.n_iter_ = 0
        while self.n_iter_ < self.max_iter:
            p = _expit(Z @ theta)
            grad = Z.T @ (p - y) + penalty * theta
            if np.max(np.abs(grad)) < self.tol:
                break
            hess = (Z.T * (p * (1 - p))) @ Z + np.diag(penalty)
            step = np.linalg.solve(hess, grad)
            theta, loss = self._backtrack(Z, y, theta, step, loss, penalty)
            self.n_iter_ += 1
        logger.debug("logistic regression: %d Newton steps, loss %.4g", self.n_iter_, loss)
        return theta

    def _backtrack(
        self,
        Z: np.ndarray,
        y: np.ndarray,
        theta: np.ndarray,
        step: np.ndarray,
        loss: float,
        penalty: np.ndarray,
    ) -> tuple[np.ndarray, float]:
        """Halve the Newton step until the loss does not increase."""
        t = 1.0
        for _ in range(30):
            cand = theta - t * step
            new = self._loss(Z, y, cand, penalty)
            if new <= loss + 1e-12:
                return cand, new
            t *= 0.5
        return theta, loss

    @staticmethod
    def _loss(Z: np.ndarray, y: np.ndarray, theta: np.ndarray, penalty: np.ndarray) -> float:
        """Penalised negative log-likelihood (numerically stable)."""
        z = Z @ theta
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        return float(nll + 0.5 * np.sum(penalty * theta**2))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """(n,) logits."""
        if self.coef_ is None or self.mean_ is None or self.scale_ is None:
            raise RuntimeError("LogisticRegression is not fitted")
        X = _as_matrix(X)
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n,) probability of class 1."""
        return _expit(self.decision_function(X))

    def predict(self, X: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """(n,) 0/1 predictions."""
        return (self.predict_proba(X) >= threshold).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe parameters."""
        if self.coef_ is None or self.mean_ is None or self.scale_ is None:
            raise RuntimeError("LogisticRegression is not fitted")
        return {
            "l2": self.l2,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogisticRegression:
        """Inverse of :meth:`to_dict`."""
        model = cls(d["l2"], d["max_iter"], d["tol"])
        model.mean_ = np.asarray(d["mean"], dtype=np.float64)
        model.scale_ = np.asarray(d["scale"], dtype=np.float64)
        model.coef_ = np.asarray(d["coef"], dtype=np.float64)
        model.intercept_ = float(d["intercept"])
        if (
            model.coef_.ndim != 1
            or not model.coef_.shape == model.mean_.shape == model.scale_.shape
        ):
            raise ValueError(
                f"inconsistent model: {model.coef_.size} weights, {model.mean_.size} means, "
                f"{model.scale_.size} scales"
            )
        return model


def _expit(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _as_matrix(X: np.ndarray) -> np.ndarray:
    """(n, d) finite float64 matrix or ``ValueError``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, d) matrix, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("features contain NaN or inf")
    return X


def _as_labels(y: np.ndarray, n: int) -> np.ndarray:
    """(n,) float64 labels in {0, 1} or ``ValueError``."""
    y = np.asarray(y).ravel()
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} samples")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0 (posed) or 1 (spontaneous)")
    return y.astype(np.float64)


@dataclass
class _Projection:
    """Standardise, then project to ``dim`` columns (fitted on training data only)."""

    mean: np.ndarray
    scale: np.ndarray
    matrix: np.ndarray

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale) @ self.matrix

    def to_dict(self) -> dict[str, list]:
        return {k: v.tolist() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> _Projection:
        return cls(*(np.asarray(d[k], dtype=np.float64) for k in ("mean", "scale", "matrix")))

    @classmethod
    def fit(cls, X: np.ndarray, dim: int, method: str, rng: np.random.Generator) -> _Projection:
        """Random Gaussian (variance 1/d, so projected columns have ~unit variance) or PCA
        (top principal axes, whitened so every column has unit variance)."""
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        scale = np.where(std > 1e-12, std, 1.0)
        Xs = (X - mean) / scale
        if method == "random":
            matrix = rng.standard_normal((X.shape[1], dim)) / math.sqrt(X.shape[1])
        elif method == "pca":
            _, s, vt = np.linalg.svd(Xs, full_matrices=False)
            k = min(dim, len(s))
            sv = np.where(s[:k] > 1e-12, s[:k], 1.0)
            matrix = vt[:k].T * (math.sqrt(len(X)) / sv)
        else:
            raise ValueError(f"unknown projection {method!r} (use 'random' or 'pca')")
        return cls(mean, scale, matrix)


class AuthenticityClassifier:
    """Posed vs spontaneous smile classifier on D-Markers, optionally fused with deep features.

    ``kind="dmarkers"``: :class:`LogisticRegression` on the (n, 225) D-Marker matrix (the
    baseline; any feature matrix works).

    ``kind="fusion"``: both inputs are standardised and projected to ``proj_dim``
    dimensions, by a fixed seeded Gaussian random projection (default: no fitting, so it
    cannot overfit small datasets; Johnson-Lindenstrauss keeps the geometry) or by
    whitened PCA fitted on the training set (``projection="pca"``; the dimension is
    capped by the training rank). The two projections, each shifted by ``fusion_bias``
    (an affine projection, like the biased linear layers HadaSmileNet learns), are
    multiplied element-wise (Hadamard product)::

        z = (P_d x + b) * (P_f f + b) = b^2 + b P_d x + b P_f f + (P_d x) * (P_f f)

    so every fused feature carries both inputs' linear evidence and their interaction.
    Without the bias (``fusion_bias=0``) the product of two centred projections loses the
    linear evidence: when both inputs shift with the class, the products of the two
    classes have the same sign. A logistic regression follows.

    Args:
        kind: ``"dmarkers"`` or ``"fusion"``.
        l2: L2 strength of the logistic regression.
        proj_dim: fusion dimension.
        projection: ``"random"`` or ``"pca"``.
        seed: seed of the random projection.
        fusion_bias: offset added to both projections before the product.

    Example:
        >>> clf = AuthenticityClassifier("fusion").fit(X_dm, y, deep=X_deep)  # doctest: +SKIP
        >>> clf.save("smile_auth.json")  # doctest: +SKIP
    """

    def __init__(
        self,
        kind: str = "dmarkers",
        l2: float = 1.0,
        proj_dim: int = 64,
        projection: str = "random",
        seed: int = 0,
        fusion_bias: float = 1.0,
    ) -> None:
        if kind not in ("dmarkers", "fusion"):
            raise ValueError(f"kind must be 'dmarkers' or 'fusion', got {kind!r}")
        if proj_dim < 1:
            raise ValueError("proj_dim must be >= 1")
        self.kind = kind
        self.l2 = float(l2)
        self.proj_dim = int(proj_dim)
        self.projection = projection
        self.seed = int(seed)
        self.fusion_bias = float(fusion_bias)
        self.model: LogisticRegression | None = None
        self._proj: tuple[_Projection, _Projection] | None = None

    def fit(
        self, X: np.ndarray, y: np.ndarray, deep: np.ndarray | None = None
    ) -> AuthenticityClassifier:
        """Fit on (n, d) D-Markers, (n,) labels (1 = spontaneous) and, for fusion, (n, k) deep features."""
        X = _as_matrix(X)
        if self.kind == "fusion":
            D = self._check_deep(deep, len(X))
            rng = np.random.default_rng(self.seed)
            p_d = _Projection.fit(X, self.proj_dim, self.projection, rng)
            p_f = _Projection.fit(D, self.proj_dim, self.projection, rng)
            k = min(p_d.matrix.shape[1], p_f.matrix.shape[1])
            p_d.matrix, p_f.matrix = p_d.matrix[:, :k], p_f.matrix[:, :k]
            self._proj = (p_d, p_f)
        self.model = LogisticRegression(self.l2).fit(self._features(X, deep), y)
        return self

    def _check_deep(self, deep: np.ndarray | None, n: int) -> np.ndarray:
        """Validate the deep feature matrix of a fusion model."""
        if deep is None:
            raise ValueError("the fusion model needs deep features (deep=...)")
        D = _as_matrix(deep)
        if len(D) != n:
            raise ValueError(f"{len(D)} deep feature rows for {n} samples")
        return D

    def _features(self, X: np.ndarray, deep: np.ndarray | None) -> np.ndarray:
        """The matrix the logistic regression sees."""
        X = _as_matrix(X)
        if self.kind == "dmarkers":
            return X
        if self._proj is None:
            raise RuntimeError("AuthenticityClassifier is not fitted")
        D = self._check_deep(deep, len(X))
        p_d, p_f = self._proj
        return (p_d(X) + self.fusion_bias) * (p_f(D) + self.fusion_bias)

    def predict_proba(self, X: np.ndarray, deep: np.ndarray | None = None) -> np.ndarray:
        """(n,) probability that each smile is spontaneous."""
        if self.model is None:
            raise RuntimeError("AuthenticityClassifier is not fitted")
        return self.model.predict_proba(self._features(X, deep))

    def predict(
        self, X: np.ndarray, deep: np.ndarray | None = None, threshold: float = 0.5
    ) -> np.ndarray:
        """(n,) labels: 1 = spontaneous, 0 = posed."""
        return (self.predict_proba(X, deep) >= threshold).astype(np.int64)

    def score(self, X: np.ndarray, y: np.ndarray, deep: np.ndarray | None = None) -> float:
        """Accuracy on labelled data."""
        y = _as_labels(y, len(np.asarray(X)))
        return float(np.mean(self.predict(X, deep) == y))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (projection matrices included, so loading needs no RNG), with the
        D-Marker formula version the model was trained on."""
        if self.model is None:
            raise RuntimeError("AuthenticityClassifier is not fitted")
        return {
            "format": "duchenne.authenticity/1",
            "dmarker_version": DMARKER_VERSION,
            "kind": self.kind,
            "l2": self.l2,
            "proj_dim": self.proj_dim,
            "projection": self.projection,
            "seed": self.seed,
            "fusion_bias": self.fusion_bias,
            "model": self.model.to_dict(),
            "proj": None if self._proj is None else [p.to_dict() for p in self._proj],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuthenticityClassifier:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: not a classifier, or one trained on D-Markers of another formula
                version (its weights would be applied to features on another scale).
        """
        if not isinstance(d, dict) or d.get("format") != "duchenne.authenticity/1":
            raise ValueError("not a duchenne authenticity classifier")
        version = d.get("dmarker_version")
        if version != DMARKER_VERSION:
            found = "1 (unrecorded)" if version is None else repr(version)
            raise ValueError(
                f"trained on D-Markers of formula version {found}, but this duchenne computes "
                f"version {DMARKER_VERSION}; retrain it with `duchenne train-authenticity`"
            )
        clf = cls(d["kind"], d["l2"], d["proj_dim"], d["projection"], d["seed"], d["fusion_bias"])
        clf.model = LogisticRegression.from_dict(d["model"])
        if d["proj"] is not None:
            p_d, p_f = (_Projection.from_dict(p) for p in d["proj"])
            clf._proj = (p_d, p_f)
        return clf

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (atomically: an interrupted save never leaves half a model)."""
        from duchenne.io.atomic import atomic_write

        with atomic_write(path, "w") as fh:
            fh.write(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> AuthenticityClassifier:
        """Read a model written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def episode_deep_features(frame_features: np.ndarray, episode: SmileEpisode) -> np.ndarray:
    """Mean of per-frame deep feature vectors (T, k) over the episode's frames (NaN rows skipped).

    Example:
        >>> deep = episode_deep_features(frame_embeddings, episode)  # (k,)  # doctest: +SKIP
    """
    F = np.asarray(frame_features, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError(f"frame features must be (T, k), got {F.shape}")
    rows = F[episode.start_frame : episode.end_frame + 1]
    rows = rows[np.all(np.isfinite(rows), axis=1)]
    if not len(rows):
        raise ValueError("no finite deep features inside the episode")
    return rows.mean(axis=0)


# --------------------------------------------------------------------------- evaluation


@dataclass
class CVResult:
    """Cross-validation accuracies (one per fold) and their mean and standard deviation."""

    fold_accuracy: list[float]
    fold_size: list[int]
    mean_accuracy: float
    std_accuracy: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def cross_validate(
    folds: int | np.ndarray | Sequence[Sequence[int]],
    X: np.ndarray,
    y: np.ndarray,
    deep: np.ndarray | None = None,
    seed: int = 0,
    **classifier_args: Any,
) -> CVResult:
    """k-fold cross-validation of :class:`AuthenticityClassifier`.

    Args:
        folds: an ``int`` k (stratified, shuffled with ``seed``; *not* subject-independent),
            an (n,) array of fold ids per sample (e.g. built from a dataset's
            subject-independent fold files), or a sequence of test-index lists.
        X: (n, d) D-Marker matrix.
        y: (n,) labels, 1 = spontaneous.
        deep: (n, k) deep features for ``kind="fusion"``.
        seed: shuffling seed when ``folds`` is an int.
        **classifier_args: passed to :class:`AuthenticityClassifier`.

    Returns:
        :class:`CVResult` (accuracy per fold, mean, std).

    Example:
        >>> cross_validate(10, X, y).mean_accuracy  # doctest: +SKIP
    """
    X = _as_matrix(X)
    y_arr = _as_labels(y, len(X)).astype(np.int64)
    tests = _test_sets(folds, y_arr, seed)
    acc, sizes = [], []
    for test in tests:
        train = np.setdiff1d(np.arange(len(X)), test)
        if len(train) == 0 or len(np.unique(y_arr[train])) < 2:
            raise ValueError("a training split must contain both classes")
        clf = AuthenticityClassifier(**classifier_args)
        clf.fit(X[train], y_arr[train], None if deep is None else np.asarray(deep)[train])
        acc.append(
            clf.score(X[test], y_arr[test], None if deep is None else np.asarray(deep)[test])
        )
        sizes.append(len(test))
    logger.info("cross-validation: %d folds, mean accuracy %.3f", len(acc), float(np.mean(acc)))
    return CVResult(acc, sizes, float(np.mean(acc)), float(np.std(acc)))


def _test_sets(
    folds: int | np.ndarray | Sequence[Sequence[int]], y: np.ndarray, seed: int
) -> list[np.ndarray]:
    """Test index arrays from any of the accepted fold descriptions."""
    n = len(y)
    if isinstance(folds, (int, np.integer)):
        return _stratified(int(folds), y, seed)
    arr = np.asarray(folds, dtype=object) if not isinstance(folds, np.ndarray) else folds
    if arr.ndim == 1 and len(arr) == n and all(np.isscalar(v) for v in arr):
        ids = np.asarray(arr)
        return [np.nonzero(ids == f)[0] for f in np.unique(ids)]
    tests = [np.asarray(t, dtype=np.intp).ravel() for t in folds]  # type: ignore[union-attr]
    for t in tests:
        if len(t) == 0 or t.min() < 0 or t.max() >= n:
            raise ValueError("every fold needs test indices within [0, n)")
    return tests


def _stratified(k: int, y: np.ndarray, seed: int) -> list[np.ndarray]:
    """k stratified folds: each class shuffled and dealt round-robin."""
    if not 2 <= k <= len(y):
        raise ValueError(f"k must be in [2, n], got {k}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.intp)
    offset = 0
    for label in np.unique(y):
        idx = rng.permutation(np.nonzero(y == label)[0])
        fold_of[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return [np.nonzero(fold_of == f)[0] for f in range(k)]
