"""Decode videos frame by frame: files, cameras and in-memory frame sources.

Why a streaming reader: a 10-minute 720p video is about 50 GB of RGB pixels, so nothing
in duchenne ever holds a video in memory. :func:`iter_frames` yields one RGB ``uint8``
frame at a time with its index and timestamp, applies the sampling (every N-th frame, or
a target frame rate) and the time range, and turns every way a video can fail into one of
two typed errors:

* :class:`~duchenne.errors.VideoOpenError`: nothing could be decoded (missing or empty
  file, a directory, not a video, an MP4 cut before its index, a camera that is absent);
* :class:`~duchenne.errors.VideoDecodeError`: decoding stopped part way (truncated or
  corrupt file). It is raised *after* the frames decoded before the failure have been
  yielded, so a caller that streams results keeps them.

Truncation is detected by comparing the frames decoded with the count in the container
header (exact for AVI and MP4; FFmpeg estimates it for some other containers, so a
shortfall of up to ``max(2, 1 %)`` frames is tolerated). MPEG transport streams (``.ts``,
``.m2ts``) have no length in any header -- FFmpeg's estimate comes from the last
timestamp it finds, which moves with the cut -- so for them the file itself is checked:
a stream of 188-byte (192 for M2TS) packets whose size is not a whole number of packets
was cut part way. A cut that falls exactly on a packet boundary (1 in 188) cannot be told
from a complete file this way.

A frame that fails to decode before the header's last frame (a corrupt stretch, up to
50 frames in a row) is skipped with a warning and decoding goes on; the gap in the
timestamps says how many frames were lost, so the indices after it stay their positions
in the file. A failure after which no frame is missing is the decoder draining at the
cut of a truncated file: decoding stops there.

Timestamps are the decoder's presentation times (``CAP_PROP_POS_MSEC``) whenever they
increase, so a variable-frame-rate video (phones lower the rate in dim light) keeps its
real times; a frame without one gets the previous time plus ``1 / fps`` (``index / fps``
for the first). For cameras they are wall-clock seconds since opening.
Decoding uses OpenCV's FFmpeg backend (V4L2 or the platform default for cameras).

OpenCV's own log lines (``[ WARN:0@0.4] global cap.cpp:212 open VIDEOIO(FFMPEG) ...``,
printed on stderr when a file or camera cannot be opened) are silenced while a source is
opened: the failure is reported once, as the typed error. Set ``OPENCV_LOG_LEVEL`` (or
log ``duchenne.io.video`` at DEBUG) to see them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from duchenne.errors import VideoDecodeError, VideoOpenError
from duchenne.io.frames import (
    Frame,
    FramePicker,
    Sampling,
    array_frames,
    array_rate,
    prefetched,
)
from duchenne.io.paths import VIDEO_EXTENSIONS
from duchenne.io.video_probe import (
    VideoInfo,
    camera_index,
    check_video_path,
    source_label,
    transport_stream_cut,
)

__all__ = [
    "VIDEO_EXTENSIONS",
    "Frame",
    "Sampling",
    "VideoInfo",
    "VideoReader",
    "iter_frames",
    "open_video",
    "video_info",
]

logger = logging.getLogger(__name__)

#: Consecutive frames that may fail to decode before decoding is taken to have stopped
#: (a corrupt stretch is skipped; a truncated file fails on every grab after the cut).
_MAX_BAD_FRAMES = 50

#: Beyond this frame number a start is not seeked to (no file has that many frames).
_MAX_SEEK_FRAME = 2.0**53


class VideoReader:
    """An opened video file, stream or camera (a context manager).

    Args:
        source: a file path, a camera index (``int``, or a digit string that is not an
            existing file), or a URL FFmpeg can read (``rtsp://``...).

    Raises:
        VideoOpenError: the source cannot be opened or is not a video.

    Example:
        >>> with VideoReader("clip.mp4") as video:  # doctest: +SKIP
        ...     for frame in video.frames(Sampling(every=2)):
        ...         print(frame.index, frame.time, frame.image.shape)
    """

    def __init__(self, source: str | os.PathLike[str] | int) -> None:
        self._cap: Any = None
        self.label = source_label(source)
        self._camera = camera_index(source)
        if self._camera is not None and self._camera < 0:
            # OpenCV reads -1 as "any camera" and crashes the process (SIGSEGV) where
            # there is none, so a negative index never reaches it
            raise VideoOpenError(f"{self.label}: camera indices start at 0")
        self._url = isinstance(source, str) and "://" in source
        if self._camera is None and not self._url:
            check_video_path(Path(source), self.label)
        self._source = source
        self._cap = self._open(source)
        self.info = self._read_info()
        self._cut: str | None = None
        if self._camera is None and not self._url:
            self._cut = transport_stream_cut(Path(source))

    def _open(self, source: str | os.PathLike[str] | int) -> Any:
        with quiet_opencv():
            if self._camera is not None:
                cap = cv2.VideoCapture(self._camera)
            else:
                cap = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            if self._camera is not None:
                raise VideoOpenError(f"{self.label}: cannot open the camera (absent or busy)")
            raise VideoOpenError(
                f"{self.label}: cannot open as a video (not a video, unsupported codec, "
                "or truncated/corrupt header)"
            )
        return cap

    def _read_info(self) -> VideoInfo:
        cap = self._cap
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        live = self._camera is not None or self._url
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        codec = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return VideoInfo(
            source=self.label,
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
            fps=fps if math.isfinite(fps) and 0 < fps < 1000 else 0.0,
            frame_count=count if count > 0 and not live else None,
            codec=codec if codec.isprintable() else "",
            backend=str(cap.getBackendName()),
            is_live=live,
        )

    def frames(self, sampling: Sampling | None = None) -> Iterator[Frame]:
        """Yield the kept frames in order; see :class:`Sampling`.

        Raises:
            VideoOpenError: not a single frame could be decoded, or ``start`` is at or past
                the end of the video (nothing to analyse).
            VideoDecodeError: decoding stopped before the end given by the header (raised
                after every frame decoded before the failure was yielded).
        """
        s = sampling or Sampling()
        if self._cap is None:
            raise ValueError(f"{self.label}: the reader is closed")
        index = self._seek(s.start)
        picker = FramePicker(s, self.info.fps)
        decoded = failed = 0
        t0 = time.monotonic()
        last_t = -math.inf
        while True:
            if s.max_frames is not None and picker.kept >= s.max_frames:
                return
            if not self._cap.grab():  # grab decodes; retrieve only converts kept frames
                failed += 1
                if self._frames_left(index + failed - 1) and failed <= _MAX_BAD_FRAMES:
                    continue  # a corrupt frame: FFmpeg moved past it, the next may decode
                break
            t = self._time(index, t0, last_t)
            if failed:
                lost = self._lost(failed, index, t, last_t)
                if not lost:  # no frame missing: the decoder draining at a cut, the end
                    break
                index, failed = index + lost, 0
            decoded += 1
            last_t = t
            if s.end is not None and t >= s.end:
                return
            if (s.start is None or t >= s.start - 1e-6) and picker.keep(t):
                ok, bgr = self._cap.retrieve()
                if not ok or bgr is None:
                    break
                yield Frame(index, t, _to_rgb(bgr))
            index += 1
        self._check_end(index, decoded, s)
        if s.start and not picker.kept and not self.info.is_live:
            # the header let the seek through (no frame count, an estimate, or a start
            # inside the last frame's interval), but no frame is at or after start
            last = f" (its last frame is at {last_t:.2f} s)" if decoded else ""
            raise VideoOpenError(
                f"{self.label}: start {_seconds(s.start)} s is past the end of the video"
                f"{last}; nothing to analyse"
            )

    def _seek(self, start: float | None) -> int:
        """Jump to ``start`` (seconds) when the file allows; return the next frame index."""
        if not start or self.info.is_live or self.info.fps <= 0:
            return 0
        position = start * self.info.fps + 1e-6  # inf for a huge start: compared, not cast
        if self.info.frame_count is not None and position >= self.info.frame_count:
            raise VideoOpenError(
                f"{self.label}: start {_seconds(start)} s is past the end of the video "
                f"({self.info.duration:.2f} s long); nothing to analyse"
            )
        if not position < _MAX_SEEK_FRAME:  # no frame count: decoded from 0, none kept
            return 0
        target = int(math.floor(position))
        if target > 0 and self._cap.set(cv2.CAP_PROP_POS_FRAMES, target):
            pos = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES))
            if pos == target:
                return target
            logger.debug(
                "%s: seek to frame %d landed on %d; decoding from 0", self.label, target, pos
            )
            # reopened, not seeked to 0: in an MPEG-TS that seek reports frame 0 but the
            # next frame decoded is where the failed seek landed (1.28 s in), so the
            # frames before it were lost and the rest numbered from 0
            self._cap.release()
            self._cap = self._open(self._source)
        return 0

    def _time(self, index: int, t0: float, last: float) -> float:
        """Timestamp of the frame just grabbed (see the module docstring)."""
        if self.info.is_live:
            return time.monotonic() - t0
        # the PTS is trusted whenever it increases: a variable-rate video (a phone that
        # drops to 15 fps in low light) drifts from index / fps by seconds, and the
        # header's rate is then only an average
        t = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        if math.isfinite(t) and t >= 0 and t > last:
            return t
        step = 1.0 / self.info.fps if self.info.fps > 0 else 1e-3
        return index * step if last == -math.inf else last + step

    def _lost(self, failed: int, index: int, t: float, last: float) -> int:
        """How many of ``failed`` grabs before the frame at ``t`` lost a frame, from the
        gap in the timestamps. 0: a failed grab that lost no frame is the decoder draining
        the frames it holds at the cut of a truncated file (H.264), whose next frames come
        out of order; decoding stops there."""
        fps = self.info.fps
        if fps <= 0:
            return 0
        gap = (t - last) * fps - 1 if last > -math.inf else t * fps - index
        lost = max(0, min(failed, round(gap)))
        if lost:
            logger.warning(
                "%s: %d frame(s) from frame %d could not be decoded; skipped",
                self.label,
                lost,
                index,
            )
        return lost

    def _frames_left(self, index: int) -> bool:
        """Whether the header says the file has frames after ``index``: a failed grab
        before then is a corrupt frame (FFmpeg has read past it), not the end."""
        count = self.info.frame_count
        return not self.info.is_live and count is not None and index + 1 < count

    def _check_end(self, index: int, decoded: int, s: Sampling) -> None:
        """Raise if decoding stopped early (truncation) or produced nothing."""
        if self.info.is_live:
            return
        count = self.info.frame_count
        if decoded == 0 and index == 0:
            raise VideoOpenError(f"{self.label}: no decodable frames (empty, truncated or corrupt)")
        if self._cut is not None:
            raise VideoDecodeError(
                f"{self.label}: decoding stopped at frame {index}: {self._cut}; "
                "the file is truncated"
            )
        if count is None:
            return
        tolerance = max(2, round(0.01 * count))
        if index < count - tolerance:
            fps = self.info.fps
            when = f" ({index / fps:.2f} s of {count / fps:.2f} s)" if fps > 0 else ""
            raise VideoDecodeError(
                f"{self.label}: decoding stopped at frame {index} of {count}{when}; "
                "the file is truncated or corrupt"
            )

    def close(self) -> None:
        """Release the decoder; idempotent."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net only
        try:
            self.close()
        except Exception:
            pass


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (``[ WARN:0@0.40] global cap.cpp ...``) in the block.

    Why: opening a file that is not a video, or an absent camera, makes OpenCV print
    warnings on stderr (even under ``duchenne video -q``) before duchenne raises its own
    one-line :class:`~duchenne.errors.VideoOpenError`. OpenCV reads ``OPENCV_LOG_LEVEL``
    only when it is imported, so the level is lowered to ERROR here at run time
    (``cv2.utils.logging.setLogLevel``) and restored after; errors still print. Nothing
    changes when the user set ``OPENCV_LOG_LEVEL`` or logs this module at DEBUG. The
    level is process-wide: nested and concurrent blocks restore it once, when the last
    one ends.
    """
    global _quiet_depth, _quiet_saved
    levels = getattr(getattr(cv2, "utils", None), "logging", None)
    if levels is None or "OPENCV_LOG_LEVEL" in os.environ or logger.isEnabledFor(logging.DEBUG):
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = levels.getLogLevel()
            if _quiet_saved > levels.LOG_LEVEL_ERROR:
                levels.setLogLevel(levels.LOG_LEVEL_ERROR)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                levels.setLogLevel(_quiet_saved)
                _quiet_saved = None


def _seconds(t: float) -> str:
    """A time in an error message: ``2.99``, or ``1e+308`` (not 309 digits)."""
    return f"{t:.2f}" if t < 1e9 else f"{t:.3g}"


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    """Decoder output (BGR, gray or BGRA) to a new RGB ``uint8`` array."""
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def open_video(source: str | os.PathLike[str] | int) -> VideoReader:
    """Open a file, URL or camera index; see :class:`VideoReader`.

    Example:
        >>> open_video("clip.mp4").info.fps  # doctest: +SKIP
        25.0
    """
    return VideoReader(source)


def video_info(source: str | os.PathLike[str] | int) -> VideoInfo:
    """Header facts of a video (size, rate, frame count, codec) without decoding it.

    Raises:
        VideoOpenError: the source cannot be opened.

    Example:
        >>> video_info("clip.mp4").duration  # doctest: +SKIP
        3.0
    """
    with VideoReader(source) as reader:
        return reader.info


def iter_frames(
    source: Any,
    *,
    every: int = 1,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    source_fps: float | None = None,
    prefetch: int = 0,
    sampling: Sampling | None = None,
) -> Iterator[Frame]:
    """Yield sampled RGB frames of any video source, one at a time.

    Args:
        source: a path, URL or camera index (decoded with :class:`VideoReader`), an open
            :class:`VideoReader`, or an iterable of RGB ``uint8`` arrays or :class:`Frame`
            objects (a generator works: frames are never collected).
        every, fps, start, end, max_frames: see :class:`Sampling`.
        source_fps: frame rate of an array iterable (default 30); ignored for files.
        prefetch: decode this many frames ahead in a background thread (0 = no thread).
            Decoding then overlaps with the caller's work; memory stays bounded by
            ``prefetch`` frames.
        sampling: a ready :class:`Sampling` (instead of ``every`` ... ``max_frames``), for
            callers that also need it to know the analysis rate.

    Raises:
        VideoOpenError, VideoDecodeError: see :class:`VideoReader`.

    Example:
        >>> for frame in iter_frames("clip.mp4", fps=10, start=1.0, end=3.0):  # doctest: +SKIP
        ...     print(frame.time)
    """
    if sampling is None:
        sampling = Sampling(every=every, fps=fps, start=start, end=end, max_frames=max_frames)
    frames = _frames_of(source, sampling, source_fps)
    if prefetch > 0:
        frames = prefetched(frames, prefetch)
    yield from frames


def _frames_of(source: Any, s: Sampling, source_fps: float | None) -> Iterator[Frame]:
    if isinstance(source, VideoReader):
        yield from source.frames(s)
        return
    if isinstance(source, (str, os.PathLike, int)) and not isinstance(source, bool):
        with VideoReader(source) as reader:
            yield from reader.frames(s)
        return
    if isinstance(source, np.ndarray) and source.ndim == 3:
        raise TypeError("a single image is not a video; pass a list or generator of frames")
    if not isinstance(source, Iterable):
        raise TypeError(f"cannot read video frames from {type(source).__name__}")
    yield from array_frames(source, s, array_rate(source_fps))
