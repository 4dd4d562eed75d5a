"""``duchenne batch`` on the command line; archive members and videos through the worker."""

from __future__ import annotations

import csv
import json
import os
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from duchenne import batch
from duchenne.analysis.config import AnalyzerConfig
from duchenne.batch.inputs import MemberLimits, expand_inputs
from duchenne.batch.ledger import OutputLock
from duchenne.batch.worker import BatchWorker, WorkerConfig
from duchenne.cli.main import main
from duchenne.errors import BatchError

from .conftest import STAGES, rows_of

VOLATILE = ("source", "fingerprint")


@pytest.fixture(scope="module")
def worker() -> BatchWorker:
    return BatchWorker(WorkerConfig(AnalyzerConfig(stages=STAGES)))


def test_cli_csv_with_bad_files_then_nothing_left(photo_set, reference, tmp_path, capsys) -> None:
    root = photo_set["root"]
    inputs = [str(root / n) for n in photo_set["good"][:4]] + [str(root / "bad" / "empty.jpg")]
    out = tmp_path / "faces.csv"
    args = ["batch", *inputs, "--out", str(out), "-j", "0", "--stages", ",".join(STAGES)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"error: {root / 'bad' / 'empty.jpg'}: ImageLoadError" in err
    assert err.count(str(root / "bad" / "empty.jpg")) == 1  # the error line names it once
    assert "5 analysed (1 failed, 4 faces)" in err and "Traceback" not in err
    rows = list(csv.DictReader(out.open()))
    assert [r["source"] for r in rows] == inputs
    want = {r["source"]: r for r in rows_of(reference["rows"], set(inputs))}
    assert all(float(r["score"]) == want[r["source"]]["score"] for r in rows[:4])
    assert rows[4]["face"] == "" and rows[4]["error"].startswith("ImageLoadError")

    before = out.read_bytes()
    # the rerun skips the failed input, whose error row is kept: it must not exit 0 as a
    # clean job would (it did, saying only "nothing to analyse")
    assert main(args) == 1
    assert capsys.readouterr().err == (
        "nothing to analyse: all 5 inputs already done (1 of them failed in an earlier "
        f"run: error rows kept, --retry-errors analyses them again) -> {out}\n"
    )
    assert out.read_bytes() == before
    assert main([*args, "-q"]) == 1  # never a silent 1
    assert "1 of them failed in an earlier run" in capsys.readouterr().err

    good = [*inputs[:4], str(photo_set["root"] / photo_set["good"][4])]
    assert main(["batch", *good, *args[len(inputs) + 1 :]]) == 0  # the failed one not named
    assert "1 analysed (0 failed, 1 faces), 4 already done, in" in capsys.readouterr().err
    summary = batch.run(inputs, out=out, workers=0, stages=STAGES, retry_errors=True)
    assert (summary.skipped, summary.failed_before, summary.processed, summary.failed) == (
        4,
        0,
        1,
        1,
    )


def test_other_settings_redo_a_finished_output(photo_set, tmp_path) -> None:
    """A finished output run again with more stages is redone, not kept as done."""
    inputs = [str(photo_set["root"] / n) for n in photo_set["good"][:3]]
    out = tmp_path / "faces.jsonl"
    first = batch.run(inputs, out=out, workers=0, stages=("detect",))
    assert first.processed == 3
    before = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r.get("smile") is None for r in before)
    again = batch.run(inputs, out=out, workers=0, stages=("detect",))
    assert (again.skipped, again.processed) == (3, 0)

    redone = batch.run(inputs, out=out, workers=0, stages=("detect", "landmarks", "smile"))
    assert (redone.skipped, redone.processed) == (0, 3)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source"] for r in rows] == inputs  # replaced, not appended beside
    assert all(0.0 <= r["smile"] <= 1.0 for r in rows)
    assert {r["fingerprint"].split(";settings=")[0] for r in rows} == {
        r["fingerprint"].split(";settings=")[0] for r in before
    }  # same files, other settings
    assert rows[0]["fingerprint"] != before[0]["fingerprint"]


