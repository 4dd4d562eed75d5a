"""Resume bookkeeping without any analysis: parts, finalize, supersede, settings checks."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from duchenne.batch.ledger import Ledger, OutputLock, PartWriter, iter_rows
from duchenne.errors import BatchError, OutputError
from tests.helpers import refuse_os_open

SETTINGS = {"stages": ["detect"]}


def row(source: str, fp: str = "size=1", face: int | None = 0, error: str | None = None) -> dict:
    return {"source": source, "face": face, "score": 0.5, "error": error, "fingerprint": fp}


def table(path: Path, fmt: str) -> list[dict]:
    return list(iter_rows(path, fmt))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_parts_then_one_file(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r.{fmt}"
    ledger = Ledger(out, fmt, SETTINGS)
    writer = PartWriter(ledger, part_size=2)
    writer.add([[row("a"), row("a", face=1)], [row("b", face=None, error="ImageLoadError: bad")]])
    writer.add([[row("c")]])
    assert len(ledger.parts()) == 1 and not out.exists()
    writer.flush()
    assert [p.name for _, p in ledger.parts()] == [
        f"part-00000.{ledger.part_format}",
        f"part-00001.{ledger.part_format}",
    ]
    assert json.loads((ledger.parts_dir / "_job.json").read_text())["settings"] == SETTINGS
    assert ledger.finalize() == out
    assert not ledger.parts_dir.exists()
    got = table(out, fmt)
    assert [(r["source"], str(r["face"])) for r in got] == [
        ("a", "0"),
        ("a", "1"),
        ("b", "None" if fmt != "csv" else ""),
        ("c", "0"),
    ]
    assert (writer.processed, writer.failed, writer.faces, writer.rows) == (3, 1, 3, 4)

    again = Ledger(out, fmt, SETTINGS)
    assert again.is_done("a", "size=1") and again.is_done("b", "size=1")
    assert not again.is_done("b", "size=1", retry_errors=True)
    assert not again.is_done("a", "size=2") and not again.is_done("z", "size=1")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_redone_sources_replace_their_old_rows(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"r.{fmt}"
    first = Ledger(out, fmt, SETTINGS)
    first.commit_part([row("a"), row("b"), row("b", face=1), row("c")])
    first.finalize()
    before = out.read_text()

    second = Ledger(out, fmt, SETTINGS)
    second.commit_part([row("b", fp="size=2"), row("d")])
    second.finalize(keep_parts=True)
    got = [(r["source"], r["fingerprint"]) for r in table(out, fmt)]
    assert got == [("a", "size=1"), ("c", "size=1"), ("b", "size=2"), ("d", "size=1")]

    # a crash after the output was replaced but before the parts were removed:
    # finalizing again must not duplicate the parts' rows
    third = Ledger(out, fmt, SETTINGS)
    third.finalize()
    assert [(r["source"], r["fingerprint"]) for r in table(out, fmt)] == got
    if fmt == "csv":
        header = next(csv.reader(before.splitlines()))
        assert next(csv.reader(out.read_text().splitlines())) == header


def test_other_settings_refuse_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    Ledger(out, "jsonl", SETTINGS).commit_part([row("a")])
    with pytest.raises(BatchError, match="other settings.*--overwrite"):
        Ledger(out, "jsonl", {"stages": ["detect", "landmarks"]})
    fresh = Ledger(out, "jsonl", {"stages": ["detect", "landmarks"]}, overwrite=True)
    assert fresh.parts() == [] and fresh.done == {}


def test_overwrite_ignores_the_previous_output_until_it_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    old = Ledger(out, "jsonl", SETTINGS)
    old.commit_part([row("a"), row("b")])
    old.finalize()
    Ledger(out, "jsonl", SETTINGS, overwrite=True).commit_part([row("a", fp="size=9")])
    resumed = Ledger(out, "jsonl", SETTINGS)  # an interrupted --overwrite run, resumed
    assert not resumed.is_done("b", "size=1") and resumed.is_done("a", "size=9")
    resumed.finalize()
    assert [(r["source"], r["fingerprint"]) for r in table(out, "jsonl")] == [("a", "size=9")]


def test_an_output_not_written_by_batch_is_not_touched(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"image": "x"}\n')
    with pytest.raises(BatchError, match="not a duchenne batch output"):
        Ledger(out, "jsonl", SETTINGS)
    assert out.read_text() == '{"image": "x"}\n'


def test_an_output_read_in_another_format_says_which_format(tmp_path: Path) -> None:
    """``--format csv -o r.jsonl`` on a finished JSONL run blamed the file, not the format."""
    out = tmp_path / "r.jsonl"
    done = Ledger(out, "jsonl", SETTINGS)
    done.commit_part([row("a"), row("b")])
    done.finalize()
    with pytest.raises(BatchError, match=r"r.jsonl is not a duchenne batch output read as csv"):
        Ledger(out, "csv", SETTINGS)


@pytest.mark.parametrize("cut", ["photos/b", "photos/b.jpg,0,0.5,,size=1"])
def test_a_torn_csv_row_is_refused_not_kept(tmp_path: Path, cut: str) -> None:
    """A CSV output cut by hand inside its last row: the row was read as it stood, so a
    row cut inside its source became a made-up input kept in the final table."""
    out = tmp_path / "r.csv"
    first = Ledger(out, "csv", SETTINGS)
    first.commit_part(
        [{**row("photos/a.jpg"), "models": "m"}, {**row("photos/b.jpg"), "models": "m"}]
    )
    first.finalize()
    lines = out.read_text().splitlines()
    assert lines[-1].startswith(cut)
    out.write_text("\n".join([*lines[:-1], cut]))
    with pytest.raises(BatchError, match="line 3 does not have one cell per column"):
        Ledger(out, "csv", SETTINGS)


def test_stray_temp_files_and_foreign_parts_are_ignored(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    ledger = Ledger(out, "jsonl", SETTINGS)
    ledger.commit_part([row("a")])
    (ledger.parts_dir / ".part-00001.jsonl.1234.tmp").write_text('{"source": "torn"')
    (ledger.parts_dir / "part-00005.parquet").write_text("other format")
    again = Ledger(out, "jsonl", SETTINGS)
    assert list(again.done) == ["a"]
    assert not (ledger.parts_dir / ".part-00001.jsonl.1234.tmp").exists()
    again.commit_part([row("b")])
    assert [p.name for _, p in again.parts()] == ["part-00000.jsonl", "part-00001.jsonl"]


def test_temp_files_of_a_killed_final_write_are_removed_and_no_others(tmp_path: Path) -> None:
    from duchenne.io.atomic import create_temp

    out = tmp_path / "r.jsonl"
    stale, fd = create_temp(out)  # what a kill -9 during finalize leaves
    os.close(fd)
    others = [".r.jsonl.notes.tmp", ".r.jsonl.1234abcd.tmp.bak", ".x.jsonl.1234abcd.tmp"]
    for name in others:
        (tmp_path / name).write_text("not ours")
    Ledger(out, "jsonl", SETTINGS)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others)


def test_output_lock_admits_one_writer_at_a_time(tmp_path: Path) -> None:
    out = tmp_path / "new" / "r.jsonl"
    first = OutputLock(out).acquire()
    assert first.held and first.path == tmp_path / "new" / "r.jsonl.lock"
    assert first.path.read_text().split()[0] == str(os.getpid())
    second = OutputLock(out)
    with pytest.raises(
        BatchError, match=rf"r.jsonl is being written by another batch job \(pid {os.getpid()} on "
    ):
        second.acquire()
    assert not second.held and first.path.exists()  # the refused job leaves the lock alone
    first.release()
    assert not first.path.exists()
    with OutputLock(out) as third:  # free again once released
        assert third.held
        with pytest.raises(BatchError):
            OutputLock(out).acquire()
    assert not third.held and not third.path.exists()


def test_lock_of_a_killed_job_does_not_block_the_next(tmp_path: Path) -> None:
    """``kill -9`` leaves the lock file behind, but the kernel dropped the lock with the
    process, so the next run takes it."""
    out = tmp_path / "r.parquet"
    code = (
        "import sys, time; from duchenne.batch.ledger import OutputLock; "
        "OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BatchError, match=f"pid {holder.pid} "):
            OutputLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert (tmp_path / "r.parquet.lock").exists()  # stale file, no lock
    with OutputLock(out) as lock:
        assert lock.held


def test_a_one_row_jsonl_output_read_as_csv_is_refused(tmp_path: Path) -> None:
    """One JSON line reads as a CSV header without rows: it passed for an empty output,
    and the resumed run replaced the JSON Lines file with CSV, dropping its row."""
    out = tmp_path / "r.out"
    done = Ledger(out, "jsonl", SETTINGS)
    done.commit_part([row("a")])
    done.finalize()
    before = out.read_text()
    assert len(before.splitlines()) == 1
    with pytest.raises(BatchError, match=r"r.out is not a duchenne batch output read as csv"):
        Ledger(out, "csv", SETTINGS)
    assert out.read_text() == before
    out.write_text('"a JSON string, not a row"\n')
    with pytest.raises(BatchError, match="line 1 is not a JSON object"):
        Ledger(out, "jsonl", SETTINGS)
    out.write_text("")  # an empty file is an empty output, in either format
    assert Ledger(out, "csv", SETTINGS).done == {} == Ledger(out, "jsonl", SETTINGS).done


def test_a_lock_that_cannot_be_made_or_written_names_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PermissionError: ... 'ro/x.csv.lock'`` named the lock file; a full disk left it
    behind with its descriptor open."""
    out = tmp_path / "r.csv"
    refuse_os_open(monkeypatch, errno.EACCES, lambda path, flags: path.endswith(".lock"))
    with pytest.raises(OutputError, match=rf"^cannot write {out}: Permission denied$"):
        OutputLock(out).acquire()
    monkeypatch.undo()

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    lock = OutputLock(out)
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputError, match=rf"^cannot write {out}: No space left on device$"):
        lock.acquire()
    monkeypatch.undo()
    assert not lock.held and not lock.path.exists()
    with OutputLock(out) as again:
        assert again.held
