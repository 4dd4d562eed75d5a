"""Is a smile genuine? Duchenne marker, a transparent heuristic, and trainable classifiers.

Three levels, from rule to learned model:

1. :func:`duchenne_marker`: the classic AU6 test. A Duchenne (felt) smile recruits the
   orbicularis oculi: the cheeks rise and the eyes narrow together with the lip-corner
   pull. We measure, during the apex, the relative *decrease* of ``D_cheek`` (cheek
   raise) and of ``D_eyelid`` (eye narrowing) against the episode's own baseline (the
   0.1 s up to its onset's start), so each smile is compared with the face just before it.
   A smile with no face at rest before it (already smiling on the signal's first frame,
   or rising from it, or from frames where the face was hidden) has no baseline: its
   marker is unknown (None), not "no". Baseline and apex are means over observed frames.
2. :func:`genuineness`: a logistic score over a few literature-backed cues (AU6
   involvement, onset duration and relative speed, offset duration, symmetry). Weights
   and reference values are set by hand from published tendencies, **not fitted or
   validated on labelled data**; every result says ``method="heuristic-unvalidated"``.
3. :class:`~duchenne.analysis.authenticity_classifier.AuthenticityClassifier` (its own
   module): trained on D-Marker matrices (numpy logistic
   regression with standardisation and L2, Newton's method), optionally fused with deep
   per-frame features by a Hadamard product (HadaSmileNet's idea, with a fixed
   projection instead of learned ones); :func:`cross_validate` for fold protocols such as
   UvA-NEMO's 10 subject-independent folds. Label convention: 1 = spontaneous/genuine,
   0 = posed.

Known limits: a strong lip-corner pull (AU12) alone also pushes the cheeks up, so cheek
raise at high smile intensity is weak evidence; head pitch changes ``D_eyelid`` and
``D_cheek`` (the pose normalisation only removes roll, scale and translation).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from duchenne.analysis.dynamics import SmileSignals, smooth_signal
from duchenne.analysis.episodes import SmileEpisode, onset_start_observed, unobserved_phases

__all__ = [
    "AuthenticityResult",
    "DuchenneResult",
    "DuchenneThresholds",
    "GenuinenessResult",
    "HeuristicWeights",
    "assess_episode",
    "duchenne_marker",
    "genuineness",
    "has_rest_before",
]

logger = logging.getLogger(__name__)

HEURISTIC_METHOD = "heuristic-unvalidated"
#: Default baseline window (s) ending at the onset's start (see :class:`DuchenneThresholds`).
_BASELINE_S = 0.1


# --------------------------------------------------------------------------- AU6 marker


@dataclass(frozen=True)
class DuchenneThresholds:
    """Thresholds of the AU6 (Duchenne) marker; all relative decreases (fractions).

    Attributes:
        eye_narrowing: minimum relative decrease of ``D_eyelid`` (upper-lid height above
            the eye-corner line) from baseline to apex. 0.10: Face Mesh upper-lid jitter is
            ~5-10 % of the aperture per frame, and averaging over the apex frames brings
            it down to a few percent, so 10 % is a real narrowing.
        cheek_raise: minimum relative decrease of ``D_cheek`` (eye-to-cheek distance).
            0.03: the cheek point moves ~1-3 px towards the eye on a 100 px face in a
            clear AU6, i.e. 3-8 % of that distance.
        eye_full, cheek_full: decreases counted as a full-strength AU6 in ``au6_index``.
        baseline_s: time (s) averaged as the baseline, ending at the onset's first frame
            (the face just before the smile). Not the first frames *of* the onset, which
            are already rising: that shrank the measured drop, and by an amount that
            depended on the frame rate (3 frames cover twice as much of the rise at
            25 fps as at 50 fps). 0.1 s = 3 frames at 30 fps.
    """

    eye_narrowing: float = 0.10
    cheek_raise: float = 0.03
    eye_full: float = 0.25
    cheek_full: float = 0.08
    baseline_s: float = _BASELINE_S


@dataclass
class DuchenneResult:
    """AU6 evidence of one smile episode.

    ``au6_index`` in [0, 1] is the mean of the eye narrowing and cheek raise, each divided
    by its full-strength value and clipped to [0, 1]. ``duchenne_marker`` requires *both*
    cues above their thresholds (crow's feet come with both).

    Every field is None when the marker cannot be measured (:attr:`measurable` is False):
    no face at rest was seen before the smile, or the signals are missing there (or over
    the whole apex). The baseline would then be the smile itself and the drop about 0,
    which read as a confident "no AU6".
    """

    duchenne_marker: bool | None
    au6_index: float | None
    eye_narrowing: float | None
    cheek_raise: float | None
    eyelid_baseline: float | None
    cheek_baseline: float | None

    @classmethod
    def unknown(cls) -> DuchenneResult:
        """The result of a smile whose AU6 cannot be measured (every field None)."""
        return cls(None, None, None, None, None, None)

    @property
    def measurable(self) -> bool:
        """Whether the marker was measured (False: no baseline before the smile)."""
        return self.duchenne_marker is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (None stays None: null in JSON)."""
        return asdict(self)


def duchenne_marker(
    signals: SmileSignals,
    episode: SmileEpisode,
    thresholds: DuchenneThresholds | None = None,
) -> DuchenneResult:
    """AU6 test of one episode: cheek raise and eye narrowing at the apex.

    Baseline and apex are means over the frames where the face was observed
    (:meth:`~duchenne.analysis.dynamics.SmileSignals.observed_frames`): not over the
    straight lines the smoothing draws across hidden frames.

    Args:
        signals: smoothed signals of the track (the episode's frame ranges index them).
        episode: the smile.
        thresholds: see :class:`DuchenneThresholds`.

    Returns:
        :class:`DuchenneResult`; :meth:`DuchenneResult.unknown` when the episode has no
        face at rest seen before it (:func:`has_rest_before`) or its signals are missing
        there or over the whole apex.

    Example:
        >>> duchenne_marker(signals, episode).duchenne_marker  # doctest: +SKIP
        True
    """
    th = thresholds or DuchenneThresholds()
    observed = signals.observed_frames()
    if not has_rest_before(episode, observed):
        return DuchenneResult.unknown()
    eye_base, eye_apex = _baseline_and_apex(signals.eyelid, episode, th.baseline_s, observed)
    cheek_base, cheek_apex = _baseline_and_apex(signals.cheek, episode, th.baseline_s, observed)
    eye = _relative_drop(eye_base, eye_apex)
    cheek = _relative_drop(cheek_base, cheek_apex)
    if eye is None or cheek is None:
        return DuchenneResult.unknown()
    au6 = 0.5 * (_clip01(eye / th.eye_full) + _clip01(cheek / th.cheek_full))
    return DuchenneResult(
        duchenne_marker=bool(eye >= th.eye_narrowing and cheek >= th.cheek_raise),
        au6_index=float(au6),
        eye_narrowing=float(eye),
        cheek_raise=float(cheek),
        eyelid_baseline=float(eye_base),
        cheek_baseline=float(cheek_base),
    )


def has_rest_before(episode: SmileEpisode, observed: np.ndarray | None = None) -> bool:
    """Whether the signal shows the face before the smile: a non-empty onset that starts
    after the signal's first frame, and, given the ``observed`` frames, whose start was
    seen (:func:`~duchenne.analysis.episodes.onset_start_observed`).

    Why: every baseline (AU6, symmetry) is the face just before the onset. A smile already
    on at the first frame (empty onset: its rise was not seen) or rising from it (the face
    may have appeared mid-rise; no frame before it) has none, and the window before the
    onset is then the smile itself. So has one rising from hidden frames: they are filled
    with the first value seen, which looked like a face at rest there.
    """
    on_first, on_last = episode.onset
    return 0 < on_first < on_last and onset_start_observed(episode, observed)


def _baseline_and_apex(
    x: np.ndarray, episode: SmileEpisode, seconds: float, observed: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean over the ``seconds`` up to the onset's first frame (at least it), and over the
    apex, of the ``observed`` frames (None: all).

    The window ends where the onset starts, not after it: frames inside the rise would
    pull the baseline towards the apex, and the more so the lower the frame rate.
    """
    x = np.asarray(x, dtype=np.float64)
    if observed is not None:
        x = np.where(observed, x, np.nan)
    k = max(1, int(round(seconds * episode.fps)))
    on_first, on_last = episode.onset
    base = _nanmean(x[max(0, on_first - k + 1) : on_first + 1])
    ap_first, ap_last = episode.apex
    return base, _nanmean(x[ap_first : ap_last + 1])


def _nanmean(x: np.ndarray) -> float:
    """Mean of the finite values, NaN when there are none."""
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


def _relative_drop(base: float, value: float) -> float | None:
    """``(base - value) / |base|``; None when undefined (missing data, zero baseline):
    unknown, not "no drop"."""
    if not (math.isfinite(base) and math.isfinite(value)) or abs(base) < 1e-9:
        return None
    return (base - value) / abs(base)


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


# --------------------------------------------------------------------------- heuristic


@dataclass(frozen=True)
class HeuristicWeights:
    """Hand-set weights of the genuineness heuristic (unvalidated; see the module doc).

    The logit is ``bias + sum(weight * cue_term)`` with

    - ``au6 * (au6_index - 0.5)``: AU6 is the classic Duchenne marker (Ekman, Davidson &
      Friesen 1990); ECCV 2012 found eyelid dynamics the most discriminative.
    - ``onset * ln(onset_s / onset_ref_s)``: spontaneous smiles have slower, longer onsets
      (Schmidt et al. 2006; Dibeklioglu et al. 2012).
    - ``offset * ln(offset_s / offset_ref_s)``: and longer offsets (0 if no offset).
    - ``speed * ln(rel_speed / speed_ref)`` with ``speed < 0``: the onset's maximum lip
      speed divided by its rise (1/s; intensity-free); posed smiles are faster.
    - ``symmetry * (symmetry - symmetry_ref)``: posed smiles are more often asymmetric
      (Ekman, Hager & Friesen 1981).

    What was not seen contributes 0 to its terms: it is unknown, not instantaneous, absent
    or perfect. No onset (already smiling when the face was first seen) zeroes ``onset``
    and ``speed``; no offset (still smiling when it was lost) ``offset``; no face at rest
    before the smile (:func:`has_rest_before`; the AU6 marker is then None) ``au6`` and
    ``symmetry``, both measured from that face (their cues are None). An onset or offset
    the face was hidden during (:func:`~duchenne.analysis.episodes.unobserved_phases`:
    its duration and speed would be those of the line drawn across the gap) zeroes the
    same terms, and its cues are None.
    """

    bias: float = 0.0
    au6: float = 4.0
    onset: float = 1.0
    onset_ref_s: float = 0.5
    offset: float = 0.5
    offset_ref_s: float = 0.6
    speed: float = -1.0
    speed_ref: float = 4.0
    symmetry: float = 2.0
    symmetry_ref: float = 0.8


@dataclass
class GenuinenessResult:
    """Heuristic genuineness of one smile: ``score`` = P(genuine) under the heuristic."""

    score: float
    cues: dict[str, float | None]
    contributions: dict[str, float]
    method: str = HEURISTIC_METHOD
    note: str = "hand-set logistic heuristic over literature cues; not validated on labelled data"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def genuineness(
    signals: SmileSignals,
    episode: SmileEpisode,
    fps: float,
    au6_index: float | None = None,
    weights: HeuristicWeights | None = None,
) -> GenuinenessResult:
    """Transparent, *unvalidated* genuineness score of one smile.

    Args:
        signals: smoothed signals of the track.
        episode: the smile.
        fps: frame rate.
        au6_index: from :func:`duchenne_marker` (computed if ``None``; an AU6 that cannot
            be measured contributes nothing).
        weights: see :class:`HeuristicWeights`.

    Returns:
        :class:`GenuinenessResult` with the raw cues (None where unknown) and each cue's
        logit contribution.

    Example:
        >>> genuineness(signals, episode, fps=30).method  # doctest: +SKIP
        'heuristic-unvalidated'
    """
    if au6_index is None:
        au6_index = duchenne_marker(signals, episode).au6_index
    return _genuineness(signals, episode, fps, au6_index, weights or HeuristicWeights())


def _genuineness(
    signals: SmileSignals,
    episode: SmileEpisode,
    fps: float,
    au6_index: float | None,
    w: HeuristicWeights,
) -> GenuinenessResult:
    """:func:`genuineness` with the AU6 index as measured (None: unknown, not recomputed)."""
    cues = _cues(signals, episode, fps, au6_index)
    au6, symmetry = cues["au6_index"], cues["symmetry"]
    onset, offset, speed = (
        cues["onset_duration"],
        cues["offset_duration"],
        cues["onset_relative_speed"],
    )
    # an empty onset scored as a 0 s onset (x 0.01 floor: -4.6) and a zero speed (+4.6):
    # the two cancelled with the default weights only, and the cues read as measured
    onset_seen = onset is not None and speed is not None and onset > 0
    contrib = {
        "au6": 0.0 if au6 is None else w.au6 * (au6 - 0.5),
        "onset": w.onset * _log_ratio(onset, w.onset_ref_s) if onset_seen else 0.0,
        "offset": (
            w.offset * _log_ratio(offset, w.offset_ref_s)
            if offset is not None and offset > 0
            else 0.0
        ),
        "speed": w.speed * _log_ratio(speed, w.speed_ref) if onset_seen else 0.0,
        "symmetry": 0.0 if symmetry is None else w.symmetry * (symmetry - w.symmetry_ref),
    }
    z = w.bias + sum(contrib.values())
    return GenuinenessResult(score=_sigmoid(z), cues=cues, contributions=contrib)


def _cues(
    signals: SmileSignals, episode: SmileEpisode, fps: float, au6_index: float | None
) -> dict[str, float | None]:
    """The raw cue values of the heuristic; None where unknown.

    Lost-face (NaN) frames are interpolated first, as for the D-Markers (a NaN speed made
    the score a confident 0.0), but an onset or offset that spans them is not measured
    (:func:`~duchenne.analysis.episodes.unobserved_phases`): its duration and speed
    would be the interpolation's.
    """
    unseen = unobserved_phases(episode, signals.observed_frames())
    lip = smooth_signal(signals.lip, fps, method="none")
    on_first, on_last = episode.onset
    rise = float(lip[on_last] - lip[on_first])
    speed = np.gradient(lip) * fps if len(lip) > 1 else np.zeros_like(lip)
    onset_speed = speed[on_first : on_last + 1]
    onset_speed = onset_speed[np.isfinite(onset_speed)]
    max_speed = float(onset_speed.max()) if on_last > on_first and len(onset_speed) else 0.0
    rel_speed = max_speed / rise if rise > 1e-9 else 0.0
    onset_seen = "onset" not in unseen
    return {
        "au6_index": None if au6_index is None else float(au6_index),
        "onset_duration": episode.phase_duration("onset") if onset_seen else None,
        "offset_duration": None if "offset" in unseen else episode.phase_duration("offset"),
        "onset_relative_speed": rel_speed if onset_seen else None,
        "symmetry": _symmetry(signals, episode),
    }


def _symmetry(signals: SmileSignals, episode: SmileEpisode) -> float | None:
    """``1 - |dL - dR| / (|dL| + |dR|)`` of the per-side lip displacement at the apex.

    None without a face at rest before the smile (:func:`has_rest_before`): both
    displacements are then about 0 and the ratio read as a perfectly symmetric smile;
    None too when the lip corners were not observed at the baseline or the apex.
    """
    observed = signals.observed_frames()
    if not has_rest_before(episode, observed):
        return None
    base_l, apex_l = _baseline_and_apex(signals.lip_left, episode, _BASELINE_S, observed)
    base_r, apex_r = _baseline_and_apex(signals.lip_right, episode, _BASELINE_S, observed)
    d_left, d_right = apex_l - base_l, apex_r - base_r
    den = abs(d_left) + abs(d_right)
    if not math.isfinite(den):
        return None
    if den < 1e-9:
        return 1.0
    return float(1.0 - abs(d_left - d_right) / den)


def _log_ratio(x: float, ref: float) -> float:
    """``ln(x / ref)`` with ``x`` floored at 1 % of ``ref`` (no -inf)."""
    return math.log(max(x, 0.01 * ref) / ref)


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + math.exp(-z))) if z > -700 else 0.0


@dataclass
class AuthenticityResult:
    """Marker and heuristic together, as reported per episode by the video analyzer."""

    duchenne: DuchenneResult
    genuineness: GenuinenessResult

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-safe dict."""
        out = self.duchenne.to_dict()
        g = self.genuineness.to_dict()
        out.update(
            genuineness=g["score"],
            genuineness_method=g["method"],
            genuineness_cues=g["cues"],
            genuineness_contributions=g["contributions"],
        )
        return out


def assess_episode(
    signals: SmileSignals,
    episode: SmileEpisode,
    fps: float,
    thresholds: DuchenneThresholds | None = None,
    weights: HeuristicWeights | None = None,
) -> AuthenticityResult:
    """:func:`duchenne_marker` and :func:`genuineness` of one episode.

    Example:
        >>> assess_episode(signals, episode, fps=30).to_dict()["duchenne_marker"]  # doctest: +SKIP
    """
    marker = duchenne_marker(signals, episode, thresholds)
    score = _genuineness(signals, episode, fps, marker.au6_index, weights or HeuristicWeights())
    return AuthenticityResult(marker, score)
