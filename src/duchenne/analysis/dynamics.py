"""Smile amplitude signals from Face Mesh landmark sequences, and smile episodes.

Following the D-Marker work (Dibeklioglu, Salah & Gevers, ECCV 2012), a smile is described
by three amplitude signals, one value per frame, computed on head-pose-normalised
landmarks and scaled by sizes measured in a neutral reference frame:

- ``D_lip``: displacement of the lip corners from the neutral mouth centre (zygomaticus
  major, AU12); it rises during a smile.
- ``D_eyelid``: signed upper-eyelid height above the eye-corner line (eye aperture); it
  falls when the eyes narrow (orbicularis oculi, AU6).
- ``D_cheek``: eye-to-cheek distance; it falls when the cheeks rise (AU6).

Landmarks (MediaPipe Face Mesh 468, x and y only; "right" = the subject's right):

- eye corners 33 (right outer), 133 (right inner), 362 (left inner), 263 (left outer)
  and nose tip 1 for the pose normalisation;
- upper-eyelid centres 159 (right) and 386 (left);
- cheeks 50 (right) and 280 (left);
- lip corners **61 (right) and 291 (left)**, the ends of the outer lip contour (the
  commissures that AU12 pulls). HadaSmileNet's code uses 62 / 308: 308 is the *inner*
  corner of the left side (its mirror is 78) while 62 lies on an intermediate lip ring of
  the right side (its mirror is 292). That pair is not left-right symmetric, which biases
  the asymmetry feature, and the inner corners move with mouth opening (teeth showing),
  not only with the corner pull. 61 / 291 are a mirrored pair on the outer contour.

Head-pose normalisation (per frame; x, y only, so yaw and pitch are *not* corrected):
translate so that the nose tip (1) is the origin (the nose barely moves in a smile),
rotate by minus the roll angle of the line joining the eye centres (the mean of each
eye's two corners), and divide by the inter-ocular distance between those centres. Eye
centres are used rather than single corners because AU6 pulls the outer corners slightly.
Coordinates are then in inter-ocular units with the eye line horizontal and +y downwards.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from duchenne.face import topology as T

__all__ = [
    "LANDMARKS",
    "SmileEpisode",
    "SmileSignals",
    "compute_signals",
    "find_episodes",
    "normalize_pose",
    "single_episode",
    "smooth_signal",
]

logger = logging.getLogger(__name__)

#: Face Mesh indices used here ("right" = the subject's right = image left).
LANDMARKS: dict[str, int] = {
    "nose_tip": T.NOSE_TIP,
    "right_eye_outer": T.RIGHT_EYE_OUTER,
    "right_eye_inner": T.RIGHT_EYE_INNER,
    "left_eye_inner": T.LEFT_EYE_INNER,
    "left_eye_outer": T.LEFT_EYE_OUTER,
    "right_eyelid": T.RIGHT_EYE_UPPER,
    "left_eyelid": T.LEFT_EYE_UPPER,
    "right_cheek": T.CHEEK_RIGHT,
    "left_cheek": T.CHEEK_LEFT,
    "right_lip_corner": T.MOUTH_RIGHT,
    "left_lip_corner": T.MOUTH_LEFT,
}
_USED = np.array(sorted(LANDMARKS.values()))
_L = LANDMARKS

Phase = tuple[int, int]


# --------------------------------------------------------------------------- signals


@dataclass
class SmileSignals:
    """Per-frame amplitude signals of one face (all arrays (T,), dimensionless).

    ``lip``, ``eyelid``, ``cheek`` are the D-Marker signals; ``*_left`` / ``*_right`` are
    the per-side terms whose mean is the combined signal (used for asymmetry).
    ``reference_frame`` is the neutral frame that defines the scales.
    """

    lip: np.ndarray
    eyelid: np.ndarray
    cheek: np.ndarray
    lip_left: np.ndarray
    lip_right: np.ndarray
    eyelid_left: np.ndarray
    eyelid_right: np.ndarray
    cheek_left: np.ndarray
    cheek_right: np.ndarray
    reference_frame: int = 0

    REGIONS = ("lip", "eyelid", "cheek")

    def __len__(self) -> int:
        return len(self.lip)

    def region(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(combined, left, right)`` signals of ``name`` in ``{"lip", "eyelid", "cheek"}``."""
        if name not in self.REGIONS:
            raise ValueError(f"unknown region {name!r}; expected one of {self.REGIONS}")
        return getattr(self, name), getattr(self, f"{name}_left"), getattr(self, f"{name}_right")

    def smoothed(self, fps: float, sigma_s: float = 0.05, method: str = "gaussian") -> SmileSignals:
        """A copy with every signal passed through :func:`smooth_signal` (NaN gaps filled)."""
        arrays = {
            f.name: smooth_signal(getattr(self, f.name), fps, sigma_s, method)
            for f in fields(self)
            if f.name != "reference_frame"
        }
        return SmileSignals(**arrays, reference_frame=self.reference_frame)

    def to_dict(self) -> dict[str, list[float] | int]:
        """JSON-safe dict (NaN becomes ``None``)."""
        out: dict[str, list[float] | int] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value if f.name == "reference_frame" else _json_list(value)
        return out


