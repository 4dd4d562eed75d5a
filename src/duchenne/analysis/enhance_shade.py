"""The appearance cues of a smile that a warp cannot make: soft shading from the face mesh.

Why: a real Duchenne smile does not only move the lips and cheeks; it folds skin. The
nasolabial folds deepen into shadows from the nose wings to beside the lip corners, the
lip corners sink into small dimples, the line between closed lips darkens, the raised
cheeks catch light and a crease forms under each lower eyelid. Moving pixels around
(:mod:`duchenne.analysis.enhance_warp`) cannot create those shadows, and without them a
closed-mouth warp reads as a weak smile to people and to expression models alike.

This module paints them as one smooth luminance layer, built from the *moved* landmarks
in face-sized units (IOD), so it follows the smile the warp drew:

- each cue is a polyline or a point, rasterised anti-aliased and Gaussian-blurred
  (widths and blurs in IOD, so a 60 px face and a 600 px face get the same look);
- cues add up to a relative change ``layer`` (``-0.1`` = 10 % darker), scaled by
  ``amount`` and multiplied by the face feather mask (0 outside the landmark hull);
- each pixel becomes ``pixel * (1 + layer)`` on all three channels alike, so hue and
  saturation stay and only brightness changes (no colour cast);
- pixels where ``layer`` is 0 are not touched: outside the face every pixel stays
  bit-identical to the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["DEFAULT_SHADING", "Shading", "shade_face", "shading_layer"]

# Face Mesh contours the cues follow (subject's right first; "right" = image left)
_UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_RIGHT_LOWER_LID = (33, 7, 163, 144, 145, 153, 154, 155, 133)
_LEFT_LOWER_LID = (263, 249, 390, 373, 374, 380, 381, 382, 362)
# nasolabial fold: above the nose wing -> beside the nose -> lateral of the lip corner
_FOLD_RIGHT = (129, 206, 216)
_FOLD_LEFT = (358, 426, 436)
_CHEEKS = (50, 280)
_FOLD_POINTS = 24
#: along the fold, nose wing -> beside the lip corner: faint at the wing, deepest past the middle
_FOLD_PROFILE = np.sin(np.linspace(0.15, 0.95, _FOLD_POINTS) * np.pi) ** 0.7
#: along the closed mouth's line, corner -> corner: darkest at the corners
_MOUTH_PROFILE = 0.35 + 0.65 * np.abs(np.linspace(-1.0, 1.0, len(_UPPER_INNER_LIP)))


@dataclass(frozen=True)
class Shading:
    """Strengths (relative luminance change at amount 1; < 0 darker) and sizes (IOD).

    Args:
        fold: nasolabial fold shadow.
        fold_width: fold stroke width before blurring (IOD).
        fold_blur: Gaussian sigma of the fold (IOD).
        fold_light: brightening just above/outside the fold (the cheek bulge's lit side).
        corners: lip-corner dimples.
        corner_sigma: dimple radius (IOD).
        mouth_line: the line between the closed lips.
        mouth_blur: its Gaussian sigma (IOD).
        lid_crease: crease under each lower eyelid.
        lid_offset: how far below the lower-lid contour the crease runs (IOD).
        cheek_light: highlight on the raised cheeks.
        cheek_sigma: its radius (IOD).
    """

    fold: float = -0.45
    fold_width: float = 0.03
    fold_blur: float = 0.06
    fold_light: float = 0.14
    corners: float = -0.30
    corner_sigma: float = 0.045
    mouth_line: float = -0.10
    mouth_blur: float = 0.012
    lid_crease: float = -0.07
    lid_offset: float = 0.09
    cheek_light: float = 0.14
    cheek_sigma: float = 0.13


DEFAULT_SHADING = Shading()


def shading_layer(
    target_xy: np.ndarray,
    axes: np.ndarray,
    box: tuple[int, int, int, int],
    shading: Shading = DEFAULT_SHADING,
    open_mouth: float = 0.0,
) -> np.ndarray:
    """(h, w) float32 relative luminance change over ``box`` at amount 1 (0 = unchanged).

    Args:
        target_xy: (468, 2) the landmarks after the smile moved them, in image pixels.
        axes: (2, 2) image vectors of one IOD along the face's ``x`` (toward the
            subject's left) and ``y`` (toward the chin) axes (``FaceFrame.image_axes``).
        box: (x0, y0, x1, y1) pixels the layer covers.
        shading: strengths and sizes.
        open_mouth: 0 (closed mouth) .. 1 (open), ``enhance_model.mouth_open_weight``.
            The line between the lips fades out with it: in an open mouth there is no
            such line, and the stroke would darken the edge of the upper teeth.
    """
    x0, y0, x1, y1 = box
    right, down = np.asarray(axes, np.float64)
    iod = float(max(np.hypot(*right), np.hypot(*down)))  # sizes: the less foreshortened axis
    p = np.asarray(target_xy, np.float64)[:, :2] - (x0, y0)
    shape = (y1 - y0, x1 - x0)
    layer = np.zeros(shape, np.float32)
    for side, fold_ids, corner in ((-1, _FOLD_RIGHT, 61), (1, _FOLD_LEFT, 291)):
        out = side * right
        fold = [p[fold_ids[0]] + 0.04 * out, p[fold_ids[1]], p[fold_ids[2]] + 0.02 * out]
        fold.append(p[corner] + 0.09 * out + 0.07 * down)
        fold = _bezier(np.array(fold))
        layer += shading.fold * _stroke(
            shape, fold, shading.fold_width, shading.fold_blur, iod, _FOLD_PROFILE
        )
        lit = fold + 0.06 * out - 0.02 * down  # the cheek side of the fold catches light
        layer += shading.fold_light * _stroke(shape, lit, 0.04, 0.05, iod, _FOLD_PROFILE)
        dimple = p[corner] + 0.015 * out
        layer += shading.corners * _spot(shape, dimple, shading.corner_sigma * iod)
    mouth_line = shading.mouth_line * (1.0 - float(open_mouth))
    if mouth_line:
        layer += mouth_line * _stroke(
            shape, p[list(_UPPER_INNER_LIP)], 0.01, shading.mouth_blur, iod, _MOUTH_PROFILE
        )
    for lid in (_RIGHT_LOWER_LID, _LEFT_LOWER_LID):
        crease = p[list(lid)] + shading.lid_offset * down
        layer += shading.lid_crease * _stroke(shape, crease, 0.015, 0.02, iod)
    for cheek in _CHEEKS:
        layer += shading.cheek_light * _spot(shape, p[cheek], shading.cheek_sigma * iod)
    return layer


def shade_face(
    out: np.ndarray,
    target_xy: np.ndarray,
    axes: np.ndarray,
    amount: float,
    weight: np.ndarray,
    box: tuple[int, int, int, int],
    shading: Shading = DEFAULT_SHADING,
    open_mouth: float = 0.0,
) -> int:
    """Apply the smile's shading to ``out`` in place; returns how many pixels changed.

    ``weight`` (same size as ``box``) is the face feather mask: 0 outside the face, so no
    pixel there changes. ``open_mouth``: see :func:`shading_layer`.
    """
    x0, y0, x1, y1 = box
    layer = shading_layer(target_xy, axes, box, shading, open_mouth)
    layer *= float(amount) * weight
    roi = out[y0:y1, x0:x1]
    shaded = np.clip(roi.astype(np.float32) * (1.0 + layer[..., None]) + 0.5, 0, 255)
    shaded = shaded.astype(np.uint8)
    changed = (shaded != roi).any(-1)
    roi[changed] = shaded[changed]
    return int(changed.sum())


def _bezier(points: np.ndarray, count: int = _FOLD_POINTS) -> np.ndarray:
    """A smooth curve through the first and last of ``points`` (Bezier with the rest as controls)."""
    t = np.linspace(0.0, 1.0, count)[:, None]
    n = len(points) - 1
    coeff = [math.comb(n, k) * t**k * (1 - t) ** (n - k) for k in range(n + 1)]
    return sum(c * pt for c, pt in zip(coeff, points, strict=True))


def _stroke(
    shape: tuple[int, int],
    points: np.ndarray,
    width: float,
    blur: float,
    iod: float,
    profile: np.ndarray | None = None,
) -> np.ndarray:
    """A soft line (peak 1) along ``points``; width and blur in IOD.

    ``profile`` (one value per point, 0..1) fades the line along its length: a fold is
    deepest in its middle and fades out at the nose wing, a closed mouth's line is darkest
    at the corners. The blur is done at the end, so the fading is smooth too.
    """
    canvas = np.zeros(shape, np.float32)
    pts = np.round(np.asarray(points) * 16).astype(np.int32)  # 4 fractional bits (shift=4)
    thick = max(int(round(width * iod)), 1)
    weights = np.ones(len(pts)) if profile is None else np.asarray(profile, np.float64)
    for k in range(len(pts) - 1):
        value = float(weights[k] + weights[k + 1]) / 2
        if value > 0:  # later (stronger) segments win where segments overlap
            cv2.line(canvas, pts[k], pts[k + 1], value, thick, cv2.LINE_AA, shift=4)
    sigma = max(blur * iod, 0.5)
    soft = cv2.GaussianBlur(canvas, (0, 0), sigma)
    peak = float(soft.max())
    return soft * (float(weights.max()) / peak) if peak > 0 else soft


def _spot(shape: tuple[int, int], centre: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blob (1 at ``centre``) of radius ``sigma`` pixels."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    d2 = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2
    return np.exp(-d2 / (2 * max(sigma, 0.5) ** 2)).astype(np.float32)
