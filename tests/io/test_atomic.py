"""Tests for duchenne.io.atomic: what a write does to the target it is given.

Regular files and new paths are replaced by rename; a symlink is followed (the link stays
a link); a special file is written in place, never renamed over; a folder is refused.
Safe to run as root on a shared machine: no real device is ever opened -- a FIFO made in
``tmp_path`` (read by a bounded thread) and a monkeypatched ``os.stat`` stand in for one.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from duchenne.io import RecordWriter
from duchenne.io.atomic import atomic_write, commit_file, create_temp

TIMEOUT = 10.0

posix_only = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks"
)


@pytest.fixture(autouse=True)
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Send the temp files of special-file writes to a folder of this test, so a test can
    check that none is left behind (and none lands in the real system temp folder)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    yield spool


def leftovers(*folders: Path) -> list[str]:
    """Hidden temp files (``.name.xxxx.tmp``) left in ``folders``."""
    return sorted(p.name for f in folders for p in f.iterdir() if p.name.endswith(".tmp"))


class FifoReader:
    """Read a FIFO to EOF in a daemon thread, so writers in the test never block.

    The thread reads through a hard link to the FIFO, so it still reads the FIFO itself
    if a (broken) writer replaced the original name; if nothing opens the FIFO for
    writing, :meth:`result` opens it itself to end the thread, then fails the test,
    rather than hanging.
    """

    def __init__(self, fifo: Path) -> None:
        self._inode = fifo.with_name(fifo.name + ".inode")
        os.link(fifo, self._inode)
        self._data = bytearray()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with open(self._inode, "rb") as fh:
                while chunk := fh.read(65536):
                    self._data += chunk
        except BaseException as exc:  # pragma: no cover - reported by result()
            self._error = exc

    def result(self) -> bytes:
        self._thread.join(TIMEOUT)
        if self._thread.is_alive():
            os.close(os.open(self._inode, os.O_WRONLY | os.O_NONBLOCK))
            self._thread.join(TIMEOUT)
            pytest.fail("nothing opened the FIFO for writing")
        if self._error is not None:  # pragma: no cover
            raise self._error
        return bytes(self._data)


def bounded(write: Callable[[], object]) -> None:
    """Run ``write`` in a daemon thread; fail (instead of hanging) if it blocks."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():  # pragma: no cover - only on a regression
        pytest.fail("the write blocked")
    if errors:
        raise errors[0]


def write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


# --------------------------------------------------------------------------- regular files


def test_new_and_existing_regular_files_are_replaced_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.json"
    write_text(path, "first")
    assert path.read_text() == "first"
    inode = path.stat().st_ino
    write_text(path, "second")
    assert path.read_text() == "second"
    assert path.stat().st_ino != inode  # a new file renamed into place, not rewritten
    assert leftovers(path.parent) == []


# --------------------------------------------------------------------------- symlinks


@posix_only
def test_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    target = real_dir / "data.json"
    target.write_text("old")
    link = link_dir / "link.json"
    link.symlink_to(Path("..") / "real" / "data.json")

    write_text(link, "new")

    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("..", "real", "data.json")
    assert target.read_text() == "new"
    assert leftovers(real_dir, link_dir) == []


@posix_only
def test_chain_of_symlinks_replaces_the_final_file(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    target.write_text("old")
    (tmp_path / "b.json").symlink_to(target)
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")

    write_text(tmp_path / "a.json", "new")

    assert (tmp_path / "a.json").is_symlink() and (tmp_path / "b.json").is_symlink()
    assert target.read_text() == "new"


@posix_only
def test_dangling_symlink_creates_its_target_and_missing_folders(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "not" / "yet" / "data.json")

    write_text(link, "created")

    assert link.is_symlink()
    assert (tmp_path / "not" / "yet" / "data.json").read_text() == "created"


@posix_only
def test_create_temp_and_commit_file_follow_a_symlink(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "video.mp4"
    target.write_bytes(b"old")
    link = tmp_path / "video.mp4"
    link.symlink_to(target)

    tmp, fd = create_temp(link)
    assert tmp.parent == real_dir  # same folder as the real file: the rename stays atomic
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"new")
    commit_file(tmp, link)

    assert link.is_symlink()
    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path, real_dir) == []


@posix_only
def test_record_writer_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with RecordWriter(link) as writer:
        writer.write({"a": 1})
        writer.write({"a": 2, "b": 3})  # new column: the temp file is rewritten once
    assert link.is_symlink()
    assert target.read_text().splitlines() == ["a,b", "1,", "2,3"]


