"""Which files are images or videos, and the one natural order files are listed in.

Why one module: folder scans (``iter_image_paths``, batch inputs, dataset readers, the
authenticity fold files) must agree on what counts as an image or a video and list files
in the same order on every filesystem (``img2`` before ``img10``), or results and resume
keys differ between tools.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".heic", ".heif"}
)
"""Image suffixes (lowercase, with the dot, as ``Path.suffix.lower()`` gives) picked up
when expanding folders and glob patterns. Explicitly named files are read whatever their
suffix. AVIF, HEIC and HEIF are listed although Pillow may not read them (AVIF needs a
Pillow built with libavif, HEIC a plugin): a phone's photos left out of a folder scan
vanished from the results without a word, where listed they are each reported as a
format this install cannot read."""

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
"""Suffixes treated as videos when a folder is scanned (any file FFmpeg reads works)."""


def natural_key(text: str) -> list[str | int]:
    """Sort key ordering ``file2`` before ``file10``, case-insensitively.

    Alternating text/number tokens: text at even positions, ints at odd ones.

    Example:
        >>> sorted(["img10.jpg", "IMG2.jpg", "img1.jpg"], key=natural_key)
        ['img1.jpg', 'IMG2.jpg', 'img10.jpg']
    """
    tokens = re.split(r"(\d+)", text.lower())
    return [int(tok) if i % 2 else tok for i, tok in enumerate(tokens)]


def natural_sorted(paths: Iterable[Path]) -> list[Path]:
    """Sort paths part by part with :func:`natural_key` (folders first by their names)."""

    def key(path: Path) -> tuple[tuple[list[str | int], str], ...]:
        return tuple((natural_key(part), part) for part in path.parts)

    return sorted(paths, key=key)


def walk_files(
    root: Path,
    recursive: bool,
    suffixes: frozenset[str],
    on_error: Callable[[OSError], None] | None = None,
) -> Iterator[Path]:
    """Files under ``root`` whose lowercase suffix is in ``suffixes``, in ``os.walk`` order;
    hidden files and folders skipped.

    Why one walker: folder inputs (``iter_image_paths``, batch videos) and the dataset
    readers must see the same files. Symlinked folders are followed (a photo library or a
    dataset assembled from links used to read as empty), and a folder reached twice (a
    link cycle, or two links to one folder) is read once, so a cycle cannot hang a scan.

    A folder that cannot be listed (no permission, removed during the walk) goes to
    ``on_error`` with its ``OSError`` (``filename`` the folder); by default it is logged
    as a warning. ``os.walk`` alone skips it in silence: its files would be missing from
    the results with nothing said.
    """
    seen: set[str] = set()
    walk = os.walk(root, onerror=on_error or _log_unlisted, followlinks=True)
    for dirpath, dirnames, filenames in walk:  # no stat per file
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in suffixes:
                yield Path(dirpath, name)


def _log_unlisted(exc: OSError) -> None:
    """The default ``on_error`` of :func:`walk_files`."""
    reason = exc.strerror or exc
    logger.warning("%s: cannot list this folder (%s); its files are skipped", exc.filename, reason)
