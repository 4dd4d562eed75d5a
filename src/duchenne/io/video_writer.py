"""Write RGB frames to a video file that browsers play, atomically.

Why PyAV: OpenCV's pip wheels encode MP4 only as MPEG-4 Part 2 (``mp4v``), which Chrome,
Firefox and Safari do not play (a black player). PyAV's wheels carry FFmpeg with libx264,
libvpx-vp9 and SVT-AV1, so ``.mp4`` becomes H.264 (yuv420p, ``+faststart``) and ``.webm``
VP9 — both play in every current browser. Without PyAV (extra ``[video]``) ``.webm``
still plays (OpenCV's VP8), ``.mp4`` falls back to ``mp4v`` with a warning that says
so, and ``.avi``/``.mkv`` are written as before (MJPG/XVID) for desktop players.

Timing: each frame is shown from its own time (``write(frame, time)``, e.g. the source's
presentation time), so the video plays in real time also when the source has a variable
frame rate or the kept frames are spread unevenly (``--every N`` of such a source). PyAV
stores the times as the frames' timestamps; OpenCV can only write a constant rate
(``fps``), so there a frame is repeated up to the next frame's time, or dropped when the
next one falls in the same output frame.

Size: yuv420p (and OpenCV's MJPEG) needs even sides, so an odd side is stretched by one
pixel in every container (161x121 -> 162x122; OpenCV alone would round ``.avi`` down).

Frames go to a hidden temporary file next to the destination, which replaces it only
on a successful close (a half-written video never appears under the final name).
"""

from __future__ import annotations

import logging
import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.io.atomic import commit_file

logger = logging.getLogger(__name__)

#: suffix -> PyAV encoders to try, best first
PYAV_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("libx264", "libopenh264", "libsvtav1", "libaom-av1"),
    ".m4v": ("libx264", "libopenh264"),
    ".mov": ("libx264", "libopenh264"),
    ".mkv": ("libx264", "libvpx-vp9"),
    ".webm": ("libvpx-vp9", "libvpx", "libsvtav1", "libaom-av1"),
}
#: suffix -> OpenCV fourcc (the fallback without PyAV)
OPENCV_FOURCC = {
    ".mp4": "mp4v",
    ".m4v": "mp4v",
    ".mov": "mp4v",
    ".webm": "VP80",
    ".avi": "MJPG",
    ".mkv": "XVID",
}
SUFFIXES = tuple(sorted(OPENCV_FOURCC))
BROWSER_SUFFIXES = (".mp4", ".m4v", ".webm")
#: timestamp unit of the PyAV streams, in seconds (milliseconds: every container keeps it)
TIME_BASE = Fraction(1, 1000)


def pyav_codec(suffix: str) -> str | None:
    """The PyAV encoder a browser-playable ``suffix`` file gets, or None without one."""
    try:
        import av
    except ImportError:
        return None
    available = av.codecs_available
    return next((c for c in PYAV_CODECS.get(suffix.lower(), ()) if c in available), None)


def browser_playable(suffix: str) -> bool:
    """Whether a ``suffix`` file written here plays in Chrome/Firefox/Safari."""
    suffix = suffix.lower()
    return suffix == ".webm" or (suffix in BROWSER_SUFFIXES and pyav_codec(suffix) is not None)


