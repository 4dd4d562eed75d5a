"""A write that fails names the path the caller gave, never the hidden temp file.

Failures are real where that is possible without root or a mount: ``RLIMIT_FSIZE`` makes
the kernel refuse writes past a size (``EFBIG``, as a full disk refuses them with
``ENOSPC``: at the block's ``write`` once the buffer spills, or at the final flush).
Permission and read-only refusals are simulated by patching ``os.open`` / ``os.replace``
(root ignores permission bits).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from duchenne.errors import DuchenneError, OutputError
from duchenne.io import RecordWriter
from duchenne.io.atomic import atomic_write, output_errors
from tests.helpers import refuse_os_open

LIMIT = 4096  # bytes a file may grow to under the file size limit (below one buffer)


@contextlib.contextmanager
def small_files() -> Iterator[None]:
    """Files may not grow past ``LIMIT`` bytes in this process inside the block.

    Only around the writes, never the whole test: pytest writes its progress to stdout
    before a fixture's teardown, and stdout redirected to a file over ``LIMIT`` bytes (a
    CI log) then failed with ``File too large``."""
    if not hasattr(resource, "RLIMIT_FSIZE"):  # pragma: no cover - Windows
        pytest.skip("needs RLIMIT_FSIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def assert_names_output(exc: OutputError, path: Path, code: int) -> None:
    assert isinstance(exc, OSError) and isinstance(exc, DuchenneError)
    assert (exc.errno, exc.filename) == (code, str(path))
    assert str(exc) == f"cannot write {path}: {os.strerror(code)}"
    assert ".tmp" not in str(exc)


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_a_write_past_the_limit_in_the_block_names_the_output(tmp_path: Path, mode: str) -> None:
    """The error surfaces inside the caller's ``fh.write``: it named nothing (``[Errno
    27] File too large``) or, as a full disk does, only the temp file."""
    out = tmp_path / "x.json"
    out.write_text("previous")
    data = "x" * (16 * LIMIT)
    with small_files(), pytest.raises(OutputError) as info, atomic_write(out, mode) as fh:
        fh.write(data if mode == "w" else data.encode())
    assert_names_output(info.value, out, errno.EFBIG)
    assert out.read_text() == "previous" and hidden(tmp_path) == []


def test_a_write_that_fails_at_the_final_flush_names_the_output(
    tmp_path: Path,
) -> None:
    """Less than a buffer: the block's writes succeed, the commit's flush fails."""
    out = tmp_path / "x.txt"
    written = False
    with small_files(), pytest.raises(OutputError) as info, atomic_write(out, "w") as fh:
        fh.write("y" * (LIMIT + 1000))
        written = True
    assert written
    assert_names_output(info.value, out, errno.EFBIG)
    assert hidden(tmp_path) == [] and not out.exists()


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet"])
def test_record_writers_name_the_output(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r.{fmt}"
    with (
        small_files(),
        pytest.raises(OutputError) as info,
        RecordWriter(out, row_group_size=50) as writer,
    ):
        for i in range(2000):
            writer.write({"source": f"photo{i}.jpg", "text": "z" * 40, "score": i / 7})
    assert_names_output(info.value, out, errno.EFBIG)
    assert hidden(tmp_path) == [] and not out.exists()


def test_a_folder_without_permission_is_named_as_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PermissionError: ... '/abs/ro/.x.json.6b252a15.tmp'`` named a file the user
    never asked for, by an absolute path they did not give."""
    refuse_os_open(monkeypatch, errno.EACCES, lambda path, flags: path.endswith(".tmp"))
    monkeypatch.chdir(tmp_path)
    out = Path("ro") / "x.json"
    with pytest.raises(OutputError) as info, atomic_write(out) as fh:
        fh.write(b"never")
    assert_names_output(info.value, out, errno.EACCES)
    with pytest.raises(OutputError) as info:
        RecordWriter(out)
    assert_names_output(info.value, out, errno.EACCES)


def test_a_rename_refused_names_the_output_and_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(src, dst, **kw):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    out = tmp_path / "x.csv"
    with pytest.raises(OutputError) as info, atomic_write(out) as fh:
        fh.write(b"a,b\n")
    assert_names_output(info.value, out, errno.EROFS)
    assert hidden(tmp_path) == []


def test_other_errors_in_the_block_are_not_blamed_on_the_output(tmp_path: Path) -> None:
    """Only the temp file's own writes are retold: reading a missing input inside the
    block is that input's error, and a folder target stays ``IsADirectoryError``."""
    out = tmp_path / "x.json"
    with pytest.raises(FileNotFoundError) as info, atomic_write(out) as fh:
        fh.write((tmp_path / "missing.bin").read_bytes())
    assert not isinstance(info.value, OutputError)
    assert info.value.filename == str(tmp_path / "missing.bin")
    with pytest.raises(IsADirectoryError), atomic_write(tmp_path):
        pass
    with pytest.raises(OutputError, match=f"cannot write {out}: No space left"):
        with output_errors(out):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert hidden(tmp_path) == []
