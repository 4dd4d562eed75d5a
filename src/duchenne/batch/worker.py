"""The unit both batch engines run: one ``Analyzer`` turning work items into output rows.

Why one class for both engines: a local worker process and a Ray actor must produce the
same rows for the same input, so both hold a :class:`BatchWorker` (built once, since
opening the onnxruntime sessions costs about a second) and call :meth:`BatchWorker.process`
on small chunks of :class:`~duchenne.batch.inputs.InputItem`. Rows are built by the same
code as ``duchenne analyze`` (one row per face; an image without faces or an input that
failed still gets one row) and are stamped with the input fingerprint, the models and the
duchenne version, then made JSON-safe so they survive any transport unchanged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import resource
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any

from duchenne._version import __version__
from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import AnalyzerConfig
from duchenne.analysis.video import analyze_video
from duchenne.batch.inputs import InputItem, is_uri, open_binary
from duchenne.errors import DuchenneError, ImageLoadError, ImageTooLargeError
from duchenne.faces import result_rows, row_columns
from duchenne.io.jsonsafe import to_jsonable

logger = logging.getLogger(__name__)

Row = dict[str, Any]

_COPY_BLOCK = 1 << 20


@dataclass(frozen=True)
class WorkerConfig:
    """What each worker builds and how it analyses; the same for every worker of a job.

    Attributes:
        analyzer: The ``Analyzer`` options (stages, detector, smile model, limits,
            threads). ``threads`` is per worker and defaults to 1 here (None becomes 1):
            one onnxruntime (and OpenCV) thread per worker is the efficient setting when
            there is one worker per core.
        crop: Inputs are face crops (no detection).
        landmarks: Include the 468 landmarks in each row.
        video_summary: One row per face track per video instead of one per sampled frame.
        video_fps: Frames per second sampled from videos (None = every frame).
    """

    analyzer: AnalyzerConfig = field(default_factory=lambda: AnalyzerConfig(threads=1))
    crop: bool = False
    landmarks: bool = False
    video_summary: bool = False
    video_fps: float | None = 5.0

    def __post_init__(self) -> None:
        threads = max(1, int(self.analyzer.threads or 1))
        if threads != self.analyzer.threads:
            object.__setattr__(self, "analyzer", replace(self.analyzer, threads=threads))

    @property
    def threads(self) -> int:
        """onnxruntime (and OpenCV) threads per worker."""
        return int(self.analyzer.threads or 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain flat dict (sent to workers and actors, stored in the job manifest)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "analyzer"}
        return {**self.analyzer.to_dict(), **own}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkerConfig:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        own = {f.name for f in fields(cls)} - {"analyzer"}
        kwargs = {k: v for k, v in d.items() if k in own}
        return cls(AnalyzerConfig.from_dict(d), **kwargs)

    def results_key(self) -> dict[str, Any]:
        """The settings that change the rows (threads do not): compared on resume."""
        d = self.to_dict()
        d.pop("threads")
        d.pop("device", None)  # the same rows on CPU or GPU
        return d


class BatchWorker:
    """Holds one ``Analyzer`` and turns chunks of work items into rows.

    Args:
        config: Analysis settings shared by every worker of the job.

    Example:
        >>> config = WorkerConfig(AnalyzerConfig(stages=("detect",)))
        >>> worker = BatchWorker(config)                                 # doctest: +SKIP
        >>> rows = worker.process(expand_inputs(["photos/"])[:8])        # doctest: +SKIP
    """

    def __init__(self, config: WorkerConfig) -> None:
        limit_threads(config.threads)
        self.config = config
        self.analyzer = Analyzer(config.analyzer)
        self.models = ";".join(f"{k}={v}" for k, v in self.analyzer.model_names.items())
        self._archives = _ArchiveCache()

    def process(self, items: Sequence[InputItem]) -> list[list[Row]]:
        """Rows for each item, in order (each item gets at least one row)."""
        out: list[list[Row] | None] = [None] * len(items)
        images: list[tuple[int, InputItem]] = []
        for i, item in enumerate(items):
            if item.error is not None:
                out[i] = [error_row(item.source, item.error)]
            elif item.kind == "video":
                out[i] = self._guarded(item, self._video_rows)
            else:
                images.append((i, item))
        for (i, _), rows in zip(images, self._image_rows([it for _, it in images]), strict=True):
            out[i] = rows
        return [
            [self._stamp(r, item) for r in rows or []]
            for rows, item in zip(out, items, strict=True)
        ]

    # ------------------------------------------------------------------ images

    def _image_rows(self, items: list[InputItem]) -> list[list[Row]]:
        """Rows of images, analysed together; on an unexpected failure, one at a time."""
        if not items:
            return []
        try:
            return self._analyze_images(items)
        except Exception:  # a bug on one input must not lose the chunk: isolate it
            logger.debug("analyze_batch failed; retrying one input at a time", exc_info=True)
            return [self._guarded(it, lambda x: self._analyze_images([x])[0]) for it in items]

    def _analyze_images(self, items: list[InputItem]) -> list[list[Row]]:
        """One ``analyze_batch`` call (smile crops of all images share one batch)."""
        sources = [self._image_source(item) for item in items]
        good = [i for i, s in enumerate(sources) if not isinstance(s, DuchenneError)]
        results = self.analyzer.analyze_batch([sources[i] for i in good], crop=self.config.crop)
        merged: list[Any] = list(sources)
        for i, result in zip(good, results, strict=True):
            merged[i] = result
        out = []
        columns = row_columns(
            landmarks=self.config.landmarks,
            blendshapes="blendshapes" in self.config.analyzer.stages,
        )
        for item, result in zip(items, merged, strict=True):
            rows = result_rows(
                item.source, result, landmarks=self.config.landmarks, columns=columns
            )
            for row in rows:  # meta["source"] is the absolute path the worker read
                row["source"] = item.source
                if row.get("error"):
                    row["error"] = name_input(row["error"], item)
            out.append(rows)
        return out

    def _image_source(self, item: InputItem) -> Any:
        """What ``load_image`` reads: the local path, or the bytes of a member or URI."""
        if item.member is None and not is_uri(item.location):
            return item.location
        try:
            data = self._read_bytes(item)
        except Exception as exc:  # any reader failure is this input's failure
            return ImageLoadError(f"{item.source}: cannot read ({exc})")
        stream = io.BytesIO(data)
        stream.name = item.source  # load_image names the input in its errors
        return stream

    def _read_bytes(self, item: InputItem) -> bytes:
        if item.member is not None:
            return self._archives.read(item)
        with open_binary(item.location) as fh:
            return fh.read()

    # ------------------------------------------------------------------ videos

    def _video_rows(self, item: InputItem) -> list[Row]:
        """One row per face per sampled frame, or per track with ``video_summary``."""
        with self._local_copy(item) as path:
            try:
                rows = video_rows(self.analyzer, path, item.source, self.config)
            except DuchenneError as exc:  # e.g. VideoOpenError naming the temporary copy
                message = f"{type(exc).__name__}: {exc}"
                return [error_row(item.source, name_input(message, item, path))]
        for row in rows:
            if row.get("error"):
                row["error"] = name_input(row["error"], item, path)
        return rows

    @contextlib.contextmanager
    def _local_copy(self, item: InputItem) -> Iterator[str]:
        """Videos are decoded by FFmpeg from a path: copy members and URIs to a temp file
        (streamed, so a large video never sits in memory)."""
        if item.member is None and not is_uri(item.location):
            yield item.location
            return
        suffix = Path(item.member or item.location).suffix
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="duchenne-video-")
        try:
            with os.fdopen(fd, "wb") as fh:
                if item.member is not None:
                    self._archives.copy(item, fh)
                else:
                    with open_binary(item.location) as src:
                        shutil.copyfileobj(src, fh, _COPY_BLOCK)
            yield tmp
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    # ------------------------------------------------------------------ rows

    def _guarded(self, item: InputItem, fn: Any) -> list[Row]:
        """``fn(item)``, with any exception turned into this input's error row."""
        try:
            return fn(item)
        except DuchenneError as exc:
            return [error_row(item.source, name_input(f"{type(exc).__name__}: {exc}", item))]
        except Exception as exc:
            logger.warning("%s: unexpected %s: %s", item.source, type(exc).__name__, exc)
            return [error_row(item.source, name_input(f"{type(exc).__name__}: {exc}", item))]

    def _stamp(self, row: Row, item: InputItem) -> Row:
        return stamp_row(row, item, self.models)

    def close(self) -> None:
        """Close cached archive handles."""
        self._archives.close()