def _json_list(x: np.ndarray) -> list:
    """Float list with NaN replaced by ``None``."""
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(x, dtype=float)]


def normalize_pose(landmarks: np.ndarray) -> np.ndarray:
    """Remove in-plane head pose (translation, roll, scale) from landmark sequences.

    Args:
        landmarks: (T, N, 2 or 3) or (N, 2 or 3) Face Mesh landmarks in pixels (N >= 468).

    Returns:
        Same leading shape with 2 coordinates: nose tip at the origin, eye line horizontal,
        inter-ocular distance 1. Frames with a degenerate eye distance become NaN.

    Example:
        >>> norm = normalize_pose(landmarks)  # (T, 468, 2), IOD units  # doctest: +SKIP
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    single = pts.ndim == 2
    pts = pts[None] if single else pts
    if pts.ndim != 3 or pts.shape[1] < 468 or pts.shape[2] < 2:
        raise ValueError(f"landmarks must be (T, 468+, 2|3), got {np.shape(landmarks)}")
    xy = pts[..., :2]
    eye_r = 0.5 * (xy[:, _L["right_eye_outer"]] + xy[:, _L["right_eye_inner"]])
    eye_l = 0.5 * (xy[:, _L["left_eye_inner"]] + xy[:, _L["left_eye_outer"]])
    axis = eye_l - eye_r
    iod = np.linalg.norm(axis, axis=1)
    iod = np.where(iod > 1e-9, iod, np.nan)
    cos, sin = axis[:, 0] / iod, axis[:, 1] / iod
    centred = xy - xy[:, _L["nose_tip"]][:, None, :]
    # rotate by -roll: [cos sin; -sin cos] @ p
    x = (cos[:, None] * centred[..., 0] + sin[:, None] * centred[..., 1]) / iod[:, None]
    y = (-sin[:, None] * centred[..., 0] + cos[:, None] * centred[..., 1]) / iod[:, None]
    out = np.stack([x, y], axis=-1)
    return out[0] if single else out


def compute_signals(
    landmarks: np.ndarray,
    reference_frame: int | None = None,
    normalize: bool = True,
) -> SmileSignals:
    """D_lip, D_eyelid, D_cheek (combined and per side) from a landmark sequence.

    Definitions (``p_t`` = normalised point at frame t, ``r`` = reference frame,
    ``rho`` = Euclidean distance):

    - ``m = (lc_R(r) + lc_L(r)) / 2``, ``W = rho(lc_R(r), lc_L(r))`` (neutral mouth);
      ``lip_side(t) = rho(m, lc_side(t)) / W``; ``lip = (lip_R + lip_L) / 2``, i.e.
      ``D_lip = [rho(m, lc_R) + rho(m, lc_L)] / (2 W)`` (0.5 at the neutral frame).
    - ``e_side(t)`` = midpoint of that eye's corners *at frame t* (the aperture is measured
      on the current eye), ``E = (w_R(r) + w_L(r)) / 2`` the mean neutral eye width.
      ``eyelid_side(t) = tau(e_side(t), lid_side(t)) / E`` where ``tau`` is the distance,
      negative when the lid point lies below the line through the eye corners.
    - ``cheek_side(t) = rho(e_side(t), cheek_side(t)) / E``.

    Args:
        landmarks: (T, 468+, 2 or 3) Face Mesh landmarks in pixels (NaN = missing frame).
        reference_frame: neutral frame index; ``None`` = the first frame whose landmarks
            are all finite (the D-Marker convention: the clip starts neutral).
        normalize: apply :func:`normalize_pose` first (disable only for pre-normalised data).

    Returns:
        :class:`SmileSignals`; frames with missing landmarks are NaN.

    Raises:
        ValueError: wrong shape, or no usable reference frame.

    Example:
        >>> sig = compute_signals(track_landmarks).smoothed(fps=30)  # doctest: +SKIP
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1] < 468 or pts.shape[2] < 2:
        raise ValueError(f"landmarks must be (T, 468+, 2|3), got {pts.shape}")
    xy = normalize_pose(pts) if normalize else pts[..., :2]
    ref = _reference_frame(xy, reference_frame)
    lip_r, lip_l = _lip_terms(xy, ref)
    eyelid_r, eyelid_l, cheek_r, cheek_l = _eye_terms(xy, ref)
    return SmileSignals(
        lip=0.5 * (lip_r + lip_l),
        eyelid=0.5 * (eyelid_r + eyelid_l),
        cheek=0.5 * (cheek_r + cheek_l),
        lip_left=lip_l,
        lip_right=lip_r,
        eyelid_left=eyelid_l,
        eyelid_right=eyelid_r,
        cheek_left=cheek_l,
        cheek_right=cheek_r,
        reference_frame=ref,
    )


