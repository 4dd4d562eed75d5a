"""Affine warps and remaps of small regions out of images of any size.

Why: OpenCV's ``warpAffine`` and ``remap`` refuse sources wider or taller than 32,767 px
(``SHRT_MAX``, an assertion inside ``remap``), so a legitimate panorama with a face crashed
the landmark and smile crops. Every crop we take only reads a small window of the source,
so the warp runs on that window (clipped to the image) with the matrix shifted to match.
Edge replication gives the same pixels as on the whole image: the window reaches the image
border exactly where the output looks beyond it. A window that is itself too large (a face
tens of thousands of pixels wide) is area-shrunk first, which the warp would do anyway.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: The largest side ``cv2.remap`` / ``cv2.warpAffine`` accept (exclusive of ``SHRT_MAX``).
CV_MAX_SIDE = 32_766
_PAD = 2  # interpolation taps reach one pixel beyond the mapped point; two is safe


def source_window(
    matrix: np.ndarray, out_size: tuple[int, int], shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """Source pixels ``(x0, y0, x1, y1)`` (clipped to the image) an affine warp can read.

    Args:
        matrix: 2x3 affine from source pixels to output pixels.
        out_size: output ``(width, height)``.
        shape: the source image's shape.
    """
    w, h = out_size
    inv = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    return _clip_box(pts.min(0), pts.max(0), shape)


def warp_affine(
    image: np.ndarray,
    matrix: np.ndarray,
    out_size: tuple[int, int],
    *,
    flags: int = cv2.INTER_LINEAR,
    border: int = cv2.BORDER_REPLICATE,
) -> np.ndarray:
    """``cv2.warpAffine`` that works on sources of any size (reads only the needed window)."""
    m = np.asarray(matrix, np.float64)
    x0, y0, x1, y1 = source_window(m, out_size, image.shape)
    window = image[y0:y1, x0:x1]
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]])
    m = _compose(m, shift)  # window pixels -> output pixels
    window, m = _shrink_to_cv_limit(window, m)
    return cv2.warpAffine(window, m, out_size, flags=flags, borderMode=border)


def remap(
    image: np.ndarray,
    map_x: np.ndarray,
    map_y: np.ndarray,
    *,
    interpolation: int = cv2.INTER_LINEAR,
    border: int = cv2.BORDER_REPLICATE,
) -> np.ndarray:
    """``cv2.remap`` that works on sources of any size (reads only the window the maps reach).

    The maps must be smaller than ``CV_MAX_SIDE`` on each side (they are the output).
    """
    finite_x, finite_y = map_x[np.isfinite(map_x)], map_y[np.isfinite(map_y)]
    if not finite_x.size or not finite_y.size:
        lo, hi = np.zeros(2), np.zeros(2)
    else:
        lo = np.array([finite_x.min(), finite_y.min()])
        hi = np.array([finite_x.max(), finite_y.max()])
    x0, y0, x1, y1 = _clip_box(lo, hi, image.shape)
    window = image[y0:y1, x0:x1]
    if max(window.shape[:2]) > CV_MAX_SIDE:
        raise ValueError(f"remap window {window.shape[1]}x{window.shape[0]} exceeds OpenCV's limit")
    return cv2.remap(
        window,
        (map_x - x0).astype(np.float32),
        (map_y - y0).astype(np.float32),
        interpolation=interpolation,
        borderMode=border,
    )


def _clip_box(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Integer box around ``lo..hi`` padded by the interpolation reach, inside the image,
    never empty (a point wholly outside the image still reads the nearest border pixel)."""
    h, w = shape[:2]
    x0 = min(max(math.floor(lo[0]) - _PAD, 0), w - 1)
    y0 = min(max(math.floor(lo[1]) - _PAD, 0), h - 1)
    x1 = max(min(math.ceil(hi[0]) + _PAD + 1, w), x0 + 1)
    y1 = max(min(math.ceil(hi[1]) + _PAD + 1, h), y0 + 1)
    return x0, y0, x1, y1


def _compose(m: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The 2x3 affine ``m`` applied after the 2x3 affine ``first``."""
    a = np.vstack([m, [0.0, 0.0, 1.0]])
    b = np.vstack([first, [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def _shrink_to_cv_limit(window: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-shrink a window OpenCV cannot warp, folding the scale into the matrix."""
    h, w = window.shape[:2]
    factor = max(w, h) / CV_MAX_SIDE
    if factor <= 1.0:
        return window, m
    nw, nh = max(1, int(w / factor)), max(1, int(h / factor))
    small = cv2.resize(window, (nw, nh), interpolation=cv2.INTER_AREA)
    scale = np.array([[w / nw, 0.0, 0.0], [0.0, h / nh, 0.0]])  # small pixels -> window pixels
    return small, _compose(m, scale)
