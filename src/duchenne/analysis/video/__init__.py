"""Streaming video analysis: faces per frame, stable IDs, smile episodes, D-Markers, Duchenne.

Why streaming: a video is analysed one frame at a time and nothing grows with its length.
Per frame, the face stage finds faces (see :class:`TrackingFaceStage`), the
:class:`~duchenne.face.tracker.FaceTracker` gives them stable IDs and One-Euro-smooths their
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

from duchenne.analysis.video.analyzer import VideoAnalyzer, analyze_video
from duchenne.analysis.video.face_stage import TrackingFaceStage
from duchenne.analysis.video.options import FRAME_FEATURES as FRAME_FEATURES
from duchenne.analysis.video.options import VideoOptions, frame_feature_names
from duchenne.analysis.video.results import GENUINENESS_NOTE as GENUINENESS_NOTE
from duchenne.analysis.video.results import EpisodeResult, TrackSummary, VideoResult
from duchenne.analysis.video.session import VideoSession
from duchenne.analysis.video.track_state import SIGNAL_FIELDS as SIGNAL_FIELDS

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
