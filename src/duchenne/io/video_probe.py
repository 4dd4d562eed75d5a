"""What a video source is, before any frame is decoded: header facts and file checks.

Why a module of its own: the checks that turn a missing, empty, still-image or cut file
into one clear :class:`~duchenne.errors.VideoOpenError` (or a truncation reason) are
about the *source*, not about decoding; :class:`~duchenne.io.video.VideoReader` runs
them before and after FFmpeg sees the file.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from duchenne.errors import VideoOpenError
from duchenne.io.paths import IMAGE_EXTENSIONS
from duchenne.io.sniff import image_kind

__all__ = ["VideoInfo", "camera_index", "check_video_path", "source_label", "transport_stream_cut"]


# Still-image suffixes rejected with a hint to use ``duchenne analyze`` (GIF is allowed:
# FFmpeg decodes animated GIFs as videos).
_IMAGE_SUFFIXES = IMAGE_EXTENSIONS - {".gif"}


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video source, read from its header without decoding frames.

    Attributes:
        source: the path, ``"camera:N"`` or ``"<frames>"``.
        width, height: frame size in pixels (0 when unknown, e.g. a frame iterable).
        fps: frames per second reported by the container (0.0 when unknown).
        frame_count: frames in the file header; ``None`` for cameras, streams, iterables.
        codec: FourCC of the video stream (``"MJPG"``, ``"FMP4"``, ``"avc1"`` ...).
        backend: OpenCV backend name (``"FFMPEG"``, ``"V4L2"``) or ``"frames"``.
        is_live: a camera or network stream (no end, wall-clock timestamps).
    """

    source: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    codec: str = ""
    backend: str = ""
    is_live: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds, from the header's frame count and rate (``None`` if either is unknown)."""
        if self.frame_count is None or self.fps <= 0:
            return None
        return self.frame_count / self.fps

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (with ``duration``)."""
        return {**asdict(self), "duration": self.duration}


def source_label(source: object) -> str:
    index = camera_index(source)
    return f"camera:{index}" if index is not None else str(source)


def camera_index(source: object) -> int | None:
    """A camera index: an ``int``, or a short digit string that is not an existing file."""
    if isinstance(source, bool):
        return None
    if isinstance(source, int):
        return source
    if isinstance(source, str) and source.isdigit() and len(source) <= 3:
        return None if Path(source).exists() else int(source)
    return None


def check_video_path(path: Path, label: str) -> None:
    """One clear ``VideoOpenError`` for the usual file problems, before FFmpeg sees them."""
    if not path.exists():
        hint = " (URLs need a scheme FFmpeg knows, e.g. rtsp://)" if ":" in label else ""
        raise VideoOpenError(f"{label}: no such file{hint}")
    if path.is_dir():
        raise VideoOpenError(f"{label}: is a directory, not a video file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoOpenError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise VideoOpenError(f"{label} is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoOpenError(f"{label}: permission denied")
    if path.suffix.lower() in _IMAGE_SUFFIXES and _is_image(path):
        raise VideoOpenError(f"{label}: is a still image; use `duchenne analyze` for photos")


def _is_image(path: Path) -> bool:
    """Whether the file's bytes are an image. A file only named like one is left to
    FFmpeg: a text file called ``x.jpg`` is then refused as no video (it was called a
    still image), a video called ``x.jpg`` is read."""
    try:
        with open(path, "rb") as fh:
            return image_kind(fh.read(16)) is not None
    except OSError:
        return False


_TS_SYNC = 0x47
_TS_PACKETS = ((188, 0), (192, 4))  # (packet size, offset of the sync byte): TS, M2TS


def transport_stream_cut(path: Path) -> str | None:
    """Why ``path`` is a cut MPEG transport stream, or None (complete, or not a TS).

    Reads three packets at the start to recognise the format, then compares the file size
    with the packet size: every complete TS is a whole number of packets.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(3 * 192)
    except OSError:
        return None
    for packet, sync in _TS_PACKETS:
        starts = range(sync, min(len(head), 3 * packet), packet)
        if len(head) < 3 * packet or any(head[i] != _TS_SYNC for i in starts):
            continue
        if size % packet:
            return (
                f"the MPEG transport stream ends inside a {packet}-byte packet "
                f"({size % packet} of {packet} bytes at byte {size - size % packet})"
            )
        return None
    return None
