"""D-Markers: 225 dynamic features of one smile (Dibeklioglu, Salah & Gevers, ECCV 2012).

25 features x 3 phases (onset, apex, offset) x 3 regions (lip corners, eyelids, cheeks),
computed on the amplitude signals of :mod:`duchenne.analysis.dynamics` at the video's
real frame rate. Names are ``"{phase}.{region}.{feature}"``, e.g.
``"onset.lip.duration_pos"``; :data:`FEATURE_NAMES` gives the fixed order used by
feature matrices. Every feature is documented (formula, unit) in ``docs/dmarkers.md``.

Conventions (the paper leaves them implicit; they are fixed here so that values are
reproducible):

- A phase ``(s, e)`` covers the frames ``s..e`` (inclusive, ``n = e - s + 1`` samples) and
  the ``n - 1`` frame intervals between them. Its duration is ``(n - 1) / fps``.
- ``D+`` / ``D-``: the samples ``D(t)``, ``s < t <= e``, with ``D(t) - D(t-1) > 0`` /
  ``< 0`` (sign of the backward first difference inside the phase); flat steps belong
  to neither.
- Speed ``V = dD/dt`` and acceleration ``A = dV/dt`` are central differences
  (``numpy.gradient``, one-sided at the clip ends) over the *whole* signal, times ``fps``,
  then sliced to the phase, so that phase boundaries do not distort them. ``V+`` / ``V-``
  are the phase's positive / negative speeds (same for ``A``).
- Empty sets give 0.0 (a mean, maximum or ratio over nothing), never NaN. A phase with
  fewer than two frames has no dynamics: all its 25 features are 0.0.
- A phase the face was hidden during (its frames, the frames its ends were searched on,
  or the frame on either side: :func:`~duchenne.analysis.episodes.unobserved_phases`)
  is not measured: its 75 features (3 regions) are None (NaN in :func:`dmarker_vector`).
  The gap is filled by a straight line before the phases are searched, and the phase's
  duration, speeds and accelerations would be the line's.
- The paper's sums over frames (total and net amplitudes, and the net amplitude per
  duration) are scaled by ``REFERENCE_FPS / fps``: unchanged at the paper's 50 fps,
  independent of the frame rate elsewhere (:data:`DMARKER_VERSION` 2).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from duchenne.analysis.dynamics import SmileSignals, observed_frames
from duchenne.analysis.episodes import SmileEpisode, unobserved_phases

__all__ = [
    "DMARKER_VERSION",
    "FEATURE_NAMES",
    "PHASES",
    "PHASE_FEATURES",
    "REFERENCE_FPS",
    "REGIONS",
    "compute_dmarkers",
    "dmarker_vector",
    "phase_features",
]

logger = logging.getLogger(__name__)

PHASES: tuple[str, ...] = ("onset", "apex", "offset")
REGIONS: tuple[str, ...] = ("lip", "eyelid", "cheek")
#: The 25 per-phase, per-region features, in order.
PHASE_FEATURES: tuple[str, ...] = (
    "duration_pos",
    "duration_neg",
    "duration",
    "duration_ratio_pos",
    "duration_ratio_neg",
    "amplitude_max",
    "amplitude_mean",
    "amplitude_mean_pos",
    "amplitude_mean_neg",
    "amplitude_std",
    "amplitude_total_pos",
    "amplitude_total_neg",
    "amplitude_net",
    "amplitude_ratio_pos",
    "amplitude_ratio_neg",
    "speed_max_pos",
    "speed_max_neg",
    "speed_mean_pos",
    "speed_mean_neg",
    "accel_max_pos",
    "accel_max_neg",
    "accel_mean_pos",
    "accel_mean_neg",
    "net_amplitude_per_duration",
    "asymmetry",
)
#: All 225 names, phase-major, then region, then feature.
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{p}.{r}.{f}" for p in PHASES for r in REGIONS for f in PHASE_FEATURES
)
#: Frame rate (fps) at which the paper's sums over frames are defined. Dibeklioglu, Salah
#: & Gevers (ECCV 2012) compute D-Markers on UvA-NEMO, whose videos are all 50 fps, and
#: define the total and net amplitudes as plain sums over the frames of a phase, so that
#: their values grow with the number of frames per second. Scaling those sums by
#: ``REFERENCE_FPS / fps`` keeps the paper's values on 50 fps data and makes the same
#: smile give the same values at any other rate (or with ``--every``).
REFERENCE_FPS: float = 50.0
#: Version of the D-Marker formulas. Classifiers and feature caches record it, because
#: features computed by other formulas are not comparable with these.
#: 1: the paper's sums over frames, proportional to the frame rate.
#: 2: ``amplitude_total_pos``, ``amplitude_total_neg``, ``amplitude_net`` and
#: ``net_amplitude_per_duration`` scaled by ``REFERENCE_FPS / fps`` (frame-rate independent;
#: unchanged at 50 fps).
DMARKER_VERSION: int = 2
_EPS = 1e-12

SignalSource = SmileSignals | Mapping[str, np.ndarray]


def compute_dmarkers(
    signals: SignalSource, episode: SmileEpisode, fps: float
) -> dict[str, float | None]:
    """The 225 D-Markers of one smile episode.

    Args:
        signals: :class:`SmileSignals`, or a mapping with ``"lip"``, ``"eyelid"``,
            ``"cheek"`` (T,) arrays and optionally ``"{region}_left"`` /
            ``"{region}_right"`` (without them the asymmetry features are 0.0) and
            ``"observed"`` ((T,) bool). Use the *smoothed* signals: speeds and
            accelerations are derivatives. NaN samples are linearly interpolated, and are
            not observed frames (nor are the frames ``observed`` excludes, e.g. the gaps
            :meth:`SmileSignals.smoothed` filled).
        episode: the phases (frame ranges index into the signals).
        fps: the real frame rate of the analysed frames (frames per second; with every
            N-th frame analysed, the video's rate / N).

    Returns:
        ``{name: value}`` in :data:`FEATURE_NAMES` order: finite floats, None for every
        feature of a phase the face was not observed during
        (:func:`~duchenne.analysis.episodes.unobserved_phases`).

    Example:
        >>> sig = compute_signals(landmarks).smoothed(fps=30)  # doctest: +SKIP
        >>> ep = find_episodes(sig.lip, fps=30)[0]  # doctest: +SKIP
        >>> compute_dmarkers(sig, ep, fps=30)["onset.lip.speed_max_pos"]  # doctest: +SKIP
    """
    if fps <= 0:
        raise ValueError("fps must be > 0")
    unseen = unobserved_phases(episode, _observed(signals))
    out: dict[str, float | None] = {}
    for region in REGIONS:
        d, left, right = _region(signals, region)
        speed = _derivative(d, fps)
        accel = _derivative(speed, fps)
        for phase in PHASES:
            first, last = episode.phase(phase)
            if not 0 <= first <= last < len(d):
                raise ValueError(f"{phase} {first, last} outside a signal of {len(d)} frames")
            sl = slice(first, last + 1)
            values = phase_features(
                d[sl],
                speed[sl],
                accel[sl],
                fps,
                None if left is None else left[sl],
                None if right is None else right[sl],
            )
            for name, value in values.items():
                out[f"{phase}.{region}.{name}"] = None if phase in unseen else value
    return {name: out[name] for name in FEATURE_NAMES}


def dmarker_vector(signals: SignalSource, episode: SmileEpisode, fps: float) -> np.ndarray:
    """:func:`compute_dmarkers` as a (225,) float64 vector in :data:`FEATURE_NAMES` order
    (NaN for the features that are None: phases the face was not observed during)."""
    values = compute_dmarkers(signals, episode, fps)
    return np.array(
        [np.nan if values[n] is None else values[n] for n in FEATURE_NAMES], dtype=np.float64
    )


def phase_features(
    d: np.ndarray,
    speed: np.ndarray,
    accel: np.ndarray,
    fps: float,
    left: np.ndarray | None = None,
    right: np.ndarray | None = None,
) -> dict[str, float]:
    """The 25 features of one phase of one region.

    Args:
        d: (n,) amplitude samples of the phase.
        speed: (n,) speeds (amplitude units per second) at the same frames.
        accel: (n,) accelerations (units per second squared).
        fps: frame rate of the samples (the sums over frames are scaled to
            :data:`REFERENCE_FPS`).
        left, right: optional (n,) per-side amplitudes for the asymmetry.

    Returns:
        ``{feature: value}`` in :data:`PHASE_FEATURES` order.
    """
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2:
        return dict.fromkeys(PHASE_FEATURES, 0.0)
    step = np.diff(d)
    d_pos, d_neg = d[1:][step > 0], np.abs(d[1:][step < 0])
    n_int = len(step)
    total = n_int / fps
    # sums over frames, counted as at the paper's 50 fps (see REFERENCE_FPS)
    per_frame = REFERENCE_FPS / fps
    tot_pos, tot_neg = float(d_pos.sum()) * per_frame, float(d_neg.sum()) * per_frame
    net = tot_pos - tot_neg
    feats = {
        "duration_pos": len(d_pos) / fps,
        "duration_neg": len(d_neg) / fps,
        "duration": total,
        "duration_ratio_pos": len(d_pos) / n_int,
        "duration_ratio_neg": len(d_neg) / n_int,
        "amplitude_max": float(d.max()),
        "amplitude_mean": float(d.mean()),
        "amplitude_mean_pos": _mean(d_pos),
        "amplitude_mean_neg": _mean(d_neg),
        "amplitude_std": float(d.std()),
        "amplitude_total_pos": tot_pos,
        "amplitude_total_neg": tot_neg,
        "amplitude_net": net,
        "amplitude_ratio_pos": _ratio(tot_pos, tot_pos + tot_neg),
        "amplitude_ratio_neg": _ratio(tot_neg, tot_pos + tot_neg),
    }
    feats.update(_signed_stats(np.asarray(speed, dtype=np.float64), "speed"))
    feats.update(_signed_stats(np.asarray(accel, dtype=np.float64), "accel"))
    feats["net_amplitude_per_duration"] = net / total
    feats["asymmetry"] = _asymmetry(left, right, len(d))
    return {k: _finite(feats[k]) for k in PHASE_FEATURES}


def _observed(signals: SignalSource) -> np.ndarray:
    """(T,) bool: the frames where the face was measured (see :func:`compute_dmarkers`)."""
    if isinstance(signals, SmileSignals):
        return signals.observed_frames()
    present = [signals[name] for name in REGIONS if name in signals]
    if not present:
        raise ValueError(f"signals lack the {REGIONS[0]!r} signal")
    sides = [f"{region}_{side}" for region in REGIONS for side in ("left", "right")]
    present += [signals[name] for name in sides if name in signals]
    return observed_frames(present, signals.get("observed"))


def _region(
    signals: SignalSource, region: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Combined, left and right signals of a region, NaN-filled, as float64."""
    if isinstance(signals, SmileSignals):
        d, left, right = signals.region(region)
    else:
        if region not in signals:
            raise ValueError(f"signals lack the {region!r} signal")
        d = signals[region]
        left, right = signals.get(f"{region}_left"), signals.get(f"{region}_right")
    d = _filled(d)
    if left is None or right is None:
        return d, None, None
    left, right = _filled(left), _filled(right)
    if left.shape != d.shape or right.shape != d.shape:
        raise ValueError(f"{region} left/right signals must match the combined signal")
    return d, left, right


def _filled(x: np.ndarray) -> np.ndarray:
    """1-D float64 copy with NaN gaps linearly interpolated (all-NaN becomes zeros)."""
    y = np.asarray(x, dtype=np.float64).ravel()
    bad = ~np.isfinite(y)
    if bad.all():
        return np.zeros_like(y)
    if bad.any():
        idx = np.arange(len(y))
        y = y.copy()
        y[bad] = np.interp(idx[bad], idx[~bad], y[~bad])
    return y


def _derivative(x: np.ndarray, fps: float) -> np.ndarray:
    """Time derivative (per second) by central differences; zeros for a single sample."""
    if len(x) < 2:
        return np.zeros_like(x)
    return np.gradient(x) * fps


def _signed_stats(x: np.ndarray, name: str) -> dict[str, float]:
    """Max and mean of the positive values and of the magnitudes of the negative ones."""
    pos, neg = x[x > 0], np.abs(x[x < 0])
    return {
        f"{name}_max_pos": float(pos.max()) if len(pos) else 0.0,
        f"{name}_max_neg": float(neg.max()) if len(neg) else 0.0,
        f"{name}_mean_pos": _mean(pos),
        f"{name}_mean_neg": _mean(neg),
    }


def _asymmetry(left: np.ndarray | None, right: np.ndarray | None, n: int) -> float:
    """``|sum(D_left) - sum(D_right)| / n``: the mean left-right amplitude difference."""
    if left is None or right is None:
        return 0.0
    return abs(float(np.sum(left) - np.sum(right))) / n


def _mean(x: np.ndarray) -> float:
    """Mean, 0.0 for an empty set."""
    return float(x.mean()) if len(x) else 0.0


def _ratio(num: float, den: float) -> float:
    """``num / den``, 0.0 when ``den`` is (numerically) zero."""
    return num / den if abs(den) > _EPS else 0.0


def _finite(x: float) -> float:
    """Guard against inf/NaN leaking from degenerate input (logged, replaced by 0.0)."""
    if np.isfinite(x):
        return float(x)
    logger.warning("non-finite D-Marker value replaced by 0.0")
    return 0.0
