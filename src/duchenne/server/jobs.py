"""Video jobs: upload once, analyse in a bounded pool, poll for progress and the result.

Why jobs (not one long request): a video takes seconds to minutes to analyse, longer than
any sane HTTP timeout, and clients (the dashboard, scripts) want progress. A job owns its
uploaded file until it finishes (the file is then deleted); its result stays in memory for
``job_ttl_s`` and is then dropped. At most ``max_jobs`` run at once and ``max_queued_jobs``
wait; more are refused with 429 rather than queued without limit.

The analysis itself is ``duchenne.analysis.video.analyze_video``: the job
streams its per-frame table to a JSON Lines file beside the upload (served as JSON or CSV),
keeps ``result.to_dict()`` (per-face summaries and smile episodes) and counts frames through
the analysis callback, which is also where a cancelled job stops.

Only uploads that start like a binary video container are passed to FFmpeg: text formats
it would follow (HLS playlists, concat lists) could make it open server files or URLs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import STAGES, normalize_stages
from duchenne.analysis.video import VideoAnalyzer, analyze_video
from duchenne.errors import (
    DuchenneError,
    ImageTooLargeError,
    ServiceError,
    UnsupportedFormatError,
    VideoOpenError,
)
from duchenne.faces import DEFAULT_SMILE_THRESHOLD
from duchenne.io.frames import Sampling
from duchenne.io.jsonsafe import flatten_record, to_jsonable
from duchenne.io.sinks import RecordWriter

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "cancelled"})


class TooManyJobsError(ServiceError):
    """All job slots and queue places are taken: the caller should answer 429."""


class JobsClosedError(ServiceError):
    """The service is shutting down and takes no new jobs (503)."""


class JobCancelledError(ServiceError):
    """Raised inside a running job's progress callback once the job was cancelled."""


@dataclass(frozen=True)
class VideoProbe:
    """What the container says about a video before any analysis."""

    fps: float
    frames: int | None
    width: int
    height: int

    @property
    def seconds(self) -> float | None:
        """Duration, when the frame count and rate are known."""
        if not self.frames or self.fps <= 0:
            return None
        return self.frames / self.fps


def container_kind(head: bytes) -> str | None:
    """The binary video container ``head`` starts with, or None (not a known container)."""
    if head[4:8] == b"ftyp" or head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "mpeg"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if head.startswith(b"OggS"):
        return "ogg"
    return None


def check_container(path: Path) -> str:
    """Refuse anything but a binary video container before FFmpeg sees it.

    Raises:
        UnsupportedFormatError: text (playlists, concat lists, HTML...), images, other files.
    """
    with open(path, "rb") as fh:
        head = fh.read(512)
    kind = container_kind(head)
    if kind is None:
        raise UnsupportedFormatError(
            "upload is not a video container duchenne accepts "
            "(MP4/MOV, WebM/MKV, AVI, MPEG, MPEG-TS, FLV, WMV, Ogg)"
        )
    return kind


def probe_video(path: Path, max_pixels: int | None = None) -> VideoProbe:
    """Check the container, open ``path`` and read its rate, frame count and size.

    The frame size is checked against ``max_pixels`` from the header *before* a frame is
    decoded (one 16384x8640 frame took the server to 2.6 GB), and again on the first
    decoded frame in case the header understates it.

    Raises:
        UnsupportedFormatError: not a binary video container (see ``check_container``).
        VideoOpenError: a container OpenCV cannot decode a frame from.
        ImageTooLargeError: frames have more than ``max_pixels`` pixels (HTTP 413).
    """
    import cv2

    check_container(path)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoOpenError("upload is not a video that can be decoded")
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        _check_frame_pixels(w, h, max_pixels)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoOpenError("upload has no decodable video frames")
        h, w = frame.shape[:2]
        _check_frame_pixels(w, h, max_pixels)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return VideoProbe(fps if fps > 0 else 0.0, count if count > 0 else None, w, h)
    finally:
        cap.release()


def _check_frame_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"video frames are {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,} (DUCHENNE_MAX_VIDEO_PIXELS)"
        )


