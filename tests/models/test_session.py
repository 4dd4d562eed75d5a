"""``OnnxModel.run_chunked``: calls of any size give the outputs of one call; a file
onnxruntime cannot load is a typed one-line error."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.errors import DuchenneError, UnrecognizedModelError
from duchenne.face.detector import FaceDetector
from duchenne.face.landmarks import FaceMesh, FaceRoi
from duchenne.models.registry import create_model, get_model_cfg
from duchenne.models.session import IMAGE_BATCH, OnnxModel


def test_chunked_calls_equal_one_call() -> None:
    model = create_model("face_detection_short_range", threads=1)
    x = np.random.default_rng(0).uniform(-1, 1, (5, 128, 128, 3)).astype(np.float32)
    whole = model(x)
    for size in (1, 2, 5, 8):
        parts = model.run_chunked(x, size)
        assert parts.keys() == whole.keys()
        for name in whole:
            np.testing.assert_allclose(parts[name], whole[name], atol=1e-4)


def test_cpu_runs_image_models_one_item_per_call() -> None:
    assert create_model("face_landmark", threads=1).image_batch == IMAGE_BATCH["cpu"] == 1


def test_face_mesh_on_several_faces_equals_each_alone() -> None:
    image = np.random.default_rng(1).integers(0, 255, (240, 320, 3), np.uint8)
    rois = [FaceRoi(100, 100, 150, 0.0), FaceRoi(200, 120, 90, 0.3), FaceRoi(160, 160, 60, -0.2)]
    mesh = FaceMesh(threads=1)
    points, presence = mesh(image, rois)
    for i, roi in enumerate(rois):
        alone, p = mesh(image, [roi])
        np.testing.assert_allclose(points[i], alone[0], atol=1e-3)
        np.testing.assert_allclose(presence[i], p[0], atol=1e-5)


def test_detector_windows_one_by_one_equal_a_batch() -> None:
    det = FaceDetector("full", threads=1)
    run = det.tile_runner
    image = np.random.default_rng(2).integers(0, 255, (300, 400, 3), np.uint8)
    windows = [(image[:200, :200], 0, 0), (image[100:, 150:], 150, 100)]
    single = run.many(windows, min_score=0.0)
    run.model.device = "cuda"  # the batched path, still on the CPU provider
    try:
        batched = run.many(windows, min_score=0.0)
    finally:
        run.model.device = "cpu"
    for a, b in zip(single, batched, strict=True):
        np.testing.assert_allclose(a.score, b.score, atol=1e-4)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"garbage, not a protobuf", "INVALID_PROTOBUF"),
        (b"", "INVALID_ARGUMENT"),
        (None, "INVALID_PROTOBUF"),
    ],
)
def test_a_file_onnxruntime_cannot_load_is_a_typed_one_line_error(tmp_path, content, code) -> None:
    path = tmp_path / "model.onnx"
    if content is None:  # a truncated copy of a real model
        content = get_model_cfg("face_landmark").path.read_bytes()[:4000]
    path.write_bytes(content)
    for make in (OnnxModel, create_model):
        with pytest.raises(UnrecognizedModelError) as err:
            make(path)
        text = str(err.value)
        assert text.startswith(f"{path}: onnxruntime cannot load this model file ({code}: ")
        assert "\n" not in text and "[ONNXRuntimeError]" not in text
        assert isinstance(err.value, DuchenneError)
