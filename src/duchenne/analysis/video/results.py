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

#: Decimals of every time (seconds) in the summaries: 0.1 ms, as the per-frame rows'
#: ``time`` column, so a summary time such as ``peak_time`` can be looked up in the table
#: (and sums of float steps do not print as ``2.9000000000000004``).
TIME_DECIMALS = 4

#: Why an episode is ``truncated``: the signal it was cut from starts or ends mid-smile.
#: ``track_start``: already smiling on the face track's first frame (the first analysed
#: frame, or the face appearing later); ``track_end``: still smiling on its last frame
#: (the clip ended, decoding stopped or the face was lost); ``window``: a smile longer
#: than the per-track signal window (``VideoOptions.window_s``) was split.
TRUNCATION_CAUSES = ("track_start", "track_end", "window")


def round_time(t: float | None) -> float | None:
    """A time (or duration) in seconds as the summaries print it (:data:`TIME_DECIMALS`)."""
    return None if t is None else round(float(t), TIME_DECIMALS)


def _span(phase: tuple[float, float] | None) -> list[float | None] | None:
    return None if phase is None else [round_time(phase[0]), round_time(phase[1])]


def _length(phase: tuple[float, float] | None) -> float | None:
    return None if phase is None else round_time(phase[1] - phase[0])


