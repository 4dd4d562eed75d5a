"""Turned photos: mapping points and detections from a turned image back into it."""

from __future__ import annotations

import numpy as np

from duchenne.face.detector import Detections
from duchenne.face.orientation import detections_from_turned, points_from_turned, turn_image


def test_points_found_in_a_turned_image_map_back_to_the_same_pixel() -> None:
    """Every pixel of ``turn_image(image, d)`` maps back onto the pixel it came from (pixel
    centres at whole coordinates, as OpenCV's crop warps read points)."""
    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)  # h 5, w 7: all distinct
    for degrees in (0, 90, 180, 270):
        turned = turn_image(image, degrees)
        assert turned.flags.c_contiguous
        ys, xs = np.mgrid[: turned.shape[0], : turned.shape[1]]
        points = np.stack([xs, ys], -1).astype(np.float32)
        back = points_from_turned(points, degrees, 7, 5).astype(int)
        np.testing.assert_array_equal(image[back[..., 1], back[..., 0]], turned)


def test_detections_from_a_turned_image_keep_boxes_ordered_and_keypoints_mapped() -> None:
    """A box at x 10-20, y 30-50 of a 100x60 image turned a quarter (60 wide, 100 high)
    lies at x 99 - (50..30), y 10-20 of the image, corners still (x1, y1) < (x2, y2)."""
    dets = Detections(
        np.array([[10, 30, 20, 50]], np.float32),
        np.tile(np.array([[10.0, 30.0]], np.float32), (1, 6, 1)),
        np.array([0.9], np.float32),
    )
    back = detections_from_turned(dets, 90, 100, 60)
    np.testing.assert_allclose(back.xyxy, [[49, 10, 69, 20]])
    np.testing.assert_allclose(back.keypoints[0, 0], [69, 10])
    np.testing.assert_allclose(back.score, dets.score)