def stamp_row(row: Row, item: InputItem, models: str) -> Row:
    """Add the resume fingerprint, the models and the version; make the row JSON-safe."""
    row.update(fingerprint=item.fingerprint, models=models, duchenne_version=__version__)
    return to_jsonable(row)


def name_input(message: str, item: InputItem, path: str | None = None) -> str:
    """``message`` with the path the worker read replaced by the input's ``source``.

    Why: a local file is read at its absolute ``location`` (and an archive's video member
    at a temporary copy), so decoders name those; the error column must name the input
    as the ``source`` column spells it (``photos/x.jpg``, ``shoot.zip::clip.mp4``).
    """
    if path is not None and path != item.location:  # a temporary copy
        message = message.replace(path, item.source)
    if item.member is None and item.location != item.source:
        message = message.replace(item.location, item.source)
    return message


def error_row(source: str, error: str) -> Row:
    """The row of an input that produced no result (same keys as ``duchenne analyze``)."""
    return {"source": source, "face": None, "no_face": None, "error": error}


def video_rows(analyzer: Analyzer, path: str, source: str, config: WorkerConfig) -> list[Row]:
    """Rows of one video through ``duchenne.analysis.video.analyze_video``.

    Per sampled frame: one row per face (``face`` is the track id, with ``frame`` and
    ``time``). With ``config.video_summary``: one row per face track (first/last time,
    frames, peak and mean smile score, Duchenne marker, genuineness, smile episodes).
    A video without faces gets one row with ``face`` null and ``no_face`` true (``no_face``
    is false on face rows, as for images). A video that stops decoding part way keeps the
    rows of the frames before and carries the error on each row.
    """
    frames = _Collector()
    result = analyze_video(
        analyzer,
        path,
        output=None if config.video_summary else frames,
        fps=config.video_fps,
        on_error="return",
    )
    error = result.error  # already "ErrorType: message"
    video = {"source": source, "video_fps": result.fps, "frames_analysed": result.frames_analysed}
    if config.video_summary:
        rows = [{**video, **_track_row(t)} for t in result.tracks]
    else:
        rows = [{**video, **r} for r in frames.rows]
    # ``no_face`` as on image rows: false on face rows, true on the one row of a video
    # without a face, null when the video failed before any face was found
    no_face = False if rows else (None if error else True)
    if not rows:
        rows = [{**video, "face": None}]
    out = []
    for row in rows:
        items = list(row.items())
        at = list(row).index("face") + 1  # beside ``face``, where image rows have it
        out.append({**dict(items[:at]), "no_face": no_face, **dict(items[at:]), "error": error})
    return out


