"""Atomic file writes: a temp file in the destination folder, fsynced, moved over the target.

Why: a reader (spreadsheet, notebook, next pipeline stage) must see either the previous
complete file or the new complete file, never a half-written one, even if the writer
crashes. :func:`atomic_write` covers file objects; :func:`commit_file` covers writers
that need a file name; :func:`create_temp`, :func:`fsync_close` and
:func:`unlink_quietly` are the pieces the record writers in :mod:`duchenne.io.sinks`
build on.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "commit_file", "create_temp", "fsync_close", "unlink_quietly"]


def create_temp(path: Path) -> tuple[Path, int]:
    """Create a unique hidden temp file next to ``path``; return it and its fd.

    ``os.open`` with mode 0o666 lets the process umask decide the final permissions,
    which ``tempfile`` (always 0o600) would not.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:  # pragma: no cover - 32-bit random collision
            continue


def fsync_close(fh: IO[Any]) -> None:
    """Flush Python and OS buffers to disk, then close."""
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


def commit_file(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Move a finished temp file (written next to ``path``) over ``path`` and persist the
    rename; the temp file is removed if the move fails.

    For writers that need a file name rather than a file object (e.g. OpenCV's video
    writer); everything else uses :func:`atomic_write`.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        os.replace(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename on POSIX; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    """Remove a temp file, ignoring that it may already be gone."""
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` only if the block succeeds.

    Missing parent folders are created. If the block raises, the temporary file is
    deleted and any previous ``path`` is left as it was.

    Args:
        path: Final destination.
        mode: ``"wb"`` or ``"w"`` (text).
        encoding: Text encoding (text mode; defaults to UTF-8).
        newline: As for :func:`open` (text mode).

    Yields:
        The open temporary file.

    Raises:
        ValueError: ``mode`` is not a write mode.
        OSError: The file cannot be created, written or renamed.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    final = Path(path)
    tmp, fd = create_temp(final)
    text = {"encoding": encoding or "utf-8", "newline": newline} if mode == "w" else {}
    try:
        with os.fdopen(fd, mode, **text) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        unlink_quietly(tmp)
        raise
    commit_file(tmp, final)
