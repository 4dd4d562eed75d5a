"""One PNG per face: smile score and smile dynamics over time, with the smile episodes.

Why a picture: a table of thousands of per-frame rows does not show *how* a person smiled;
a timeline with the onset, apex and offset of each smile shaded does, at a glance. An
episode found without landmarks (``--stages detect,smile``) has no phases: it is shaded
grey from start to end and labelled "no phase data".

Top panel: the smile score (1-10) when a smile model ran, else nothing but the episodes.
Middle panel: the three D-Marker amplitude signals as changes from the track's first frame
(the neutral reference of the signals):
``D_lip`` (lip-corner displacement, rises in a smile) and ``D_eyelid`` / ``D_cheek`` (eye
aperture and eye-to-cheek distance, relative change in %, fall with AU6). Each episode is
labelled with its Duchenne marker and heuristic genuineness (and the trained classifier's
P(spontaneous) when one ran, as in the text summary); labels that would print over one
another are hidden, and the note above the top panel says how many. Bottom panel, when the
``blendshapes`` stage ran: MediaPipe's mouthSmile, eyeSquint, eyeBlink (left/right means)
and jawOpen coefficients (0-1), the same smile seen through the Face Landmarker. matplotlib is an optional
extra (``pip install 'duchenne[plot]'``) imported only here, with no global state touched
(an ``Agg`` canvas, no ``pyplot``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.errors import require_extra
from duchenne.io.atomic import atomic_write

__all__ = ["plot_track"]

_PHASE_COLOURS = {"onset": "#9ad19a", "apex": "#3c9b4a", "offset": "#f2b774"}
#: an episode found without landmarks (``--stages detect,smile``): one span, no phases
_EPISODE_COLOUR = "#b0b0b0"


def plot_track(
    timeline: np.ndarray,
    summary: Any,
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    title: str | None = None,
) -> Path:
    """Write the timeline PNG of one face track (atomically).

    Args:
        timeline: (n, 6) rows ``time, smile_score, smile, d_lip, d_eyelid, d_cheek`` (NaN
            where unknown), optionally followed by the 4 blendshape channels
            (``duchenne.face.blendshapes.TIMELINE_CHANNELS``), e.g. the decimated timeline
            the video analyzer keeps.
        summary: the track's :class:`~duchenne.analysis.video.TrackSummary` (episodes,
            best frame time).
        path: destination ``.png``.
        fps: analysed frame rate, shown in the title.
        title: overrides the default title.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        MissingExtraError: matplotlib is not installed.
    """
    require_extra("matplotlib", "plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = np.asarray(timeline, dtype=np.float64)
    data = data.reshape(-1, data.shape[-1] if data.ndim == 2 else 6)
    t = data[:, 0]
    has_score = bool(np.isfinite(data[:, 1]).any())
    shapes = data[:, 6:]
    has_shapes = shapes.shape[1] > 0 and bool(np.isfinite(shapes).any())
    n_panels = 1 + has_score + has_shapes
    fig = Figure(figsize=(10, 1.4 + 1.9 * n_panels), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    if has_score:
        _score_panel(axes[0], t, data[:, 1], summary)
    _signal_panel(axes[int(has_score)], t, data[:, 3:6])
    if has_shapes:
        _blendshape_panel(axes[-1], t, shapes)
    for ax in axes:
        _episodes(ax, summary.episodes)
    _time_axis(axes[-1], t)
    labels, note = _episode_labels(axes[0], summary.episodes)
    rate = f", {fps:.3g} fps analysed" if fps else ""
    fig.suptitle(
        title
        or f"face {summary.track_id}: {summary.n_frames} frames, "
        f"{len(summary.episodes)} smile episode(s){rate}"
    )
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    hidden = _thin_labels(fig, labels)
    if hidden:
        text = f"{hidden} of {len(labels)} smile labels hidden (too close together)"
        if note is None:
            _note(axes[0], text)
        else:
            note.set_text(f"{note.get_text()}; {text}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return Path(path)


def _time_axis(ax: Any, t: np.ndarray) -> None:
    """The x axis spans the track's times, whatever was plotted: with every value NaN
    (no landmarks, no smile model) autoscaling had no data and showed -0.04 to 0.04 s."""
    finite = t[np.isfinite(t)]
    if not len(finite):
        return
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.02 * (hi - lo) if hi > lo else 0.5
    ax.set_xlim(lo - pad, hi + pad)


def _line(ax: Any, t: np.ndarray, y: np.ndarray, **style: Any) -> None:
    """``ax.plot`` that also marks isolated samples (a one-frame track, a frame between
    two NaN stretches): a line needs two neighbouring points, so they were invisible."""
    (line,) = ax.plot(t, y, **style)
    ok = np.isfinite(t) & np.isfinite(y)
    before = np.r_[False, ok[:-1]]
    after = np.r_[ok[1:], False]
    alone = ok & ~before & ~after
    if alone.any():
        ax.plot(t[alone], y[alone], ls="none", marker="o", ms=3, color=line.get_color())


def _score_panel(ax: Any, t: np.ndarray, score: np.ndarray, summary: Any) -> None:
    _line(ax, t, score, color="#1f5fa8", lw=1.4, label="smile score")
    ax.set_ylim(0.8, 10.2)
    ax.set_ylabel("smile score (1-10)")
    if summary.best_time is not None:
        ax.axvline(summary.best_time, color="#1f5fa8", ls=":", lw=1)
    ax.grid(alpha=0.3)


def _signal_panel(ax: Any, t: np.ndarray, d: np.ndarray) -> None:
    """Changes of the D signals from the track's first frame (its neutral reference)."""
    lip, eyelid, cheek = d[:, 0], d[:, 1], d[:, 2]
    _line(
        ax,
        t,
        (lip - _first(lip)) * 100,
        color="#c2452d",
        lw=1.4,
        label="lip corners (% mouth width)",
    )
    _line(ax, t, _relative(eyelid), color="#6a3d9a", lw=1.1, label="eye aperture (% change)")
    _line(ax, t, _relative(cheek), color="#b8860b", lw=1.1, label="eye-cheek distance (% change)")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("change from first frame (%)")
    if np.isfinite(d).any():
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    else:  # a legend of three empty lines read as three flat signals
        text = "no lip or eye signal (no Face Mesh landmarks on this face)"
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.grid(alpha=0.3)


