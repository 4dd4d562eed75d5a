"""The per-frame state machine of one video: faces, tracks, rows, side outputs, result."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.analysis.authenticity_classifier import AuthenticityClassifier
from duchenne.analysis.video.cuts import CutDetector
from duchenne.analysis.video.options import VideoOptions, frame_feature_names
from duchenne.analysis.video.outputs import _AnnotatedVideo
from duchenne.analysis.video.results import TIME_DECIMALS, TrackSummary, VideoResult
from duchenne.analysis.video.track_state import TrackContext, TrackState
from duchenne.errors import DuchenneError
from duchenne.face.geometry import au_proxies, geometry_arrays
from duchenne.face.tracker import FaceTracker
from duchenne.faces import DEFAULT_SMILE_THRESHOLD, Faces
from duchenne.io.frames import Frame
from duchenne.io.image import save_image_atomic
from duchenne.io.jsonsafe import flatten_record
from duchenne.io.video_probe import VideoInfo

# the package's logger (not this module's): log records keep the name they had when the
# package was one module
logger = logging.getLogger(__package__)


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
        smile_threshold: P(smile) from which a frame is smiling (rows, drawing, episodes).
        sampling: which frames were analysed, in words (reported in the result).
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
        smile_threshold: float = DEFAULT_SMILE_THRESHOLD,
        sampling: str | None = None,
    ) -> None:
        self.stage = stage
        self.smile_threshold = float(smile_threshold)
        self.sampling = sampling
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
        self.cuts = CutDetector() if opts.scene_cuts else None
        self.scene_cuts = 0
        self.tracks: dict[int, TrackState] = {}
        self.track_context = TrackContext(
            self.options,
            self.fps,
            with_smile,
            self.keep_best,
            self.classify,
            smile_threshold=self.smile_threshold,
        )
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
        if self.cuts is not None and self.cuts(frame.image):
            self._cut(frame)
        faces = self.stage(frame.image)
        detected = np.asarray(faces.meta.get("detected", np.zeros(len(faces), bool)))
        raw = faces.landmarks
        lineage = faces.meta.pop("lineage", None)  # the stage's identity of tracked faces
        height, width = frame.image.shape[:2]
        ids, smoothed = self.tracker.update(
            faces.xyxy, raw, t=frame.time, lineage=lineage, image_size=(width, height)
        )
        faces.track_id = ids
        if smoothed is not None and len(faces):
            faces.landmarks = smoothed.astype(np.float32)
            if self.geometry:
                _add_geometry(faces)
        faces.meta.update(frame=frame.index, time=frame.time, smile_threshold=self.smile_threshold)
        for i, tid in enumerate(ids.tolist()):
            track = self.tracks.get(tid)
            if track is None:
                track = self.tracks[tid] = TrackState(tid, self.track_context)
            track.add(frame, faces, i, None if raw is None else raw[i])
            if self.writer is not None:
                self.writer.write(self._row(frame, faces, i, bool(detected[i])))
                self.rows += 1
        seen = set(ids.tolist())
        for tid, track in self.tracks.items():
            if tid not in seen:  # hidden on this frame (the tracker keeps it a while)
                track.miss(frame)
        self._end_lost_tracks()
        if self.draw is not None:
            self.draw.write(frame, faces)
        self.samples += 1
        if self.first_time is None:
            self.first_time = frame.time
        self.last_time = frame.time
        return faces

    def _cut(self, frame: Frame) -> None:
        """A new shot starts at ``frame``: end every track and make the stage forget its
        faces (their ROIs would find whoever is now where they were), so the faces of
        the new shot are detected afresh and get new IDs."""
        logger.debug("scene cut at frame %d (%.3f s)", frame.index, frame.time)
        self.scene_cuts += 1
        self.tracker.end_all()
        reset = getattr(self.stage, "reset", None)
        if callable(reset):
            reset()
        self._end_lost_tracks()

    def _row(self, frame: Frame, faces: Faces, i: int, detected: bool) -> dict[str, Any]:
        return frame_row(frame, faces, i, detected, self.smile_threshold)

    def _end_lost_tracks(self) -> None:
        alive = set(self.tracker.active_ids)
        for tid in [t for t in self.tracks if t not in alive]:
            self._end(tid)

    def _end(self, tid: int) -> None:
        track = self.tracks.pop(tid)
        summary = track.finish()
        if summary.n_frames >= self.options.min_track_frames:
            self.write_track_outputs(track, summary)
            self.summaries.append(summary)
        else:
            self.short_tracks += 1
        track.release()

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

    def write_track_outputs(self, track: TrackState, summary: TrackSummary) -> None:
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
            title = None
            if not all(e.has_dynamics for e in summary.episodes):
                # episodes found without landmarks have no phases: the plot shades them
                # whole, and its title says how many were measured
                measured = [e for e in summary.episodes if e.has_dynamics]
                title = (
                    f"face {summary.track_id}: {summary.n_frames} frames, "
                    f"{len(summary.episodes)} smile episode(s), {len(measured)} with "
                    f"onset/apex/offset (landmarks), {self.fps:.3g} fps analysed"
                )
            try:
                plot_track(track.timeline.values(), summary, path, fps=self.fps, title=title)
                summary.plot = str(path)
            except (OSError, ValueError, DuchenneError) as exc:
                logger.warning("%s: plot not written (%s)", path, exc)

    # -- end ---------------------------------------------------------------------------

    def finish(self, error: BaseException | None = None) -> VideoResult:
        """End every track; close the annotated video; return the result."""
        for tid in list(self.tracks):
            self._end(tid)
        written = self.draw.close(commit=True) if self.draw is not None else None
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
            scene_cuts=self.scene_cuts,
            models=self.models,
            feature_names=self.feature_names if self.options.collect_features else (),
            classifier=self.classifier_info,
            outputs=self._outputs(written),
            smile_threshold=self.smile_threshold,
            sampling=self.sampling,
            episodes_from=self.episodes_from,
        )

    def _outputs(self, video: Path | None) -> dict[str, str]:
        """The side outputs written, for the result: the annotated ``video`` (None: no
        frame was written), and the ``plots`` / ``best`` folders only when a file went
        into them. A folder asked for but left empty (no face, too-short tracks, a failed
        write) used to be listed though it was never created."""
        outputs: dict[str, str] = {}
        if video is not None and self.draw is not None:
            outputs["video"] = str(video)
            outputs["video_codec"] = str(self.draw.codec)
        if self.plot_dir is not None and any(s.plot for s in self.summaries):
            outputs["plots"] = str(self.plot_dir)
        if self.best_dir is not None and any(s.best_image for s in self.summaries):
            outputs["best"] = str(self.best_dir)
        return outputs

    @property
    def episodes_from(self) -> str:
        """How smile episodes were cut, in words (reported with the result)."""
        mode = self.options.episodes
        if mode == "auto" and self.with_smile:
            return f"runs of frames with P(smile) >= {self.smile_threshold:g} (smiling)"
        if mode in ("auto", "lip"):
            return "rises of the lip-corner signal D_lip above its rest level"
        return {"single": "each track is one smile", "none": "not segmented"}[mode]

    def abort(self) -> None:
        """Discard the annotated video (on an unexpected error)."""
        if self.draw is not None:
            self.draw.close(commit=False)


def frame_row(
    frame: Frame, faces: Faces, i: int, detected: bool, smile_threshold: float
) -> dict[str, Any]:
    """The per-frame table row of face ``i`` of ``faces`` on ``frame`` (flat)."""
    face = faces.face(i).to_dict()
    face.pop("id", None)
    face.pop("keypoints", None)
    face.pop("track_id", None)
    row: dict[str, Any] = {
        "time": round(frame.time, TIME_DECIMALS),
        "frame": frame.index,
        "face": int(faces.track_id[i]),  # type: ignore[index]
        "detected": detected,
    }
    if faces.smile is not None:
        row["smile_threshold"] = smile_threshold
    row.update(face)
    return flatten_record(row)


def template_row(
    template: Faces, *, geometry: bool = True, smile_threshold: float = DEFAULT_SMILE_THRESHOLD
) -> dict[str, Any]:
    """A placeholder row with the columns (and value types) the rows of faces like
    ``template`` get (a one-face ``Faces`` with the fields the face stage fills, e.g.
    :meth:`TrackingFaceStage.template`): the table's header before any face is seen, so
    a video without a face still gets a CSV header and a Parquet schema."""
    faces = template[[0]]
    faces.track_id = np.zeros(1, np.int64)
    if faces.landmarks is not None and geometry:
        _add_geometry(faces)
    faces.meta["smile_threshold"] = smile_threshold
    frame = Frame(0, 0.0, np.zeros((1, 1, 3), np.uint8))
    return frame_row(frame, faces, 0, False, smile_threshold)


def _add_geometry(faces: Faces) -> None:
    """Geometry values and AU proxies of the faces' (smoothed) landmarks, into ``data``."""
    faces.data.update(geometry_arrays(faces.landmarks))
    faces.data.update(au_proxies(faces.data))
