"""Streaming video analysis: faces per frame, stable IDs, smile episodes, D-Markers, Duchenne.

Why streaming: a video is analysed one frame at a time and nothing grows with its length.
Per frame, the face stage finds faces (see :class:`TrackingFaceStage`), the
:class:`~duchenne.face.track.FaceTracker` gives them stable IDs and One-Euro-smooths their
landmarks, and one row per face is written to a record sink at once. Per face track only
compact state is kept:

* the x, y of the 11 Face Mesh points the smile signals use (plus time, frame and smile
  score: 26 floats per frame) in a window of at most ``window_s`` seconds. When the window
  is full, the signals are computed (:func:`~duchenne.analysis.dynamics.compute_signals`,
  against the track's first frame, its neutral reference), the smiles that have ended are
  segmented and measured (onset/apex/offset, 225 D-Markers, Duchenne marker,
  genuineness), and the window is cut at rest, keeping ``context_s`` seconds;
* a timeline for the plot, decimated by pairwise averaging to at most
  ``timeline_points`` points;
* the smiliest frame's face crop.

When a track ends (the tracker drops it after ``occlusion_s`` without the face, or the
video ends) its plot and best frame are written and its buffers freed. Peak memory is
therefore bounded by the window, the number of faces on screen at once and the episodes
found (about 3 kB each), not by the video length.

Detection is not run on every frame: as in MediaPipe's face-mesh graph, the ROI of the
next frame comes from the current landmarks (:func:`~duchenne.face.landmarks.roi_from_landmarks`),
and the detector runs only every ``detect_every`` frames (to find new faces) or when a
tracked face is lost (Face Mesh presence below ``min_presence``).

Per-frame "deep" features for the fusion classifier: the smile model's ONNX exposes no
embedding output, so the per-frame vector is :data:`FRAME_FEATURES` (smile probability,
smile score, the 8 emotion probabilities, the 8 geometry values), or only the geometry
values when no smile model is installed (:func:`frame_feature_names`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from duchenne.analysis.authenticity import (
    HEURISTIC_METHOD,
    AuthenticityClassifier,
    DuchenneResult,
    GenuinenessResult,
    assess_episode,
    episode_deep_features,
)
from duchenne.analysis.dmarkers import FEATURE_NAMES, dmarker_vector
from duchenne.analysis.dynamics import (
    LANDMARKS,
    SmileEpisode,
    SmileSignals,
    compute_signals,
    find_episodes,
    single_episode,
)
from duchenne.errors import DuchenneError, VideoDecodeError
from duchenne.face.geometry import GEOMETRY_KEYS, geometry_arrays
from duchenne.face.landmarks import roi_from_detection, roi_from_landmarks
from duchenne.face.track import FaceTracker, iou_matrix
from duchenne.faces import EMOTION_LABELS, Faces
from duchenne.io.image import save_image_atomic
from duchenne.io.sinks import RecordWriter, flatten_record
from duchenne.io.video import Frame, Sampling, VideoInfo, VideoReader, iter_frames

__all__ = [
    "FRAME_FEATURES",
    "EpisodeResult",
    "TrackSummary",
    "TrackingFaceStage",
    "VideoAnalyzer",
    "VideoOptions",
    "VideoResult",
    "VideoSession",
    "analyze_video",
    "frame_feature_names",
]

logger = logging.getLogger(__name__)

SIGNAL_FIELDS: tuple[str, ...] = (
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
#: Per-frame feature vector (fusion classifier input) when a smile model runs.
FRAME_FEATURES: tuple[str, ...] = (
    "smile",
    "smile_score",
    *(f"emotion.{e}" for e in EMOTION_LABELS),
    *(f"geometry.{g}" for g in GEOMETRY_KEYS),
)
GENUINENESS_NOTE = (
    "genuineness is a hand-set logistic heuristic over literature cues (AU6, onset/offset "
    "duration and speed, symmetry); it has NOT been validated on labelled data"
)
_MESH_KEYPOINTS = ((33, 133), (362, 263), (1,), (13, 14), (234,), (454,))
_DEDUP_IOU = 0.5
_NEW_FACE_IOU = 0.3
_ROI_TOLERANCE = 0.05
_SETTLE_PASSES = 4


def frame_feature_names(with_smile: bool) -> tuple[str, ...]:
    """Names of the per-frame feature vector: :data:`FRAME_FEATURES` or geometry only."""
    if with_smile:
        return FRAME_FEATURES
    return tuple(f"geometry.{g}" for g in GEOMETRY_KEYS)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class VideoOptions:
    """Settings of the video analysis (defaults suit 25-60 fps video of people).

    Attributes:
        detect_every: run the face detector every N analysed frames (1 = every frame);
            between, faces are tracked by their landmark ROI.
        min_presence: Face Mesh face-presence probability below which a tracked face is
            lost (the detector then runs on that frame).
        occlusion_s: a face missing for up to this long keeps its ID when it comes back.
        smooth: One-Euro-filter the landmarks of each track (output rows, geometry, drawing).
        signal_landmarks: landmarks the smile signals are computed from: ``"raw"`` (default;
            the signals are then smoothed by the zero-phase Gaussian of
            :func:`~duchenne.analysis.dynamics.smooth_signal`, which does not delay them)
            or ``"smoothed"`` (One Euro; causal, so slow movements lag by 2-4 frames and
            onsets are measured late).
        episodes: ``"auto"`` (segment smiles with ``find_episodes``), ``"single"`` (each
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
        if self.detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        if self.signal_landmarks not in ("raw", "smoothed"):
            raise ValueError("signal_landmarks must be 'raw' or 'smoothed'")
        if self.episodes not in ("auto", "single", "none"):
            raise ValueError("episodes must be 'auto', 'single' or 'none'")
        if self.window_s <= 2 * self.context_s:
            raise ValueError("window_s must be more than twice context_s")
        if self.timeline_points < 16:
            raise ValueError("timeline_points must be >= 16")


# --------------------------------------------------------------------------- face stage


class TrackingFaceStage:
    """Faces of one frame, detecting only every ``detect_every`` frames (MediaPipe's rule).

    Between detections each face's Face Mesh ROI comes from its previous landmarks. On a
    detection frame, detections overlapping a tracked face are ignored (the landmark ROI
    is more precise) and the others become new faces. Faces whose ROIs converge on the
    same face are merged. Boxes are the Face Mesh landmark bounding boxes on every frame
    (detector boxes on detection-only runs), so a box does not jump when detection runs;
    ``score`` is the detector confidence for newly detected faces and the Face Mesh
    presence for tracked ones. ``faces.meta["detected"]`` flags the newly detected faces.

    Args:
        analyzer: provides the detector, Face Mesh and smile model (and their settings:
            ``max_faces``, ``min_face_size``, stages).
        detect_every: see :class:`VideoOptions`.
        min_presence: see :class:`VideoOptions`.
    """

    def __init__(self, analyzer: Any, detect_every: int = 10, min_presence: float = 0.5) -> None:
        self.analyzer = analyzer
        self.detect_every = int(detect_every)
        self.min_presence = float(min_presence)
        self.detector_runs = 0
        self.reset()

    def reset(self) -> None:
        """Forget the tracked ROIs (a new video)."""
        self._rois: list[Any] = []
        self._since = 0

    @property
    def with_smile(self) -> bool:
        return self.analyzer.smile_model is not None

    def __call__(self, image: np.ndarray) -> Faces:
        """Faces with raw landmarks (and smiles when a smile model runs); no geometry."""
        if self.analyzer.mesh is None:
            faces = self._detect_only(image)
        else:
            faces = self._tracked(image)
        self._add_smiles(image, faces)
        return faces

    def _detect_only(self, image: np.ndarray) -> Faces:
        self.detector_runs += 1
        dets = self.analyzer.select_faces(self.analyzer.detector(image))
        faces = Faces(dets.xyxy, dets.score, keypoints=dets.keypoints)
        faces.meta["detected"] = np.ones(len(faces), bool)
        return faces

    def _tracked(self, image: np.ndarray) -> Faces:
        mesh = self.analyzer.mesh
        lm = np.zeros((0, 468, 3), np.float32)
        presence = score = np.zeros(0, np.float32)
        prev: list[Any] = []
        need = not self._rois or self._since + 1 >= self.detect_every
        if self._rois:
            lm, presence = mesh(image, self._rois)
            keep = presence >= self.min_presence
            need = need or not bool(keep.all())
            lm, presence = lm[keep], presence[keep]
            prev = [r for r, k in zip(self._rois, keep, strict=True) if k]
            score = presence.copy()
        detected = np.zeros(len(lm), bool)
        if need:
            lm, presence, score, detected, new_rois = self._detect_new(image, lm, presence, score)
            prev += new_rois
            self._since = 0
        else:
            self._since += 1
        keep = self._select(_landmark_boxes(lm), score)
        lm, presence, score, detected = lm[keep], presence[keep], score[keep], detected[keep]
        self._rois = [_next_roi(points, prev[i]) for points, i in zip(lm, keep, strict=True)]
        faces = Faces(
            _landmark_boxes(lm),
            score,
            keypoints=_mesh_keypoints(lm),
            landmarks=lm,
            landmark_score=presence,
        )
        faces.meta["detected"] = detected
        return faces

    def _detect_new(
        self, image: np.ndarray, lm: np.ndarray, presence: np.ndarray, score: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any]]:
        """Run the detector; faces not already tracked get landmarks and join.

        Returns the grown arrays and the ROIs the new faces' landmarks came from.
        """
        self.detector_runs += 1
        dets = self.analyzer.select_faces(self.analyzer.detector(image))
        if len(lm) and len(dets):
            overlap = iou_matrix(dets.xyxy, _landmark_boxes(lm)).max(axis=1)
            dets = dets.select(np.nonzero(overlap < _NEW_FACE_IOU)[0])
        detected = np.zeros(len(lm), bool)
        if not len(dets):
            return lm, presence, score, detected, []
        rois = [roi_from_detection(b, k) for b, k in zip(dets.xyxy, dets.keypoints, strict=True)]
        new_lm, new_presence = self.analyzer.landmarks_for(image, rois)
        # Settle each new face on its landmark ROI, the ROI its next frames use: landmarks
        # from a detection ROI sit a little differently (~1-2 % of the mouth width at the
        # lip corners), and the track's first frame is the neutral reference of its smile
        # signals, so a step after it would read as a smile. A few passes converge.
        rois = [roi_from_landmarks(p) for p in new_lm]
        for _ in range(_SETTLE_PASSES):
            new_lm, new_presence = self.analyzer.mesh(image, rois)
            nxt = [_next_roi(p, r) for p, r in zip(new_lm, rois, strict=True)]
            if all(a is b for a, b in zip(nxt, rois, strict=True)):
                break
            rois = nxt
        return (
            np.concatenate([lm, new_lm]),
            np.concatenate([presence, new_presence]),
            np.concatenate([score, dets.score]),
            np.concatenate([detected, np.ones(len(new_lm), bool)]),
            rois,
        )

    def _select(self, boxes: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Merge duplicates (IoU > 0.5), drop small faces, keep ``max_faces`` best."""
        order = np.argsort(-score, kind="stable")
        kept: list[int] = []
        for i in order:
            if kept and iou_matrix(boxes[i : i + 1], boxes[kept]).max() > _DEDUP_IOU:
                continue
            side = min(boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1])
            if side < self.analyzer.min_face_size:
                continue
            kept.append(int(i))
        if self.analyzer.max_faces is not None:
            kept = kept[: self.analyzer.max_faces]
        return np.array(sorted(kept), dtype=np.intp)

    def _add_smiles(self, image: np.ndarray, faces: Faces) -> None:
        model = self.analyzer.smile_model
        if model is None:
            return
        if len(faces):
            out = model(self.analyzer.face_crops(image, faces))
            faces.smile, faces.smile_score, faces.emotion = out.smile, out.smile_score, out.emotion
        else:
            faces.smile = faces.smile_score = np.zeros(0, np.float32)
            faces.emotion = np.zeros((0, len(EMOTION_LABELS)), np.float32)
        faces.meta["emotion_labels"] = list(EMOTION_LABELS)


def _next_roi(landmarks: np.ndarray, previous: Any) -> Any:
    """The ROI for the next frame: from these landmarks, unless they barely moved.

    Keeping the previous ROI while the face is still (centre within 5 % of the ROI side,
    side within 5 %, rotation within 2 degrees) gives Face Mesh the same crop frame after
    frame: re-deriving it every frame makes the landmarks creep by ~0.5 px over the first
    half second (the ROI and the landmarks settle together), which reads as a slow smile.
    5 % rather than 2 %: a smile itself changes the landmark box by 2-4 %, and a ROI moved
    during a smile left a lasting step of ~4 % in the eye aperture of the generated clips.
    """
    roi = roi_from_landmarks(landmarks)
    if previous is None:
        return roi
    shift = math.hypot(roi.cx - previous.cx, roi.cy - previous.cy) / previous.size
    grow = abs(roi.size / previous.size - 1.0)
    turn = abs((roi.rotation - previous.rotation + math.pi) % (2 * math.pi) - math.pi)
    if shift < _ROI_TOLERANCE and grow < _ROI_TOLERANCE and turn < math.radians(2.0):
        return previous
    return roi


def _landmark_boxes(lm: np.ndarray) -> np.ndarray:
    """(n, 4) bounding boxes of (n, k, 2|3) landmarks."""
    if not len(lm):
        return np.zeros((0, 4), np.float32)
    xy = lm[..., :2]
    return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1).astype(np.float32)


def _mesh_keypoints(lm: np.ndarray) -> np.ndarray:
    """BlazeFace-order keypoints (n, 6, 2) from Face Mesh points (eyes = corner midpoints)."""
    if not len(lm):
        return np.zeros((0, 6, 2), np.float32)
    return np.stack([lm[:, list(idx), :2].mean(axis=1) for idx in _MESH_KEYPOINTS], axis=1)


# --------------------------------------------------------------------------- results


@dataclass
class EpisodeResult:
    """One smile of one face, with its timing, D-Markers and authenticity.

    Times are seconds in the video; ``onset``, ``apex``, ``offset`` are (start, end)
    times of the phases (D-Marker definition, see ``docs/dmarkers.md``). ``peak_amplitude``
    is the rise of ``D_lip`` above its rest level (fraction of the neutral mouth width);
    ``peak_smile_score`` the highest smile score (None without a smile model).
    ``dmarkers`` holds the 225 features in :data:`~duchenne.analysis.dmarkers.FEATURE_NAMES`
    order (float32, to keep long videos small).
    """

    track_id: int
    index: int
    start_time: float
    end_time: float
    onset: tuple[float, float]
    apex: tuple[float, float]
    offset: tuple[float, float]
    start_frame: int
    end_frame: int
    peak_time: float
    peak_frame: int
    peak_amplitude: float
    peak_smile_score: float | None
    truncated: bool
    duchenne: DuchenneResult
    genuineness: GenuinenessResult
    dmarkers: np.ndarray
    features: np.ndarray | None = None
    classifier_probability: float | None = None

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    @property
    def duchenne_marker(self) -> bool:
        return self.duchenne.duchenne_marker

    def dmarker_dict(self) -> dict[str, float]:
        """The 225 D-Markers by name."""
        return {n: float(v) for n, v in zip(FEATURE_NAMES, self.dmarkers, strict=True)}

    def to_dict(self, *, dmarkers: bool = False) -> dict[str, Any]:
        """JSON-safe dict; ``dmarkers=True`` adds the 225 features by name."""
        out: dict[str, Any] = {
            "track_id": self.track_id,
            "index": self.index,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
            "onset": list(self.onset),
            "apex": list(self.apex),
            "offset": list(self.offset),
            "onset_duration": self.onset[1] - self.onset[0],
            "apex_duration": self.apex[1] - self.apex[0],
            "offset_duration": self.offset[1] - self.offset[0],
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "peak_time": self.peak_time,
            "peak_frame": self.peak_frame,
            "peak_amplitude": self.peak_amplitude,
            "peak_smile_score": self.peak_smile_score,
            "truncated": self.truncated,
            "duchenne_marker": self.duchenne.duchenne_marker,
            "duchenne": self.duchenne.to_dict(),
            "genuineness": self.genuineness.score,
            "genuineness_method": self.genuineness.method,
            "genuineness_detail": {
                "cues": self.genuineness.cues,
                "contributions": self.genuineness.contributions,
            },
            "classifier_probability": self.classifier_probability,
        }
        if dmarkers:
            out["dmarkers"] = self.dmarker_dict()
        return out


@dataclass
class TrackSummary:
    """One face across the video."""

    track_id: int
    first_time: float
    last_time: float
    first_frame: int
    last_frame: int
    n_frames: int
    peak_smile_score: float | None
    mean_smile_score: float | None
    best_time: float | None
    best_frame: int | None
    best_value: float | None
    best_image: str | None = None
    plot: str | None = None
    episodes: list[EpisodeResult] = field(default_factory=list)

    @property
    def duchenne_marker(self) -> bool | None:
        """Whether any smile of this face showed the AU6 marker (None without smiles)."""
        return any(e.duchenne_marker for e in self.episodes) if self.episodes else None

    @property
    def genuineness(self) -> float | None:
        """Heuristic genuineness of this face's strongest smile (None without smiles)."""
        if not self.episodes:
            return None
        return max(self.episodes, key=lambda e: e.peak_amplitude).genuineness.score

    def to_dict(self, *, dmarkers: bool = False) -> dict[str, Any]:
        """JSON-safe dict with the episodes."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "episodes"}
        out.update(
            duchenne_marker=self.duchenne_marker,
            genuineness=self.genuineness,
            episodes=[e.to_dict(dmarkers=dmarkers) for e in self.episodes],
        )
        return out


@dataclass
class VideoResult:
    """What :func:`analyze_video` found; complete, or partial with ``error`` set."""

    source: str
    info: VideoInfo | None
    fps: float
    frames_analysed: int
    first_time: float | None
    last_time: float | None
    tracks: list[TrackSummary]
    complete: bool = True
    error: str | None = None
    rows_written: int = 0
    detector_runs: int = 0
    elapsed_s: float = 0.0
    short_tracks: int = 0
    models: dict[str, str] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()
    classifier: dict[str, Any] | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def episodes(self) -> list[EpisodeResult]:
        """All episodes of all tracks, in time order."""
        return sorted((e for t in self.tracks for e in t.episodes), key=lambda e: e.start_time)

    def to_dict(self, *, dmarkers: bool = False) -> dict[str, Any]:
        """JSON-safe summary (tracks, episodes, provenance of every score)."""
        return {
            "source": self.source,
            "video": None if self.info is None else self.info.to_dict(),
            "fps": self.fps,
            "frames_analysed": self.frames_analysed,
            "time_range": [self.first_time, self.last_time],
            "complete": self.complete,
            "error": self.error,
            "rows_written": self.rows_written,
            "detector_runs": self.detector_runs,
            "elapsed_s": self.elapsed_s,
            "models": self.models,
            "authenticity": {
                "duchenne_marker": "AU6 rule: eye narrowing >= 10 % and cheek raise >= 3 % "
                "(apex vs the start of the onset)",
                "genuineness_method": HEURISTIC_METHOD,
                "genuineness_note": GENUINENESS_NOTE,
                "classifier": self.classifier,
            },
            "feature_names": list(self.feature_names),
            "tracks": [t.to_dict(dmarkers=dmarkers) for t in self.tracks],
            "short_tracks_left_out": self.short_tracks,
            "outputs": self.outputs,
        }


# --------------------------------------------------------------------------- per-track state


class _Decimator:
    """Bounded timeline: when full, neighbouring points are averaged (resolution halves)."""

    def __init__(self, max_points: int, width: int) -> None:
        self.max_points = max_points - max_points % 2
        self.data = np.empty((self.max_points, width), np.float64)
        self.n = 0
        self.stride = 1
        self._pending: list[np.ndarray] = []

    def add(self, row: np.ndarray) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.stride:
            self._push(_nanmean_rows(np.stack(self._pending)))
            self._pending = []

    def _push(self, row: np.ndarray) -> None:
        if self.n == self.max_points:
            pairs = self.data.reshape(self.max_points // 2, 2, -1)
            self.data[: self.max_points // 2] = _nanmean_rows(pairs, axis=1)
            self.n = self.max_points // 2
            self.stride *= 2
        self.data[self.n] = row
        self.n += 1

    def values(self) -> np.ndarray:
        rows = self.data[: self.n]
        if self._pending:
            rows = np.vstack([rows, _nanmean_rows(np.stack(self._pending))[None]])
        return rows


def _nanmean_rows(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """NaN-ignoring mean (NaN where all are NaN), without RuntimeWarnings."""
    finite = np.isfinite(x)
    count = finite.sum(axis=axis)
    total = np.where(finite, x, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class _Column:
    """Growable float64 matrix (rows appended one at a time, amortised O(1))."""

    def __init__(self, width: int, capacity: int = 256) -> None:
        self.data = np.empty((capacity, width), np.float64)
        self.n = 0

    def append(self, row: np.ndarray | Sequence[float]) -> None:
        if self.n == len(self.data):
            grown = np.empty((2 * len(self.data), self.data.shape[1]), np.float64)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n] = row
        self.n += 1

    def view(self) -> np.ndarray:
        return self.data[: self.n]

    def drop_first(self, k: int) -> None:
        """Remove the first ``k`` rows (and shrink the storage back when it is mostly empty)."""
        rest = self.data[k : self.n].copy()
        capacity = max(256, 2 * len(rest))
        self.data = np.empty((max(capacity, len(rest)), self.data.shape[1]), np.float64)
        self.data[: len(rest)] = rest
        self.n = len(rest)


# column layout of the per-track buffer: time, frame, smile score, smile, then x, y of the
# Face Mesh points the smile signals use
_USED = np.array(sorted(set(LANDMARKS.values())), dtype=np.intp)
_T, _F, _SCORE, _SMILE, _PTS = 0, 1, 2, 3, 4
_WIDTH = _PTS + 2 * len(_USED)
_CHUNK = 64  # frames per compute_signals call (bounds its temporary arrays to ~2 MB)


def _signals_of(points: np.ndarray, reference: np.ndarray | None) -> SmileSignals:
    """Raw D signals of (T, len(_USED), 2) points against the reference frame's points.

    ``compute_signals`` takes full Face Mesh arrays; the points it does not use are NaN,
    and it runs on chunks with the reference frame prepended (frame 0 of each call).
    """
    n = len(points)
    out = {name: np.full(n, np.nan) for name in SIGNAL_FIELDS}
    if reference is None or n == 0:
        return SmileSignals(**out)
    for a in range(0, n, _CHUNK):
        chunk = points[a : a + _CHUNK]
        full = np.full((len(chunk) + 1, 468, 2), np.nan)
        full[0, _USED] = reference
        full[1:, _USED] = chunk
        try:
            sig = compute_signals(full, reference_frame=0)
        except ValueError:  # degenerate reference: no signal
            return SmileSignals(**out)
        for name in SIGNAL_FIELDS:
            out[name][a : a + len(chunk)] = getattr(sig, name)[1:]
    return SmileSignals(**out)


class _Track:
    """Compact running state of one face track (see the module docstring)."""

    def __init__(self, track_id: int, session: VideoSession) -> None:
        self.id = track_id
        self.s = session
        opts = session.options
        self.buffer = _Column(_WIDTH)
        self.features = _Column(len(session.feature_names)) if opts.collect_features else None
        self.timeline = _Decimator(opts.timeline_points, 6)
        self._fed = 0  # leading buffer rows already added to the timeline
        self.reference: np.ndarray | None = None
        self.last_sample: int | None = None
        self.first_time = self.last_time = math.nan
        self.first_frame = self.last_frame = -1
        self.n_frames = 0
        self.smile_sum = 0.0
        self.smile_n = 0
        self.peak_smile: float | None = None
        self.best: tuple[float, float, int] | None = None  # value, time, frame
        self.best_crop: np.ndarray | None = None
        self.episodes: list[EpisodeResult] = []

    # -- per frame ---------------------------------------------------------------------

    def add(self, sample: int, frame: Frame, faces: Faces, i: int, raw: np.ndarray | None) -> None:
        """Record face ``i`` of ``faces`` on ``frame``.

        ``raw``: the face's unfiltered landmarks, used for the signals when
        ``signal_landmarks="raw"``.
        """
        self._fill_gap(sample, frame)
        use_raw = self.s.options.signal_landmarks == "raw" and raw is not None
        lm = raw if use_raw else (None if faces.landmarks is None else faces.landmarks[i])
        row = np.full(_WIDTH, np.nan)
        row[_T], row[_F] = frame.time, frame.index
        score = None if faces.smile_score is None else float(faces.smile_score[i])
        if score is not None:
            row[_SCORE] = score
        if faces.smile is not None:
            row[_SMILE] = float(faces.smile[i])
        if lm is not None and len(lm) > _USED[-1]:
            pts = np.asarray(lm[_USED, :2], np.float64)
            if np.all(np.isfinite(pts)):
                row[_PTS:] = pts.ravel()
                if self.reference is None:
                    self.reference = pts
        self.buffer.append(row)
        if self.features is not None:
            self.features.append(self.s.frame_features(faces, i))
        self._count(frame, score)
        if score is not None:
            self._maybe_best(frame, faces, i, score)
        elif "lip_corner_elevation" in faces.data:
            self._maybe_best(frame, faces, i, float(faces.data["lip_corner_elevation"][i]))
        self.last_sample = sample
        windowed = self.s.options.episodes in ("auto", "none")
        if windowed and self._span() >= self.s.options.window_s:
            self.flush(final=False)

    def _fill_gap(self, sample: int, frame: Frame) -> None:
        """NaN rows for the analysed frames where this face was missing (times interpolated)."""
        if self.last_sample is None or sample - self.last_sample <= 1 or not self.buffer.n:
            return
        missing = sample - self.last_sample - 1
        last = self.buffer.view()[-1]
        for k in range(1, missing + 1):
            frac = k / (missing + 1)
            row = np.full(_WIDTH, np.nan)
            row[_T] = last[_T] + frac * (frame.time - last[_T])
            row[_F] = round(last[_F] + frac * (frame.index - last[_F]))
            self.buffer.append(row)
            if self.features is not None:
                self.features.append(np.full(self.features.data.shape[1], np.nan))

    def _count(self, frame: Frame, score: float | None) -> None:
        if self.n_frames == 0:
            self.first_time, self.first_frame = frame.time, frame.index
        self.last_time, self.last_frame = frame.time, frame.index
        self.n_frames += 1
        if score is not None and math.isfinite(score):
            self.smile_sum += score
            self.smile_n += 1
            self.peak_smile = score if self.peak_smile is None else max(self.peak_smile, score)

    def _maybe_best(self, frame: Frame, faces: Faces, i: int, value: float) -> None:
        if not math.isfinite(value) or (self.best is not None and value <= self.best[0]):
            return
        self.best = (value, frame.time, frame.index)
        if self.s.keep_best:
            self.best_crop = _crop(frame.image, faces.xyxy[i], self.s.options.best_margin)

    def _span(self) -> float:
        view = self.buffer.view()
        return float(view[-1, _T] - view[0, _T]) if len(view) > 1 else 0.0

    # -- episodes ----------------------------------------------------------------------

    def flush(self, final: bool) -> None:
        """Segment and measure the smiles in the buffer; cut it (or empty it if ``final``)."""
        data = self.buffer.view()
        n = len(data)
        if n == 0:
            return
        fps = self.s.fps
        raw = _signals_of(data[:, _PTS:].reshape(n, -1, 2), self.reference)
        usable = n >= 3 and bool(np.isfinite(raw.lip).any())
        signals = raw.smoothed(fps) if usable else raw
        mode = self.s.options.episodes
        episodes: list[SmileEpisode] = []
        if usable and mode == "single":
            episodes = [single_episode(signals.lip, fps)]
        elif usable and mode == "auto":
            episodes = find_episodes(
                signals.lip,
                fps,
                threshold=self.s.options.episode_threshold,
                min_duration=self.s.options.min_episode_s,
            )
        cut = n
        if not final:
            episodes, cut = self._finished(episodes, n)
        for ep in episodes:
            self.episodes.append(self._measure(ep, signals, data))
        self._feed_timeline(data, raw, cut)
        self._cut(cut)

    def _feed_timeline(self, data: np.ndarray, raw: SmileSignals, upto: int) -> None:
        """Add rows ``[_fed, upto)`` to the decimated timeline (raw signals)."""
        for k in range(self._fed, upto):
            self.timeline.add(
                np.array(
                    [
                        data[k, _T],
                        data[k, _SCORE],
                        data[k, _SMILE],
                        raw.lip[k],
                        raw.eyelid[k],
                        raw.cheek[k],
                    ]
                )  # fmt: skip
            )
        self._fed = max(self._fed, upto)

    def _finished(self, episodes: list[SmileEpisode], n: int) -> tuple[list[SmileEpisode], int]:
        """Episodes that ended before the last ``context_s``, and where to cut the buffer."""
        keep = self._context_rows()
        done = [e for e in episodes if e.end_frame < n - keep]
        pending = [e for e in episodes if e.end_frame >= n - keep]
        cut = n - keep if not pending else min(n - keep, pending[0].start_frame)
        if cut <= 0 and pending:  # one smile longer than the window: report it cut short
            first = pending[0]
            first.truncated = True
            done.append(first)
            cut = first.end_frame + 1
        return done, max(cut, 0)

    def _context_rows(self) -> int:
        return max(1, int(round(self.s.options.context_s * self.s.fps)))

    def _cut(self, k: int) -> None:
        self.buffer.drop_first(k)
        if self.features is not None:
            self.features.drop_first(k)
        self._fed = max(0, self._fed - k)

    def _measure(self, ep: SmileEpisode, signals: SmileSignals, data: np.ndarray) -> EpisodeResult:
        fps = self.s.fps
        t, frames = data[:, _T], data[:, _F]
        assessed = assess_episode(signals, ep, fps)
        dm = dmarker_vector(signals, ep, fps).astype(np.float32)
        scores = data[ep.start_frame : ep.end_frame + 1, _SCORE]
        peak_score = float(np.nanmax(scores)) if np.isfinite(scores).any() else None
        feats = None
        if self.features is not None:
            try:
                feats = episode_deep_features(self.features.view(), ep).astype(np.float32)
            except ValueError:
                feats = None
        prob = self.s.classify(dm, feats)

        def span(phase: tuple[int, int]) -> tuple[float, float]:
            return float(t[phase[0]]), float(t[phase[1]])

        return EpisodeResult(
            track_id=self.id,
            index=len(self.episodes),
            start_time=float(t[ep.start_frame]),
            end_time=float(t[ep.end_frame]),
            onset=span(ep.onset),
            apex=span(ep.apex),
            offset=span(ep.offset),
            start_frame=int(frames[ep.start_frame]),
            end_frame=int(frames[ep.end_frame]),
            peak_time=float(t[ep.peak_frame]),
            peak_frame=int(frames[ep.peak_frame]),
            peak_amplitude=float(ep.peak_amplitude),
            peak_smile_score=peak_score,
            truncated=bool(ep.truncated),
            duchenne=assessed.duchenne,
            genuineness=assessed.genuineness,
            dmarkers=dm,
            features=feats,
            classifier_probability=prob,
        )

    # -- end ---------------------------------------------------------------------------

    def finish(self) -> TrackSummary:
        """Flush the last smiles, write the plot and best frame, free the buffers."""
        self.flush(final=True)
        summary = TrackSummary(
            track_id=self.id,
            first_time=self.first_time,
            last_time=self.last_time,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            n_frames=self.n_frames,
            peak_smile_score=self.peak_smile,
            mean_smile_score=self.smile_sum / self.smile_n if self.smile_n else None,
            best_time=None if self.best is None else self.best[1],
            best_frame=None if self.best is None else self.best[2],
            best_value=None if self.best is None else self.best[0],
            episodes=self.episodes,
        )
        if self.n_frames >= self.s.options.min_track_frames:
            self.s.write_track_outputs(self, summary)
        self.best_crop = None
        self.timeline = _Decimator(16, 6)
        return summary


def _crop(image: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    """Copy of the face box grown by ``margin`` on each side, clamped to the image."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
    c, d = min(w, int(math.ceil(x2 + mx))), min(h, int(math.ceil(y2 + my)))
    if c <= a or d <= b:
        return image.copy()
    return image[b:d, a:c].copy()


# --------------------------------------------------------------------------- session


class _AnnotatedVideo:
    """Annotated output video, written to a hidden temp file and renamed when closed."""

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in self.FOURCC:
            raise ValueError(f"{path}: annotated video must end in {sorted(self.FOURCC)}")
        self.fps = fps if fps > 0 else 30.0
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: Any = None
        from duchenne.annotate import FaceAnnotator

        self._annotator = FaceAnnotator()

    def write(self, frame: Frame, faces: Faces) -> None:
        image = self._annotator.annotate(frame.image, faces)
        h, w = image.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*self.FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.tmp), fourcc, float(self.fps), (w, h))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot write video (codec unavailable)")
            self._size = (w, h)
        if (w, h) != self._size:
            image = cv2.resize(image, self._size)
        scale = max(0.4, h / 600)
        cv2.putText(
            image, f"{frame.time:6.2f} s", (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX,
            scale, (255, 255, 255), max(1, round(scale * 1.5)), cv2.LINE_AA,
        )  # fmt: skip
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    def close(self, commit: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if commit:
                os.replace(self.tmp, self.path)
                return
        if self.tmp.exists():
            self.tmp.unlink()


class VideoSession:
    """The per-frame state machine behind :func:`analyze_video` (one video at a time).

    ``process`` takes frames in time order and returns each frame's ``Faces`` (with track
    IDs, smoothed landmarks and geometry); ``finish`` ends every track and returns the
    :class:`VideoResult`. Use it directly to drive the analysis from your own frame loop
    (e.g. to display a webcam feed).

    Args:
        stage: callable image -> ``Faces`` (e.g. :class:`TrackingFaceStage`).
        fps: rate of the analysed frames (for the dynamics; the timestamps place them).
        options: :class:`VideoOptions`.
        geometry: compute the geometry values on the smoothed landmarks.
        writer: per-frame record sink (anything with ``write(record)``), or None.
        draw: annotated output video path, or None.
        plot_dir, best_dir: folders for the per-face timeline PNG and smiliest frame.
        classifier: a trained :class:`AuthenticityClassifier` applied to every episode.
        classifier_info: its provenance (from the saved model), reported with results.
        source, info, models: facts reported in the result.
    """

    def __init__(
        self,
        stage: Callable[[np.ndarray], Faces],
        fps: float,
        options: VideoOptions | None = None,
        *,
        geometry: bool = True,
        with_smile: bool = False,
        writer: Any = None,
        draw: str | os.PathLike[str] | None = None,
        plot_dir: str | os.PathLike[str] | None = None,
        best_dir: str | os.PathLike[str] | None = None,
        classifier: AuthenticityClassifier | None = None,
        classifier_info: dict[str, Any] | None = None,
        source: str = "<frames>",
        info: VideoInfo | None = None,
        models: dict[str, str] | None = None,
    ) -> None:
        self.stage = stage
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.options = options or VideoOptions()
        self.geometry = geometry
        self.with_smile = with_smile
        self.feature_names = frame_feature_names(with_smile)
        if classifier is not None and classifier.kind == "fusion":
            self.options = replace(self.options, collect_features=True)
        self.classifier = classifier
        self.classifier_info = classifier_info
        self.writer = writer
        self.draw = _AnnotatedVideo(Path(draw), self.fps) if draw else None
        self.plot_dir = Path(plot_dir) if plot_dir else None
        self.best_dir = Path(best_dir) if best_dir else None
        self.keep_best = self.best_dir is not None
        self.source, self.info, self.models = source, info, dict(models or {})
        opts = self.options
        self.tracker = FaceTracker(
            max_missed=max(3, math.ceil(opts.occlusion_s * self.fps)),
            max_gap_s=opts.occlusion_s,
            fps=self.fps,
            smooth=opts.smooth,
        )
        self.tracks: dict[int, _Track] = {}
        self.summaries: list[TrackSummary] = []
        self.short_tracks = 0
        self.samples = 0
        self.rows = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._t0 = time.perf_counter()

    # -- per frame ---------------------------------------------------------------------

    def process(self, frame: Frame) -> Faces:
        """Analyse one frame; returns its faces with ``track_id`` set."""
        faces = self.stage(frame.image)
        detected = np.asarray(faces.meta.get("detected", np.zeros(len(faces), bool)))
        raw = faces.landmarks
        ids, smoothed = self.tracker.update(faces.xyxy, raw, t=frame.time)
        faces.track_id = ids
        if smoothed is not None and len(faces):
            faces.landmarks = smoothed.astype(np.float32)
            if self.geometry:
                faces.data.update(geometry_arrays(faces.landmarks))
        faces.meta.update(frame=frame.index, time=frame.time)
        for i, tid in enumerate(ids.tolist()):
            track = self.tracks.get(tid)
            if track is None:
                track = self.tracks[tid] = _Track(tid, self)
            track.add(self.samples, frame, faces, i, None if raw is None else raw[i])
            if self.writer is not None:
                self.writer.write(self._row(frame, faces, i, bool(detected[i])))
                self.rows += 1
        self._end_lost_tracks()
        if self.draw is not None:
            self.draw.write(frame, faces)
        self.samples += 1
        if self.first_time is None:
            self.first_time = frame.time
        self.last_time = frame.time
        return faces

    def _row(self, frame: Frame, faces: Faces, i: int, detected: bool) -> dict[str, Any]:
        face = faces.face(i).to_dict()
        face.pop("id", None)
        face.pop("keypoints", None)
        face.pop("track_id", None)
        row: dict[str, Any] = {
            "time": round(frame.time, 4),
            "frame": frame.index,
            "face": int(faces.track_id[i]),  # type: ignore[index]
            "detected": detected,
        }
        row.update(face)
        return flatten_record(row)

    def _end_lost_tracks(self) -> None:
        alive = set(self.tracker.active_ids)
        for tid in [t for t in self.tracks if t not in alive]:
            self._end(tid)

    def _end(self, tid: int) -> None:
        track = self.tracks.pop(tid)
        summary = track.finish()
        if summary.n_frames >= self.options.min_track_frames:
            self.summaries.append(summary)
        else:
            self.short_tracks += 1

    def frame_features(self, faces: Faces, i: int) -> np.ndarray:
        """The per-frame feature vector of face ``i`` (:func:`frame_feature_names`)."""
        geo = [float(faces.data[g][i]) if g in faces.data else math.nan for g in GEOMETRY_KEYS]
        if not self.with_smile:
            return np.array(geo)
        if faces.smile is None or faces.emotion is None or faces.smile_score is None:
            head = [math.nan] * (2 + len(EMOTION_LABELS))
        else:
            head = [float(faces.smile[i]), float(faces.smile_score[i]), *faces.emotion[i].tolist()]
        return np.array(head + geo)

    def classify(self, dmarkers: np.ndarray, features: np.ndarray | None) -> float | None:
        """The trained classifier's P(spontaneous) for one episode, if one is loaded."""
        if self.classifier is None:
            return None
        deep = None
        if self.classifier.kind == "fusion":
            if features is None or not np.all(np.isfinite(features)):
                return None
            deep = features[None].astype(np.float64)
        return float(self.classifier.predict_proba(dmarkers[None].astype(np.float64), deep)[0])

    def write_track_outputs(self, track: _Track, summary: TrackSummary) -> None:
        """Plot and best frame of a finished track.

        A failure here (disk full, unwritable folder) is logged and leaves the field None:
        these are side outputs, and raising would discard the analysis of the whole video.
        """
        if self.best_dir is not None and track.best_crop is not None:
            path = self.best_dir / f"face_{track.id}.jpg"
            try:
                save_image_atomic(track.best_crop, path)
                summary.best_image = str(path)
            except (OSError, ValueError) as exc:
                logger.warning("%s: best frame not written (%s)", path, exc)
        if self.plot_dir is not None:
            from duchenne.analysis.timeline_plot import plot_track

            path = self.plot_dir / f"face_{track.id}.png"
            try:
                plot_track(track.timeline.values(), summary, path, fps=self.fps)
                summary.plot = str(path)
            except (OSError, ValueError, DuchenneError) as exc:
                logger.warning("%s: plot not written (%s)", path, exc)

    # -- end ---------------------------------------------------------------------------

    def finish(self, error: BaseException | None = None) -> VideoResult:
        """End every track; close the annotated video; return the result."""
        for tid in list(self.tracks):
            self._end(tid)
        if self.draw is not None:
            self.draw.close(commit=True)
        outputs = {}
        if self.draw is not None and self.draw.path.exists():
            outputs["video"] = str(self.draw.path)
        if self.plot_dir is not None:
            outputs["plots"] = str(self.plot_dir)
        if self.best_dir is not None:
            outputs["best"] = str(self.best_dir)
        return VideoResult(
            source=self.source,
            info=self.info,
            fps=self.fps,
            frames_analysed=self.samples,
            first_time=self.first_time,
            last_time=self.last_time,
            tracks=sorted(self.summaries, key=lambda s: s.track_id),
            complete=error is None,
            error=None if error is None else f"{type(error).__name__}: {error}",
            rows_written=self.rows,
            detector_runs=int(getattr(self.stage, "detector_runs", 0)),
            elapsed_s=time.perf_counter() - self._t0,
            short_tracks=self.short_tracks,
            models=self.models,
            feature_names=self.feature_names if self.options.collect_features else (),
            classifier=self.classifier_info,
            outputs=outputs,
        )

    def abort(self) -> None:
        """Discard the annotated video (on an unexpected error)."""
        if self.draw is not None:
            self.draw.close(commit=False)


# --------------------------------------------------------------------------- entry points


class VideoAnalyzer:
    """Analyse videos with one set of models and options (the sessions are reused).

    Args:
        analyzer: a :class:`~duchenne.analysis.analyzer.Analyzer` (None = a default one).
        options: :class:`VideoOptions`.
        stage: replace the face stage (image -> ``Faces``), e.g. in tests.
        classifier: a trained authenticity model (path to its JSON, or the object).

    Example:
        >>> result = VideoAnalyzer().analyze("clip.mp4", output="frames.csv")  # doctest: +SKIP
        >>> [(t.track_id, len(t.episodes)) for t in result.tracks]  # doctest: +SKIP
    """

    def __init__(
        self,
        analyzer: Any = None,
        options: VideoOptions | None = None,
        *,
        stage: Callable[[np.ndarray], Faces] | None = None,
        classifier: AuthenticityClassifier | str | os.PathLike[str] | None = None,
    ) -> None:
        self.options = options or VideoOptions()
        if stage is None:
            if analyzer is None:
                from duchenne.analysis.analyzer import Analyzer

                analyzer = Analyzer()
            stage = TrackingFaceStage(
                analyzer, self.options.detect_every, self.options.min_presence
            )
        self.analyzer = analyzer
        self.stage = stage
        self.classifier, self.classifier_info = _load_classifier(classifier)
        trained_on = (self.classifier_info or {}).get("frame_features")
        if self.classifier is not None and self.classifier.kind == "fusion" and trained_on:
            if tuple(trained_on) != self.feature_names:
                raise DuchenneError(
                    f"{self.classifier_info.get('path', 'the classifier')}: trained on per-frame "
                    f"features {trained_on}, but this analyzer gives {list(self.feature_names)} "
                    "(a smile model present at training time and not now, or the reverse)"
                )

    @property
    def with_smile(self) -> bool:
        """Whether a smile model runs (it decides the per-frame feature vector)."""
        return bool(getattr(self.stage, "with_smile", False))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the per-frame feature vector (:func:`frame_feature_names`)."""
        return frame_feature_names(self.with_smile)

    def analyze(
        self,
        source: Any,
        *,
        output: str | os.PathLike[str] | RecordWriter | None = None,
        format: str | None = None,
        draw: str | os.PathLike[str] | None = None,
        plot_dir: str | os.PathLike[str] | None = None,
        best_dir: str | os.PathLike[str] | None = None,
        every: int = 1,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        source_fps: float | None = None,
        on_error: str = "raise",
        callback: Callable[[Frame, Faces], None] | None = None,
        prefetch: int = 2,
        progress: bool = False,
    ) -> VideoResult:
        """Analyse one video; see :func:`analyze_video` for the arguments."""
        if on_error not in ("raise", "return"):
            raise ValueError("on_error must be 'raise' or 'return'")
        sampling = Sampling(every=every, fps=fps, start=start, end=end, max_frames=max_frames)
        reader, info, rate = _open(source, sampling, source_fps)
        if hasattr(self.stage, "reset"):
            self.stage.reset()
        own_writer = output is not None and not hasattr(output, "write")
        writer = (
            RecordWriter(output, format, keep_partial=True, row_group_size=2000)  # type: ignore[arg-type]
            if own_writer
            else output
        )
        session = VideoSession(
            self.stage,
            rate,
            self.options,
            geometry=self.analyzer is None or "geometry" in getattr(self.analyzer, "stages", ()),
            with_smile=self.with_smile,
            writer=writer,
            draw=draw,
            plot_dir=plot_dir,
            best_dir=best_dir,
            classifier=self.classifier,
            classifier_info=self.classifier_info,
            source=_source_label(source, info),
            info=info,
            models=getattr(self.analyzer, "model_names", {}) if self.analyzer else {},
        )
        frames = iter_frames(
            reader if reader is not None else source,
            every=every,
            fps=fps,
            start=start,
            end=end,
            max_frames=max_frames,
            source_fps=source_fps,
            prefetch=prefetch,
        )
        try:
            result, error = self._run(session, frames, callback, progress, info)
        except BaseException:
            session.abort()
            if own_writer:
                writer.abort()  # type: ignore[union-attr]
            raise
        finally:
            frames.close()  # stops the decode thread before the reader is released
            if reader is not None:
                reader.close()
        if own_writer:
            writer.close()  # type: ignore[union-attr]
            result.outputs["frames"] = str(writer.path)  # type: ignore[union-attr]
        if error is not None and on_error == "raise":
            error.result = result  # type: ignore[attr-defined]
            raise error
        return result

    def _run(
        self,
        session: VideoSession,
        frames: Iterable[Frame],
        callback: Callable[[Frame, Faces], None] | None,
        progress: bool,
        info: VideoInfo | None,
    ) -> tuple[VideoResult, VideoDecodeError | None]:
        """The frame loop; a decode error ends it with a partial result."""
        from tqdm.auto import tqdm

        total = None if info is None or info.frame_count is None else info.frame_count
        bar = tqdm(total=total, disable=not progress, desc="frames", unit="frame")
        try:
            for frame in frames:
                faces = session.process(frame)
                if callback is not None:
                    callback(frame, faces)
                bar.update(frame.index + 1 - bar.n if total else 1)
        except VideoDecodeError as exc:
            logger.info("%s", exc)
            return session.finish(error=exc), exc
        except KeyboardInterrupt:
            if info is None or not info.is_live:
                raise
            logger.info("stopped by the user")  # a camera ends with Ctrl-C: keep the results
        finally:
            bar.close()
        return session.finish(), None


def analyze_video(
    analyzer: Any,
    source: Any,
    *,
    options: VideoOptions | None = None,
    classifier: AuthenticityClassifier | str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> VideoResult:
    """Analyse a video file, camera or frame iterable, streaming (see the module docstring).

    Args:
        analyzer: the :class:`~duchenne.analysis.analyzer.Analyzer` whose models run.
        source: a path, a camera index, a :class:`~duchenne.io.video.VideoReader`, or an
            iterable of RGB frames / :class:`~duchenne.io.video.Frame` (a generator is fine).
        options: :class:`VideoOptions` (``detect_every``, episode settings ...).
        classifier: optional trained authenticity model (JSON path or object) applied to
            every episode (``EpisodeResult.classifier_probability``).
        output: per-frame table (``.csv``, ``.jsonl``, ``.parquet``, ``.json`` or a
            :class:`~duchenne.io.sinks.RecordWriter`); rows are streamed, and on a decode
            error the rows written so far are kept (``keep_partial=True``).
        format: table format when the suffix does not say it.
        draw: annotated output video (``.mp4`` or ``.avi``).
        plot_dir: one timeline PNG per face (needs matplotlib: ``duchenne[plot]``).
        best_dir: the smiliest frame of each face (a crop around the face), as JPEG.
        every, fps, start, end, max_frames: frame sampling and time range (seconds).
        source_fps: frame rate of a frame iterable (default 30).
        on_error: ``"raise"`` (default): a decode error is raised as ``VideoDecodeError``
            *after* everything analysed before it was finished and written, with the
            partial result as ``exc.result``; ``"return"``: the partial result is returned
            with ``complete=False`` and ``error`` set.
        callback: called with each frame and its faces.
        prefetch: frames decoded ahead in a background thread.
        progress: show a progress bar.

    Returns:
        :class:`VideoResult`: per-face summaries with their smile episodes.

    Raises:
        VideoOpenError: the source cannot be opened or has no decodable frame.
        VideoDecodeError: decoding stopped part way (with ``on_error="raise"``).

    Example:
        >>> from duchenne import Analyzer
        >>> result = Analyzer().analyze_video("clip.mp4", output="frames.csv")  # doctest: +SKIP
        >>> result.tracks[0].episodes[0].genuineness.score  # doctest: +SKIP
    """
    return VideoAnalyzer(analyzer, options, classifier=classifier).analyze(source, **kwargs)


def _open(
    source: Any, sampling: Sampling, source_fps: float | None
) -> tuple[VideoReader | None, VideoInfo | None, float]:
    """Open a path/camera source once (for its info); the analysis rate of the frames."""
    if isinstance(source, VideoReader):
        return None, source.info, sampling.effective_fps(source.info.fps) or 30.0
    if isinstance(source, (str, os.PathLike, int)) and not isinstance(source, bool):
        reader = VideoReader(source)
        rate = sampling.effective_fps(reader.info.fps) or 30.0
        return reader, reader.info, rate
    return None, None, sampling.effective_fps(float(source_fps or 30.0))


def _source_label(source: Any, info: VideoInfo | None) -> str:
    return info.source if info is not None else "<frames>"


def _load_classifier(
    classifier: AuthenticityClassifier | str | os.PathLike[str] | None,
) -> tuple[AuthenticityClassifier | None, dict[str, Any] | None]:
    """A classifier object and its provenance (``{"path": ...}`` plus what the file records)."""
    if classifier is None:
        return None, None
    if isinstance(classifier, AuthenticityClassifier):
        return classifier, {"kind": classifier.kind, "provenance": "passed in by the caller"}
    import json

    path = Path(classifier)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        model = AuthenticityClassifier.from_dict(content)
    except (OSError, ValueError, KeyError) as exc:
        raise DuchenneError(f"{path}: not a duchenne authenticity model ({exc})") from None
    info = {"path": str(path), "kind": model.kind, **content.get("provenance", {})}
    return model, info
