"""Letterboxing: an image resized into a detector's square input without distortion.

Why a module of its own: the detector's input framing (a centred, padded resize, and the
padded second chance's grey frame drawn without building a huge image) is one idea with
its own pixel conventions, shared by the detector, its benchmarks and its tests.
"""

from __future__ import annotations

import cv2
import numpy as np

GREY = 128  # the padded second chance's frame
FRAME_BUILT_MAX = 4.0  # a frame up to this many times the image's pixels is built


def letterbox(
    image: np.ndarray, size: int, border: int = 0
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Resize keeping aspect ratio and pad to ``size``x``size`` (centred, black); with
    ``border``, the image inside a grey frame that wide (the padded second chance).

    Returns:
        The padded image, the (x, y) scale, and the x/y padding in output pixels, so that
        ``image_xy = (letterbox_xy - pad) / scale - border``. The scale is per axis because
        the resized sides are whole pixels: ``nw / w`` and ``nh / h`` differ by up to half a
        model pixel over the image, and decoding both axes with ``size / max(h, w)``
        put boxes that far off (0.9 px at the bottom of the 1600x1101 Solvay photo).
    """
    if border:
        return _framed_letterbox(image, size, border)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=_interpolation(scale))
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    out = np.zeros((size, size, 3), np.uint8)
    out[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    return out, np.array([nw / w, nh / h]), float(pad_x), float(pad_y)


def _interpolation(scale: float) -> int:
    """Bilinear, as MediaPipe samples its input; area averaging only for strong shrinking
    (it costs ~20x more: 1.8 ms vs 0.1 ms for 640x480 -> 192), where bilinear would alias."""
    return cv2.INTER_AREA if scale < 0.25 else cv2.INTER_LINEAR


def _framed_letterbox(
    image: np.ndarray, size: int, border: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``letterbox`` of the image inside a grey frame ``border`` pixels wide.

    The frame is built when it holds at most ``FRAME_BUILT_MAX`` times the image's pixels
    (every photo up to 3:1), else drawn at the model's size with the image resized into it.
    Why: a frame a quarter of the long side wide holds ``1.5 + 0.75 * long / short`` times
    the image's pixels, which an extreme aspect makes huge (a 100x40000 strip: a 20100x60000
    frame, 3.6 GB, 37 of the 45 s its analysis took). Why not always drawn: the image then
    lands on whole model pixels, up to half a pixel from where the frame's resize puts it
    (60 400x400 MTFL photos: scores up to 0.046 apart, one face more).
    """
    h, w = image.shape[:2]
    fw, fh = w + 2 * border, h + 2 * border
    if fw * fh <= FRAME_BUILT_MAX * w * h:
        framed = cv2.copyMakeBorder(image, *(border,) * 4, cv2.BORDER_CONSTANT, value=(GREY,) * 3)
        return letterbox(framed, size)
    scale = size / max(fh, fw)
    nw, nh = max(1, round(fw * scale)), max(1, round(fh * scale))
    sx, sy = nw / fw, nh / fh  # the frame's scale per axis, which the image inside shares
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    x0, y0 = pad_x + round(border * sx), pad_y + round(border * sy)
    iw, ih = min(max(1, round(w * sx)), size - x0), min(max(1, round(h * sy)), size - y0)
    out = np.zeros((size, size, 3), np.uint8)
    out[pad_y : pad_y + nh, pad_x : pad_x + nw] = GREY
    out[y0 : y0 + ih, x0 : x0 + iw] = cv2.resize(
        image, (iw, ih), interpolation=_interpolation(scale)
    )
    fit = np.array([iw / w, ih / h])
    return out, fit, x0 - border * fit[0], y0 - border * fit[1]