def test_cli_reports_bad_usage_in_one_line(tmp_path, capsys) -> None:
    assert main(["batch", "--out", str(tmp_path / "x.parquet")]) == 2
    assert main(["batch", str(tmp_path / "nothing-*.jpg"), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "no inputs" in err and "not 'json'" in err and "Traceback" not in err


def test_archive_members_give_the_rows_of_the_files(photo_set, worker, tmp_path) -> None:
    root = photo_set["root"]
    names = photo_set["good"][:3] + ["bad/empty.jpg"]
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:
        for name in names:
            zf.write(root / name, name)
    with tarfile.open(tmp_path / "photos.tar.gz", "w:gz") as tf:
        for name in names:
            tf.add(root / name, name)
    files = worker.process(expand_inputs([str(root / n) for n in names]))
    for archive in ("photos.zip", "photos.tar.gz"):
        items = expand_inputs([str(tmp_path / archive)])
        assert [i.source for i in items] == [f"{tmp_path / archive}::{n}" for n in names]
        members = worker.process(items)
        for file_rows, member_rows in zip(files, members, strict=True):
            strip = lambda rows: [  # noqa: E731
                {k: v for k, v in r.items() if k not in VOLATILE and k != "error"} for r in rows
            ]
            assert strip(member_rows) == strip(file_rows)
        assert "is empty" in members[-1][0]["error"] and archive in members[-1][0]["error"]


def _video(path: Path, frames: int = 12) -> None:
    from duchenne import data

    face = cv2.resize(data.astronaut(), (160, 160), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 160))
    for i in range(frames):
        writer.write(cv2.cvtColor(np.roll(face, i, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()


def test_videos_mixed_with_images(tmp_path) -> None:
    _video(tmp_path / "clip.avi")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    items = expand_inputs([str(tmp_path)])
    assert [(Path(i.source).name, i.kind) for i in items] == [
        ("broken.mp4", "video"),
        ("clip.avi", "video"),
    ]
    worker = BatchWorker(WorkerConfig(AnalyzerConfig(stages=("detect",)), video_fps=5.0))
    broken, clip = worker.process(items)
    assert broken[0]["error"].startswith("VideoOpenError") and broken[0]["face"] is None
    assert len(clip) == 6 and all(r["error"] is None for r in clip)
    assert [r["frame"] for r in clip] == [0, 2, 4, 6, 8, 10] and clip[0]["face"] == 0
    summary = BatchWorker(
        WorkerConfig(AnalyzerConfig(stages=("detect",)), video_summary=True)
    ).process(items[1:])
    (track,) = summary[0]
    assert track["face"] == 0 and track["n_frames"] == 6 and track["frames_analysed"] == 6
    json.dumps(track)  # JSON-safe


def test_video_rows_carry_no_face_as_image_rows_do(tmp_path) -> None:
    """``no_face``: false on face rows, true on the row of a video without a face, null
    when the input failed -- as on image rows, so one filter works on a mixed table."""
    _video(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(str(tmp_path / "blank.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (160, 160))  # fmt: skip
    for _ in range(4):
        writer.write(np.full((160, 160, 3), 128, np.uint8))
    writer.release()
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    items = expand_inputs([str(tmp_path / n) for n in ("clip.avi", "blank.avi", "broken.mp4")])
    for summary in (False, True):
        config = WorkerConfig(AnalyzerConfig(stages=("detect",)), video_summary=summary)
        clip, blank, broken = BatchWorker(config).process(items)
        assert clip and all(r["no_face"] is False and r["face"] == 0 for r in clip)
        assert [(r["face"], r["no_face"], r["error"]) for r in blank] == [(None, True, None)]
        assert broken[0]["no_face"] is None and broken[0]["error"].startswith("VideoOpenError")
        assert list(clip[0]).index("no_face") == list(clip[0]).index("face") + 1


def test_worker_survives_unexpected_exceptions(photo_set, worker, monkeypatch) -> None:
    from duchenne.io.image import load_image

    root = photo_set["root"]
    items = expand_inputs([str(root / n) for n in photo_set["good"][:3]])
    cursed = load_image(items[1].location)
    original = worker.analyzer.faces_in

    def faces_in(image):
        if np.array_equal(image, cursed):
            raise RuntimeError("boom")
        return original(image)

    monkeypatch.setattr(worker.analyzer, "faces_in", faces_in)
    rows = worker.process(items)
    errors = [r[0]["error"] for r in rows]
    assert errors[0] is None and errors[2] is None
    assert errors[1].startswith("AnalysisError: ") and "(RuntimeError: boom)" in errors[1]
    assert rows[0][0]["face"] == 0 and rows[2][0]["face"] == 0


def test_cli_odd_names_dot_tar_and_member_cap(photo_set, tmp_path, capsys) -> None:
    """A non-UTF-8 file name, a tar made with ``tar -C dir -cf x.tar .`` and an oversized
    zip member: every input is reported, nothing is lost, and a re-run has nothing left."""
    root, good = photo_set["root"], photo_set["good"]
    src = tmp_path / "in"
    src.mkdir()
    (src / "ok.jpg").write_bytes((root / good[0]).read_bytes())
    try:
        with open(os.fsencode(src) + b"/caf\xe9.jpg", "wb") as fh:
            fh.write((root / good[1]).read_bytes())
    except OSError:
        pytest.skip("this filesystem refuses non-UTF-8 names")
    with tarfile.open(src / "dot.tar", "w") as tf:
        tf.add(root / good[2], "./x.jpg")
    with zipfile.ZipFile(src / "big.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("huge.jpg", bytes(200_000))  # 200 kB declared, 200 bytes stored
    out = tmp_path / "faces.csv"
    args = ["batch", str(src), *map(str, src.glob("*.[tz]*")), "--out", str(out)]
    args += ["-j", "0", "-q", "--stages", "detect", "--max-member-mb", "0.1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "big.zip::huge.jpg: ImageTooLargeError" in err and "Traceback" not in err
    rows = {r["source"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert set(rows) == {
        f"{src}/ok.jpg",
        f"{src}/caf\\xe9.jpg",
        f"{src}/dot.tar::x.jpg",
        f"{src}/big.zip::huge.jpg",
    }
    found = [r for s, r in rows.items() if "big.zip" not in s]
    assert all(r["face"] != "" and r["error"] == "" for r in found)
    args.remove("-q")
    assert main(args) == 1  # nothing re-analysed, but the oversized member's error is kept
    assert "nothing to analyse: all 4 inputs already done (1 of them failed" in (
        capsys.readouterr().err
    )


def test_a_second_job_on_the_same_output_is_refused_up_front(photo_set, tmp_path, capsys) -> None:
    """Two jobs writing one --out lost rows silently; the second is now refused (exit 2)
    before it lists or writes anything, and the output is free again afterwards."""
    image = str(photo_set["root"] / photo_set["good"][0])
    out = tmp_path / "faces.csv"
    args = ["batch", image, "--out", str(out), "-j", "0", "-q", "--stages", "detect"]
    with OutputLock(out):  # what a running job holds
        with pytest.raises(BatchError, match="being written by another batch job"):
            batch.run([image], out=out, workers=0, stages=("detect",))
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("duchenne batch: ") and err.count("\n") == 1
        assert "only one job may write an output at a time" in err
        assert not out.exists() and not (tmp_path / "faces.csv.parts").exists()
    assert main(args) == 0
    assert [r["source"] for r in csv.DictReader(out.open())] == [image]
    assert not (tmp_path / "faces.csv.lock").exists()  # released (and removed) at the end


@pytest.mark.parametrize(
    "option",
    [
        ["--video-fps", "-1"],
        ["-j", "-1"],
        ["--max-member-mb", "0"],
        ["--max-video-member-mb", "-2"],
        ["--chunk-size", "0"],
        ["--part-size", "0"],
    ],
)
def test_bad_option_values_are_usage_errors(option, photo_set, tmp_path, capsys) -> None:
    image = str(photo_set["root"] / photo_set["good"][0])
    out = tmp_path / "faces.csv"
    with pytest.raises(SystemExit) as exit_:
        main(["batch", image, "--out", str(out), "-q", *option])
    assert exit_.value.code == 2
    assert option[0] in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "faces.csv.parts").exists()


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_an_existing_folder_is_not_an_output(extra, photo_set, tmp_path, capsys) -> None:
    image = str(photo_set["root"] / photo_set["good"][0])
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    for out in (str(victim), f"{tmp_path / 'new'}/"):
        with pytest.raises(SystemExit) as exit_:
            main(["batch", image, "--out", out, "-j", "0", "-q", *extra])
        assert exit_.value.code == 2 and "is a folder" in capsys.readouterr().err
    with pytest.raises(BatchError, match="is a folder"):
        batch.run([image], out=victim, workers=0, overwrite=bool(extra))
    assert [p.name for p in tmp_path.iterdir()] == ["victim"]
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]


def test_the_python_api_refuses_nonsensical_values(photo_set, tmp_path) -> None:
    image = str(photo_set["root"] / photo_set["good"][0])
    out = tmp_path / "faces.csv"
    for bad in (
        {"workers": -1},
        {"video_fps": -1.0},
        {"video_fps": 0},
        {"video_fps": float("nan")},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            batch.run([image], out=out, **bad)
    for cap in (0, -5, 0.5, float("inf")):
        with pytest.raises(ValueError, match="image_bytes"):
            MemberLimits(image_bytes=cap)
    assert MemberLimits(image_bytes=1).image_bytes == 1
    assert not out.exists()


def test_error_column_names_the_input_as_the_source_column_does(
    worker, tmp_path, monkeypatch
) -> None:
    """Local files are read at their absolute path and archive videos from a temporary
    copy; the error must spell the input as ``source`` does."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.jpg").write_bytes(b"")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with zipfile.ZipFile(tmp_path / "v.zip", "w") as zf:
        zf.writestr("in/clip.mp4", b"not a video either")
    items = expand_inputs(["bad/empty.jpg", "broken.mp4", "v.zip", "missing.jpg"])
    assert items[0].location == str(tmp_path / "bad" / "empty.jpg")  # what the worker reads
    errors = [rows[0]["error"] for rows in worker.process(items)]
    assert errors[0] == "ImageLoadError: bad/empty.jpg is empty (0 bytes)"
    assert errors[1].startswith("VideoOpenError: broken.mp4: cannot open")
    assert errors[2].startswith("VideoOpenError: v.zip::in/clip.mp4: cannot open")
    assert errors[3] == "ImageLoadError: missing.jpg: no such file"
    assert not any(str(tmp_path) in e or "duchenne-video-" in e for e in errors)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_corrupt_model_file_is_one_clean_line(workers, photo_set, tmp_path, capsys) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    image = str(photo_set["root"] / photo_set["good"][0])
    out = tmp_path / "faces.csv"
    assert main(["batch", image, "--out", str(out), "-q", "-j", workers, "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("duchenne batch: ") and err.count("\n") == 1
    assert f"{bad}: onnxruntime cannot load this model file" in err
    assert "[ONNXRuntimeError]" not in err and not out.exists()


def test_a_run_stopped_before_any_result_is_not_said_to_be_all_done() -> None:
    """Ctrl-C while the workers started: the summary said "nothing to analyse: all 60
    inputs already done; interrupted with 60 left"."""
    summary = batch.BatchSummary(None, "csv", "local", 2, inputs=60, skipped=0, interrupted=True)
    text = summary.describe()
    assert "nothing to analyse" not in text
    assert text.startswith("0 analysed") and "interrupted with 60 left" in text
    done = batch.BatchSummary(None, "csv", "local", 0, inputs=60, skipped=60)
    assert done.describe() == "nothing to analyse: all 60 inputs already done"


def test_an_output_that_cannot_be_written_is_one_line_naming_it(
    photo_set, tmp_path, monkeypatch, capsys
) -> None:
    """``PermissionError: [Errno 13] Permission denied: 'ro/x.csv.lock'`` (exit 1) named
    the lock file; now the output given, and exit 2 as for any unusable output."""
    import errno

    from tests.helpers import refuse_os_open

    monkeypatch.chdir(tmp_path)
    photo = str(photo_set["root"] / photo_set["good"][0])
    refuse_os_open(monkeypatch, errno.EROFS, lambda path, flags: bool(flags & os.O_CREAT))
    code = main(["batch", photo, "--out", "ro/x.csv", "-j", "0", "-q", "--stages", "detect"])
    monkeypatch.undo()
    assert code == 2
    assert capsys.readouterr().err == (
        "duchenne batch: cannot write ro/x.csv: Read-only file system\n"
    )


def test_an_output_name_too_long_for_the_file_system_is_one_line(
    photo_set, tmp_path, monkeypatch, capsys
) -> None:
    """A 300-character output name made ``Path.is_dir`` raise ``OSError: [Errno 36] File
    name too long`` (exit 1, the whole name twice); it is an unwritable output now."""
    monkeypatch.chdir(tmp_path)
    photo = str(photo_set["root"] / photo_set["good"][0])
    name = "b" * 300 + ".csv"
    code = main(["batch", photo, "--out", name, "-j", "0", "-q", "--stages", "detect"])
    assert code == 2
    assert capsys.readouterr().err == f"duchenne batch: cannot write {name}: File name too long\n"