def _reference_frame(xy: np.ndarray, requested: int | None) -> int:
    """Index of the neutral frame: the requested one or the first fully finite one."""
    finite = np.all(np.isfinite(xy[:, _USED]), axis=(1, 2))
    if requested is not None:
        ref = int(requested) % len(xy) if len(xy) else 0
        if not len(xy) or not finite[ref]:
            raise ValueError(f"reference frame {requested} has missing landmarks")
        return ref
    if not finite.any():
        raise ValueError("no frame has all the landmarks needed for the smile signals")
    return int(np.argmax(finite))


def _lip_terms(xy: np.ndarray, ref: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-side lip-corner displacement from the neutral mouth centre / neutral width."""
    lc_r, lc_l = xy[:, _L["right_lip_corner"]], xy[:, _L["left_lip_corner"]]
    centre = 0.5 * (lc_r[ref] + lc_l[ref])
    width = float(np.linalg.norm(lc_r[ref] - lc_l[ref]))
    if width <= 1e-9:
        raise ValueError("degenerate mouth width in the reference frame")
    return (
        np.linalg.norm(lc_r - centre, axis=1) / width,
        np.linalg.norm(lc_l - centre, axis=1) / width,
    )


def _eye_terms(xy: np.ndarray, ref: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-side signed eyelid heights and eye-to-cheek distances / neutral eye width."""
    sides = (
        ("right_eye_outer", "right_eye_inner", "right_eyelid", "right_cheek"),
        ("left_eye_inner", "left_eye_outer", "left_eyelid", "left_cheek"),
    )
    widths = [np.linalg.norm(xy[ref, _L[a]] - xy[ref, _L[b]]) for a, b, _, _ in sides]
    scale = float(np.mean(widths))
    if scale <= 1e-9:
        raise ValueError("degenerate eye width in the reference frame")
    out = []
    for a, b, lid, cheek in sides:
        c1, c2 = xy[:, _L[a]], xy[:, _L[b]]
        centre = 0.5 * (c1 + c2)
        out.append(_signed_height(c1, c2, xy[:, _L[lid]]) / scale)
        out.append(np.linalg.norm(xy[:, _L[cheek]] - centre, axis=1) / scale)
    eyelid_r, cheek_r, eyelid_l, cheek_l = out
    return eyelid_r, eyelid_l, cheek_r, cheek_l


def _signed_height(c1: np.ndarray, c2: np.ndarray, p: np.ndarray) -> np.ndarray:
    """tau: distance from the corners' midpoint to ``p``, negative below the corner line.

    "Below" is judged in the pose-normalised frame (+y down), with the corner line oriented
    left to right so its upward normal is ``(u_y, -u_x)``.
    """
    u = c2 - c1
    u = np.where((u[:, :1] < 0), -u, u)
    normal = np.stack([u[:, 1], -u[:, 0]], axis=1)
    rel = p - 0.5 * (c1 + c2)
    side = np.einsum("ij,ij->i", rel, normal)
    return np.where(side < 0, -1.0, 1.0) * np.linalg.norm(rel, axis=1)


# --------------------------------------------------------------------------- smoothing


def smooth_signal(
    x: np.ndarray, fps: float, sigma_s: float = 0.05, method: str = "gaussian"
) -> np.ndarray:
    """Fill NaN gaps, then low-pass a per-frame signal.

    Why: D-Marker speeds and accelerations are derivatives, which amplify landmark jitter;
    a light smoothing is needed before them and before the phase search (one jittery
    frame would otherwise break "the longest continuous increase").

    Methods:
        ``"gaussian"`` (default): Gaussian kernel of standard deviation ``sigma_s`` seconds
        (0.05 s = 1.5 frames at 30 fps, far shorter than a 0.3-1 s smile onset, so the
        onset speed is barely reduced), truncated at 3 sigma, with odd reflection at the
        ends (a straight line stays straight, so end speeds are not biased).
        ``"4253h"``: Velleman's robust "4253H, twice" running-median smoother, which
        removes isolated outlier frames; reportedly the smoother of the D-Marker papers.
        ``"none"``: only fill the gaps.

    NaN frames are linearly interpolated (held constant beyond the ends) so that short
    tracking gaps do not split an episode. An all-NaN signal is returned unchanged.

    Args:
        x: (T,) signal.
        fps: frame rate in frames per second.
        sigma_s: Gaussian standard deviation in seconds (ignored by ``"4253h"``).
        method: ``"gaussian"``, ``"4253h"`` or ``"none"``.

    Returns:
        (T,) float64 smoothed signal.

    Example:
        >>> smooth_signal(np.array([0.5, 0.5, 0.9, 0.5, 0.5]), fps=30, method="4253h")
        array([0.5, 0.5, 0.5, 0.5, 0.5])
    """
    if fps <= 0:
        raise ValueError("fps must be > 0")
    y = _fill_nan(np.asarray(x, dtype=np.float64).ravel())
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return y
    if method == "gaussian":
        return _gaussian(y, sigma_s * fps)
    if method == "4253h":
        return _twice(y)
    if method == "none":
        return y
    raise ValueError(f"unknown smoothing method {method!r}")


def _fill_nan(y: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN samples; constant extrapolation at the ends."""
    bad = ~np.isfinite(y)
    if not bad.any() or bad.all():
        return y.copy()
    idx = np.arange(len(y))
    out = y.copy()
    out[bad] = np.interp(idx[bad], idx[~bad], y[~bad])
    return out


def _gaussian(y: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing with reflected ends; ``sigma`` in samples (< 0.3 = no-op)."""
    if sigma < 0.3:
        return y.copy()
    radius = max(1, int(math.ceil(3.0 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    if len(y) > radius:  # odd reflection keeps straight lines (and end slopes) intact
        padded = np.pad(y, radius, mode="reflect", reflect_type="odd")
    else:
        padded = np.pad(y, radius, mode="edge")
    return np.convolve(padded, k, mode="valid")


def _running_median(y: np.ndarray, span: int) -> np.ndarray:
    """Centred running median with edge replication (even spans end between samples)."""
    lo = (span - 1) // 2
    hi = span - 1 - lo
    padded = np.pad(y, (lo, hi), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, span), axis=1)


def _4253h(y: np.ndarray) -> np.ndarray:
    """One pass of 4253H: running medians of 4 (re-centred by 2), 5 and 3, then Hanning."""
    z = _running_median(y, 4)  # value at i lies between samples i and i+1
    z = 0.5 * (np.concatenate([z[:1], z[:-1]]) + z)  # span 2 re-centres on the samples
    z = _running_median(z, 5)
    z = _running_median(z, 3)
    padded = np.pad(z, 1, mode="edge")
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def _twice(y: np.ndarray) -> np.ndarray:
    """ "Twice": smooth, then add back the smoothed residual (recovers sharp peaks)."""
    s = _4253h(y)
    return s + _4253h(y - s)


# --------------------------------------------------------------------------- episodes


@dataclass
class SmileEpisode:
    """One smile, found on ``D_lip``; frame ranges are inclusive ``(first, last)``.

    Phases share their boundary frames: ``onset = (start, a)``, ``apex = (a, b)``,
    ``offset = (b, end)`` where ``a`` is the top of the onset rise and ``b`` the top of the
    offset fall (``a == b`` when the smile has no plateau). A phase ``(i, i)`` is empty
    (no frame interval); ``truncated`` says the smile was cut by the clip's start or end.
    """

    start_frame: int
    end_frame: int
    onset: Phase
    apex: Phase
    offset: Phase
    peak_frame: int
    peak_amplitude: float
    baseline: float
    fps: float
    truncated: bool = False

    @property
    def start_time(self) -> float:
        """Start in seconds from the first frame of the signal."""
        return self.start_frame / self.fps

    @property
    def end_time(self) -> float:
        """End in seconds from the first frame of the signal."""
        return self.end_frame / self.fps

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame of the episode."""
        return (self.end_frame - self.start_frame) / self.fps

    def phase(self, name: str) -> Phase:
        """Frame range of ``"onset"``, ``"apex"`` or ``"offset"``."""
        if name not in ("onset", "apex", "offset"):
            raise ValueError(f"unknown phase {name!r}")
        return getattr(self, name)

    def phase_duration(self, name: str) -> float:
        """Duration of a phase in seconds."""
        first, last = self.phase(name)
        return (last - first) / self.fps

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict, with times and phase durations in seconds."""
        out: dict[str, object] = asdict(self)
        for name in ("onset", "apex", "offset"):
            out[name] = list(getattr(self, name))
            out[f"{name}_duration"] = self.phase_duration(name)
        out.update(start_time=self.start_time, end_time=self.end_time, duration=self.duration)
        return out


def find_episodes(
    d_lip: np.ndarray,
    fps: float,
    threshold: float = 0.03,
    min_duration: float = 0.25,
    hysteresis: float = 0.5,
    baseline: float | None = None,
    sigma_s: float = 0.0,
    phase_tolerance: float = 0.1,
) -> list[SmileEpisode]:
    """Segment smile episodes in a ``D_lip`` signal and split each into phases.

    Steps:

    1. ``baseline`` = the 5th percentile of the signal unless given (robust to the smiles
       themselves as long as the face is at rest at least ~5 % of the time; for clips
       that start neutral, pass ``baseline=d_lip[0]``).
    2. Candidates: runs where ``D_lip`` exceeds ``baseline + threshold`` and stays above
       ``baseline + hysteresis * threshold`` (hysteresis: noise near the threshold neither
       splits a smile nor creates new ones). Runs shorter than ``min_duration`` are dropped.
    3. Each run is extended outwards to the feet of the smile: first down to
       ``baseline + hysteresis * threshold``, then while the signal keeps falling
       (the first local minimum). Two neighbouring smiles that never return to rest are
       split at the lowest frame between them.
    4. Phases inside ``[start, end]`` (:func:`split_phases`).

    The default ``threshold`` of 0.03 is 3 % of the neutral mouth width in corner
    displacement (``D_lip`` is 0.5 at rest and typically 0.55-0.7 at a smile apex), about
    4x the frame-to-frame noise of Face Mesh lip corners on a 100-pixel face.

    Args:
        d_lip: (T,) ``D_lip`` signal (ideally smoothed, see :func:`smooth_signal`).
        fps: frame rate (frames per second) for times and ``min_duration``.
        threshold: rise above the baseline that starts a smile (``D_lip`` units).
        min_duration: minimum time (s) above the exit level for a run to count.
        hysteresis: exit level as a fraction of ``threshold`` (0..1).
        baseline: rest level of ``D_lip``; ``None`` = 5th percentile.
        sigma_s: optional extra Gaussian smoothing (s) used only for the segmentation.
        phase_tolerance: dips smaller than this fraction of the episode's range do not
            break a "continuous" increase or decrease (noise tolerance).

    Returns:
        Episodes in time order (possibly empty).

    Example:
        >>> eps = find_episodes(signals.lip, fps=30)  # doctest: +SKIP
        >>> [(e.onset, e.apex, e.offset) for e in eps]  # doctest: +SKIP
    """
    if fps <= 0:
        raise ValueError("fps must be > 0")
    if not 0.0 <= hysteresis <= 1.0:
        raise ValueError("hysteresis must be in [0, 1]")
    d = smooth_signal(d_lip, fps, sigma_s, "gaussian" if sigma_s > 0 else "none")
    if len(d) < 2 or not np.all(np.isfinite(d)):
        return []
    base = float(np.percentile(d, 5)) if baseline is None else float(baseline)
    exit_level = base + hysteresis * threshold
    runs = _hysteresis_runs(d, base + threshold, exit_level)
    runs = [(a, b) for a, b in runs if (b - a + 1) / fps >= min_duration]
    bounds = _extend_runs(d, runs, exit_level)
    episodes = []
    for start, end in bounds:
        ep = split_phases(d, fps, start, end, base, phase_tolerance)
        ep.truncated = _is_truncated(d, start, end, exit_level)
        episodes.append(ep)
    logger.debug("found %d smile episodes in %d frames", len(episodes), len(d))
    return episodes


def smiling_episodes(
    d_lip: np.ndarray,
    smile: np.ndarray,
    fps: float,
    threshold: float = 0.5,
    min_duration: float = 0.25,
    phase_tolerance: float = 0.1,
) -> list[SmileEpisode]:
    """Smile episodes = the runs of frames whose P(smile) is at least ``threshold``.

    Why: the per-frame table says ``smiling`` where ``smile >= threshold``; episodes cut
    the same way make the table and the summary agree (a face smiling through a whole
    clip is one long episode, not the one bump of ``D_lip`` above its smiling baseline).
    Gaps shorter than ``min_duration`` (a blink of the classifier) do not split a smile;
    runs shorter than ``min_duration`` are dropped. Onset, apex and offset are then the
    phases of ``D_lip`` inside each run (:func:`split_phases`, baseline = its 5th
    percentile over the whole signal).

    Args:
        d_lip: (T,) ``D_lip`` signal (smoothed), for the phases.
        smile: (T,) P(smile) per frame (NaN where unknown counts as not smiling).
        fps, min_duration, phase_tolerance: as :func:`find_episodes`.
        threshold: the smiling threshold.
    """
    if fps <= 0:
        raise ValueError("fps must be > 0")
    p = np.nan_to_num(np.asarray(smile, np.float64), nan=-1.0)
    on = p >= threshold
    runs = _runs_of(on)
    gap = max(1, int(round(min_duration * fps)))
    merged: list[Phase] = []
    for a, b in runs:
        if merged and a - merged[-1][1] - 1 < gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    runs = [(a, b) for a, b in merged if (b - a + 1) / fps >= min_duration]
    d = np.asarray(d_lip, np.float64)
    finite = np.isfinite(d)
    if not runs or not finite.any():
        return []
    d = np.where(finite, d, np.nanmedian(d))
    base = float(np.percentile(d, 5))
    episodes = []
    for a, b in runs:
        ep = split_phases(d, fps, a, b, base, phase_tolerance)
        ep.truncated = a == 0 or b == len(d) - 1
        episodes.append(ep)
    return episodes


def _runs_of(mask: np.ndarray) -> list[Phase]:
    """Inclusive ``(first, last)`` runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def single_episode(
    d_lip: np.ndarray, fps: float, baseline: float | None = None, phase_tolerance: float = 0.1
) -> SmileEpisode:
    """Treat the whole signal as one smile (the D-Marker protocol for pre-cut smile clips).

    Args:
        d_lip: (T,) ``D_lip`` signal, T >= 1.
        fps: frame rate.
        baseline: rest level; ``None`` = the first frame (the clip starts neutral).
        phase_tolerance: see :func:`find_episodes`.

    Example:
        >>> ep = single_episode(signals.lip, fps=50)  # doctest: +SKIP
    """
    d = smooth_signal(d_lip, fps, method="none")
    if len(d) == 0 or not np.all(np.isfinite(d)):
        raise ValueError("d_lip must contain at least one finite value")
    base = float(d[0]) if baseline is None else float(baseline)
    return split_phases(d, fps, 0, len(d) - 1, base, phase_tolerance)


def split_phases(
    d: np.ndarray,
    fps: float,
    start: int,
    end: int,
    baseline: float,
    phase_tolerance: float = 0.1,
    levels: tuple[float, float] = (0.1, 0.9),
) -> SmileEpisode:
    """Onset, apex and offset of the smile ``d[start:end + 1]``.

    - onset: the largest continuous increase (largest rise in amplitude; a rise is
      "continuous" while no dip exceeds ``phase_tolerance`` x the episode range). Rise
      size rather than frame count is used so that a long, tiny drift cannot win over the
      smile itself; on a clean smile the two agree.
    - offset: the largest continuous decrease that starts at or after the onset's end.
    - apex: the frames between them (shared boundary frames).

    Both runs are then refined (:func:`_refine_run`): their ends are where the straight
    line through the ``levels`` crossings (10 % and 90 % of the rise by default) reaches
    0 % and 100 %. With noise, the raw ends of a tolerant run would sit on the lowest /
    highest noise wiggle anywhere on the floor or the apex plateau; on a linear ramp the
    refinement is exact, on an S-shaped rise it gives the duration of its main slope.

    When no decrease follows (the clip ends smiling) the offset is the empty phase
    ``(end, end)`` and the apex runs to ``end``.
    """
    seg = np.asarray(d[start : end + 1], dtype=np.float64)
    tol = phase_tolerance * float(np.ptp(seg)) if len(seg) else 0.0
    on_a, on_b = _largest_run(seg, _monotone_runs(seg, tol), levels, default=0)
    falls = [(max(a, on_b), b) for a, b in _monotone_runs(-seg, tol) if b > on_b]
    off_a, off_b = _largest_run(-seg, falls, levels, default=len(seg) - 1)
    peak = int(np.argmax(seg))
    return SmileEpisode(
        start_frame=start,
        end_frame=end,
        onset=(start + on_a, start + on_b),
        apex=(start + on_b, start + off_a),
        offset=(start + off_a, start + off_b),
        peak_frame=start + peak,
        peak_amplitude=float(seg[peak] - baseline),
        baseline=float(baseline),
        fps=float(fps),
    )


def _largest_run(
    x: np.ndarray, runs: list[Phase], levels: tuple[float, float], default: int
) -> Phase:
    """The run with the largest rise of ``x``, refined; ``(default, default)`` if none."""
    runs = [r for r in runs if x[r[1]] > x[r[0]]]
    if not runs:
        return default, default
    a, b = max(runs, key=lambda r: (x[r[1]] - x[r[0]], r[1] - r[0]))
    return _refine_run(x, a, b, levels)


def _refine_run(x: np.ndarray, a: int, b: int, levels: tuple[float, float]) -> Phase:
    """Start and end of a rise from its ``lo``-``hi`` crossings, extrapolated to 0 and 100 %.

    The crossing times of, e.g., 10 % and 90 % of the rise are robust to noise on the
    floor and the plateau, unlike the exact lowest and highest frames; extrapolating the
    straight line through them to 0 % and 100 % recovers a linear ramp exactly.
    """
    lo, hi = levels
    rise = float(x[b] - x[a])
    t_lo = _crossing(x, a, b, x[a] + lo * rise)
    t_hi = _crossing(x, a, b, x[a] + hi * rise)
    per_level = (t_hi - t_lo) / (hi - lo)
    first = int(np.clip(round(t_lo - lo * per_level), a, b - 1))
    last = int(np.clip(round(t_hi + (1.0 - hi) * per_level), first + 1, b))
    return first, last


def _crossing(x: np.ndarray, a: int, b: int, level: float) -> float:
    """Sub-frame time at which ``x`` first reaches ``level`` within ``(a, b]``."""
    i = a + int(np.argmax(x[a : b + 1] >= level))
    if i == a:
        return float(a)
    step = x[i] - x[i - 1]
    return i - 1 + (float((level - x[i - 1]) / step) if step > 0 else 1.0)


def _monotone_runs(x: np.ndarray, tol: float) -> list[Phase]:
    """Maximal increasing runs ``(first, top)`` allowing dips up to ``tol`` below the top.

    A run ends when the signal falls more than ``tol`` below its running maximum, or
    below its own starting value; the next run starts from the following low point. Before
    a run has risen, its start follows flat stretches, so a rise starts at the *last*
    frame of a plateau and tops out at the *first* frame of the next one.
    """
    runs: list[Phase] = []
    a = top = 0
    for i in range(1, len(x)):
        if x[i] > x[top]:
            top = i
        elif (top == a and x[i] <= x[a]) or x[i] < x[a] or x[i] < x[top] - tol:
            if top > a:
                runs.append((a, top))
            a = top = i
    if top > a:
        runs.append((a, top))
    return runs


def _hysteresis_runs(d: np.ndarray, enter: float, exit_level: float) -> list[Phase]:
    """Inclusive runs that rise above ``enter`` and last until ``d`` drops to ``exit_level``."""
    runs: list[Phase] = []
    above_exit = d > exit_level
    i, n = 0, len(d)
    while i < n:
        if d[i] > enter:
            a = i
            while a > 0 and above_exit[a - 1]:
                a -= 1
            b = i
            while b + 1 < n and above_exit[b + 1]:
                b += 1
            runs.append((a, b))
            i = b + 1
        else:
            i += 1
    return runs


def _extend_runs(d: np.ndarray, runs: list[Phase], exit_level: float) -> list[Phase]:
    """Extend each run to the feet of its smile, never past the valley to a neighbour."""
    out: list[Phase] = []
    for k, (a, b) in enumerate(runs):
        lo = 0 if k == 0 else _valley(d, runs[k - 1][1], a)
        hi = len(d) - 1 if k == len(runs) - 1 else _valley(d, b, runs[k + 1][0])
        out.append((_walk(d, a, -1, lo, exit_level), _walk(d, b, +1, hi, exit_level)))
    return out


def _valley(d: np.ndarray, left: int, right: int) -> int:
    """Index of the lowest frame in ``[left, right]``."""
    return left + int(np.argmin(d[left : right + 1]))


def _walk(d: np.ndarray, i: int, step: int, limit: int, level: float) -> int:
    """Walk from ``i`` towards ``limit`` down to ``level``, then on while still falling."""
    while i != limit and d[i] > level:
        i += step
    while i != limit and d[i + step] < d[i]:
        i += step
    return i


def _is_truncated(d: np.ndarray, start: int, end: int, level: float) -> bool:
    """Whether the smile touches the start or end of the signal above rest level."""
    return (start == 0 and d[0] > level) or (end == len(d) - 1 and d[-1] > level)