@dataclass
class EpisodeResult:
    """One smile of one face, with its timing, D-Markers and authenticity.

    Times are seconds in the video; ``onset``, ``apex``, ``offset`` are (start, end)
    times of the phases (D-Marker definition, see ``docs/dmarkers.md``); for episodes cut
    on P(smile) the onset may start before ``start_time`` and the offset end after
    ``end_time`` (the smile's rise and fall around its smiling frames). ``peak_amplitude``
    is the rise of ``D_lip`` above its rest level (fraction of the neutral mouth width);
    ``peak_smile_score`` the highest smile score (None without a smile model).
    ``dmarkers`` holds the 225 features in :data:`~duchenne.analysis.dmarkers.FEATURE_NAMES`
    order (float32, to keep long videos small).

    Without Face Mesh landmarks (e.g. ``--stages detect,smile``) episodes are still the runs
    of smiling frames, but nothing measured on the landmarks exists: ``onset``, ``apex``,
    ``offset``, ``peak_amplitude``, ``duchenne``, ``genuineness`` and ``dmarkers`` are
    None (``has_dynamics`` is False) and ``peak_time`` is the frame of the highest smile
    score. ``truncated``: the smile was cut, for the reasons in ``truncated_by``
    (:data:`TRUNCATION_CAUSES`). A smile with no face at rest seen before it (already
    smiling when the face was first seen) has a ``duchenne`` whose fields, and so
    ``duchenne_marker``, are None: its AU6 cannot be measured. ``unobserved`` names the
    phases the face was hidden during (no landmarks on frames of the phase, or of its
    search: :func:`~duchenne.analysis.episodes.unobserved_phases`): their spans are where
    the phases were found on the signal filled across the gap (drawn in the plot), but
    their durations (null in :meth:`to_dict`), D-Markers (NaN, null in JSON) and
    genuineness terms are unknown, and ``classifier_probability`` is None.
    """

    track_id: int
    index: int
    start_time: float
    end_time: float
    onset: tuple[float, float] | None
    apex: tuple[float, float] | None
    offset: tuple[float, float] | None
    start_frame: int
    end_frame: int
    peak_time: float
    peak_frame: int
    peak_amplitude: float | None
    peak_smile_score: float | None
    truncated: bool
    duchenne: DuchenneResult | None
    genuineness: GenuinenessResult | None
    dmarkers: np.ndarray | None
    features: np.ndarray | None = None
    classifier_probability: float | None = None
    truncated_by: tuple[str, ...] = ()
    unobserved: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    @property
    def has_dynamics(self) -> bool:
        """Whether the landmark measurements (phases, D-Markers, Duchenne marker,
        genuineness) exist: False for episodes found without Face Mesh landmarks."""
        return self.onset is not None and self.duchenne is not None

    @property
    def duchenne_marker(self) -> bool | None:
        """The AU6 marker (None when no landmarks were measured, or when no face at rest
        was seen before the smile: see :class:`DuchenneResult`)."""
        return None if self.duchenne is None else self.duchenne.duchenne_marker

    def dmarker_dict(self) -> dict[str, float | None]:
        """The 225 D-Markers by name (empty when no landmarks were measured; None for the
        features of an ``unobserved`` phase)."""
        if self.dmarkers is None:
            return {}
        return {
            n: float(v) if np.isfinite(v) else None
            for n, v in zip(FEATURE_NAMES, self.dmarkers, strict=True)
        }

    def to_dict(self, *, dmarkers: bool = False) -> dict[str, Any]:
        """JSON-safe dict (times rounded to :data:`TIME_DECIMALS`); ``dmarkers=True`` adds
        the 225 features by name (null when no landmarks were measured)."""
        g = self.genuineness
        out: dict[str, Any] = {
            "track_id": self.track_id,
            "index": self.index,
            "start_time": round_time(self.start_time),
            "end_time": round_time(self.end_time),
            "duration": round_time(self.duration),
            "onset": _span(self.onset),
            "apex": _span(self.apex),
            "offset": _span(self.offset),
            "onset_duration": self._duration("onset"),
            "apex_duration": self._duration("apex"),
            "offset_duration": self._duration("offset"),
            "unobserved": list(self.unobserved),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "peak_time": round_time(self.peak_time),
            "peak_frame": self.peak_frame,
            "peak_amplitude": self.peak_amplitude,
            "peak_smile_score": self.peak_smile_score,
            "truncated": self.truncated,
            "truncated_by": list(self.truncated_by),
            "duchenne_marker": self.duchenne_marker,
            "duchenne": None if self.duchenne is None else self.duchenne.to_dict(),
            "genuineness": None if g is None else g.score,
            "genuineness_method": None if g is None else g.method,
            "genuineness_detail": None
            if g is None
            else {"cues": g.cues, "contributions": g.contributions},
            "classifier_probability": self.classifier_probability,
        }
        if dmarkers:
            out["dmarkers"] = self.dmarker_dict() if self.dmarkers is not None else None
        return out

    def _duration(self, phase: str) -> float | None:
        """A phase's duration in seconds; None when unmeasured or ``unobserved``."""
        return None if phase in self.unobserved else _length(getattr(self, phase))


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
        """Whether any smile of this face showed the AU6 marker: True if one did, False if
        every smile was measured without it, None when that cannot be said (no smile
        measured on landmarks, or those without it include one whose marker is unknown:
        ``any`` read an unknown as "no")."""
        markers = [e.duchenne_marker for e in self.episodes if e.has_dynamics]
        if any(m is True for m in markers):
            return True
        return False if markers and None not in markers else None

    @property
    def genuineness(self) -> float | None:
        """Heuristic genuineness of this face's strongest smile (None without smiles
        measured on landmarks)."""
        measured = [e for e in self.episodes if e.has_dynamics and e.genuineness is not None]
        if not measured:
            return None
        strongest = max(measured, key=lambda e: e.peak_amplitude or 0.0)
        return strongest.genuineness.score  # type: ignore[union-attr]

    def to_dict(self, *, dmarkers: bool = False) -> dict[str, Any]:
        """JSON-safe dict with the episodes (times rounded to :data:`TIME_DECIMALS`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "episodes"}
        for key in ("first_time", "last_time", "best_time"):
            out[key] = round_time(out[key])
        out.update(
            duchenne_marker=self.duchenne_marker,
            genuineness=self.genuineness,
            episodes=[e.to_dict(dmarkers=dmarkers) for e in self.episodes],
        )
        return out


@dataclass
class VideoResult:
    """What :func:`analyze_video` found; complete, or partial with ``error`` set.

    ``scene_cuts``: hard cuts found between analysed frames; every face track ends at one
    (``VideoOptions.scene_cuts``).
    """

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
    scene_cuts: int = 0
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
        video = None if self.info is None else self.info.to_dict()
        if video is not None:
            video["duration"] = round_time(video.get("duration"))
        return {
            "source": self.source,
            "video": video,
            "fps": self.fps,
            "sampling": self.sampling,
            "smile_threshold": self.smile_threshold,
            "episodes_from": self.episodes_from,
            "frames_analysed": self.frames_analysed,
            "time_range": [round_time(self.first_time), round_time(self.last_time)],
            "complete": self.complete,
            "error": self.error,
            "rows_written": self.rows_written,
            "detector_runs": self.detector_runs,
            "scene_cuts": self.scene_cuts,
            "elapsed_s": round(self.elapsed_s, 3),
            "models": self.models,
            "authenticity": {
                "duchenne_marker": "AU6 rule: eye narrowing >= 10 % and cheek raise >= 3 % "
                "(apex vs the 0.1 s up to the onset); null when not measurable (no face at "
                "rest seen before the smile)",
                "genuineness_method": HEURISTIC_METHOD,
                "genuineness_note": GENUINENESS_NOTE,
                "classifier": self.classifier,
            },
            "feature_names": list(self.feature_names),
            "tracks": [t.to_dict(dmarkers=dmarkers) for t in self.tracks],
            "short_tracks_left_out": self.short_tracks,
            "outputs": self.outputs,
        }
