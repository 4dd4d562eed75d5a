"""The tile pyramid: overlapping windows in which the detector sees small faces larger.

Why a module of its own: which windows a scan runs (levels of sides ``tile_size * 2**k``,
overlapping so that every face lies whole in one) and which of their detections a level may
report (none cut by an inner window edge, none too small for a coarse level) is one idea
with its own measured limits, apart from decoding and merging detections. Functions take
boxes as (n, 4) xyxy arrays and return masks, so this module needs no detector type.
"""

from __future__ import annotations

import numpy as np

TILE_LEVEL_MAX = 0.9  # tile levels up to this fraction of the image's long side
# The smallest face (box side at the model input, pixels) a coarse tile level may report.
# Below it the full-range model guesses an oversized box around a tiny face (a 40 px face
# in a 1536 px tile: an 81 px box at 0.72, which then swallowed the right 35 px box of the
# 384 px level); the level below sees such a face at twice the size (32 px at 16 here).
TILE_FACE_MIN = 16
# The smallest face (model pixels) the finest tile level finds: of 100 LFW faces squeezed to
# fill strips 10-13 px tall (5-6.5 px in 384 px tiles) none, at 14 px 1, at 16 px 6. A level
# whose tiles' short side is under its smallest face holds none it could report, and is not
# run (a 10x20000 strip: 157 tiles of 384x10 px and coarser per look, 4 looks; now none).
TILE_FINE_FACE_MIN = 6
# The face (fraction of the image's long side) from which the whole-image pass takes over:
# the full-range model sees a tenth of the long side at 19 model pixels, and finds 88-91%
# of the MTFL faces of 8-12% pasted on 640-1280 px photos, 97-99% of those of 12-20%. The
# finest level's tiles need overlap only by this much to hold whole every face the whole
# image misses, and then no coarser level is needed. On 516 pasted faces (seeds 21-23) the same
# 501 found as with 35% overlap and the 768 px level, the same false faces on 1,433
# face-free photos; 4 tiles instead of 6 at 640x480, 12 instead of 14 at 1024x768. From
# 1120 px on 0.35 of a 384 px tile is less, and the cap never binds (0.10: 1280x720 ran 15
# tiles instead of 18, but 3 pasted faces and 2 of 29 Solvay faces at 1200 px were lost).
WHOLE_FACE_MIN = 0.12

Window = tuple[int, int, int, int]


def pyramid(w: int, h: int, tile_size: int, overlap: float, model_side: int) -> list[Window]:
    """Tile windows (x0, y0, x1, y1) of every level of a ``w`` x ``h`` image: sides
    ``tile_size * 2**k`` under ``TILE_LEVEL_MAX`` of its long side (a level nearly as large
    as the image sees faces at the whole-image pass's scale), tiles ``overlap`` apart,
    levels too thin to show a face left out (``resolves``). The finest level overlaps by
    no more than the faces the whole image misses (``WHOLE_FACE_MIN``); where that is less
    than ``overlap``, it holds them all whole and the coarser levels are left out."""
    out: list[Window] = []
    side = tile_size
    held = WHOLE_FACE_MIN * max(w, h)  # larger faces: the whole-image pass finds them
    while side < TILE_LEVEL_MAX * max(w, h) and resolves(side, w, h, tile_size, model_side):
        step = max(1, int(side * (1 - overlap)))
        finest_holds_all = side == tile_size and held <= side * overlap
        if finest_holds_all:
            step = max(step, int(side - held))
        out += [
            (x, y, min(x + side, w), min(y + side, h))
            for y in _starts(h, side, step)
            for x in _starts(w, side, step)
        ]
        if finest_holds_all:
            break
        side *= 2
    return out


def resolves(side: int, w: int, h: int, tile_size: int, model_side: int) -> bool:
    """Whether tiles of ``side`` (cut to the image) can hold a face their level reports:
    their short side at the model's scale at least ``TILE_FINE_FACE_MIN`` (the finest
    level) or ``TILE_FACE_MIN`` (coarser ones, see ``resolved``). Only strips fail
    (under 12 px high, or over 13 times as long as high): a 100x40000 one keeps levels 384
    and 768 of seven, the same faces on strips 10-150 px high holding 100 LFW faces."""
    least = TILE_FACE_MIN if side > tile_size else TILE_FINE_FACE_MIN
    return min(side, w, h) * model_side >= least * side


def resolved(xyxy: np.ndarray, window: Window, tile_size: int, model_side: int) -> np.ndarray:
    """Mask of the boxes a window's level may report: on a coarse level (side above
    ``tile_size``) none under ``TILE_FACE_MIN`` model pixels, since a finer level has them
    at twice the size and boxes this small at the model input come out far too large."""
    side = max(window[2] - window[0], window[3] - window[1])
    if side <= tile_size:
        return np.ones(len(xyxy), bool)
    size = (xyxy[:, 2:] - xyxy[:, :2]).max(1) * model_side
    return size >= TILE_FACE_MIN * side


def whole(xyxy: np.ndarray, window: Window, w: int, h: int) -> np.ndarray:
    """Mask of the boxes touching no inner window edge: a cut face, another window has
    it whole."""
    x0, y0, x1, y1 = window
    if window == (0, 0, w, h):
        return np.ones(len(xyxy), bool)
    b, m = xyxy, 2.0
    cut = ((b[:, 0] <= x0 + m) & (x0 > 0)) | ((b[:, 1] <= y0 + m) & (y0 > 0))
    cut |= ((b[:, 2] >= x1 - m) & (x1 < w)) | ((b[:, 3] >= y1 - m) & (y1 < h))
    return ~cut


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]
