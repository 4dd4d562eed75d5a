"""Benchmark inputs built from the bundled public-domain photos."""

from __future__ import annotations

import cv2
import numpy as np

from duchenne import data


def one_face_640x480() -> np.ndarray:
    """The astronaut photo scaled to 480 px high, centred on a 640x480 grey canvas."""
    face = data.astronaut()
    canvas = np.full((480, 640, 3), 128, np.uint8)
    face = cv2.resize(face, (480, 480), interpolation=cv2.INTER_AREA)
    canvas[:, 80:560] = face
    return canvas


def group_photo() -> np.ndarray:
    """The bundled group photo if the package ships one, else a 2400x1600 collage of 12 faces."""
    try:
        return data.group()  # type: ignore[attr-defined]
    except (AttributeError, FileNotFoundError):
        return collage(12, (1600, 2400))


def collage(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``n`` copies of the astronaut at different sizes/positions on a ``size`` (h, w) canvas."""
    rng = np.random.default_rng(seed)
    h, w = size
    canvas = np.full((h, w, 3), 90, np.uint8)
    src = data.astronaut()[:300, 60:360]
    cols = int(np.ceil(np.sqrt(n * w / h)))
    rows = int(np.ceil(n / cols))
    cell_w, cell_h = w // cols, h // rows
    for i in range(n):
        r, c = divmod(i, cols)
        side = int(min(cell_w, cell_h) * rng.uniform(0.45, 0.9))
        tile = cv2.resize(src, (side, side), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
        y = r * cell_h + (cell_h - side) // 2
        x = c * cell_w + (cell_w - side) // 2
        canvas[y : y + side, x : x + side] = tile
    return canvas
