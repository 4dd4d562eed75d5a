"""Blendshapes: converted-model parity, landmark subset and normalisation, stage on/off, schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from duchenne import Analyzer, analyze_video
from duchenne.analysis.config import normalize_stages
from duchenne.face.blendshapes import (
    BLENDSHAPE_NAMES,
    LANDMARKS_SUBSET,
    TIMELINE_CHANNELS,
    FaceBlendshapes,
    blendshape_input,
    timeline_channels,
)
from duchenne.face.landmarks import FaceRoi
from duchenne.io.image import load_image
from duchenne.models.registry import get_model_cfg

DATA = Path(__file__).resolve().parents[2] / "src" / "duchenne" / "data"
REFERENCE = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "blendshapes_reference.json").read_text()
)


@pytest.fixture(scope="module")
def stage() -> FaceBlendshapes:
    return FaceBlendshapes(threads=1)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load_image(DATA / "astronaut.jpg")


def _ref_coeffs() -> np.ndarray:
    return np.array([REFERENCE["blendshapes"][n] for n in BLENDSHAPE_NAMES], np.float32)


def test_constants_match_the_manifest():
    opts = get_model_cfg("face_blendshapes").graph_options
    assert tuple(opts["blendshape_names"]) == BLENDSHAPE_NAMES
    assert tuple(opts["landmarks_subset"]) == LANDMARKS_SUBSET
    assert len(set(LANDMARKS_SUBSET)) == 146
    assert LANDMARKS_SUBSET[-10:] == tuple(range(468, 478))  # the iris points


def test_shipped_onnx_matches_stored_tflite_outputs(stage):
    """The converted blendshape model on the stored TFLite input gives TFLite's output."""
    points = np.array(REFERENCE["points_146"], np.float32)[None]
    got = stage.model(points)["blendshapes"].reshape(-1)
    np.testing.assert_allclose(got, _ref_coeffs(), atol=1e-4)


def test_landmarks_subset_and_coefficients_on_a_known_face(stage, astronaut):
    """Whole path on the package photo: 478-point model on the stored ROI, subset, model."""
    roi = FaceRoi(*REFERENCE["roi_cx_cy_size_rotation"])
    coeffs, points = stage.from_rois(astronaut, [roi])
    ref_xy = np.array(REFERENCE["landmarks_478_xy"])
    assert np.abs(points[0, :, :2] - ref_xy).max() < 0.01  # pixels
    np.testing.assert_allclose(blendshape_input(ref_xy), REFERENCE["points_146"], atol=1e-3)
    np.testing.assert_allclose(coeffs[0], _ref_coeffs(), atol=1e-3)
    named = dict(zip(BLENDSHAPE_NAMES, coeffs[0], strict=True))
    assert named["mouthSmileLeft"] > 0.5 and named["mouthSmileRight"] > 0.5  # she smiles
    assert named["jawOpen"] < 0.2


def test_model_normalises_position_and_scale_itself(stage):
    """MediaPipe feeds image pixels; the model centres and scales them, so a face moved or
    resized gives the same coefficients (why crop pixels and image pixels agree)."""
    pts = np.array(REFERENCE["landmarks_478_xy"], np.float32)
    base = stage.coefficients(pts)
    np.testing.assert_allclose(stage.coefficients(pts * 2.5 + 40.0), base, atol=1e-4)
    squashed = pts * np.array([1.0, 0.6], np.float32)  # aspect ratio does matter
    assert np.abs(stage.coefficients(squashed) - base).max() > 0.05


def test_blendshape_input_rejects_468_points():
    with pytest.raises(ValueError, match="478"):
        blendshape_input(np.zeros((468, 3)))


def test_no_faces_gives_empty_arrays(stage, astronaut):
    coeffs, points = stage.from_rois(astronaut, [])
    assert coeffs.shape == (0, 52) and points.shape == (0, 478, 3)


def test_stage_implies_landmarks_and_is_opt_in():
    assert normalize_stages(["blendshapes"]) == ("detect", "landmarks", "blendshapes")
    default = Analyzer(threads=1)
    assert "blendshapes" not in default.stages and default.blendshape_stage is None


