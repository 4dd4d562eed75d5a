"""Settings of the video analysis and the names of the per-frame feature vector."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from duchenne.analysis.checks import whole_number
from duchenne.face.geometry import GEOMETRY_KEYS
from duchenne.faces import EMOTION_LABELS, Faces

#: Per-frame feature vector (fusion classifier input) when a smile model runs.
FRAME_FEATURES: tuple[str, ...] = (
    "smile",
    "smile_score",
    *(f"emotion.{e}" for e in EMOTION_LABELS),
    *(f"geometry.{g}" for g in GEOMETRY_KEYS),
)


def frame_feature_names(with_smile: bool) -> tuple[str, ...]:
    """Names of the per-frame feature vector: :data:`FRAME_FEATURES` or geometry only."""
    if with_smile:
        return FRAME_FEATURES
    return tuple(f"geometry.{g}" for g in GEOMETRY_KEYS)


def frame_features(faces: Faces, i: int, with_smile: bool) -> np.ndarray:
    """The per-frame feature vector of face ``i`` (:func:`frame_feature_names`)."""
    geo = [float(faces.data[g][i]) if g in faces.data else math.nan for g in GEOMETRY_KEYS]
    if not with_smile:
        return np.array(geo)
    if faces.smile is None or faces.emotion is None or faces.smile_score is None:
        head = [math.nan] * (2 + len(EMOTION_LABELS))
    else:
        head = [float(faces.smile[i]), float(faces.smile_score[i]), *faces.emotion[i].tolist()]
    return np.array(head + geo)


#: ``VideoOptions`` fields that are durations, counts or margins (never below 0).
_NON_NEGATIVE = (
    "occlusion_s",
    "context_s",
    "episode_threshold",
    "min_episode_s",
    "min_track_frames",
    "best_margin",
)


@dataclass(frozen=True)
class VideoOptions:
    """Settings of the video analysis (defaults suit 25-60 fps video of people).

    Attributes:
        detect_every: run the face detector every N analysed frames (a whole number >= 1;
            1 = every frame); between, faces are tracked by their landmark ROI.
        min_presence: Face Mesh face-presence probability below which a tracked face is
            lost (the detector then runs on that frame).
        occlusion_s: a face missing for up to this long keeps its ID when it comes back.
        smooth: One-Euro-filter the landmarks of each track (output rows, geometry, drawing).
        scene_cuts: end every face track at a hard cut between shots
            (:class:`~duchenne.analysis.video.cuts.CutDetector`), so a person seen after
            the cut where another was before it gets a new ID.
        signal_landmarks: landmarks the smile signals are computed from: ``"raw"`` (default;
            the signals are then smoothed by the zero-phase Gaussian of
            :func:`~duchenne.analysis.dynamics.smooth_signal`, which does not delay them)
            or ``"smoothed"`` (One Euro; causal, so slow movements lag by 2-4 frames and
            onsets are measured late).
        episodes: ``"auto"`` (with a smile model: the runs of frames whose P(smile) reaches
            the analyzer's ``smile_threshold``, ``smiling_episodes``, so episodes and the
            per-frame ``smiling`` column agree; without one: ``"lip"``), ``"lip"`` (rises
            of the lip-corner signal above its rest level, ``find_episodes``), ``"single"`` (each
            track is one pre-cut smile clip, the D-Marker dataset protocol; keeps the whole
            track's signals), or ``"none"``.
        window_s: signal window per track before finished smiles are flushed (``auto``).
        context_s: seconds of signal kept after a flush (the neutral lead-in of the next smile).
        episode_threshold: rise of ``D_lip`` above its rest level that starts a smile.
        min_episode_s: shortest smile counted.
        min_track_frames: tracks seen on fewer frames are left out of the summaries
            (their rows are still written).
        collect_features: keep per-frame feature vectors and report each episode's mean
            (the fusion classifier's deep features).
        timeline_points: resolution of the per-track timeline kept for the plot.
        best_margin: margin around the face, as a fraction of its box, in best-frame crops.
    """

    detect_every: int = 10
    min_presence: float = 0.5
    occlusion_s: float = 1.0
    smooth: bool = True
    scene_cuts: bool = True
    signal_landmarks: str = "raw"
    episodes: str = "auto"
    window_s: float = 60.0
    context_s: float = 5.0
    episode_threshold: float = 0.03
    min_episode_s: float = 0.25
    min_track_frames: int = 3
    collect_features: bool = False
    timeline_points: int = 2000
    best_margin: float = 0.4

    def __post_init__(self) -> None:
        object.__setattr__(self, "detect_every", whole_number("detect_every", self.detect_every))
        # out-of-range values used to be accepted and run: min_presence=2 loses every
        # track on every frame, a negative duration or margin silently changes the cuts
        if not 0.0 <= self.min_presence <= 1.0:
            raise ValueError(f"min_presence must be in [0, 1], got {self.min_presence}")
        for name in _NON_NEGATIVE:
            if not getattr(self, name) >= 0:  # NaN too
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.signal_landmarks not in ("raw", "smoothed"):
            raise ValueError("signal_landmarks must be 'raw' or 'smoothed'")
        if self.episodes not in ("auto", "lip", "single", "none"):
            raise ValueError("episodes must be 'auto', 'lip', 'single' or 'none'")
        if self.window_s <= 2 * self.context_s:
            raise ValueError("window_s must be more than twice context_s")
        if self.timeline_points < 16:
            raise ValueError("timeline_points must be >= 16")
