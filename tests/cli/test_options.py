"""The output-file flags every command shares: ``-`` for stdout, folders refused up front."""

from __future__ import annotations

import json

import pytest

from duchenne import data
from duchenne.cli.main import build_parser, main

ASTRONAUT = str(data.path("astronaut.jpg"))


def test_analyze_dash_output_is_stdout_not_a_file_named_dash(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["analyze", ASTRONAUT, "-q", "--stages", "detect", "-o", "-", "--format", "jsonl"]
    assert main(args) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["face"] == 0
    assert list(tmp_path.iterdir()) == []


def test_evaluate_dash_output_is_stdout() -> None:
    args = build_parser().parse_args(["evaluate", "--model", "m", "--data", "d", "-o", "-"])
    assert args.output is None


@pytest.mark.parametrize(
    "args",
    [
        ["video", "clip.mp4", "-o", "-"],  # stdout carries the summary
        ["video", "clip.mp4", "--summary", "-"],
        ["batch", ASTRONAUT, "--out", "-"],  # a resumable file, never a stream
    ],
)
def test_dash_where_stdout_cannot_take_the_output_is_usage_error(
    args, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2 and "'-' (stdout)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["analyze", "video", "batch", "evaluate"])
def test_an_output_that_is_a_folder_is_refused_before_any_work(command, tmp_path, capsys):
    """analyze used to analyse every photo and only then fail to write (exit 1)."""
    head = {
        "analyze": ["analyze", ASTRONAUT, "--format", "json", "-o"],
        "video": ["video", "clip.mp4", "-o"],
        "batch": ["batch", ASTRONAUT, "--out"],
        "evaluate": ["evaluate", "--model", "m", "--data", "d", "-o"],
    }[command]
    with pytest.raises(SystemExit) as info:
        main([*head, str(tmp_path)])
    assert info.value.code == 2 and "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "head",
    [
        ["analyze", ASTRONAUT, "--draw"],
        ["analyze", ASTRONAUT, "--crops"],
        ["video", "clip.mp4", "--plot"],
        ["video", "clip.mp4", "--best"],
        ["evaluate", "--model", "m", "--data", "d", "--plots"],
    ],
)
@pytest.mark.parametrize("below", [False, True], ids=["file", "below-a-file"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(head, below, tmp_path, capsys):
    """It failed at the first file written: analyze after analysing (exit 1, half a JSON
    array on stdout), video with a warning only (exit 0, the folder listed as written)."""
    blocker = tmp_path / "faces.csv"
    blocker.write_text("kept")
    with pytest.raises(SystemExit) as info:
        main([*head, str(blocker / "sub" if below else blocker)])
    assert info.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "kept"


def test_an_output_file_below_a_file_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "faces.csv").write_text("kept")
    with pytest.raises(SystemExit) as info:
        main(["analyze", ASTRONAUT, "-o", str(tmp_path / "faces.csv" / "x.json")])
    assert info.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err


def test_video_draw_suffix_is_a_usage_error(tmp_path, capsys) -> None:
    """Refused before the models load or the video opens (it was exit 1 from the writer)."""
    with pytest.raises(SystemExit) as info:
        main(["video", "missing.mp4", "--draw", str(tmp_path / "out.txt")])
    assert info.value.code == 2 and "must end in" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("word", "tile"), [(None, "auto"), ("auto", "auto"), ("on", True), ("off", False)]
)
def test_tiles_flag_sets_the_analyzer_tile_option(word, tile) -> None:
    """``--tiles off`` gives back the untiled speed of a small photo (its small faces
    missed), ``on`` tiles every image and video frame."""
    from duchenne.cli.options import config_from_args

    argv = ["analyze", ASTRONAUT] + ([] if word is None else ["--tiles", word])
    assert config_from_args(build_parser().parse_args(argv)).tile == tile


def test_tiles_off_misses_the_small_faces_tiles_find(tmp_path, capsys) -> None:
    """The astronaut at 512, 256 and 128 px on a 1024x512 canvas: three faces with tiles,
    the big one alone without."""
    import cv2
    import numpy as np

    photo = cv2.imread(ASTRONAUT)
    canvas = np.zeros((512, 1024, 3), np.uint8)
    x = 0
    for side in (512, 256, 128):
        canvas[512 - side :, x : x + side] = cv2.resize(photo, (side, side), cv2.INTER_AREA)
        x += side
    path = tmp_path / "collage.png"
    cv2.imwrite(str(path), canvas)
    counts = {}
    for word in ("auto", "off"):
        args = ["analyze", str(path), "-q", "--stages", "detect", "--format", "json"]
        assert main([*args, "--tiles", word]) == 0
        counts[word] = len(json.loads(capsys.readouterr().out)[0]["faces"])
    assert counts == {"auto": 3, "off": 1}
