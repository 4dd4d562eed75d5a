"""Smile amplitude signals from Face Mesh landmark sequences (episodes: ``analysis.episodes``).

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from duchenne.face import topology as T

__all__ = [
    "LANDMARKS",
    "MAX_BRIDGED_GAP_S",
    "SmileSignals",
    "bridge_short_gaps",
    "compute_signals",
    "normalize_pose",
    "observed_frames",
    "resample_even",
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

    ``observed``: (T,) bool, the frames whose landmarks were measured; None = the frames
    where every signal is finite (:meth:`observed_frames`). :meth:`smoothed` fills the
    gaps (NaN frames: the face hidden, or no landmarks) and records here which frames
    they were, so that what is measured on the smoothed signals can leave out what the
    interpolation made up (:func:`~duchenne.analysis.episodes.unobserved_phases`).
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
    observed: np.ndarray | None = None

    REGIONS = ("lip", "eyelid", "cheek")
    #: the per-frame signals (every field but ``reference_frame`` and ``observed``)
    SIGNALS = (
        "lip",
        "eyelid",
        "cheek",
        "lip_left",
        "lip_right",
        "eyelid_left",
        "eyelid_right",
        "cheek_left",
        "cheek_right",
    )

    def __len__(self) -> int:
        return len(self.lip)

    def observed_frames(self) -> np.ndarray:
        """(T,) bool: the frames where the face was measured.

        ``observed`` (when given) and, in any case, only frames where every signal is
        finite: a NaN sample is never an observation.

        Raises:
            ValueError: ``observed`` is not one value per frame.
        """
        return observed_frames([getattr(self, name) for name in self.SIGNALS], self.observed)

    def region(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(combined, left, right)`` signals of ``name`` in ``{"lip", "eyelid", "cheek"}``."""
        if name not in self.REGIONS:
            raise ValueError(f"unknown region {name!r}; expected one of {self.REGIONS}")
        return getattr(self, name), getattr(self, f"{name}_left"), getattr(self, f"{name}_right")

    def smoothed(self, fps: float, sigma_s: float = 0.05, method: str = "gaussian") -> SmileSignals:
        """A copy with every signal passed through :func:`smooth_signal` (NaN gaps filled),
        its ``observed`` the frames that were measured here (:meth:`observed_frames`)."""
        arrays = {
            name: smooth_signal(getattr(self, name), fps, sigma_s, method) for name in self.SIGNALS
        }
        observed = bridge_short_gaps(self.observed_frames(), int(MAX_BRIDGED_GAP_S * fps + 1e-9))
        return SmileSignals(**arrays, reference_frame=self.reference_frame, observed=observed)

    def to_dict(self) -> dict[str, list[float] | list[bool] | int]:
        """JSON-safe dict (NaN becomes ``None``; ``observed``: :meth:`observed_frames`)."""
        out: dict[str, list[float] | list[bool] | int] = {
            name: _json_list(getattr(self, name)) for name in self.SIGNALS
        }
        out["reference_frame"] = self.reference_frame
        out["observed"] = self.observed_frames().tolist()
        return out


def observed_frames(signals: Sequence[np.ndarray], observed: np.ndarray | None) -> np.ndarray:
    """(T,) bool: the frames where every one of ``signals`` is finite and, when given,
    ``observed`` is true (the one rule of :meth:`SmileSignals.observed_frames` and of the
    D-Markers of a mapping of signals).

    Raises:
        ValueError: the signals, or ``observed``, are not one value per frame.
    """
    arrays = [np.asarray(x, dtype=np.float64).ravel() for x in signals]
    seen = np.ones(len(arrays[0]), dtype=bool)
    for x in arrays:
        if x.shape != seen.shape:
            raise ValueError("the signals must all have one value per frame")
        seen &= np.isfinite(x)
    if observed is None:
        return seen
    mask = np.asarray(observed, dtype=bool).ravel()
    if mask.shape != seen.shape:
        raise ValueError(f"observed has {mask.size} frames, the signals {seen.size}")
    return seen & mask


