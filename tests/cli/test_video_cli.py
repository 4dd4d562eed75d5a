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
    with pytest.raises(SystemExit, match="needs --output"):
        main(["video", str(clip.path), "-q", "--format", "csv"])


def test_video_without_a_face_says_so_unless_quiet(tmp_path: Path, capsys) -> None:
    from tests.video_factory import cheap_frames, write_video

    clip = write_video(tmp_path / "wall.avi", cheap_frames(6, (160, 120)), 10.0)
    assert main(["video", str(clip), "--threads", "1", "--stages", "detect"]) == 0
    err = capsys.readouterr().err
    assert f"duchenne video: no face found in {clip}" in err
    assert main(["video", str(clip), "--threads", "1", "--stages", "detect", "-q"]) == 0
    assert "no face found" not in capsys.readouterr().err