def _track_row(track: Any) -> Row:
    """The flat per-track summary (episodes counted, not listed)."""
    d = track.to_dict()
    episodes = d.pop("episodes", [])
    for key in ("best_image", "plot"):
        d.pop(key, None)
    return {"face": d.pop("track_id"), **d, "episodes": len(episodes)}


class _Collector:
    """A record sink that keeps rows in memory (one video's frames)."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def write(self, record: Row) -> None:
        self.rows.append(dict(record))


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss``: KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def limit_threads(threads: int) -> None:
    """Pin OpenCV's thread pool too, so N workers on N cores do not oversubscribe them."""
    try:
        import cv2

        cv2.setNumThreads(max(1, int(threads)))
    except Exception:  # pragma: no cover - OpenCV without a thread pool
        pass


class _ArchiveCache:
    """Open archives kept per worker: members of one archive arrive in order, so a tar
    stream (even gzip-compressed) is read forward once rather than once per member."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._open: OrderedDict[str, tuple[IO[bytes], Any]] = OrderedDict()

    def read(self, item: InputItem) -> bytes:
        """The bytes of one member."""
        buffer = io.BytesIO()
        self.copy(item, buffer)
        return buffer.getvalue()

    def copy(self, item: InputItem, dst: IO[bytes]) -> None:
        """Stream one member into ``dst``."""
        handle = self._handle(item.location, item.archive or "zip")
        declared = int(item.size or 0)
        if isinstance(handle, zipfile.ZipFile):
            with handle.open(item.member) as src:  # type: ignore[arg-type]
                _copy_exactly(src, dst, declared, item.source)
                if src.read(1):  # never more than the size the listing checked
                    raise ImageTooLargeError(f"{item.source}: member larger than it declares")
            return
        stream = handle.fileobj  # the decompressed tar stream
        stream.seek(item.offset)
        _copy_exactly(stream, dst, declared, item.source)

    def _handle(self, location: str, kind: str) -> Any:
        if location in self._open:
            self._open.move_to_end(location)
            return self._open[location][1]
        fh = open_binary(location)
        try:
            handle = zipfile.ZipFile(fh) if kind == "zip" else tarfile.open(fileobj=fh, mode="r:*")
        except BaseException:
            fh.close()
            raise
        self._open[location] = (fh, handle)
        while len(self._open) > self._size:
            _, (old_fh, old) = self._open.popitem(last=False)
            _close_quietly(old, old_fh)
        return handle

    def close(self) -> None:
        while self._open:
            _, (fh, handle) = self._open.popitem()
            _close_quietly(handle, fh)


def _copy_exactly(src: IO[bytes], dst: IO[bytes], size: int, source: str) -> None:
    """Copy ``size`` bytes (the member's declared size, which expansion capped)."""
    left = size
    while left:
        block = src.read(min(left, _COPY_BLOCK))
        if not block:
            raise EOFError(f"archive ended inside member {source!r}")
        dst.write(block)
        left -= len(block)


def _close_quietly(*objs: Any) -> None:
    for obj in objs:
        with contextlib.suppress(Exception):
            obj.close()
