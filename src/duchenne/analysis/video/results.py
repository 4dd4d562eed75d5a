"""What a video analysis returns: episodes, per-face summaries and the whole result."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from duchenne.analysis.authenticity import (
    HEURISTIC_METHOD,
    DuchenneResult,
    GenuinenessResult,
)
from duchenne.analysis.dmarkers import FEATURE_NAMES
from duchenne.io.video_probe import VideoInfo

GENUINENESS_NOTE = (
    "genuineness is a hand-set logistic heuristic over literature cues (AU6, onset/offset "
    "duration and speed, symmetry); it has NOT been validated on labelled data"
)


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
    smile_threshold: float | None = None
    sampling: str | None = None
    episodes_from: str | None = None

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
            "sampling": self.sampling,
            "smile_threshold": self.smile_threshold,
            "episodes_from": self.episodes_from,
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
