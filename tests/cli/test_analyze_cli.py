"""``duchenne analyze``: formats, drawing, demo, and per-file errors with a non-zero exit."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from duchenne import data
from duchenne.cli.main import main


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with two good photos and every kind of bad file, plus a nested folder."""
    root = tmp_path_factory.mktemp("photos")
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(root / "a.jpg", quality=90)
    (root / "nested").mkdir()
    Image.fromarray(astronaut[:, ::-1]).save(root / "nested" / "b.png")
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("hello, not a picture")
    good = (root / "a.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "doc.pdf.jpg").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    return root


BAD = {"empty.jpg", "text.png", "truncated.jpg", "doc.pdf.jpg"}


def test_folder_json_reports_bad_files_and_keeps_good(photos, tmp_path, capsys) -> None:
    out = tmp_path / "faces.json"
    code = main(
        [
            "analyze",
            str(photos),
            "--output",
            str(out),
            "--quiet",
            "--stages",
            "detect,landmarks,geometry",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    docs = json.loads(out.read_text())
    by_name = {d["image"]["source"].rsplit("/", 1)[-1]: d for d in docs}
    assert set(by_name) == BAD | {"a.jpg", "b.png"}
    for name in BAD:
        assert "error" in by_name[name] and by_name[name]["error"]["type"].endswith("Error")
        assert f"{name}:" in err
    assert len(by_name["a.jpg"]["faces"]) == 1 and len(by_name["b.png"]["faces"]) == 1
    assert "4 of 6 input(s) failed" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_tabular_formats_one_row_per_face(photos, tmp_path, fmt) -> None:
    out = tmp_path / f"faces.{fmt}"
    code = main(
        [
            "analyze",
            str(photos / "a.jpg"),
            str(photos / "empty.jpg"),
            "-o",
            str(out),
            "-q",
            "--stages",
            "detect,landmarks,geometry",
        ]
    )
    assert code == 1
    if fmt == "csv":
        rows = list(csv.DictReader(out.open()))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
    assert len(rows) == 2
    face = next(r for r in rows if r["source"].endswith("a.jpg"))
    assert float(face["box.x1"]) > 100 and "geometry.lip_corner_elevation" in face
    failed = next(r for r in rows if r["source"].endswith("empty.jpg"))
    assert "empty" in failed["error"]


def test_draw_writes_annotated_images(photos, tmp_path) -> None:
    code = main(
        [
            "analyze",
            str(photos / "a.jpg"),
            "--draw",
            str(tmp_path / "drawn"),
            "-q",
            "--format",
            "jsonl",
        ]
    )
    assert code == 0
    drawn = np.asarray(Image.open(tmp_path / "drawn" / "a.jpg"))
    assert drawn.shape == (512, 512, 3)
    assert np.abs(drawn.astype(int) - data.astronaut().astype(int)).sum() > 0


def test_glob_and_no_inputs(photos, capsys) -> None:
    assert main(["analyze", str(photos / "nested" / "*.png"), "-q", "--stages", "detect"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["faces"]
    assert main(["analyze"]) == 2


def test_installed_entry_point_demo() -> None:
    """The console script runs the bundled demo and prints one face (as the README says)."""
    exe = shutil.which("duchenne") or None
    cmd = [exe] if exe else [sys.executable, "-m", "duchenne.cli.main"]
    proc = subprocess.run(
        [*cmd, "analyze", "--demo", "--format", "json"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc) == 1 and len(doc[0]["faces"]) == 1
    assert doc[0]["image"]["source"].endswith("astronaut.jpg")


def test_demo_shows_52_blendshapes_unless_stages_given(capsys) -> None:
    assert main(["analyze", "--demo", "-q"]) == 0
    face = json.loads(capsys.readouterr().out)[0]["faces"][0]
    assert len(face["blendshapes"]) == 52 and face["blendshapes"]["mouthSmileLeft"] > 0.5
    assert main(["analyze", "--demo", "-q", "--stages", "detect,landmarks"]) == 0
    assert "blendshapes" not in json.loads(capsys.readouterr().out)[0]["faces"][0]


def test_demo_adds_the_example_to_the_inputs_given(capsys) -> None:
    hopper = str(Path(__file__).resolve().parents[1] / "data" / "grace_hopper.jpg")
    args = ["analyze", hopper, "--demo", "-q", "--stages", "detect", "--format", "json"]
    assert main(args) == 0
    sources = [Path(doc["image"]["source"]).name for doc in json.loads(capsys.readouterr().out)]
    assert sorted(sources) == ["astronaut.jpg", "grace_hopper.jpg"]


def test_help_lists_commands(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "analyze" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_printed_table_matches_written_file(photos, tmp_path, capsys, fmt) -> None:
    """Printing and writing give the same cells (flattened lists, null as empty, ...)."""
    args = ["analyze", str(photos / "a.jpg"), str(photos / "empty.jpg"), "-q", "--stages", "detect"]
    main([*args, "--format", fmt])
    printed = capsys.readouterr().out
    out = tmp_path / f"t.{fmt}"
    main([*args, "-o", str(out)])
    assert printed == out.read_bytes().decode()  # byte-identical, CRLF rows included
    if fmt == "csv":
        assert "keypoints.right_eye.0" in printed.splitlines()[0]


def test_draw_keeps_relative_paths_and_never_overwrites(tmp_path) -> None:
    """``a.jpg``, ``a.png`` and ``sub/a.jpg`` used to all become ``out/a.jpg``."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    face = data.astronaut()
    Image.fromarray(face).save(src / "a.jpg")
    Image.fromarray(face[:, ::-1]).save(src / "a.png")
    Image.fromarray(face[::2, ::2]).save(src / "sub" / "a.jpg")
    Image.fromarray(face).save(src / "a.webp")
    out = tmp_path / "drawn"
    args = ["analyze", str(src), "--draw", str(out), "-q", "--stages", "detect", "-o"]
    assert main([*args, str(tmp_path / "r.jsonl")]) == 0
    drawn = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert drawn == ["a.jpg", "a.png", "a.webp.jpg", "sub/a.jpg"]
    assert Image.open(out / "a.png").format == "PNG"
    assert Image.open(out / "sub" / "a.jpg").size == (256, 256)
    mirrored = np.asarray(Image.open(out / "a.png"))[300:, :, :].astype(int)
    assert np.abs(mirrored - face[300:, ::-1].astype(int)).max() == 0  # below the drawings


def test_draw_into_the_inputs_own_folder_is_refused_before_anything_is_written(
    tmp_path, capsys
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "a.jpg")
    before = (src / "a.jpg").read_bytes()
    assert main(["analyze", str(src), "--draw", str(src), "-q", "--stages", "detect"]) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert (src / "a.jpg").read_bytes() == before and sorted(os.listdir(src)) == ["a.jpg"]


def test_crops_of_photos_sharing_a_name_are_kept_apart(tmp_path, capsys) -> None:
    """``a.jpg`` and ``a.png`` used to write the same ``a_face0.jpg``."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "a.jpg")
    Image.fromarray(data.astronaut()[:, ::-1]).save(src / "a.png")
    out = tmp_path / "crops"
    assert main(["analyze", str(src), "--crops", str(out), "-q", "--format", "json"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a-2_face0.jpg", "a_face0.jpg"]
    assert "saved as a-2" in capsys.readouterr().err


def test_inputs_sharing_only_the_root_are_drawn_and_cropped_by_file_name(tmp_path) -> None:
    """``photo.jpg --demo --draw d/`` wrote ``d/tmp/.../photo.jpg`` and
    ``d/work/.../site-packages/duchenne/data/astronaut.jpg``: the inputs' common folder was
    ``/``. Such inputs keep their file name, ``-2`` added on a clash as before."""
    from duchenne.cli.analyze import _Cropper, _Drawer

    paths = [Path("/one/photo.jpg"), Path("/two/deep/photo.jpg"), Path("/two/b.webp")]
    drawn = _Drawer(tmp_path, paths).targets
    assert [drawn[p].relative_to(tmp_path).as_posix() for p in paths] == [
        "photo.jpg", "photo-2.jpg", "b.webp.jpg"]  # fmt: skip
    cropped = _Cropper(tmp_path, paths).targets
    assert [cropped[p].name for p in paths] == ["photo", "photo-2", "b.webp"]
    nested = _Drawer(tmp_path, [Path("/one/a/x.jpg"), Path("/one/b/x.jpg")]).targets
    assert sorted(t.relative_to(tmp_path).as_posix() for t in nested.values()) == [
        "a/x.jpg", "b/x.jpg"]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "fmt"), [("o.ndjson", "jsonl"), ("o.pq", "parquet"), ("o.txt", "text")]
)
def test_output_suffix_picks_the_format_as_video_and_batch_do(photos, tmp_path, name, fmt) -> None:
    out = tmp_path / name
    assert main(["analyze", str(photos / "a.jpg"), "-q", "--stages", "detect", "-o", str(out)]) == 0
    start = {"jsonl": b'{"', "parquet": b"PAR1", "text": str(photos).encode()}[fmt]
    assert out.read_bytes().startswith(start)


def test_unknown_output_suffix_and_bad_counts_are_usage_errors(photos, tmp_path, capsys) -> None:
    one = str(photos / "a.jpg")
    assert main(["analyze", one, "-q", "-o", str(tmp_path / "out.xyz")]) == 2
    assert "--format" in capsys.readouterr().err and not (tmp_path / "out.xyz").exists()
    for bad in (["--max-faces", "-1"], ["--max-faces", "0"], ["--threads", "-2"],
                ["--min-face-size", "-5"], ["--stages", "detect,foo"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main(["analyze", one, "-q", *bad])
        assert exc.value.code == 2, bad
        assert bad[0] in capsys.readouterr().err


def test_demo_with_stages_given_runs_only_those(capsys) -> None:
    assert main(["analyze", "--demo", "-q", "--stages", "detect,landmarks,geometry,smile"]) == 0
    assert "blendshapes" not in json.loads(capsys.readouterr().out)[0]["faces"][0]


def test_streams_in_chunks_and_draws_without_decoding_again(tmp_path, monkeypatch) -> None:
    """Decoded photos are released chunk by chunk (not all kept to the end) and --draw
    uses the decoded image instead of reading each file a second time."""
    import weakref

    from duchenne.analysis import analyzer as analyzer_module
    from duchenne.cli import analyze as analyze_module
    from duchenne.io.image import load_image

    small = data.astronaut()[::4, ::4]
    for i in range(11):
        Image.fromarray(np.roll(small, i, axis=1)).save(tmp_path / f"p{i}.jpg")
    alive: set[int] = set()
    counts = {"decoded_files": 0, "peak_alive": 0}

    def counting_load(source, **kwargs):
        image = load_image(source, **kwargs)
        if not isinstance(source, np.ndarray):
            counts["decoded_files"] += 1
        key = id(image)
        alive.add(key)
        weakref.finalize(image, alive.discard, key)
        counts["peak_alive"] = max(counts["peak_alive"], len(alive))
        return image

    monkeypatch.setattr(analyze_module, "load_image", counting_load)
    monkeypatch.setattr(analyzer_module, "load_image", counting_load)
    out = tmp_path / "out.csv"
    args = ["analyze", str(tmp_path), "-q", "--stages", "detect", "--draw", str(tmp_path / "d")]
    assert main([*args, "-o", str(out)]) == 0
    assert counts["decoded_files"] == 11  # once per photo, --draw included
    assert counts["peak_alive"] <= 2 * analyze_module.CHUNK  # a chunk (+ its working copies)
    assert len(list((tmp_path / "d").glob("*.jpg"))) == 11
    assert len(list(csv.DictReader(out.open()))) == 11


def test_non_utf8_file_name_keeps_every_result(tmp_path, capsys) -> None:
    """One undecodable file name used to lose the whole run (nothing written)."""
    import os

    Image.fromarray(data.astronaut()).save(tmp_path / "ok.jpg")
    try:
        os.link(tmp_path / "ok.jpg", os.fsencode(tmp_path) + b"/caf\xe9.jpg")
    except OSError:
        pytest.skip("this filesystem refuses non-UTF-8 names")
    out = tmp_path / "o.csv"
    assert main(["analyze", str(tmp_path), "-q", "--stages", "detect", "-o", str(out)]) == 0
    sources = [r["source"] for r in csv.DictReader(out.open(encoding="utf-8"))]
    assert sources == [f"{tmp_path}/caf\\xe9.jpg", f"{tmp_path}/ok.jpg"]
    assert main(["analyze", str(tmp_path), "-q", "--stages", "detect"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["image"]["source"] for d in docs] == sources


def test_text_summary_threshold_and_crops(photos, tmp_path, capsys) -> None:
    crops = tmp_path / "crops"
    args = ["analyze", str(photos / "a.jpg"), "--quiet", "--format", "text"]
    assert main([*args, "--crops", str(crops), "--smile-threshold", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{photos / 'a.jpg'} (512x512): 1 face(s)")
    assert "#0" in out and "det " in out and "AU12" in out
    (crop,) = crops.glob("a_face0.jpg")
    assert Image.open(crop).size == (224, 224)


def test_threshold_reaches_every_row(photos, tmp_path) -> None:
    out = tmp_path / "rows.csv"
    args = ["analyze", str(photos / "a.jpg"), "-q", "-o", str(out), "--smile-threshold", "0"]
    assert main(args) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["smile_threshold"] == "0.0"
    if row["smile"]:  # P(smile) >= 0 always
        assert row["smiling"] == "true"


def test_bad_threshold_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["analyze", "--demo", "--smile-threshold", "1.5"])
    assert info.value.code == 2 and "must be in [0, 1]" in capsys.readouterr().err


def test_emotion_prior_reaches_the_output(capsys) -> None:
    args = ["analyze", "--demo", "-q", "--stages", "detect,landmarks,smile"]
    results = {}
    for prior in ("natural", "balanced", "1,1,1,1,1,1,1,1"):
        assert main([*args, "--emotion-prior", prior]) == 0
        results[prior] = json.loads(capsys.readouterr().out)[0]
    assert results["natural"]["image"]["emotion_prior"] == "natural"
    assert results["1,1,1,1,1,1,1,1"]["image"]["emotion_prior"] == [0.125] * 8
    faces = {p: r["faces"][0] for p, r in results.items()}
    assert faces["natural"]["smile"] == faces["balanced"]["smile"]  # only emotions move
    # a uniform prior is the balanced one
    assert faces["balanced"]["emotions"] == faces["1,1,1,1,1,1,1,1"]["emotions"]
    # the astronaut's broad smile is happiness under both priors
    assert faces["natural"]["top_emotion"] == faces["balanced"]["top_emotion"] == "happiness"
    with pytest.raises(SystemExit) as info:
        main([*args, "--emotion-prior", "posed"])
    assert info.value.code == 2 and "emotion prior" in capsys.readouterr().err


def test_piped_output_is_json(photos) -> None:
    """Not a terminal (pytest captures stdout): JSON by default."""
    cmd = [sys.executable, "-m", "duchenne.cli.main", "analyze", str(photos / "a.jpg"), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["faces"][0]["id"] == 0


def test_no_face_notice_on_stderr_and_flag(tmp_path, capsys) -> None:
    """An image without a face: one stderr line naming it (none with -q), no_face in the output."""
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((240, 320, 3), 90, np.uint8)).save(blank)
    face = tmp_path / "face.jpg"
    Image.fromarray(data.astronaut()).save(face)
    assert main(["analyze", str(blank), str(face), "--stages", "detect"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("no face found") == 1
    assert f"duchenne analyze: no face found in {blank}\n" in captured.err
    docs = json.loads(captured.out)
    assert [d["no_face"] for d in docs] == [True, False]
    assert main(["analyze", str(blank), "-q", "--format", "csv", "--stages", "detect"]) == 0
    captured = capsys.readouterr()
    assert "no face" not in captured.err
    (row,) = csv.DictReader(captured.out.splitlines())
    assert row["no_face"] == "true"


def test_options_that_would_be_ignored_are_errors(photos, capsys) -> None:
    one = str(photos / "a.jpg")
    assert main(["analyze", one, "-q", "--crop", "--crops", "x"]) == 2
    assert "--crops" in capsys.readouterr().err
    assert main(["analyze", one, "-q", "--format", "text", "--landmarks"]) == 2
    assert "--landmarks" in capsys.readouterr().err


def test_a_pipeline_bug_on_one_photo_keeps_the_others(tmp_path, monkeypatch, capsys) -> None:
    """An unexpected failure names its file on stderr and exits 1; the other photo's
    result is written (it used to be an exit with empty output and an unnamed error)."""
    from duchenne.analysis.analyzer import Analyzer

    face = data.astronaut()
    Image.fromarray(face).save(tmp_path / "good.jpg")
    Image.fromarray(face[:300]).save(tmp_path / "odd.png")
    real = Analyzer.faces_in

    def faces_in(self, image):
        if image.shape[0] == 300:
            raise RuntimeError("simulated OpenCV assertion")
        return real(self, image)

    monkeypatch.setattr(Analyzer, "faces_in", faces_in)
    out = tmp_path / "r.csv"
    code = main(["analyze", str(tmp_path), "-q", "--stages", "detect", "-o", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'odd.png'}: AnalysisError" in err and "Traceback" not in err
    rows = {r["source"]: r for r in csv.DictReader(out.open())}
    assert rows[str(tmp_path / "good.jpg")]["face"] == "0"
    assert rows[str(tmp_path / "odd.png")]["error"].startswith("AnalysisError")


def test_text_footnote_explains_only_the_columns_shown() -> None:
    """``--stages detect,smile`` shows no AU6/AU12, yet the footnote explained them."""
    from duchenne.cli.analyze import format_text
    from duchenne.faces import Faces

    faces = Faces(
        np.array([[10, 10, 60, 60]], np.float32),
        np.array([0.9], np.float32),
        smile=np.array([0.8], np.float32),
        smile_score=np.array([8.0], np.float32),
        meta={"smile_threshold": 0.5, "width": 100, "height": 100},
    )
    text = format_text([Path("x.jpg")], [faces])
    assert "smiling = P(smile) >= 0.5; score 1-10; det = face detector confidence" in text
    assert "AU6" not in text
    faces.data.update(au6=np.array([0.2], np.float32), au12=np.array([0.7], np.float32))
    text = format_text([Path("x.jpg")], [faces])
    assert "AU6 0.20 AU12 0.70" in text and "AU6 / AU12 = cheek raise" in text


def test_text_summary_p_smile_agrees_with_the_smiling_decision() -> None:
    """P(smile) 0.4996 is not smiling at 0.5; printed at two decimals it read 0.50."""
    from duchenne.cli.analyze import format_text
    from duchenne.faces import Faces

    faces = Faces(
        np.array([[10, 10, 60, 60], [70, 10, 120, 60]], np.float32),
        np.array([0.9, 0.9], np.float32),
        smile=np.array([0.4996, 0.5], np.float32),
        smile_score=np.array([5.0, 5.0], np.float32),
        meta={"smile_threshold": 0.5, "width": 130, "height": 100},
    )
    lines = format_text([Path("x.jpg")], [faces], footnote=False).splitlines()
    assert "not smiling" in lines[1] and "P(smile) 0.4996" in lines[1]
    assert "not smiling" not in lines[2] and "P(smile) 0.5000" in lines[2]


def test_error_lines_name_the_file_once(tmp_path, capsys) -> None:
    """``error: x.svg: UnsupportedFormatError: x.svg: SVG ...`` named the file twice."""
    svg = tmp_path / "x.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    pattern = tmp_path / "none*.jpg"
    args = ["analyze", str(svg), str(pattern), "-q", "--stages", "detect", "--format", "text"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines()[:2] == [
        f"error: {svg}: UnsupportedFormatError: SVG files are not supported",
        f"error: {pattern}: ImageLoadError: no file matches this pattern",
    ]
    assert str(svg) not in captured.out  # once: on stderr


def test_an_upside_down_photo_reports_its_face_and_turn(tmp_path, capsys) -> None:
    """A photo upside down without an EXIF tag: its face, with ``rotation`` 180 in JSON and
    CSV (turn it so to make it upright); ``--no-rotations`` takes it as given."""
    path = tmp_path / "upside_down.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(data.astronaut(), 2))).save(path, quality=95)
    assert main(["analyze", str(path), "--stages", "detect", "--format", "json"]) == 0
    face = json.loads(capsys.readouterr().out)[0]["faces"][0]
    assert face["rotation"] == 180 and face["box"]["y1"] > 256  # in the photo's own pixels
    assert main(["analyze", str(path), "--stages", "detect", "--format", "csv"]) == 0
    row = next(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert row["rotation"] == "180" and row["no_face"] == "false"
    assert (
        main(["analyze", str(path), "--stages", "detect", "--format", "csv", "--no-rotations"]) == 0
    )
    captured = capsys.readouterr()
    row = next(csv.DictReader(captured.out.splitlines()))
    assert row["no_face"] == "true" and row["rotation"] == ""
    assert f"no face found in {path}" in captured.err


def test_faces_all_under_the_minimum_size_are_not_called_no_face(tmp_path, capsys) -> None:
    path = tmp_path / "face.jpg"
    Image.fromarray(data.astronaut()).save(path)
    assert main(["analyze", str(path), "--stages", "detect", "--min-face-size", "300"]) == 0
    err = capsys.readouterr().err
    assert "no face found" not in err
    assert f"1 face(s) found in {path}, all smaller than --min-face-size 300\n" in err


@pytest.mark.parametrize("name", ["x.json", "x.csv", "x.txt"])
def test_an_output_that_cannot_be_written_is_named_as_given(
    photos, tmp_path, monkeypatch, capsys, name
) -> None:
    """``PermissionError: ... '/abs/ro/.x.json.6b252a15.tmp'`` named the hidden temp file
    by a path the user never gave."""
    import errno

    from tests.helpers import refuse_os_open

    monkeypatch.chdir(tmp_path)
    refuse_os_open(monkeypatch, errno.EACCES, lambda path, flags: bool(flags & os.O_CREAT))
    code = main(["analyze", str(photos / "a.jpg"), "-o", f"ro/{name}", "-q", "--stages", "detect"])
    monkeypatch.undo()
    assert code == 1
    assert capsys.readouterr().err == (
        f"duchenne analyze: OutputError: cannot write ro/{name}: Permission denied\n"
    )


def test_text_summary_leaves_errors_to_stderr(photos, tmp_path, capsys) -> None:
    """At a terminal both streams reach one screen: each error showed twice, once in the
    summary on stdout and once on stderr. The machine formats keep their error records."""
    bad = photos / "text.png"
    args = ["analyze", str(photos / "a.jpg"), str(bad), "-q", "--stages", "detect"]
    assert main([*args, "--format", "text"]) == 1
    captured = capsys.readouterr()
    assert str(bad) not in captured.out and captured.out.startswith(f"{photos / 'a.jpg'} (")
    assert captured.err.count(str(bad)) == 1 and captured.err.startswith(f"error: {bad}: ")
    assert main([*args, "--format", "text", "-o", str(tmp_path / "s.txt")]) == 1
    assert str(bad) not in (tmp_path / "s.txt").read_text()  # -o x.txt holds what > x.txt does
    assert capsys.readouterr().err.count(str(bad)) == 1
    assert main([*args, "--format", "jsonl"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[1]["source"] == str(bad) and rows[1]["error"].startswith("ImageLoadError")
