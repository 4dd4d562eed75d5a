"""Atomic file writes: a temp file in the destination folder, fsynced, moved over the target.

Why: a reader (spreadsheet, notebook, next pipeline stage) must see either the previous
complete file or the new complete file, never a half-written one, even if the writer
crashes. :func:`atomic_write` covers file objects; :func:`commit_file` covers writers
that need a file name; :func:`create_temp`, :func:`fsync_close` and
:func:`unlink_quietly` are the pieces the record writers in :mod:`duchenne.io.sinks`
build on.

What the target is decides how it is written: a regular file (or a new path) is replaced
by rename; a symlink is followed, so the file it points to is replaced and the link stays
a link; an existing special file (character or block device, FIFO, socket) is never
renamed over -- replacing ``/dev/null`` or a pipe with a regular file would break every
other user of it -- so the finished bytes are streamed into it instead, as ``cat >``
would (atomicity means nothing there); a folder is refused with :class:`IsADirectoryError`.

A write that fails (no permission, no space left, a read-only file system) raises
:class:`~duchenne.errors.OutputError` naming the path the caller gave, not the hidden temp
file: ``cannot write ro/x.json: Permission denied``, never ``'ro/.x.json.6b252a15.tmp'``,
which the user never asked for and which is gone by the time they read it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from duchenne.errors import OutputError

__all__ = [
    "atomic_write",
    "commit_file",
    "create_temp",
    "fsync_close",
    "output_errors",
    "stale_temps",
    "unlink_quietly",
]


def _output_error(exc: OSError, path: str | os.PathLike[str]) -> OutputError:
    """``exc`` told about ``path``, the output the caller named (not the temp file or
    folder the system call was about); an ``OutputError`` is returned as it is."""
    if isinstance(exc, OutputError):
        return exc
    reason = exc.strerror or str(exc)  # pyarrow's OSErrors carry only a message
    return OutputError(exc.errno, reason, os.fspath(path))


@contextlib.contextmanager
def output_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` of the block, which writes ``path`` (or its temp file), into
    :class:`~duchenne.errors.OutputError` naming ``path``.

    A folder refused as the target (``IsADirectoryError``, which already names ``path``)
    is raised as it is. Only for blocks that do nothing but write ``path``: an error
    reading some other file inside it would be mislabelled.

    Example:
        >>> with output_errors("ro/x.json"):  # doctest: +SKIP
        ...     os.open("ro/.x.json.1234abcd.tmp", os.O_WRONLY | os.O_CREAT)
        Traceback (most recent call last):
        duchenne.errors.OutputError: cannot write ro/x.json: Permission denied
    """
    try:
        yield
    except IsADirectoryError:
        raise
    except OSError as exc:
        raise _output_error(exc, path) from exc


def _destination(path: Path) -> Path | None:
    """The file a write to ``path`` must replace, or None if ``path`` is a special file.

    ``os.stat`` follows symlinks, so a link is judged by what it points to; this also
    covers ``/dev/stdout``-style links into ``/proc`` whose targets are not real paths.
    A regular file, a new path or a dangling link resolve to their final path, so the
    temp file is made (and renamed) next to the real file rather than over the link.

    Raises:
        IsADirectoryError: ``path`` is (or points to) a folder.
        OSError: ``path`` cannot be examined (e.g. a symlink loop, no permission).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:  # a new path or a dangling symlink: create its target
        return Path(os.path.realpath(path))
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(
            errno.EISDIR, "cannot write a file: the output path is a folder", str(path)
        )
    if stat.S_ISREG(st.st_mode):
        return Path(os.path.realpath(path))
    return None


def _temp_name(name: str, token: str) -> str:
    """The hidden temp file name of a write to a file called ``name``."""
    return f".{name}.{token}.tmp"


def _open_temp(folder: Path, name: str, mode: int) -> tuple[Path, int]:
    """Create a unique hidden temp file in ``folder``; return it and its fd."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = folder / _temp_name(name, secrets.token_hex(4))
        try:
            return tmp, os.open(tmp, flags, mode)
        except FileExistsError:  # pragma: no cover - 32-bit random collision
            continue