#: Gaps between observed frames up to this long (seconds) count as observed once filled:
#: the straight line across them moves a phase's ends by at most that much (3 frames at
#: 30 fps), while a face lost for one frame (a missed detection, a fast turn) would
#: otherwise void its whole phase. Longer gaps, and frames before the first or after the
#: last observation, stay unobserved.
MAX_BRIDGED_GAP_S = 0.1


def bridge_short_gaps(observed: np.ndarray, max_frames: int) -> np.ndarray:
    """``observed`` with its interior runs of at most ``max_frames`` unobserved frames set.

    Example:
        >>> bridge_short_gaps(np.array([0, 1, 0, 1, 0, 0, 0, 1, 0], bool), 2).astype(int)
        array([0, 1, 1, 1, 0, 0, 0, 1, 0])
    """
    out = np.asarray(observed, dtype=bool).copy()
    seen = np.flatnonzero(out)
    if max_frames < 1 or len(seen) < 2:
        return out
    for a, b in zip(seen[:-1], seen[1:], strict=True):
        if 1 < b - a <= max_frames + 1:
            out[a + 1 : b] = True
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
    tracking gaps do not split an episode. An all-NaN signal is returned unchanged. The
    filled frames are not observations: :meth:`SmileSignals.smoothed` keeps which frames
    were measured (``observed``), and the phases and AU6 baselines measured on the
    smoothed signals leave the filled ones out.

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


def resample_even(
    times: np.ndarray, values: np.ndarray, fps: float, jitter: float = 0.25
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-frame values moved onto times ``1 / fps`` apart, or None if they already are.

    Why: the smoothing, the phase search, the durations and the speeds (D-Markers,
    genuineness) count frames and take them as ``1 / fps`` apart. A variable-frame-rate
    video (a phone dropping from 30 to 15 frames/s in low light) keeps frames unevenly
    spaced, and a camera may deliver fewer frames than its stated rate; read at one rate,
    their phases came out too long or too short and their speeds wrong by the same
    factor. Linear interpolation onto an even grid at ``fps``, over the frames' time span
    (its first point the first frame's time), gives the dynamics the signal they assume.

    Frames whose steps all lie within ``jitter`` of ``1 / fps`` (timestamp rounding) are
    left as they are (None), as are times that are not strictly increasing. A grid time
    next to a NaN sample (a frame where the face was hidden) is NaN, so that a hidden
    stretch stays a gap that the code downstream bridges as before, not a signal made up
    here; beyond the last frame (less than half a step) the last value is held.

    Args:
        times: (T,) frame times in seconds.
        values: (T,) or (T, K) per-frame values (NaN = unknown).
        fps: the rate the dynamics are computed at.
        jitter: largest deviation of a step from ``1 / fps``, as a fraction of it, that
            still counts as even.

    Returns:
        ``(grid_times (M,), values on the grid (M,) or (M, K))``, or None.

    Example:
        >>> grid, v = resample_even(np.array([0.0, 0.1, 0.3]), np.array([0.0, 1.0, 3.0]), 10)
        >>> grid.round(2).tolist(), v.round(2).tolist()
        ([0.0, 0.1, 0.2, 0.3], [0.0, 1.0, 2.0, 3.0])
    """
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    step = np.diff(t)
    nominal = 1.0 / fps
    if len(t) < 2 or not np.all(step > 0) or np.all(np.abs(step - nominal) <= jitter * nominal):
        return None
    grid = t[0] + np.arange(int(round((t[-1] - t[0]) * fps)) + 1) * nominal
    left = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 2)
    w = np.clip((grid - t[left]) / step[left], 0.0, 1.0)
    # a grid time on a frame (to rounding) takes that frame's value alone: 0 x NaN is NaN
    w = np.where(w < 1e-9, 0.0, np.where(w > 1.0 - 1e-9, 1.0, w))
    w = w.reshape(-1, *([1] * (x.ndim - 1)))
    a, b = x[left], x[left + 1]
    out = np.where(w == 0.0, a, np.where(w == 1.0, b, (1.0 - w) * a + w * b))
    return grid, out


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