def test_stage_on_and_off_and_output_schema(astronaut):
    analyzer = Analyzer(stages=("detect", "landmarks", "blendshapes"), threads=1)
    faces = analyzer.faces_in(astronaut)
    assert faces.blendshapes is not None and faces.blendshapes.shape == (len(faces), 52)
    assert np.all((faces.blendshapes >= 0) & (faces.blendshapes <= 1))
    face = faces.to_dict()["faces"][0]
    assert list(face["blendshapes"]) == list(BLENDSHAPE_NAMES)
    record = faces.to_records()[0]
    assert all(f"blendshapes.{n}" in record for n in BLENDSHAPE_NAMES)
    assert faces.face(0).blendshapes["mouthSmileLeft"] == pytest.approx(
        float(faces.blendshapes[0, 44])
    )
    assert faces[[0]].blendshapes.shape == (1, 52)
    off = analyzer.with_options(stages=("detect", "landmarks")).faces_in(astronaut)
    assert off.blendshapes is None and "blendshapes" not in off.to_dict()["faces"][0]
    np.testing.assert_array_equal(off.landmarks, faces.landmarks)


def test_video_rows_and_timeline_carry_blendshapes(tmp_path):
    """Per-frame rows get the 52 columns; the AU6 of the generated smile raises eyeSquint."""
    import csv

    from tests.video_factory import ONE_FACE, one_face_clip

    analyzer = Analyzer(stages=("detect", "landmarks", "geometry", "blendshapes"), threads=1)
    rows_path = tmp_path / "rows.csv"
    result = analyze_video(
        analyzer, one_face_clip().path, output=rows_path, plot_dir=tmp_path / "plots"
    )
    rows = list(csv.DictReader(rows_path.open()))
    assert all(f"blendshapes.{n}" in rows[0] for n in BLENDSHAPE_NAMES)
    apex = rows[int(ONE_FACE[0].apex_start * 25) + 5]

    def squint(row):
        return float(row["blendshapes.eyeSquintLeft"]) + float(row["blendshapes.eyeSquintRight"])

    assert squint(apex) > squint(rows[0]) + 0.1
    assert Path(result.tracks[0].plot).stat().st_size > 0


def test_timeline_channels_average_left_and_right():
    coeffs = np.zeros(52)
    coeffs[BLENDSHAPE_NAMES.index("mouthSmileLeft")] = 0.8
    coeffs[BLENDSHAPE_NAMES.index("mouthSmileRight")] = 0.4
    coeffs[BLENDSHAPE_NAMES.index("jawOpen")] = 0.3
    out = dict(zip(TIMELINE_CHANNELS, timeline_channels(coeffs), strict=True))
    assert out == pytest.approx(
        {"mouthSmile": 0.6, "eyeSquint": 0.0, "eyeBlink": 0.0, "jawOpen": 0.3}
    )


def test_parquet_and_csv_columns(astronaut, tmp_path):
    """The 52 coefficients become ``blendshapes.<name>`` columns in written tables."""
    import pyarrow.parquet as pq

    from duchenne.faces import result_rows
    from duchenne.io.sinks import write_records

    analyzer = Analyzer(stages=("detect", "landmarks", "blendshapes"), threads=1)
    rows = result_rows("astronaut.jpg", analyzer.analyze(astronaut))
    for fmt in ("parquet", "csv"):
        path = write_records(rows, tmp_path / f"faces.{fmt}", format=fmt)
        if fmt == "parquet":
            table = pq.read_table(path)
            columns = table.column_names
            value = table.column("blendshapes.mouthSmileLeft")[0].as_py()
        else:
            import csv

            row = next(csv.DictReader(open(path)))
            columns, value = list(row), float(row["blendshapes.mouthSmileLeft"])
        assert all(f"blendshapes.{n}" in columns for n in BLENDSHAPE_NAMES)
        assert value == pytest.approx(rows[0]["blendshapes.mouthSmileLeft"], abs=1e-4)
