"""BlazeFace decoding pieces that need no model: anchors, letterbox, weighted NMS."""

from __future__ import annotations

import numpy as np

from duchenne.face.detector import (
    FULL_RANGE,
    SHORT_RANGE,
    Detections,
    make_anchors,
    weighted_nms,
)
from duchenne.face.letterbox import letterbox


def test_anchor_counts_match_mediapipe() -> None:
    assert make_anchors(SHORT_RANGE).shape == (896, 2)
    assert make_anchors(FULL_RANGE).shape == (2304, 2)


def test_anchor_order_and_centres() -> None:
    a = make_anchors(SHORT_RANGE)
    # 16x16 grid with 2 anchors per cell first, then 8x8 with 6 per cell
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(a[517], a[512])
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_letterbox_roundtrip() -> None:
    img = np.zeros((100, 300, 3), np.uint8)
    out, scale, px, py = letterbox(img, 128)
    assert out.shape == (128, 128, 3)
    assert px == 0 and py > 0
    # image point (150, 50) -> letterbox -> back
    lx, ly = np.array([150, 50]) * scale + (px, py)
    assert np.allclose([(lx - px) / scale[0], (ly - py) / scale[1]], [150, 50])


def test_letterbox_maps_pixels_back_to_where_they_were() -> None:
    """A blob found in the letterbox maps back onto itself on both axes.

    1000x777 at 128 (the short-range model): the height becomes 99 px, a scale of 0.1274
    where the width's is 0.128; one scale for both axes put the blob 3 px too high."""
    h, w, centre = 777, 1000, np.array([400.0, 700.0])  # x, y in pixel-edge coordinates
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 15.0**2))
    img = np.repeat(np.round(blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    out, scale, px, py = letterbox(img, 128)
    weight = out[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0 : out.shape[0], 0 : out.shape[1]] + 0.5
    found = np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
    np.testing.assert_allclose((found - (px, py)) / scale, centre, atol=0.1)


def test_weighted_nms_averages_cluster_and_keeps_separate_faces() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kps = np.repeat(boxes[:, None, :2], 6, axis=1)
    dets = weighted_nms(Detections(boxes, kps, np.array([0.9, 0.3, 0.8], np.float32)), 0.3)
    assert len(dets) == 2
    np.testing.assert_allclose(dets.score, [0.9, 0.8])
    np.testing.assert_allclose(dets.xyxy[0], (boxes[0] * 0.9 + boxes[1] * 0.3) / 1.2, rtol=1e-5)
    np.testing.assert_allclose(dets.xyxy[1], boxes[2])


def test_weighted_nms_empty() -> None:
    assert len(weighted_nms(Detections.empty(), 0.3)) == 0


def test_decode_keeps_exactly_the_scores_at_or_above_the_threshold() -> None:
    from duchenne.face.detector import FaceDetector

    run = FaceDetector("short", threads=1).tile_runner
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 896).astype(np.float32)
    logits[:3] = [0.0, np.log(0.7 / 0.3), 200.0]  # exactly 0.5, 0.7 and clipped
    reg = rng.normal(0, 5, (896, 16)).astype(np.float32)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))
    for floor in (0.0, 0.3, 0.5, 0.7, 0.999, 1.0):
        dets = run._decode(reg, logits, 1.0, (0.0, 0.0, 0.0, 0.0), floor)
        np.testing.assert_allclose(np.sort(dets.score), np.sort(scores[scores >= floor]), rtol=1e-6)
