"""``duchenne video`` and ``duchenne train-authenticity`` end to end on generated clips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
from PIL import Image

from duchenne.cli.main import main
from tests.video_factory import make_labeled_set, one_face_clip, truncate_file


def test_video_prints_a_summary_and_writes_every_output(tmp_path: Path, capsys) -> None:
    clip = one_face_clip()
    out = tmp_path / "out"
    code = main(
        [
            "video", str(clip.path), "--threads", "1", "-q",
            "--output", str(out / "frames.csv"),
            "--summary", str(out / "summary.json"),
            "--plot", str(out / "plots"),
            "--best", str(out / "best"),
            "--draw", str(out / "annotated.mp4"),
        ]
    )  # fmt: skip
    stdout = capsys.readouterr().out
    assert code == 0
    assert f"{clip.n_frames} frames analysed" in stdout and "1 face(s)" in stdout
    assert "face 0:" in stdout and "smile 1:" in stdout and "onset" in stdout
    assert "Duchenne marker:" in stdout and "genuineness*" in stdout
    assert "NOT validated" in stdout
    with open(out / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == clip.n_frames and rows[0]["face"] == "0"
    summary = json.loads((out / "summary.json").read_text())
    (track,) = summary["tracks"]
    assert len(track["episodes"]) == 1 and summary["complete"] is True
    assert Image.open(out / "plots" / "face_0.png").format == "PNG"
    assert Image.open(out / "best" / "face_0.jpg").size[0] > 50
    video = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == clip.n_frames
    video.release()
    try:
        import av
    except ImportError:
        pass
    else:  # with the video extra the annotated MP4 is H.264, which browsers play
        with av.open(str(out / "annotated.mp4")) as container:
            assert container.streams.video[0].codec_context.name == "h264"
        assert summary["outputs"]["video_codec"] == "libx264"
    assert not list(out.glob(".*partial*"))  # no temporary file left behind


def test_a_smile_on_from_the_first_frame_has_its_marker_not_measurable(tmp_path, capsys):
    """Smiling from the clip's first frame, the AU6 baseline was the smile itself: the
    summary printed "Duchenne marker: no (AU6 0.00)", a guess; it says "not measurable"
    now, and the JSON has null."""
    from tests.video_factory import SmileProfile, make_smile_video

    on = SmileProfile(start=-1.0, onset=0.5, apex=1.0, offset=0.5)  # falls from 0.5 to 1 s
    clip = make_smile_video(tmp_path / "on.avi", [on], fps=15, duration=2.0, size=(240, 180))
    summary = tmp_path / "summary.json"
    args = ["video", str(clip.path), "--threads", "1", "-q", "--summary", str(summary)]
    assert main([*args, "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "already smiling when the clip starts" in out
    assert "Duchenne marker: not measurable" in out and "AU6 0.00" not in out
    (track,) = json.loads(summary.read_text())["tracks"]
    first = track["episodes"][0]
    assert first["onset_duration"] == 0.0 and first["duchenne_marker"] is None
    assert first["duchenne"]["au6_index"] is None and track["duchenne_marker"] is None


def test_truncated_video_exits_1_and_keeps_the_rows(tmp_path: Path, capsys) -> None:
    cut = truncate_file(one_face_clip().path, tmp_path / "cut.avi", 0.5)
    rows = tmp_path / "frames.jsonl"
    code = main(["video", str(cut), "-q", "--threads", "1", "-o", str(rows)])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("duchenne video:")]
    assert len(errors) == 1 and "VideoDecodeError" in errors[0] and "cut.avi" in errors[0]
    assert "were kept" in errors[0] and "Traceback" not in captured.err
    kept = rows.read_text().splitlines()
    assert 20 <= len(kept) < one_face_clip().n_frames
    assert "[INCOMPLETE]" in captured.out


@pytest.mark.parametrize("name", ["missing.mp4", "empty.avi"])
def test_unreadable_video_is_one_clear_line(tmp_path: Path, capsys, name: str) -> None:
    path = tmp_path / name
    if name == "empty.avi":
        path.write_bytes(b"")
    code = main(["video", str(path), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"duchenne video: VideoOpenError: {path}" in err and "Traceback" not in err


def test_train_authenticity_end_to_end(tmp_path: Path, capsys) -> None:
    videos, labels = make_labeled_set(tmp_path / "data", fps=12, duration=1.6, size=(200, 150))
    model, report = tmp_path / "model.json", tmp_path / "report.json"
    args = ["train-authenticity", "--videos", str(videos), "--folds", str(labels), "-q"]
    args += ["--threads", "1", "--save", str(model), "--report", str(report)]
    args += ["--cache", str(tmp_path / "features.npz")]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "2 folds, 8 videos (4 spontaneous, 4 posed)" in stdout
    assert "| fold | train | test | accuracy dmarkers | accuracy fusion |" in stdout
    assert "mean ± std" in stdout and "describes this dataset only" in stdout
    content = json.loads(report.read_text())
    assert set(content["accuracy"]) == {"dmarkers", "fusion"}
    assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in content["accuracy"].values())
    assert content["failed_videos"] == {}
    provenance = json.loads(model.read_text())["provenance"]
    assert provenance["n_videos"] == 8 and "this dataset only" in provenance["reliability"]
    # the saved model is applied by `duchenne video`, which states where it came from
    args = ["video", str(one_face_clip().path), "-q", "--format", "text"]
    assert main([*args, "--authenticity-model", str(model)]) == 0
    stdout = capsys.readouterr().out
    assert "trained P(spontaneous)" in stdout and "this dataset only" in stdout


def test_train_authenticity_reports_a_bad_dataset_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "videos").mkdir()
    folds = tmp_path / "folds.json"
    folds.write_text(json.dumps([{"train": {"a": 0, "b": 1}, "test": {"c": 1}}]))
    code = main(["train-authenticity", "--videos", str(tmp_path / "videos"), "--folds", str(folds)])
    err = capsys.readouterr().err
    assert code == 1 and "DatasetError" in err and "missing" in err and "Traceback" not in err


def test_video_format_is_never_silently_ignored(tmp_path: Path, capsys) -> None:
    clip = one_face_clip()
    code = main(["video", str(clip.path), "-q", "--threads", "1", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["frames_analysed"] == clip.n_frames
    assert doc["sampling"] == "every frame" and doc["smile_threshold"] == 0.5
    # a table format without a file is a usage error (exit 2), as for `duchenne analyze`
    assert main(["video", str(clip.path), "-q", "--format", "csv"]) == 2
    assert "--format csv is a table format and needs --output" in capsys.readouterr().err
    assert main(["video", str(clip.path), "-q", "--format", "parquet"]) == 2


def test_video_without_a_face_says_so_unless_quiet(tmp_path: Path, capsys) -> None:
    from tests.video_factory import cheap_frames, write_video

    clip = write_video(tmp_path / "wall.avi", cheap_frames(6, (160, 120)), 10.0)
    assert main(["video", str(clip), "--threads", "1", "--stages", "detect"]) == 0
    err = capsys.readouterr().err
    assert f"duchenne video: no face found in {clip}" in err
    rows = tmp_path / "rows.csv"
    args = ["video", str(clip), "--threads", "1", "--stages", "detect", "-q", "-o", str(rows)]
    assert main(args) == 0
    assert "no face found" not in capsys.readouterr().err
    # no face, no row, but the header: the file is a table (pandas reads it)
    with open(rows, newline="") as fh:
        assert list(csv.reader(fh)) == [
            ["time", "frame", "face", "detected", "box.x1", "box.y1", "box.x2", "box.y2", "score"]
        ]


def test_a_face_seen_on_too_few_frames_is_counted_in_the_summary(tmp_path, capsys) -> None:
    """A clip of two frames with a face: its rows were in the table but the summary said
    "0 face(s)" and nothing else (the JSON had ``short_tracks_left_out``)."""
    from tests.video_factory import ONE_FACE, smile_frames, write_video

    clip = write_video(tmp_path / "two.avi", smile_frames(ONE_FACE, n_frames=2), 25.0)
    rows = tmp_path / "rows.csv"
    assert main(["video", str(clip), "-q", "--threads", "1", "-o", str(rows)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("0 face(s) (+1 seen on too few frames to summarise)"), first
    with open(rows, newline="") as fh:
        assert [r["face"] for r in csv.DictReader(fh)] == ["0", "0"]


def _exit_code(args: list[str]) -> int:
    """``main``'s exit status, whether it returns it or argparse exits."""
    try:
        return main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--every", "0"], "argument --every: must be >= 1, got 0"),
        (["--fps", "-1"], "argument --fps: must be > 0, got -1"),
        (["--fps", "nan"], "argument --fps: must be > 0"),
        (["--detect-every", "0"], "argument --detect-every: must be >= 1, got 0"),
        (["--max-frames", "0"], "argument --max-frames: must be >= 1, got 0"),
        (["--start", "-2"], "argument --start: must be finite and >= 0, got -2"),
        (["--start", "inf"], "argument --start: must be finite and >= 0, got inf"),
        (["--end", "0"], "argument --end: must be > 0"),
        (["--start", "3", "--end", "1"], "--end (1 s) must be after --start (3 s)"),
        (["--start", "2", "--end", "2"], "--end (2 s) must be after --start (2 s)"),
        (["--dmarkers", "--format", "text"], "--dmarkers goes into the JSON summary"),
        (["-o", "rows.csv", "--format", "text"], "--format text is for the summary"),
    ],
)
def test_bad_video_arguments_are_usage_errors(tmp_path, capsys, extra, message) -> None:
    """They were a ``ValueError`` after the models loaded: exit 1, a traceback with -v."""
    clip = one_face_clip().path
    assert _exit_code(["-v", "video", str(clip), "-q", "--threads", "1", *extra]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("flag", ["--draw", "--summary"])
def test_an_output_that_is_the_source_video_is_refused(tmp_path, capsys, flag) -> None:
    """``duchenne video clip.mp4 --draw clip.mp4`` replaced the video with its annotated
    copy (exit 0) once the analysis was done."""
    clip = tmp_path / "clip.avi"
    clip.write_bytes(one_face_clip().path.read_bytes())
    before = clip.read_bytes()
    same = tmp_path / "." / "clip.avi"  # another spelling of the same file
    assert _exit_code(["video", str(clip), "-q", flag, str(same)]) == 2
    assert "is the source video" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_start_past_the_end_of_the_clip_says_so(capsys) -> None:
    """It read as a decode failure ("VideoDecodeError ... were kept", [INCOMPLETE])."""
    clip = one_face_clip()
    code = main(["video", str(clip.path), "-q", "--threads", "1", "--start", "5"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    (line,) = captured.err.splitlines()
    assert line == (
        f"duchenne video: VideoOpenError: {clip.path}: start 5.00 s is past the end of the "
        "video (3.00 s long); nothing to analyse"
    )


def test_not_a_video_is_one_line_without_opencv_warnings(tmp_path) -> None:
    """OpenCV's ``[ WARN:0@0.40] global cap.cpp:212 open VIDEOIO(FFMPEG) ...`` came first,
    even with -q. Run as the user does, in a fresh process: OpenCV and FFmpeg write to the
    process's stderr, and FFmpeg reads its log level once, when the first video opens."""
    import os
    import subprocess
    import sys

    path = tmp_path / "text.mp4"
    path.write_text("a text file named like a video\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    done = subprocess.run(
        [sys.executable, "-m", "duchenne.cli.main", "video", str(path), "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"duchenne video: VideoOpenError: {path}: cannot open as a video (not a video, "
        "unsupported codec, or truncated/corrupt header)"
    ]


def test_detect_and_smile_stages_give_the_episodes_of_the_smiling_rows(tmp_path, capsys):
    """``--stages detect,smile`` wrote smiling rows but reported "0 smile episode(s)"."""
    clip = one_face_clip()
    rows, summary = tmp_path / "rows.csv", tmp_path / "summary.json"
    args = ["video", str(clip.path), "-q", "--threads", "1", "--stages", "detect,smile"]
    assert main([*args, "--every", "3", "-o", str(rows), "--summary", str(summary)]) == 0
    out = capsys.readouterr().out
    with open(rows, newline="") as fh:
        table = list(csv.DictReader(fh))
    smiling = [float(r["time"]) for r in table if r["smiling"] == "true"]
    assert len(smiling) >= 5
    doc = json.loads(summary.read_text())
    (track,) = doc["tracks"]
    assert track["episodes"] and "P(smile) >= 0.5" in doc["episodes_from"]
    spans = [(e["start_time"], e["end_time"]) for e in track["episodes"]]
    assert all(any(a <= t <= b for a, b in spans) for t in smiling)
    for e in track["episodes"]:
        assert e["onset"] is None and e["duchenne_marker"] is None and e["genuineness"] is None
        assert e["peak_smile_score"] >= 5
    assert f"{len(spans)} smile episode(s)" in out and "0 smile episode(s)" not in out
    assert "not measured (they need the landmarks stage)" in out
    assert "genuineness*" not in out  # no heuristic score was printed


def test_detect_only_says_the_smile_stage_was_not_run(capsys) -> None:
    """``--stages detect`` printed "no smile model" as if none were installed; and
    ``--fps`` above the clip's rate printed the rate asked, not the one analysed."""
    clip = one_face_clip()
    args = ["video", str(clip.path), "-q", "--threads", "1", "--stages", "detect"]
    assert main([*args, "--fps", "1000", "--max-frames", "5", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert f"every frame, the source's {clip.fps:g} frames/s" in out
    assert "smile stage not run" in out and "no smile model" not in out