def _blendshape_panel(ax: Any, t: np.ndarray, shapes: np.ndarray) -> None:
    """MediaPipe blendshape channels (0-1) over time."""
    from duchenne.face.blendshapes import TIMELINE_CHANNELS

    colours = ("#c2452d", "#6a3d9a", "#2a9d8f", "#555555")
    for name, column, colour in zip(TIMELINE_CHANNELS, shapes.T, colours, strict=False):
        ax.plot(t, column, color=colour, lw=1.1, label=name)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("blendshapes (0-1)")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8, ncol=4)
    ax.grid(alpha=0.3)


def _first(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite[0]) if len(finite) else 0.0


def _relative(x: np.ndarray) -> np.ndarray:
    base = _first(x)
    return (x - base) / abs(base) * 100 if abs(base) > 1e-9 else x * 0


def _episodes(ax: Any, episodes: list[Any]) -> None:
    """Shade each episode's onset, apex and offset; an episode without them (found without
    landmarks) as one grey span from start to end, so the smile still shows."""
    for ep in episodes:
        if not ep.has_dynamics:
            ax.axvspan(ep.start_time, ep.end_time, color=_EPISODE_COLOUR, alpha=0.35, lw=0)
            continue
        for phase in ("onset", "apex", "offset"):
            a, b = getattr(ep, phase)
            if b > a:
                ax.axvspan(a, b, color=_PHASE_COLOURS[phase], alpha=0.35, lw=0)


def _episode_labels(ax: Any, episodes: list[Any]) -> tuple[list[Any], Any | None]:
    """One label per episode at its peak (what the text summary says of it), and the note
    above the panel's right end when a label shows the heuristic (else None)."""
    labels = []
    for ep in episodes:
        if not ep.has_dynamics:  # no AU6 marker or genuineness to show, and no phases
            text = "smile\n(no phase data)"
        else:
            marker = {True: "Duchenne", False: "no AU6", None: "AU6 unknown"}[ep.duchenne_marker]
            text = f"{marker}\ngenuine* {ep.genuineness.score:.2f}"
        trained = getattr(ep, "classifier_probability", None)
        if trained is not None:  # the summary shows it beside the heuristic; so does the plot
            text += f"\ntrained P {trained:.2f}"
        labels.append(
            ax.annotate(
                text,
                xy=(ep.peak_time, 1.0),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="top",
                fontsize=7,
                # readable over the curves and the shading
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.75, "lw": 0},
            )
        )
    heuristic = any(ep.has_dynamics for ep in episodes)
    return labels, _note(ax, "* heuristic, not validated") if heuristic else None


def _note(ax: Any, text: str) -> Any:
    """Small grey text above the right end of ``ax``."""
    return ax.annotate(
        text,
        xy=(1.0, 1.0),
        xycoords="axes fraction",
        ha="right",
        va="bottom",
        fontsize=7,
        color="grey",
    )


def _thin_labels(fig: Any, labels: list[Any]) -> int:
    """Hide each label that would overlap the last one kept, left to right; the number
    hidden.

    Why: smiles closer together than a label's width (a few seconds of a long video on a
    1000-pixel-wide figure) printed their labels over one another into an unreadable
    band; measured on the drawn figure, so it holds at any length, size or font.
    """
    renderer = fig.canvas.get_renderer()
    kept = None
    hidden = 0
    for label in sorted(labels, key=lambda a: a.xy[0]):
        box = label.get_window_extent(renderer)
        if kept is not None and box.x0 < kept.x1 + 2:
            label.set_visible(False)
            hidden += 1
        else:
            kept = box
    return hidden
