"""``OnnxModel.run_chunked``: calls of any size give the outputs of one call."""

from __future__ import annotations

import numpy as np

from duchenne.face.detector import FaceDetector
from duchenne.face.landmarks import FaceMesh, FaceRoi
from duchenne.models.registry import create_model
from duchenne.models.session import IMAGE_BATCH


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
