"""Very wide or tall images cost the detector what their pixels can hold, not their aspect.

Before: a 10x20000 black strip took 161 model runs (157 tiles of 384x10 px and coarser,
where no face can be seen) and its padded second chance built a 10010x30000 frame (900 MB);
a 100x40000 strip's frame was 20100x60000 (3.6 GB, 37 s of its 45 s).
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import cv2
import numpy as np
import pytest

from duchenne.face.detector import FaceDetector
from duchenne.face.letterbox import GREY, letterbox


class _Counted:
    """A model session that counts the images it is run on."""

    def __init__(self, model: Any, seen: list[int]) -> None:
        self.model, self.seen = model, seen

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.seen.append(len(batch))
        return self.model(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(threads=1)


def _model_runs(detector: FaceDetector, image: np.ndarray, monkeypatch) -> int:
    seen: list[int] = []
    for runner in {id(r): r for r in [*detector.runners, *detector.verifiers]}.values():
        monkeypatch.setattr(runner, "model", _Counted(runner.model, seen))
    detector(image)
    monkeypatch.undo()
    return sum(seen)


def test_a_strip_too_thin_for_a_face_costs_what_a_blank_photo_does(detector, monkeypatch) -> None:
    """10x20000: every tile would be 384x10 px or coarser (5 model px or less, where no
    face is found), so none is run: the whole image, the other model, the padded pair, as
    on a blank photo within one tile (320x240); a 640x480 one adds its tiles."""
    strip = _model_runs(detector, np.zeros((10, 20000, 3), np.uint8), monkeypatch)
    blank = _model_runs(detector, np.zeros((240, 320, 3), np.uint8), monkeypatch)
    assert strip == blank == 4
    tiled = _model_runs(detector, np.zeros((480, 640, 3), np.uint8), monkeypatch)
    assert tiled == 4 + len(detector.tiles(640, 480)) > 4
    assert _model_runs(detector, np.zeros((20000, 10, 3), np.uint8), monkeypatch) == 4


def test_strips_keep_only_the_tile_levels_that_resolve_a_face(detector) -> None:
    """A 100 px strip shows a face at most 50 model px in 384 px tiles, 25 in 768 px ones
    (a coarse level reports 16 and up), 12.5 in 1536 px ones: two levels of seven."""
    sides = {max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in detector.tiles(40000, 100)}
    assert sides == {384, 768}
    assert detector.tiles(20000, 10) == []


@pytest.mark.parametrize(
    "size", [(1400, 1000), (1600, 1101), (4000, 3000), (3000, 4000), (6000, 2000), (1920, 1080)]
)
def test_photos_keep_every_tile_level(detector, size) -> None:
    """Up to 3:1 no level is left out: ``tile_size * 2**k`` below 0.9 of the long side."""
    w, h = size
    sides = {max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in detector.tiles(w, h)}
    levels, side = set(), detector.tile_size
    while side < 0.9 * max(w, h):
        levels.add(side)
        side *= 2
    assert sides == levels


def test_the_padded_second_chance_builds_no_frame_around_a_strip(detector) -> None:
    """Its frame would hold 150 times the strip's pixels (145 MB for 20x8000)."""
    strip = np.random.default_rng(0).integers(0, 256, (20, 8000, 3), dtype=np.uint8)
    tracemalloc.start()
    try:
        detector._padded(strip)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * strip.nbytes


def _framed(image: np.ndarray, border: int) -> np.ndarray:
    return cv2.copyMakeBorder(image, *(border,) * 4, cv2.BORDER_CONSTANT, value=(GREY,) * 3)


@pytest.mark.parametrize("shape", [(40, 960), (960, 40)])
def test_a_drawn_frame_is_the_built_one_where_the_scale_is_a_whole_fraction(shape) -> None:
    """40x960 in a 480 px frame: 1000x1920 -> 100x192 at 1/10 (drawn: 50x the pixels)."""
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out, scale, px, py = letterbox(image, 192, 480)
    built, bscale, bx, by = letterbox(_framed(image, 480), 192)
    np.testing.assert_array_equal(out, built)
    np.testing.assert_array_equal(scale, bscale)
    assert (px, py) == (bx, by)


@pytest.mark.parametrize("shape", [(100, 4000), (33, 1001), (250, 250), (777, 1000)])
def test_framed_letterbox_maps_image_points_back(shape) -> None:
    """``image_xy = (letterbox_xy - pad) / scale - border``, on both paths (built: 250x250
    and 777x1000; drawn: the strips), where the frame's resize puts it to half a pixel."""
    h, w = shape
    border = round(0.25 * max(h, w))
    image = np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)
    _, scale, px, py = letterbox(image, 192, border)
    _, fscale, fx, fy = letterbox(_framed(image, border), 192)
    corners = np.array([[0.0, 0.0], [w, h]])
    drawn = (corners + border) * scale + (px, py)
    built = (corners + border) * fscale + (fx, fy)
    np.testing.assert_allclose(drawn, built, atol=0.5)
