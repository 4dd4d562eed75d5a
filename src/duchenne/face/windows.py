"""Square windows centred on face candidates, where the detector takes a second look.

Why a module of its own: verification (doubtful candidates) and confirmation (faces only
tiles found) both re-run a model on such a window, where a candidate of side ``s`` fills a
third of a ``3 s`` square and is framed as the models expect, whatever its size in the image.
"""

from __future__ import annotations

import cv2
import numpy as np


def centred_windows(
    image: np.ndarray, boxes: np.ndarray, scale: float
) -> tuple[list[tuple[np.ndarray, int, int]], np.ndarray, np.ndarray]:
    """Windows ``scale`` times each xyxy box's long side, centred on it, as (window, x0,
    y0) for ``_Runner.many``, with the boxes' centres (n, 2) and long sides (n,)."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sides = np.maximum((boxes[:, 2:] - boxes[:, :2]).max(1), 1.0)
    corners = (centres - scale * sides[:, None] / 2).round().astype(int)
    windows = [
        (square_window(image, int(x0), int(y0), round(scale * s)), int(x0), int(y0))
        for (x0, y0), s in zip(corners, sides, strict=True)
    ]
    return windows, centres, sides


def square_window(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side``-pixel square at (x0, y0), grey where it extends beyond the image (a face
    at the edge is then seen as in the padded second chance, not against black)."""
    crop = image[max(y0, 0) : max(y0 + side, 0), max(x0, 0) : max(x0 + side, 0)]
    top, left = max(-y0, 0), max(-x0, 0)
    bottom, right = side - top - crop.shape[0], side - left - crop.shape[1]
    if top or left or bottom > 0 or right > 0:
        crop = cv2.copyMakeBorder(
            crop, top, max(bottom, 0), left, max(right, 0), cv2.BORDER_CONSTANT, value=(128,) * 3
        )
    return crop
