"""``duchenne enhance``: writes the happier photo, prints before -> after, clear one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from duchenne import data
from duchenne.cli.main import main


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("enhance")
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(root / "astronaut.png")
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(root / "blank.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return root


def test_writes_photo_and_prints_change(photos, tmp_path, capsys) -> None:
    out = tmp_path / "happier.jpg"
    code = main(["enhance", str(photos / "astronaut.png"), str(out), "--amount", "0.6"])
    printed = capsys.readouterr().out
    assert code == 0
    result = np.asarray(Image.open(out))
    assert result.shape == (512, 512, 3)
    assert "amount 0.6" in printed and "lip_corner_elev" in printed and "smile_score" in printed
    face_line = next(line for line in printed.splitlines() if line.startswith("0 "))
    before, after = (float(v) for v in face_line.split()[5:8:2])  # lip_corner_elev before -> after
    assert after > before


def test_amount_zero_png_is_identical(photos, tmp_path) -> None:
    out = tmp_path / "same.png"
    assert main(["enhance", str(photos / "astronaut.png"), str(out), "--amount", "0"]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), data.astronaut())


def test_transparent_png_keeps_its_alpha(photos, tmp_path) -> None:
    """At --amount 0 a transparent PNG comes back identical (alpha and the RGB hidden
    under it) as PNG and WebP; JPEG has no alpha and gets it composited on white."""
    rgba = np.dstack([data.astronaut(), np.full((512, 512), 255, np.uint8)])
    rgba[:, :80, 3] = 0
    rgba[:, :80, :3] = (0, 0, 255)
    rgba[:, 80:120, 3] = 100
    src = tmp_path / "transparent.png"
    Image.fromarray(rgba).save(src)
    for name in ("same.png", "same.webp", "same.jpg"):
        assert main(["enhance", str(src), str(tmp_path / name), "--amount", "0"]) == 0
    for name in ("same.png", "same.webp"):
        with Image.open(tmp_path / name) as im:
            assert im.mode == "RGBA" and np.array_equal(np.asarray(im), rgba), name
    with Image.open(tmp_path / "same.jpg") as im:
        assert im.mode == "RGB" and np.asarray(im)[5:75, 5:75].min() > 240  # white, not blue
    assert main(["enhance", str(src), str(tmp_path / "happier.png"), "--amount", "0.7"]) == 0
    happier = np.asarray(Image.open(tmp_path / "happier.png"))
    assert np.array_equal(happier[..., 3], rgba[..., 3])
    assert (happier[..., :3] != rgba[..., :3]).any()


def test_corrupt_model_file_is_one_clean_line(photos, tmp_path, capsys) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07 definitely not a model")
    out = tmp_path / "out.jpg"
    code = main(["enhance", str(photos / "astronaut.png"), str(out), "--model", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "[ONNXRuntimeError]" not in err
    assert err.startswith(f"duchenne enhance: UnrecognizedModelError: {bad}: ")
    assert not out.exists()


def test_json_output(photos, tmp_path, capsys) -> None:
    out = tmp_path / "happier.png"
    code = main(["enhance", str(photos / "astronaut.png"), str(out), "--json", "--face", "0"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["amount"] == 0.5
    (face,) = doc["faces"]
    assert face["enhanced"] and face["mouth_width_after"] > face["mouth_width_before"]


def test_json_box_reads_as_analyze_json(photos, tmp_path, capsys) -> None:
    """The box is ``{x1, y1, x2, y2}`` as in ``duchenne analyze`` JSON (it was a list)."""
    photo = str(photos / "astronaut.png")
    assert main(["analyze", photo, "-q", "--format", "json"]) == 0
    analyzed = json.loads(capsys.readouterr().out)[0]["faces"][0]["box"]
    assert main(["enhance", photo, str(tmp_path / "out.png"), "--json"]) == 0
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    assert face["box"] == analyzed and set(analyzed) == {"x1", "y1", "x2", "y2"}


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("missing.jpg", [], "missing.jpg: no such file"),
        ("broken.jpg", [], "broken.jpg"),
        ("blank.png", [], "no face"),
        ("astronaut.png", ["--face", "4"], "face 4 does not exist"),
    ],
)
def test_bad_input_one_line_exit_1(photos, tmp_path, capsys, name, extra, message) -> None:
    out = tmp_path / "out.jpg"
    code = main(["enhance", str(photos / name), str(out), *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("duchenne enhance:")]
    assert code == 1 and len(lines) == 1 and message in lines[0]
    assert "Traceback" not in err and not out.exists()


def test_bad_output_name_exit_2(photos, tmp_path, capsys) -> None:
    """``.gif`` is not an output format (``.jpg``, ``.jpeg``, ``.png``, ``.webp`` are)."""
    code = main(["enhance", str(photos / "astronaut.png"), str(tmp_path / "out.gif")])
    assert code == 2 and "out.gif" in capsys.readouterr().err


@pytest.mark.parametrize("amount", ["1.5", "-0.1", "lots"])
def test_amount_out_of_range_is_a_usage_error(photos, tmp_path, amount) -> None:
    with pytest.raises(SystemExit) as info:
        main(
            ["enhance", str(photos / "astronaut.png"), str(tmp_path / "o.jpg"), "--amount", amount]
        )
    assert info.value.code == 2


@pytest.mark.parametrize("quality", ["0", "101", "high"])
def test_quality_out_of_range_is_a_usage_error(photos, tmp_path, capsys, quality) -> None:
    """Checked by the parser like every number flag (``io.argtypes``), before any model loads."""
    with pytest.raises(SystemExit) as info:
        main(
            [
                "enhance",
                str(photos / "astronaut.png"),
                str(tmp_path / "o.jpg"),
                "--quality",
                quality,
            ]
        )
    assert info.value.code == 2 and "argument --quality: " in capsys.readouterr().err


@pytest.mark.parametrize("link", [False, True], ids=["same-name", "symlink"])
def test_writing_over_the_input_photo_is_refused(link, tmp_path, capsys) -> None:
    """The original would be lost for good (`analyze --draw` refuses the same): exit 2,
    the photo untouched. It used to be replaced by its enhanced copy without a word."""
    photo = tmp_path / "photo.jpg"
    Image.fromarray(data.astronaut()).save(photo)
    before = photo.read_bytes()
    output = photo
    if link:
        output = tmp_path / "link.jpg"
        output.symlink_to(photo)
    assert main(["enhance", str(photo), str(output)]) == 2
    assert "would replace the input photo" in capsys.readouterr().err
    assert photo.read_bytes() == before


@pytest.mark.parametrize("face", ["-1", "first"])
def test_face_number_that_is_no_face_number_is_a_usage_error(
    photos, tmp_path, capsys, face
) -> None:
    """Faces count from 0: ``--face -1`` was taken, the models loaded and the photo was
    analysed before it failed as "face -1 does not exist" (exit 1)."""
    with pytest.raises(SystemExit) as info:
        main(["enhance", str(photos / "astronaut.png"), str(tmp_path / "o.jpg"), "--face", face])
    assert info.value.code == 2 and "argument --face: " in capsys.readouterr().err
