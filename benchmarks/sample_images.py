"""Benchmark inputs built from the bundled public-domain photos."""

from __future__ import annotations

from pathlib import Path

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


GROUP_PHOTO = Path(__file__).resolve().parents[1] / "tests" / "data" / "solvay_1927.jpg"


def group_photo() -> np.ndarray:
    """The 1927 Solvay conference photo (1600x1101, 29 faces; provenance in tests/data/SOURCES.md)."""
    from duchenne.io.image import load_image

    return load_image(GROUP_PHOTO)
