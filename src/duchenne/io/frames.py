"""Frames and sampling: which decoded frames are kept, in-memory frame sources, prefetching.

Why a module of its own: the same :class:`Sampling` rules (every N-th frame, a target
rate, a time range, a frame cap) apply to files decoded by
:class:`~duchenne.io.video.VideoReader` and to iterables of arrays, and the background
prefetch works for either; none of it depends on the decoder.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from duchenne.errors import VideoDecodeError

__all__ = ["Frame", "FramePicker", "Sampling", "array_frames", "array_rate", "prefetched"]


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: position of the frame in the source (0-based, counting every decoded frame,
            including those skipped by sampling).
        time: timestamp in seconds.
        image: RGB ``uint8`` (H, W, 3), C-contiguous, owned by the caller.
    """

    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class Sampling:
    """Which frames to keep.

    Attributes:
        every: keep every N-th decoded frame (1 = all).
        fps: keep frames at about this rate, exclusive with ``every > 1``: every k-th
            frame, for the whole k whose rate (source rate / k, never above the source's)
            is nearest ``fps`` (:meth:`stride`), so the kept frames are evenly spaced and
            their rate is :meth:`effective_fps`, which the dynamics use; only for a source
            that does not give its rate are frames picked by time, about ``fps`` apart.
        start: first time to keep, in seconds (files are seeked, not decoded up to it).
        end: stop after this time, in seconds (exclusive).
        max_frames: stop after this many kept frames.

    Example:
        >>> Sampling(every=2).effective_fps(30.0)
        15.0
        >>> Sampling(fps=1000).describe(10.0)
        "every frame, the source's 10 frames/s"
        >>> Sampling(fps=20).stride(50.0), round(Sampling(fps=20).effective_fps(50.0), 2)
        (3, 16.67)
    """

    every: int = 1
    fps: float | None = None
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.fps is not None and not self.fps > 0:  # NaN too
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.fps is not None and self.every > 1:
            raise ValueError("give either every or fps, not both")
        if self.start is not None and not 0 <= self.start < math.inf:  # NaN too
            raise ValueError(f"start must be a finite time >= 0 s, got {self.start}")
        if self.end is not None and math.isnan(self.end):
            raise ValueError("end must be a time in seconds, got nan")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end} s) must be after start ({self.start} s)")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")

    def describe(self, source_fps: float = 0.0) -> str:
        """The sampling in words, reported with every video result (``"every frame"``).

        ``source_fps``: the source's rate (0 = unknown). For a target rate it says the
        frames kept and their rate (:meth:`stride`), not the rate asked for: a rate at or
        above the source's keeps every frame, and one that does not divide it is rounded
        to one that does.
        """
        step = self.stride(source_fps)
        if self.fps is not None and 0 < source_fps <= self.fps:
            text = f"every frame, the source's {source_fps:g} frames/s"
        elif self.fps is not None and step is not None:
            kept = (
                f"every frame, the source's {source_fps:g} frames/s"
                if step == 1
                else f"every {ordinal(step)} frame, {source_fps / step:.4g} frames/s of the "
                f"source's {source_fps:g}"
            )
            text = f"{kept} (the evenly spaced rate nearest the {self.fps:g} frames/s asked)"
        elif self.fps is not None:
            text = f"about {self.fps:g} frames/s"
        elif self.every > 1:
            text = f"every {ordinal(self.every)} frame"
        else:
            text = "every frame"
        if self.start is not None or self.end is not None:
            text += f" from {self.start or 0:g} s" + (
                f" to {self.end:g} s" if self.end is not None else ""
            )
        if self.max_frames is not None:
            text += f", at most {self.max_frames} frames"
        return text

    def effective_fps(self, source_fps: float) -> float:
        """Rate of the kept frames for a source at ``source_fps`` (0 = unknown): the
        source's divided by :meth:`stride`; a target rate as asked when the source's is
        unknown."""
        step = self.stride(source_fps)
        if step is None:
            return float(self.fps)  # type: ignore[arg-type]
        return source_fps / step if source_fps > 0 else 0.0

    def stride(self, source_fps: float) -> int | None:
        """Every how many decoded frames one is kept; None for a target rate on a source
        of unknown rate (0), whose frames are then picked by time.

        For a target rate ``fps``: the whole k for which ``source_fps / k`` is nearest
        ``fps`` (the lower rate on a tie; 1 at or above the source's rate). Why whole:
        the dynamics (speeds, durations, D-Markers) take the kept frames as evenly
        spaced at one rate. Picking frames by time at a rate that does not divide the
        source's (50 -> 20 frames/s) alternated 0.06 s and 0.04 s steps, which the
        dynamics read as 0.05 s each (25 -> 24 frames/s: maximum speeds 19 % too high).
        """
        if self.fps is None:
            return int(self.every)
        if not source_fps > 0:
            return None
        low = max(1, math.floor(source_fps / self.fps))
        high = low + 1
        nearer_low = source_fps / low - self.fps < self.fps - source_fps / high
        return low if nearer_low else high