class VideoWriter:
    """Encode RGB ``uint8`` frames of one size into ``path`` (see the module docstring).

    Args:
        path: destination; its suffix picks the container (``.mp4``, ``.webm``, ...).
        fps: nominal frame rate: the spacing of frames written without a time, and the
            constant rate of the OpenCV fallback.
        quality: x264/VP9 constant-quality value (lower = better; 23 ~ visually clean).

    Raises:
        ValueError: an unsupported suffix.
        OSError: (on the first frame) no encoder could be opened.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, quality: int = 23) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in OPENCV_FOURCC:
            raise ValueError(f"{path}: a video must end in {', '.join(SUFFIXES)}")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.quality = int(quality)
        token = secrets.token_hex(4)
        self.tmp = self.path.with_name(f".{self.path.stem}.{token}.partial{self.path.suffix}")
        self.codec: str | None = None
        self.frames = 0
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None  # time of the first frame (the video starts at 0)
        self._last = 0.0  # time of the previous frame, from the start of the video
        self._pts = -1  # PyAV: timestamp of the previous frame, in TIME_BASE
        self._held: np.ndarray | None = None  # OpenCV: last frame, written on the next
        self._slots = 0  # OpenCV: output frames written
        self._av: Any = None
        self._stream: Any = None
        self._cv: Any = None

    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Append one RGB frame (resized to the first frame's size if it differs).

        Args:
            frame: RGB ``uint8`` (H, W, 3).
            time: when it is shown, in seconds on any clock (the first frame's time is the
                start of the video); None: ``1 / fps`` after the previous frame.
        """
        t = self._time(time)
        frame = np.ascontiguousarray(frame)
        if self._size is None:
            self._open(frame.shape[1], frame.shape[0])
        assert self._size is not None
        if (frame.shape[1], frame.shape[0]) != self._size:
            import cv2

            frame = cv2.resize(frame, self._size)
        if self._stream is not None:
            import av

            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            # strictly increasing, as the encoders and muxers require
            self._pts = max(round(t / TIME_BASE), self._pts + 1)
            picture.pts, picture.time_base = self._pts, TIME_BASE
            for packet in self._stream.encode(picture):
                self._av.mux(packet)
        else:
            import cv2

            self._write_opencv(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), t)
        self.frames += 1

    def _time(self, time: float | None) -> float:
        """Seconds from the first frame to this one (``1 / fps`` on without a time)."""
        if self._t0 is None:
            self._t0, t = (0.0 if time is None else float(time)), 0.0
        elif time is None:
            t = self._last + 1 / self.fps
        else:
            t = float(time) - self._t0
        self._last = t
        return t

    def _write_opencv(self, image: np.ndarray, t: float) -> None:
        """OpenCV writes a constant rate: the previous frame fills the output frames up to
        this one's time (repeated, or dropped when both fall in the same output frame)."""
        if self._held is not None:
            while self._slots < round(t * self.fps):
                self._cv.write(self._held)
                self._slots += 1
        self._held = image

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        codec = pyav_codec(self.suffix)
        if codec is not None:
            self._open_pyav(codec, width, height)
            return
        if self.suffix in (".mp4", ".m4v", ".mov"):
            logger.warning(
                "%s: written as MPEG-4 Part 2 (mp4v), which web browsers do not play; "
                "install PyAV (pip install 'duchenne[video]') for H.264, or write .webm",
                self.path,
            )
        self._open_opencv(width, height)

    def _open_pyav(self, codec: str, width: int, height: int) -> None:
        import av

        even = _even(width, height)
        mp4 = self.suffix in (".mp4", ".m4v", ".mov")
        self._av = av.open(
            str(self.tmp),
            mode="w",
            format=_container(self.suffix),
            options={"movflags": "+faststart"} if mp4 else {},  # playable while loading
        )
        stream = self._av.add_stream(codec, rate=_rate(self.fps))
        stream.width, stream.height = even
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = TIME_BASE  # the frames carry their own times
        stream.options = _codec_options(codec, self.quality)
        self._stream, self.codec, self._size = stream, codec, even

    def _open_opencv(self, width: int, height: int) -> None:
        import cv2

        fourcc = OPENCV_FOURCC[self.suffix]
        size = _even(width, height)  # as PyAV: MJPEG would round an odd side down
        writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, size)
        if not writer.isOpened():
            raise OSError(f"{self.path}: cannot write video (no {fourcc} encoder)")
        self._cv, self.codec, self._size = writer, fourcc, size

    def close(self, commit: bool = True) -> Path | None:
        """Finish the file and move it into place (``commit``), or discard it.

        Returns:
            The final path, or None when nothing was written or ``commit`` is False.
        """
        opened = self._size is not None
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._av.mux(packet)
                self._av.close()
            elif self._cv is not None:
                if self._held is not None:
                    self._cv.write(self._held)
                self._cv.release()
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        finally:
            self._stream = self._av = self._cv = self._held = None
        if opened and commit:
            commit_file(self.tmp, self.path)
            return self.path
        self.tmp.unlink(missing_ok=True)
        return None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(commit=exc_type is None)


def _even(width: int, height: int) -> tuple[int, int]:
    """The written size: yuv420p (and MJPEG) need even sides, so an odd side grows by one
    pixel (``write`` stretches the frame), the same in every container."""
    return width + width % 2, height + height % 2


def _container(suffix: str) -> str:
    return {".webm": "webm", ".mkv": "matroska", ".mov": "mov"}.get(suffix, "mp4")


def _rate(fps: float) -> Any:
    """The frame rate as a fraction (PyAV wants a rational; 29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def _codec_options(codec: str, quality: int) -> dict[str, str]:
    if codec == "libx264":
        return {"crf": str(quality), "preset": "veryfast"}
    if codec in ("libvpx-vp9", "libvpx"):
        return {"crf": str(quality + 8), "b": "0", "deadline": "realtime", "cpu-used": "8"}
    if codec == "libsvtav1":
        return {"crf": str(quality + 10), "preset": "10"}
    return {}
