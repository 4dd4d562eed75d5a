"""Warps read only the window they need, so sources past OpenCV's 32,767 px limit work."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from duchenne.face.warp import CV_MAX_SIDE, remap, source_window, warp_affine


def _rotation(cx: float, cy: float, angle: float, scale: float, out: int) -> np.ndarray:
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[:, 2] += np.array([out / 2 - cx, out / 2 - cy])
    return m


@pytest.mark.parametrize(
    ("cx", "cy", "angle", "scale"),
    [(100, 80, 0, 1.0), (5, 150, 30, 0.5), (190, 3, -70, 2.0), (-40, 90, 10, 0.8)],
)
def test_window_warp_equals_whole_image_warp(cx, cy, angle, scale) -> None:
    """Inside, at the border and wholly outside: same pixels as OpenCV on the whole image."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (160, 200, 3), np.uint8)
    m = _rotation(cx, cy, angle, scale, 64)
    want = cv2.warpAffine(
        image, m, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    got = warp_affine(image, m, (64, 64))
    np.testing.assert_array_equal(got, want)


def test_window_remap_equals_whole_image_remap() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (120, 150, 3), np.uint8)
    ys, xs = np.mgrid[10:60, 100:149].astype(np.float32)
    mx, my = xs + rng.normal(0, 3, xs.shape).astype(np.float32), ys + 2.5
    want = cv2.remap(image, mx, my, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(remap(image, mx, my, interpolation=cv2.INTER_CUBIC), want)


@pytest.mark.parametrize("shape", [(12, 40_000), (40_000, 12)])
def test_sources_beyond_opencv_limit(shape) -> None:
    image = np.zeros((*shape, 3), np.uint8)
    h, w = shape
    image[h // 2 :, w // 2 :] = 255  # the crop centre sits on this corner
    m = _rotation(w / 2, h / 2, 0, 1.0, 8)
    with pytest.raises(cv2.error):  # what the pipeline used to hit
        cv2.warpAffine(image, m, (8, 8))
    crop = warp_affine(image, m, (8, 8))
    assert crop.shape == (8, 8, 3)
    assert crop[0, 0].max() == 0 and crop[-1, -1].min() == 255
    x0, y0, x1, y1 = source_window(m, (8, 8), image.shape)
    assert x1 - x0 < 20 and y1 - y0 < 20


def test_oversized_window_is_shrunk_not_refused() -> None:
    """A crop covering more than 32,766 px of source (a gigantic face) still works."""
    w = CV_MAX_SIDE + 5000
    image = np.zeros((4, w), np.uint8)
    image[:, w // 2 :] = 200
    m = np.array([[16 / w, 0, 0], [0, 1.0, 0]])  # the whole width onto 16 output pixels
    crop = warp_affine(image, m, (16, 4))
    assert crop[:, :6].max() == 0 and crop[:, 10:].min() == 200
