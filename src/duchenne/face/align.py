"""Canonical aligned face crops: the crop the smile/emotion models are trained and run on.

Why a similarity transform from the eyes: rotation from the eye line removes head roll,
scale from the inter-ocular distance (IOD) makes every face the same size, and placing
the eye midpoint at a fixed point frames forehead-to-chin the same way for a 48 px
training image and a 4000 px photo. The template (eyes at 33% height, IOD = 36% of the
side) frames the face like the FER2013 / SMILEsmileD crops the models learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from duchenne.face.topology import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR
from duchenne.face.warp import warp_affine

# Face Mesh eye contours: the eye centre is the mean of these points (more stable than
# any single point when the eyes narrow, which is exactly what smiles do).
RIGHT_EYE_IDX, LEFT_EYE_IDX = RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR


@dataclass(frozen=True)
class AlignConfig:
    """Geometry of the canonical crop.

    Args:
        size: output side in pixels.
        iod_fraction: inter-ocular distance as a fraction of the side (before margin).
        eye_y: eye-midpoint height as a fraction of the side (before margin).
        margin: extra context around the face, as a fraction of the side (0.2 = 20% larger
            field of view, face kept centred on the same point).
    """

    size: int = 48
    iod_fraction: float = 0.36
    eye_y: float = 0.33
    margin: float = 0.0


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) eye centres from 468 Face Mesh landmarks (subject's right first)."""
    xy = np.asarray(landmarks)[:, :2]
    return xy[list(RIGHT_EYE_IDX)].mean(0), xy[list(LEFT_EYE_IDX)].mean(0)


def alignment_matrix(right_eye: np.ndarray, left_eye: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    """2x3 similarity transform taking image pixels to the canonical crop."""
    right_eye = np.asarray(right_eye, np.float64)
    left_eye = np.asarray(left_eye, np.float64)
    dx, dy = left_eye - right_eye
    iod = max(float(np.hypot(dx, dy)), 1e-6)
    scale = cfg.size * cfg.iod_fraction / (iod * (1.0 + cfg.margin))
    angle = np.arctan2(dy, dx)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.array([[c, s], [-s, c]])
    mid = (right_eye + left_eye) / 2
    # keep the same face centre when the margin grows: the template point is scaled around the crop centre
    target = np.array([0.5, 0.5 + (cfg.eye_y - 0.5) / (1.0 + cfg.margin)]) * cfg.size
    return np.hstack([rot, (target - rot @ mid)[:, None]])


def align_face(
    image: np.ndarray,
    eyes: tuple[np.ndarray, np.ndarray],
    cfg: AlignConfig | None = None,
) -> np.ndarray:
    """Canonical crop (size, size, C) from the two eye centres (subject's right, left).

    Pixels outside the image are filled by edge replication (a face at the border still
    gives a full crop without a black wedge the models never saw in training).
    """
    cfg = cfg or AlignConfig()
    m = alignment_matrix(eyes[0], eyes[1], cfg)
    # warpAffine has no area filter: when shrinking a large face, warp to an integer
    # multiple of the output first, then area-average down (no aliasing on big photos).
    factor = min(8, int(np.ceil(1.0 / max(_scale(m), 1e-6))))
    if factor <= 1:
        return warp_affine(image, m, (cfg.size, cfg.size))
    big = cfg.size * factor
    up = warp_affine(image, m * factor, (big, big))
    return cv2.resize(up, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)


def align_batch(
    image: np.ndarray,
    eyes: np.ndarray,
    cfg: AlignConfig | None = None,
) -> np.ndarray:
    """Crops (n, size, size, C) for eye pairs ``eyes`` of shape (n, 2, 2)."""
    cfg = cfg or AlignConfig()
    shape = (0, cfg.size, cfg.size, *image.shape[2:])
    if len(eyes) == 0:
        return np.zeros(shape, image.dtype)
    return np.stack([align_face(image, (e[0], e[1]), cfg) for e in eyes])


def _scale(m: np.ndarray) -> float:
    return float(np.hypot(m[0, 0], m[0, 1]))


def crop_as_aligned(image: np.ndarray, cfg: AlignConfig | None = None) -> np.ndarray:
    """Treat ``image`` as an already-cropped face: centre square, resized to the crop size.

    This is the "crop mode" of head-crop classifiers (no detection) and the fallback for
    training images where no face was detected; FER2013/SMILEsmileD crops are framed
    close to the canonical template, so no further geometry is applied for a model of
    that framing. A model of a closer framing (``cfg`` with other ``iod_fraction`` /
    ``eye_y``) gets the square re-framed from where the canonical template puts the eyes,
    so a head crop reaches it framed as its training crops were.
    """
    cfg = cfg or AlignConfig()
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    square = image[y0 : y0 + side, x0 : x0 + side]
    canonical = AlignConfig(size=side)
    if (cfg.iod_fraction, cfg.eye_y, cfg.margin) != (
        canonical.iod_fraction,
        canonical.eye_y,
        canonical.margin,
    ):
        half_iod, eye_y = canonical.iod_fraction * side / 2, canonical.eye_y * side
        eyes = (np.array([side / 2 - half_iod, eye_y]), np.array([side / 2 + half_iod, eye_y]))
        return align_face(square, eyes, cfg)
    interp = cv2.INTER_AREA if side > cfg.size else cv2.INTER_LINEAR
    return cv2.resize(square, (cfg.size, cfg.size), interpolation=interp)
