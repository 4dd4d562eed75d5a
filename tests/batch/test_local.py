"""Local engine: a few hundred photos with bad files, resume after a kill, Ctrl-C, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from duchenne import batch

from .conftest import STAGES, read_table, rows_of

# A driver for subprocess runs: the real CLI, with a fault injected in the parent
# (SIGKILL or SIGINT to itself right after its K-th part is committed) or in the workers
# (a worker process that dies on any chunk holding a file named "poison.jpg"; with SIGINT,
# workers slowed to 0.3 s a chunk).
DRIVER = textwrap.dedent(
    """
    import os, signal, sys

    def run_patched_worker(conn, config, before):
        # The real worker, calling before(items) ahead of each chunk.
        from duchenne.batch import local, worker
        original = worker.BatchWorker.process

        def process(self, items):
            before(items)
            return original(self, items)

        worker.BatchWorker.process = process
        local._worker_main(conn, config)

    def poison(items):
        if any(item.source.endswith("poison.jpg") for item in items):
            os._exit(3)

    def slow(items):
        # 0.3 s a chunk: the interrupt after the first committed part always lands while
        # work is left, even when a loaded machine starves the parent.
        import time
        time.sleep(0.3)

    def poison_main(conn, config):
        run_patched_worker(conn, config, poison)

    def slow_main(conn, config):
        run_patched_worker(conn, config, slow)

    if __name__ == "__main__":
        from duchenne.batch import ledger, local
        from duchenne.cli.main import main

        fault, k = sys.argv[1], int(sys.argv[2])
        commit, commits = ledger.Ledger.commit_part, []

        def commit_part(self, rows):
            path = commit(self, rows)
            commits.append(path)
            if fault in ("kill", "int") and len(commits) == k:
                os.kill(os.getpid(), signal.SIGKILL if fault == "kill" else signal.SIGINT)
            return path

        ledger.Ledger.commit_part = commit_part
        if fault == "poison":
            local._worker_main = poison_main
        if fault == "int":
            local._worker_main = slow_main
        sys.exit(main(sys.argv[3:]))
    """
)


def run_driver(tmp_path: Path, fault: str, k: int, args: list[str]) -> subprocess.CompletedProcess:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    cmd = [sys.executable, str(script), fault, str(k), "batch", *args, "-q"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def stage_args() -> list[str]:
    return ["--stages", ",".join(STAGES)]


def test_folder_of_photos_with_bad_files(photo_set, reference) -> None:
    root, summary, rows = photo_set["root"], reference["summary"], reference["rows"]
    good = {str(root / n) for n in photo_set["good"]}
    bad = {str(root / n) for n in photo_set["bad"]}
    assert summary.inputs == summary.processed == len(good) + len(bad) == 212
    assert summary.failed == 12 and summary.skipped == 0 and not summary.interrupted
    assert {s for s, _ in summary.failures} == bad
    assert {r["source"] for r in rows} == good | bad
    for row in rows:
        assert row["models"].startswith("detector=") and row["duchenne_version"]
        dangling = row["source"].endswith("dangling.jpg")
        own, settings = row["fingerprint"].split(";settings=")
        assert own == "missing" if dangling else own.startswith("size=")
        assert len(settings) == 12
        if row["source"] in bad:
            assert row["face"] is None and row["error"].split(":")[0].endswith("Error")
        else:
            assert row["error"] is None and row["face"] is not None
    keys = [(r["source"], r["face"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicated rows"
    assert summary.faces == sum(r["face"] is not None for r in rows) >= len(good)
    assert len(summary.peak_rss_mb) == 2 and all(v > 50 for v in summary.peak_rss_mb.values())
    out = reference["out"]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name], "parts must be cleaned up"


def test_rerun_skips_finished_inputs(reference, photo_set, tmp_path) -> None:
    out = tmp_path / "again.parquet"
    out.write_bytes(reference["out"].read_bytes())
    summary = batch.run([str(photo_set["root"])], out=out, workers=2, stages=STAGES)
    assert summary.skipped == 212 and summary.processed == 0
    assert read_table(out) == reference["rows"]


def write_list(tmp_path: Path, sources: list[str]) -> Path:
    listing = tmp_path / "list.txt"
    listing.write_text("# inputs, one a line\n" + "\n".join(sources) + "\n")
    return listing


def test_resume_after_kill_gives_the_uninterrupted_table(reference, tmp_path) -> None:
    sources = list(dict.fromkeys(r["source"] for r in reference["rows"]))[:100]
    listing = write_list(tmp_path, sources)
    out = tmp_path / "faces.parquet"
    args = ["--list", str(listing), "--out", str(out), "-j", "2", "--part-size", "16"]
    killed = run_driver(tmp_path, "kill", 2, args + stage_args())
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    parts = out.with_name(out.name + ".parts")
    assert sorted(p.name for p in parts.glob("part-*")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert not out.exists()
    (parts / ".part-00002.parquet.dead.tmp").write_bytes(b"torn write of a killed writer")

    summary = batch.run([], list_files=[listing], out=out, workers=2, stages=STAGES, part_size=16)
    assert summary.skipped == 32 and summary.processed == 100 - 32
    assert read_table(out) == rows_of(reference["rows"], set(sources))
    assert not parts.exists()


def test_ctrl_c_keeps_finished_work_and_resumes(reference, tmp_path) -> None:
    sources = list(dict.fromkeys(r["source"] for r in reference["rows"]))[:40]
    listing = write_list(tmp_path, sources)
    out = tmp_path / "faces.parquet"
    args = [f"@{listing}", "--out", str(out), "-j", "2", "--part-size", "8", "--chunk-size", "4"]
    stopped = run_driver(tmp_path, "int", 1, args + stage_args())
    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted" in stopped.stderr and "rerun the same command" in stopped.stderr
    kept = read_table(out)
    done = {r["source"] for r in kept}
    assert 8 <= len(done) < len(sources)
    assert kept == rows_of(reference["rows"], done), "finished work kept, in order, once"

    summary = batch.run([f"@{listing}"], out=out, workers=2, stages=STAGES)
    assert summary.skipped == len(done)
    assert read_table(out) == rows_of(reference["rows"], set(sources))


def test_worker_crash_fails_only_the_poisonous_input(photo_set, reference, tmp_path) -> None:
    root = photo_set["root"]
    names = photo_set["good"][:8]
    poison = tmp_path / "poison.jpg"
    poison.write_bytes((root / names[0]).read_bytes())
    out = tmp_path / "faces.parquet"
    inputs = [str(root / n) for n in names[:5]] + [str(poison)] + [str(root / n) for n in names[5:]]
    args = [*inputs, "--out", str(out), "-j", "1", "--chunk-size", "3"]
    result = run_driver(tmp_path, "poison", 0, args + stage_args())
    assert result.returncode == 1, result.stderr
    rows = read_table(out)
    crashed = [r for r in rows if r["source"] == str(poison)]
    assert len(crashed) == 1 and crashed[0]["error"].startswith("WorkerCrashed: ")
    assert "exit code 3" in crashed[0]["error"]
    others = [r for r in rows if r["source"] != str(poison)]
    assert others == rows_of(reference["rows"], set(inputs))
    assert [r["source"] for r in rows].index(str(poison)) == 5, "input order kept"


def test_inline_engine_gives_the_same_rows(photo_set, reference, tmp_path) -> None:
    root = photo_set["root"]
    inputs = [str(root / n) for n in photo_set["good"][:6] + photo_set["bad"][:3]]
    out = tmp_path / "faces.jsonl"
    summary = batch.run(inputs, out=out, workers=0, stages=STAGES)
    assert summary.workers == 0 and summary.processed == 9 and summary.failed == 3
    import json

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [r for source in inputs for r in rows_of(reference["rows"], {source})]
    assert [r["source"] for r in rows] == [r["source"] for r in expected]
    for got, want in zip(rows, expected, strict=True):  # JSONL rows leave out null columns
        assert got == {k: v for k, v in want.items() if k in got}
        assert all(v is None for k, v in want.items() if k not in got)
    assert os.path.exists(out) and not out.with_name(out.name + ".parts").exists()