def create_temp(path: Path) -> tuple[Path, int]:
    """Create a unique hidden temp file for a write to ``path``; return it and its fd.

    The temp file goes next to the file ``path`` resolves to (through any symlink), so
    :func:`commit_file` can rename it into place on the same file system; missing parent
    folders are created. ``os.open`` with mode 0o666 lets the process umask decide the
    final permissions, which ``tempfile`` (always 0o600) would not.

    If ``path`` is a special file (device, FIFO, socket) nothing will be renamed, and its
    folder (``/dev``) may not be writable, so the temp file goes to the system temp
    folder instead, private (0o600) since it is never the final file.

    Raises:
        IsADirectoryError: ``path`` is (or points to) a folder.
        OutputError: The temp file cannot be created (named as ``path``).
    """
    path = Path(path)
    with output_errors(path):
        final = _destination(path)
        if final is None:
            return _open_temp(Path(tempfile.gettempdir()), path.name, 0o600)
        final.parent.mkdir(parents=True, exist_ok=True)
        return _open_temp(final.parent, final.name, 0o666)


def stale_temps(path: Path) -> list[Path]:
    """The temp files :func:`create_temp` made for writes to ``path`` that still lie
    beside it: after a writer was killed, its owner removes them (holding whatever lock
    keeps other writers of ``path`` away). None for a special file (their temp files are
    in the shared system temp folder) or a missing folder.
    """
    try:
        final = _destination(Path(path))
    except OSError:
        return []
    if final is None or not final.parent.is_dir():
        return []
    pattern = re.compile(re.escape(_temp_name(final.name, "@")).replace("@", "[0-9a-f]{8}"))
    return [p for p in final.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]


def fsync_close(fh: IO[Any]) -> None:
    """Flush Python and OS buffers to disk, then close."""
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


def commit_file(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Move a finished temp file (made by :func:`create_temp` for ``path``) over
    ``path`` and persist the rename; the temp file is removed if the move fails.

    A symlink ``path`` keeps being a link: the file it points to is replaced. A special
    file ``path`` (device, FIFO, socket) is not replaced: the temp file's bytes are
    streamed into it, then the temp file is removed.

    For writers that need a file name rather than a file object (e.g. OpenCV's video
    writer); everything else uses :func:`atomic_write`.

    Raises:
        IsADirectoryError: ``path`` is (or points to) a folder.
        OutputError: The file cannot be renamed or written (named as ``path``).
    """
    tmp, path = Path(tmp), Path(path)
    try:
        with output_errors(path):
            final = _destination(path)
            if final is None:
                _stream_into(tmp, path)
                unlink_quietly(tmp)
                return
            os.replace(tmp, final)
    except BaseException:
        unlink_quietly(tmp)
        raise
    _fsync_dir(final.parent)


def _stream_into(tmp: Path, path: Path) -> None:
    """Copy the bytes of ``tmp`` into the existing special file ``path``.

    Opened without ``O_CREAT``, so a device or FIFO that vanished meanwhile is an error
    rather than a new regular file; ``O_NOCTTY`` so a terminal never becomes the
    process's controlling terminal. No fsync: pipes and most devices refuse it. A FIFO
    blocks here until a reader opens it, as with any other writer.
    """
    flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    with open(tmp, "rb") as src, open(os.open(path, flags), "wb") as dst:
        shutil.copyfileobj(src, dst)


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
    deleted and any previous ``path`` is left as it was. A symlink ``path`` is followed
    (the file it points to is replaced); a special file (device, FIFO) gets the bytes
    written into it once the block succeeds (see :func:`commit_file`).

    Args:
        path: Final destination.
        mode: ``"wb"`` or ``"w"`` (text).
        encoding: Text encoding (text mode; defaults to UTF-8).
        newline: As for :func:`open` (text mode).

    Yields:
        The open temporary file.

    Raises:
        ValueError: ``mode`` is not a write mode.
        IsADirectoryError: ``path`` is (or points to) a folder.
        OutputError: The file cannot be created, written or renamed (named as ``path``;
            the block's writes to the yielded file raise it too).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    final = Path(path)
    tmp, fd = create_temp(final)
    fh: IO[Any] = io.BufferedWriter(_TempFileIO(fd, final))
    if mode == "w":
        fh = io.TextIOWrapper(fh, encoding=encoding or "utf-8", newline=newline)
    try:
        yield fh
        with output_errors(final):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk fails the close's flush again
            fh.close()
        unlink_quietly(tmp)
        raise
    commit_file(tmp, final)


class _TempFileIO(io.FileIO):
    """The temp file of an atomic write, whose failed writes name the target.

    Why at this level: the block's own ``fh.write`` is where a full disk shows (once the
    buffer spills), and only the file knows that the error is about the output, not about
    something else the block reads.
    """

    def __init__(self, fd: int, target: Path) -> None:
        super().__init__(fd, "wb")
        self.target = target

    def write(self, data: Any) -> int | None:
        try:
            return super().write(data)
        except OSError as exc:
            raise _output_error(exc, self.target) from exc
