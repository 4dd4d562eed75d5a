"""Evaluation figures (ROC curve, reliability diagram, confusion matrix) as PNG files.

Why this shape: matplotlib is an optional extra (``duchenne[plot]``), so it is imported
only inside the functions via ``require_extra``; figures are built on
``matplotlib.figure.Figure`` with an Agg canvas, never through ``pyplot``, so neither
the global backend nor pyplot's figure registry is touched (safe in servers and
threads). Files are written atomically (``atomic_write``: temp file + rename) so a crashed run
never leaves a truncated PNG that looks valid by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.errors import require_extra
from duchenne.evaluation.metrics import (
    expected_calibration_error,
    reliability_curve,
    roc_auc,
    roc_curve,
)
from duchenne.io.atomic import atomic_write

__all__ = ["plot_confusion_matrix", "plot_reliability", "plot_roc"]

_DPI = 120


def _new_figure(size: tuple[float, float] = (5.0, 5.0)) -> Any:
    """A pyplot-free Figure attached to an Agg canvas."""
    require_extra("matplotlib", "plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save_atomic(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (``atomic_write``)."""
    path = Path(path)
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=_DPI, bbox_inches="tight")
    return path


def plot_roc(
    y_true: Sequence[int] | np.ndarray,
    scores: np.ndarray | Sequence[float] | Mapping[str, np.ndarray | Sequence[float]],
    path: str | Path,
    *,
    title: str = "ROC curve",
) -> Path:
    """Save the ROC curve(s) of ``scores`` (one array, or ``{name: scores}`` to compare).

    The legend gives each curve's ROC-AUC; the chance diagonal is dashed.
    """
    curves = dict(scores) if isinstance(scores, Mapping) else {"model": scores}
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    for name, values in curves.items():
        fpr, tpr, _ = roc_curve(y_true, values)
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC = {roc_auc(y_true, values):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="False positive rate",
        ylabel="True positive rate",
        title=title,
    )
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save_atomic(fig, path)


def plot_reliability(
    y_true: Sequence[int] | np.ndarray,
    prob: Sequence[float] | np.ndarray,
    path: str | Path,
    *,
    n_bins: int = 15,
    title: str = "Reliability diagram",
) -> Path:
    """Save a reliability diagram: observed rate per confidence bin vs the diagonal.

    The title carries the ECE; each bar is annotated with its sample count, and a
    lower panel shows the count histogram, because a large gap in a nearly empty bin
    matters much less than a small gap in a full one.
    """
    curve = reliability_curve(y_true, prob, n_bins)
    ece = expected_calibration_error(y_true, prob, n_bins)
    edges, count = curve["edges"], curve["count"]
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    fig = _new_figure((5.0, 6.0))
    ax, ax_count = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    observed = np.nan_to_num(curve["frequency"])
    ax.bar(centers, observed, width=width * 0.9, color="tab:blue", alpha=0.8, label="observed")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for x, y, c in zip(centers, observed, count, strict=True):
        if c:  # counts above the bar, or inside it near the top so they stay legible
            inside = y > 0.85
            ax.text(
                x,
                y - 0.02 if inside else y + 0.02,
                str(int(c)),
                ha="center",
                va="top" if inside else "bottom",
                fontsize=6,
                rotation=90,
                color="white" if inside else "black",
            )
    ax.set(
        xlim=(0, 1), ylim=(0, 1), ylabel="Observed frequency", title=f"{title} (ECE = {ece:.3f})"
    )
    ax.legend(loc="upper left", fontsize=8)
    ax_count.bar(centers, count, width=width * 0.9, color="tab:grey")
    ax_count.set(xlabel="Predicted probability", ylabel="Count")
    return _save_atomic(fig, path)


def plot_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str = "Confusion matrix",
) -> Path:
    """Save a confusion-matrix heat map (rows = true, columns = predicted) with counts.

    Colours are row-normalised (per-class recall) so rare classes stay readable; the
    cell text shows the raw count and the row percentage.
    """
    cm = np.asarray(matrix, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    k = cm.shape[0]
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} labels for a {k}x{k} matrix")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig = _new_figure((1.2 + 0.7 * k, 1.0 + 0.7 * k))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="row share")
    for i in range(k):
        for j in range(k):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="Predicted", ylabel="True", title=title)
    return _save_atomic(fig, path)