class FramePicker:
    """Decides which decoded frames are kept: every N-th (:meth:`Sampling.stride`), or,
    for a target rate on a source of unknown rate, one frame per period of time."""

    def __init__(self, s: Sampling, source_fps: float) -> None:
        step = s.stride(source_fps)
        self.every = 1 if step is None else step
        self.period = None if step is not None else 1 / s.fps  # type: ignore[operator]
        self.next_t: float | None = None
        self.kept = 0
        self._seen = 0

    def keep(self, t: float) -> bool:
        """Whether the next in-range frame, at time ``t``, is kept."""
        seen = self._seen
        self._seen += 1
        if seen % self.every:
            return False
        if self.period is not None:
            if self.next_t is not None and t < self.next_t - 1e-6:
                return False
            base = t if self.next_t is None else self.next_t
            self.next_t = base + self.period
            while self.next_t <= t:
                self.next_t += self.period
        self.kept += 1
        return True


#: Frame rate assumed for in-memory frames when the caller gives none.
DEFAULT_ARRAY_FPS = 30.0


def array_rate(source_fps: float | None) -> float:
    """The frame rate of an iterable of in-memory frames: ``source_fps`` or 30.

    Why checked: the rate makes every timestamp (``i / fps``); 0 used to be taken as
    "not given" (30 fps, silently) and NaN or a negative rate gave NaN or negative times.

    Raises:
        ValueError: ``source_fps`` is not a positive finite number.
    """
    if source_fps is None:
        return DEFAULT_ARRAY_FPS
    if not 0 < float(source_fps) < float("inf"):
        raise ValueError(f"source_fps must be a positive frame rate, got {source_fps}")
    return float(source_fps)


def array_frames(items: Iterable[Any], s: Sampling, fps: float) -> Iterator[Frame]:
    """Frames from an iterable of arrays or ``Frame`` objects, with the same sampling."""
    picker = FramePicker(s, fps)
    for i, item in enumerate(items):
        if s.max_frames is not None and picker.kept >= s.max_frames:
            return
        frame = item if isinstance(item, Frame) else Frame(i, i / fps, item)
        if s.end is not None and frame.time >= s.end:
            return
        if s.start is not None and frame.time < s.start - 1e-6:
            continue
        if picker.keep(frame.time):
            yield Frame(frame.index, frame.time, _as_rgb(frame.image, frame.index))


def _as_rgb(image: Any, index: int) -> np.ndarray:
    """Validate an in-memory frame: (H, W, 3) ``uint8`` RGB (gray is expanded)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise VideoDecodeError(
            f"<frames>: frame {index} must be an RGB uint8 (H, W, 3) array, "
            f"got {arr.dtype} {arr.shape}"
        )
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(arr)


_DONE = object()


def prefetched(frames: Iterator[Frame], size: int) -> Iterator[Frame]:
    """Run ``frames`` in a daemon thread, ``size`` items ahead; errors re-raised in order."""
    q: queue.Queue[Any] = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in frames:
                if not _put(q, stop, item) or stop.is_set():
                    return
            _put(q, stop, _DONE)
        except BaseException as exc:  # handed to the consumer
            _put(q, stop, exc)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="duchenne-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _put(q: queue.Queue[Any], stop: threading.Event, item: Any) -> bool:
    """Put ``item`` unless the consumer stops first (False then): a full queue never
    blocks the producer past a stop."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def ordinal(n: int) -> str:
    """``2`` -> ``"2nd"``, ``11`` -> ``"11th"``, ``23`` -> ``"23rd"``."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
