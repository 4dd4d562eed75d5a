"""How many tiles an image costs, and that they still hold every face the whole image misses.

Before: the finest level overlapped by 35% of a tile at every image size, and a 768 px level
followed, so a 640x480 photo ran 6 tiles (starts 0, 249, 256 across), a 1280x720 one 18.
Below 1120 px the whole-image pass finds the faces over 12% of the long side, more than
35% of a 384 px tile, so the finest level need overlap only by that much and no coarser
level is needed.
"""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.face.detector import FaceDetector
from duchenne.face.tiles import WHOLE_FACE_MIN, whole


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(threads=1)


@pytest.mark.parametrize(
    ("size", "count"),
    [((640, 480), 4), ((800, 600), 6), ((1024, 768), 12), ((1080, 1080), 16), ((1119, 700), 12)],
)
def test_photos_under_1120_px_run_only_the_finest_level(detector, size, count) -> None:
    """Before: 6, 6, 14, 20 and 14 tiles, the last three with a 768 px level."""
    tiles = detector.tiles(*size)
    assert len(tiles) == count
    assert {max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in tiles} == {detector.tile_size}


@pytest.mark.parametrize("size", [(640, 480), (800, 600), (1024, 768), (1080, 1080), (1119, 700)])
def test_every_face_the_whole_image_misses_lies_whole_in_a_tile(detector, size) -> None:
    """A face up to ``WHOLE_FACE_MIN`` of the long side (less the 2 px edge margin each side)
    anywhere in the image: some tile holds it without touching an inner edge."""
    w, h = size
    tiles = detector.tiles(w, h)
    face = int(WHOLE_FACE_MIN * max(w, h)) - 6
    xs, ys = np.arange(0, w - face + 1, 3), np.arange(0, h - face + 1, 3)
    x, y = (a.ravel().astype(np.float32) for a in np.meshgrid(xs, ys))
    boxes = np.stack([x, y, x + face, y + face], 1)
    held = np.zeros(len(boxes), bool)
    for t in tiles:
        inside = (boxes[:, :2] >= t[:2]).all(1) & (boxes[:, 2:] <= t[2:]).all(1)
        held |= inside & whole(boxes, t, w, h)
    assert held.all(), boxes[~held][:5]


def test_photos_of_1120_px_and_more_keep_their_tiles(detector) -> None:
    """Solvay (1600x1101): 384 px tiles 249 apart, 768 px ones 499 apart, last ones flush."""
    fine = [
        (x, y, x + 384, y + 384) for y in (0, 249, 498, 717) for x in (0, 249, 498, 747, 996, 1216)
    ]
    coarse = [(x, y, x + 768, min(y + 768, 1101)) for y in (0, 333) for x in (0, 499, 832)]
    assert detector.tiles(1600, 1101) == fine + coarse
    assert len(detector.tiles(1280, 720)) == 18
    assert len(detector.tiles(1120, 840)) == 16
    assert len(detector.tiles(4000, 3000)) == 254