# --------------------------------------------------------------------------- special files


@posix_only
def test_fifo_is_written_in_place_not_replaced(tmp_path: Path, spool_dir: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)

    bounded(lambda: write_text(fifo, "through the pipe\n"))

    assert reader.result() == b"through the pipe\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path, spool_dir) == []


@posix_only
def test_symlink_to_fifo_stays_a_link_to_the_fifo(tmp_path: Path) -> None:
    """Like ``-o /dev/stdout``: a link whose target must be written into, not replaced."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "stdout"
    link.symlink_to(fifo)
    reader = FifoReader(fifo)

    def write() -> None:
        with atomic_write(link) as fh:
            fh.write(b"\x00binary\xff")

    bounded(write)

    assert reader.result() == b"\x00binary\xff"
    assert link.is_symlink() and stat.S_ISFIFO(os.stat(link).st_mode)


@posix_only
def test_record_writer_streams_into_a_fifo(tmp_path: Path, spool_dir: Path) -> None:
    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)

    def write() -> None:
        with RecordWriter(fifo) as writer:
            writer.write_many({"i": i} for i in range(3))

    bounded(write)

    assert reader.result() == b'{"i": 0}\n{"i": 1}\n{"i": 2}\n'
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(tmp_path, spool_dir) == []


@posix_only
def test_failed_block_writes_nothing_into_a_fifo(tmp_path: Path, spool_dir: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(KeyError), atomic_write(fifo, "w") as fh:
        fh.write("half")
        raise KeyError("boom")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(spool_dir) == []


@posix_only
def test_character_device_is_written_in_place(
    tmp_path: Path, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regular file that ``os.stat`` reports as a character device stands in for one
    (no real device is touched): it must be opened and written, never renamed over."""
    device = tmp_path / "fake-null"
    device.write_bytes(b"x")
    inode = device.stat().st_ino
    real_stat = os.stat

    def fake_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        st = real_stat(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(device):
            return os.stat_result((stat.S_IFCHR | 0o666, *tuple(st)[1:]))
        return st

    monkeypatch.setattr(os, "stat", fake_stat)
    write_text(device, "written in place")
    monkeypatch.undo()

    assert device.stat().st_ino == inode  # the same file: nothing was renamed over it
    assert device.read_text() == "written in place"
    assert leftovers(tmp_path, spool_dir) == []


@posix_only
def test_socket_is_refused_and_left_alone(tmp_path: Path, spool_dir: Path) -> None:
    sock_path = tmp_path / "s.sock"
    if len(os.fsencode(sock_path)) >= 100:  # pragma: no cover - AF_UNIX path limit
        pytest.skip("tmp_path too long for a unix socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(sock_path))
        with pytest.raises(OSError):
            write_text(sock_path, "data")
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    assert leftovers(tmp_path, spool_dir) == []


# --------------------------------------------------------------------------- folders


def test_folder_target_is_refused_before_the_block_runs(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    entered = False
    with pytest.raises(IsADirectoryError, match="folder"):
        with atomic_write(folder, "w"):
            entered = True
    assert not entered
    assert folder.is_dir() and (folder / "keep.txt").read_text() == "keep"
    assert leftovers(tmp_path) == []


@posix_only
def test_symlink_to_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(IsADirectoryError):
        create_temp(link)
    assert link.is_symlink() and leftovers(tmp_path, folder) == []


def test_commit_file_onto_a_folder_raises_and_removes_the_temp(tmp_path: Path) -> None:
    tmp, fd = create_temp(tmp_path / "out")
    os.close(fd)
    (tmp_path / "out").mkdir()  # the target became a folder while the temp was written
    with pytest.raises(IsADirectoryError):
        commit_file(tmp, tmp_path / "out")
    assert not tmp.exists()
    assert (tmp_path / "out").is_dir()


def test_stale_temps_are_the_temp_files_of_that_output_only(tmp_path: Path) -> None:
    """A killed writer's temp file is found by its output's name, and no other file is."""
    from duchenne.io.atomic import create_temp, stale_temps

    out = tmp_path / "faces.csv"
    tmp, fd = create_temp(out)
    os.close(fd)
    for name in (".faces.csv.tmp", ".faces.csv.xyz12345.tmp", ".other.csv.0123abcd.tmp"):
        (tmp_path / name).write_text("")
    assert stale_temps(out) == [tmp]
    assert stale_temps(tmp_path / "missing" / "x.csv") == []