@dataclass
class Job:
    """One video analysis, as seen by clients (``public()``) and by the pool."""

    id: str
    path: Path
    params: dict[str, Any]
    probe: VideoProbe
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    frames_done: int = 0
    frames_total: int | None = None
    error: dict[str, str] | None = None
    result: Any = None
    result_dict: dict[str, Any] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future[Any] | None = None
    table_path: Path | None = None

    @property
    def progress(self) -> float | None:
        if self.status == "done":
            return 1.0
        if not self.frames_total:
            return None
        return min(1.0, self.frames_done / self.frames_total)

    def public(self, *, with_result: bool = True) -> dict[str, Any]:
        """JSON-safe status document (the ``GET /v1/videos/{id}`` body)."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "progress": self.progress,
            "frames_done": self.frames_done,
            "frames_total": self.frames_total,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "video": {
                "fps": self.probe.fps,
                "frames": self.probe.frames,
                "seconds": self.probe.seconds,
                "width": self.probe.width,
                "height": self.probe.height,
            },
            "params": self.params,
            "error": self.error,
            "frames_url": f"/v1/videos/{self.id}/frames",
        }
        preview = self.preview_path
        if self.status == "done" and preview is not None and preview.is_file():
            out["preview_url"] = f"/v1/videos/{self.id}/preview"
        if with_result and self.status == "done":
            out["result"] = self.result_dict
        return out

    def table(self) -> list[dict[str, Any]]:
        """The per-frame table as flat rows (one per face per analysed frame)."""
        if self.table_path is not None and self.table_path.is_file():
            with open(self.table_path, encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
        return frame_table(self.result, self.result_dict)

    def table_file(self, format: str, template: dict[str, Any] | None) -> Path:
        """The per-frame table as a ``format`` file beside the job's table, written once
        by ``RecordWriter`` (as ``duchenne video -o``), so a video without a face still
        gets its columns from ``template`` (:func:`frame_template`)."""
        assert self.table_path is not None
        path = self.table_path.with_suffix(f".{format}")
        if not path.is_file():
            with RecordWriter(path, format, template=template) as writer:
                writer.write_many(self.table())
        return path

    @property
    def preview_path(self) -> Path | None:
        """The annotated, browser-playable preview the runner writes beside the table."""
        return None if self.table_path is None else preview_path_for(self.table_path)

    def discard(self) -> None:
        """Delete the files the job owns (upload, frame table, its exports and preview)."""
        exports = [] if self.table_path is None else [self.table_path.with_suffix(".csv")]
        for path in (self.path, self.table_path, *exports, self.preview_path):
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def redact(
    result: dict[str, Any], filename: str | None, path: Path | None = None
) -> dict[str, Any]:
    """Remove server-side paths from a video result: the upload's temporary ``path``
    becomes the client's file name (also in the ``error`` of a partial result), and output
    file locations are dropped."""
    label = filename or "upload"
    if "source" in result:
        result["source"] = label
    if isinstance(result.get("video"), dict) and "source" in result["video"]:
        result["video"]["source"] = label
    if path is not None and isinstance(result.get("error"), str):
        result["error"] = result["error"].replace(str(path), label)
    result.pop("outputs", None)
    for track in result.get("tracks") or []:
        if isinstance(track, dict):
            for key in ("best_image", "plot"):
                track.pop(key, None)
    return result


def frame_table(result: Any, as_dict: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Flat per-frame rows from a video result: ``to_records()``, else its ``frames`` list."""
    to_records = getattr(result, "to_records", None)
    if callable(to_records):
        rows = to_records()
    else:
        rows = (as_dict or {}).get("frames") or []
    return [flatten_record(to_jsonable(r)) for r in rows]


def job_analyzer(analyzer: Analyzer, params: dict[str, Any]) -> Analyzer:
    """The view of the service's ``analyzer`` a job with ``params`` runs (its ``stages``,
    default ``STAGES`` as ``duchenne video``, and its ``smile_threshold``); it shares the
    service's sessions."""
    if not hasattr(analyzer, "config"):
        return analyzer
    from duchenne.server.engine import AnalyzeOptions

    threshold = params.get("smile_threshold")
    options = AnalyzeOptions(
        stages=normalize_stages(params.get("stages") or STAGES),
        smile_threshold=DEFAULT_SMILE_THRESHOLD if threshold is None else float(threshold),
    )
    return analyzer.view(options.config_for(analyzer))


def frame_template(analyzer: Analyzer, params: dict[str, Any]) -> dict[str, Any] | None:
    """The columns (and value types) of the per-frame table of a job with ``params``, as
    ``analyze_video`` gives its own writer: the header of a table without rows."""
    return VideoAnalyzer(job_analyzer(analyzer, params)).frame_template()


