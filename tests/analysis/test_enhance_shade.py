"""The smile's shading layer: folds and highlights from the mesh, brightness only, inside the face."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from duchenne import Analyzer, data
from duchenne.analysis.enhance import DEFAULT_MODEL, enhance, face_frame_3d, warp_face
from duchenne.analysis.enhance_shade import DEFAULT_SHADING, shade_face, shading_layer
from duchenne.io.image import load_image
from duchenne.models.registry import default_smile_model
from tests.helpers import TEST_DATA

GEOMETRY_ONLY = dataclasses.replace(DEFAULT_MODEL, shading=None)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(threads=1)


@pytest.fixture(scope="module")
def grace_faces(analyzer: Analyzer):
    image = load_image(TEST_DATA / "grace_hopper.jpg")
    return image, analyzer.analyze(image).landmarks[0]


def _box(landmarks: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    lo, hi = landmarks[:, :2].min(0).astype(int) - 5, landmarks[:, :2].max(0).astype(int) + 5
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], shape[1]), min(hi[1], shape[0])


def test_layer_darkens_folds_and_lights_cheeks(grace_faces) -> None:
    """Nasolabial folds and lip corners get darker, the cheek apples lighter; sizes follow IOD."""
    image, lm = grace_faces
    frame = face_frame_3d(lm)
    box = _box(lm, image.shape)
    layer = shading_layer(lm[:, :2], frame.image_axes, box)
    x0, y0 = box[:2]

    def at(index: int) -> float:
        x, y = np.round(lm[index, :2] - (x0, y0)).astype(int)
        return float(layer[y, x])

    assert at(61) < -0.2 and at(291) < -0.2  # lip-corner dimples
    assert at(206) < -0.1 and at(426) < -0.1  # on the nasolabial folds
    assert at(50) > 0.05 and at(280) > 0.05  # cheek highlights
    assert abs(at(10)) < 1e-3 and abs(at(152)) < 1e-3  # forehead and chin: nothing
    # the same face twice as large gets the same layer, twice as large
    big = lm.copy()
    big[:, :2] *= 2
    big_layer = shading_layer(big[:, :2], face_frame_3d(big).image_axes, _box(big, (4000, 4000)))
    assert big_layer.min() == pytest.approx(layer.min(), abs=0.03)
    assert (big_layer < -0.05).sum() == pytest.approx(4 * (layer < -0.05).sum(), rel=0.1)


def test_shading_changes_brightness_only_inside_weight(grace_faces) -> None:
    """Every channel is scaled by the same factor (no colour cast); weight 0 -> pixel untouched."""
    image, lm = grace_faces
    frame = face_frame_3d(lm)
    box = x0, y0, x1, y1 = _box(lm, image.shape)
    weight = np.ones((y1 - y0, x1 - x0), np.float32)
    weight[:, : (x1 - x0) // 2] = 0.0  # the image-left half of the face may not change
    out = image.copy()
    changed = shade_face(out, lm[:, :2], frame.image_axes, 1.0, weight, box)
    assert changed > 500
    diff = np.any(out != image, axis=-1)
    assert not diff[:, : x0 + (x1 - x0) // 2].any() and not diff[y1:].any()
    src = image[diff].astype(np.float64)
    dst = out[diff].astype(np.float64)
    # ratios are equal up to rounding (0.5 / 40 per channel) where no channel is dark or clipped
    ok = (src.min(1) > 40) & (dst.max(1) < 255)
    ratio = dst[ok] / src[ok]
    assert ok.sum() > 500 and np.abs(ratio - ratio.mean(1, keepdims=True)).max() < 1.0 / 40


def test_shading_grows_with_amount(grace_faces) -> None:
    image, lm = grace_faces
    frame = face_frame_3d(lm)
    box = x0, y0, x1, y1 = _box(lm, image.shape)
    weight = np.ones((y1 - y0, x1 - x0), np.float32)
    change = []
    for amount in (0.0, 0.25, 0.5, 0.75, 1.0):
        out = image.copy()
        shade_face(out, lm[:, :2], frame.image_axes, amount, weight, box)
        change.append(np.abs(out.astype(int) - image).sum())
    assert change[0] == 0 and np.all(np.diff(change) > 0)


def test_warp_with_and_without_shading(grace_faces) -> None:
    """The default smile shades the warped face; ``shading=None`` is the bare warp."""
    image, lm = grace_faces
    bare, bare_record = warp_face(image, lm, 1.0, GEOMETRY_ONLY)
    shaded, record = warp_face(image, lm, 1.0)
    assert bare_record.shaded == 0 and record.shaded > 1000
    assert np.array_equal(bare_record.target, record.target)  # same geometry
    moved = record.target[61].round().astype(int)  # the dimple follows the moved lip corner
    patch = np.s_[moved[1] - 2 : moved[1] + 3, moved[0] - 2 : moved[0] + 3]
    assert shaded[patch].mean() < 0.85 * bare[patch].mean()
    assert DEFAULT_MODEL.shading is DEFAULT_SHADING


def test_shading_makes_the_smile_read_stronger(analyzer: Analyzer, grace_faces) -> None:
    """On the neutral portrait the smile model reads the shaded smile as stronger than the warp alone."""
    if default_smile_model() is None:
        pytest.skip("no smile model ships")
    image, _ = grace_faces
    bare = enhance(analyzer, image, 1.0, model=GEOMETRY_ONLY).changes()[0]
    full = enhance(analyzer, image, 1.0).changes()[0]
    assert full["smile_score_before"] < 3
    assert full["smile_score_after"] >= 6
    assert full["smile_score_after"] > bare["smile_score_after"]


def test_astronaut_unchanged_outside_face_with_shading(analyzer: Analyzer) -> None:
    """Shading adds no pixel outside the landmark hull."""
    import cv2

    image = data.astronaut()
    result = enhance(analyzer, image, 1.0, score=False)
    hull = np.zeros(image.shape[:2], np.uint8)
    pts = np.round(result.before.landmarks[0][:, :2]).astype(np.int32)
    cv2.fillConvexPoly(hull, cv2.convexHull(pts), 1)
    diff = np.any(result.image != image, axis=-1)
    assert diff.any() and not diff[hull == 0].any()
    assert result.warps[0].shaded > 0
