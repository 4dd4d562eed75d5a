"""WebP mosaics of crops: how ``train pack`` stores a cache's images compactly.

Why mosaics: one WebP image of PACK_TILE x PACK_TILE crops compresses far better than
one file per 48 px crop, and a packed training set must travel to a GPU machine under a
64 MiB limit (``duchenne.train.data.save_cache`` with ``pack_quality``).
"""

from __future__ import annotations

import cv2
import numpy as np

PACK_TILE = 64  # crops per mosaic row/column in a packed cache


def encode_mosaic(images: np.ndarray, quality: int) -> list[bytes]:
    """WebP mosaics of PACK_TILE x PACK_TILE crops (the last one padded with zeros); grey
    (N, S, S) or RGB (N, S, S, 3) crops."""
    n, s, pixel = len(images), images.shape[1], images.shape[3:]  # pixel: () or (3,)
    per = PACK_TILE * PACK_TILE
    out = []
    for start in range(0, n, per):
        chunk = np.zeros((per, s, s, *pixel), np.uint8)
        part = images[start : start + per]
        chunk[: len(part)] = part
        mosaic = (
            chunk.reshape(PACK_TILE, PACK_TILE, s, s, *pixel)
            .swapaxes(1, 2)
            .reshape(PACK_TILE * s, PACK_TILE * s, *pixel)
        )
        if pixel:
            mosaic = cv2.cvtColor(mosaic, cv2.COLOR_RGB2BGR)  # OpenCV encodes BGR
        ok, buf = cv2.imencode(".webp", mosaic, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise RuntimeError("WebP encoding failed")
        out.append(buf.tobytes())
    return out


def decode_mosaic(blobs: list[bytes], shape: tuple[int, ...]) -> np.ndarray:
    """The crops of ``encode_mosaic``'s mosaics: ``shape`` (N, S, S) or (N, S, S, 3)."""
    n, s, pixel = shape[0], shape[1], tuple(shape[3:])
    flag = cv2.IMREAD_COLOR if pixel else cv2.IMREAD_GRAYSCALE
    tiles = []
    for blob in blobs:
        mosaic = cv2.imdecode(np.frombuffer(blob, np.uint8), flag)
        if pixel:
            mosaic = cv2.cvtColor(mosaic, cv2.COLOR_BGR2RGB)
        tiles.append(
            mosaic.reshape(PACK_TILE, s, PACK_TILE, s, *pixel)
            .swapaxes(1, 2)
            .reshape(-1, s, s, *pixel)
        )
    return np.concatenate(tiles)[:n]