class JobManager:
    """Owns every video job: accept, run in a bounded pool, expire.

    Args:
        run_video: ``(path, params, on_progress, table_path) -> result`` (see
            ``video_runner``); ``on_progress(frames_done)`` raises once the job is cancelled.
        folder: where uploads are stored until their job ends.
        max_jobs: jobs analysed at the same time.
        max_queued: accepted jobs waiting for a slot.
        max_stored: jobs kept in total (finished ones evicted oldest first).
        ttl_s: finished jobs are dropped this long after finishing.
    """

    def __init__(
        self,
        run_video: Callable[..., Any],
        folder: Path,
        *,
        max_jobs: int = 1,
        max_queued: int = 4,
        max_stored: int = 100,
        ttl_s: float = 3600.0,
    ) -> None:
        self.run_video, self.folder = run_video, Path(folder)
        self.max_jobs, self.max_queued, self.max_stored, self.ttl_s = (
            max_jobs,
            max_queued,
            max_stored,
            ttl_s,
        )
        self.pool = ThreadPoolExecutor(max_jobs, thread_name_prefix="duchenne-video")
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ client side

    def check_room(self) -> None:
        """Raise ``TooManyJobsError``/``JobsClosedError`` now if a new job would be refused."""
        with self._lock:
            self._check_room_locked()

    def _check_room_locked(self) -> None:
        if self._closed:
            raise JobsClosedError("server is shutting down")
        self._sweep_locked()
        active = sum(j.status not in TERMINAL for j in self.jobs.values())
        if active >= self.max_jobs + self.max_queued:
            raise TooManyJobsError(
                f"{active} video jobs already running or queued; try again later"
            )

    def submit(self, path: Path, params: dict[str, Any], probe: VideoProbe) -> Job:
        """Accept a job for the uploaded file at ``path`` (the manager deletes it later).

        Raises:
            JobsClosedError: shutting down.
            TooManyJobsError: every running slot and queue place is taken, or the store is
                full of unfinished jobs.
        """
        with self._lock:
            self._check_room_locked()
            self._make_room_locked()
            job = Job(secrets.token_urlsafe(12), path, params, probe)
            job.table_path = self.folder / f"{job.id}-frames.jsonl"
            every = max(1, int(params.get("every", 1)))
            if probe.frames:
                job.frames_total = -(-probe.frames // every)
            self.jobs[job.id] = job
            job.future = self.pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, or None when unknown or expired."""
        with self._lock:
            self._sweep_locked()
            return self.jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        """Cancel (if unfinished) and forget a job; False when unknown."""
        with self._lock:
            job = self.jobs.pop(job_id, None)
        if job is None:
            return False
        job.cancel.set()
        if job.future is not None and job.future.cancel():
            self._finish(job, "cancelled")
        if job.status in TERMINAL:
            job.discard()
        return True

    def counts(self) -> dict[str, int]:
        """Jobs per status (metrics)."""
        out = dict.fromkeys(("queued", "running", "done", "failed", "cancelled"), 0)
        with self._lock:
            for job in self.jobs.values():
                out[job.status] = out.get(job.status, 0) + 1
        return out

    # ------------------------------------------------------------------ lifecycle

    def sweep(self) -> int:
        """Drop expired finished jobs; returns how many went."""
        with self._lock:
            return self._sweep_locked()

    def close(self, timeout: float) -> None:
        """Refuse new jobs, cancel queued ones, give running ones ``timeout`` s to finish."""
        with self._lock:
            self._closed = True
            jobs = list(self.jobs.values())
        for job in jobs:
            if job.future is not None and job.future.cancel():
                self._finish(job, "cancelled")
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.future is None or job.future.done():
                continue
            with contextlib.suppress(Exception):
                job.future.result(timeout=max(0.0, deadline - time.monotonic()))
        for job in jobs:
            job.cancel.set()  # stops jobs that report progress; others are left to end
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ internals

    def _sweep_locked(self) -> int:
        now = time.time()
        expired = [
            j.id
            for j in self.jobs.values()
            if j.status in TERMINAL and j.finished is not None and now - j.finished > self.ttl_s
        ]
        for job_id in expired:
            self.jobs.pop(job_id).discard()
        return len(expired)

    def _make_room_locked(self) -> None:
        """Evict the oldest finished jobs while the store is full."""
        while len(self.jobs) >= self.max_stored:
            done = [j for j in self.jobs.values() if j.status in TERMINAL]
            if not done:
                raise TooManyJobsError("job store is full of unfinished jobs")
            oldest = min(done, key=lambda j: j.finished or j.created)
            self.jobs.pop(oldest.id).discard()

    def _run(self, job: Job) -> None:
        job.status, job.started = "running", time.time()

        def on_progress(done: int, total: int | None = None) -> None:
            job.frames_done = int(done)
            if total:
                job.frames_total = int(total)
            if job.cancel.is_set():
                raise JobCancelledError(job.id)

        try:
            result = self.run_video(job.path, job.params, on_progress, job.table_path)
            job.result_dict = redact(
                to_jsonable(result.to_dict()), job.params.get("filename"), job.path
            )
            job.result = result
            self._finish(job, "done")
        except JobCancelledError:
            self._finish(job, "cancelled")
        except DuchenneError as exc:
            label = job.params.get("filename") or "upload"
            message = str(exc).replace(str(job.path), label).replace(str(self.folder), "")
            job.error = {"type": type(exc).__name__, "message": message}
            self._finish(job, "failed")
        except Exception as exc:  # a bug: keep the service up, log it, report a generic error
            logger.exception("video job %s failed", job.id)
            job.error = {
                "type": "InternalError",
                "message": f"analysis failed ({type(exc).__name__})",
            }
            self._finish(job, "failed")

    def _finish(self, job: Job, status: str) -> None:
        job.status, job.finished = status, time.time()
        with contextlib.suppress(OSError):
            os.unlink(job.path)  # the upload is not needed any more
        if status != "done" or job.id not in self.jobs:
            job.discard()


def preview_path_for(table_path: Path) -> Path:
    """Where a job's preview video goes: beside its frame table, H.264 MP4 when PyAV is
    installed, else VP8 WebM (both play in browsers, whatever codec the upload had)."""
    from duchenne.io.video_writer import pyav_codec

    suffix = ".mp4" if pyav_codec(".mp4") else ".webm"
    return table_path.with_name(table_path.name.replace("-frames.jsonl", "-preview") + suffix)


def video_runner(analyzer: Analyzer, max_seconds: float) -> Callable[..., Any]:
    """Adapt ``duchenne.analysis.video.analyze_video`` to the job manager's runner signature.

    A job runs the stages in ``params["stages"]`` (default: ``STAGES``, as ``duchenne
    video``; the service's analyzer also loads the opt-in blendshapes, which only jobs
    that ask for them pay for) on a view of ``analyzer`` that shares its sessions. The
    analysis is bounded to ``max_seconds`` of video (also when the container does not say
    how long it is), streams its per-frame table to ``table_path`` and ends a truncated
    video with a partial result (``complete: false``) rather than a failure. The result's
    ``sampling`` says which frames and which span were analysed.
    """

    def run(
        path: Path, params: dict[str, Any], on_progress: Callable, table_path: Path | None
    ) -> Any:
        chosen = job_analyzer(analyzer, params)
        every = max(1, int(params.get("every", 1)))
        done = 0

        def callback(frame: Any, faces: Any) -> None:
            nonlocal done
            done += 1
            on_progress(done)

        result = analyze_video(
            chosen,
            path,
            every=every,
            end=max_seconds,
            output=table_path,
            format="jsonl",
            draw=None if table_path is None else preview_path_for(table_path),
            callback=callback,
            on_error="return",
            progress=False,
        )
        with contextlib.suppress(AttributeError):
            result.sampling = describe_sampling(every, max_seconds, result)
        return result

    return run


def describe_sampling(every: int, max_seconds: float, result: Any) -> str:
    """Which frames of an uploaded video a job analysed, and over which span.

    The span is the video's own (its length from the container, else up to its last
    analysed frame), or the service's length limit when the analysis stopped there; the
    analysis itself always runs with ``end=max_seconds``, which alone says nothing about
    the video.
    """
    text = Sampling(every=every).describe()  # the rate in the CLI's words; the span below
    info = getattr(result, "info", None)
    duration = getattr(info, "duration", None)
    fps = float(getattr(result, "fps", 0.0) or getattr(info, "fps", 0.0) or 0.0)
    last = getattr(result, "last_time", None)
    if getattr(result, "complete", True) is False:  # a truncated or corrupt video
        if last is None:
            return f"{text} (decoding stopped before any frame was analysed)"
        return (
            f"{text} from 0 s to {_seconds(last)} s (decoding stopped there: the rest of "
            "the video could not be read)"
        )
    if duration is not None and duration <= max_seconds:
        return f"{text} from 0 s to {_seconds(duration)} s (the whole video)"
    step = every / fps if fps > 0 else 0.0
    reached_cap = last is not None and last + step >= max_seconds - 1e-6
    if duration is not None or reached_cap:  # longer than the limit (or said to be)
        return (
            f"{text} from 0 s to {_seconds(max_seconds)} s (the service's length limit, "
            "DUCHENNE_MAX_VIDEO_SECONDS: anything after it was not analysed)"
        )
    if last is None:
        return f"{text} (no frame was analysed)"
    return f"{text} from 0 s to the end of the video (last analysed frame at {_seconds(last)} s)"


def _seconds(value: float) -> str:
    return f"{round(float(value), 2):g}"
