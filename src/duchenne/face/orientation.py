"""Faces of photos turned sideways or upside down (no EXIF orientation tag to say so).

Why: a scanned print or an export that lost its EXIF orientation may be upside down, and
BlazeFace then finds nothing (the astronaut and Grace Hopper photos turned 180 degrees: 0
faces). Sideways it does find faces, but with coarse eye keypoints, which put boxes 6-38 px
off and Grace's P(smile) at 0.29-0.32 instead of 0.14. :func:`find_turned` looks for the
faces in the turned photo where they are upright and maps them back; the Face Mesh ROI and
the smile crop turn with the eye line, so such faces then measure as in the upright photo.
"""

from __future__ import annotations

import numpy as np

from duchenne.face.detector import SECOND_CHANCE_MIN, Detections, FaceDetector

#: Quarter turns (degrees counter-clockwise, as ``np.rot90``) a photo without an upright
#: face is searched in: upside down first, since BlazeFace finds sideways faces (and the
#: turn their eye line points to then goes first) but not upside-down ones.
ROTATIONS = (180, 90, 270)
#: A face is upright when its eye line is within this many degrees of level. BlazeFace's
#: eye keypoints of a sideways face are coarse (the astronaut turned 90 and 270 degrees:
#: -61 and 49 degrees; 41 after JPEG at quality 75, which 45 called upright), so the bar
#: sits below them; an upright head tilted past it only costs the search, whose turned
#: views then show it no more level.
UPRIGHT_ROLL = 30.0


def turn_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` turned counter-clockwise by a multiple of 90 ``degrees`` (``np.rot90``)."""
    return np.ascontiguousarray(np.rot90(image, degrees // 90))


def points_from_turned(xy: np.ndarray, degrees: int, w: int, h: int) -> np.ndarray:
    """Points (..., 2) of ``turn_image(image, degrees)`` in the pixels of ``image`` (w x h).

    Pixel centres sit at whole coordinates (x = w - 1 - x' for a half turn), as in the
    OpenCV warps that cut the Face Mesh and smile crops: crops cut at mapped points are
    then the crops of the turned image (measured on the astronaut and Grace Hopper turned
    90, 180 and 270 degrees: landmarks within 0.02 px and P(smile) within 0.002 of the
    upright photo's; with x = w - x', landmarks moved 1.4 px and Grace's P(smile) went
    from 0.14 to 0.26).
    """
    x, y = xy[..., 0], xy[..., 1]
    back = {
        0: (x, y),
        90: (w - 1 - y, x),
        180: (w - 1 - x, h - 1 - y),
        270: (y, h - 1 - x),
    }[degrees % 360]
    return np.stack(back, axis=-1).astype(xy.dtype)


def detections_from_turned(dets: Detections, degrees: int, w: int, h: int) -> Detections:
    """``dets``, found in ``turn_image(image, degrees)``, in the pixels of ``image``
    (``w`` x ``h``): keypoints mapped, boxes spanning their mapped corners."""
    corners = points_from_turned(dets.xyxy.reshape(-1, 2, 2), degrees, w, h)
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
    return Detections(boxes, points_from_turned(dets.keypoints, degrees, w, h), dets.score)


def faces_upright(dets: Detections) -> bool:
    """Whether most faces' eye lines are within ``UPRIGHT_ROLL`` of level (False for no
    face): the test of whether a photo needs :func:`find_turned`."""
    return len(dets) > 0 and bool(np.median(np.abs(_eye_roll(dets))) <= UPRIGHT_ROLL)


def find_turned(
    detector: FaceDetector, image: np.ndarray, found: Detections
) -> tuple[Detections, int] | None:
    """The faces of ``image`` turned so that they are upright, for a photo whose faces as
    given (``found``) are not (none, or mostly eye lines more than ``UPRIGHT_ROLL`` off).

    The turns of ``ROTATIONS`` are tried in order, the one that levels most of ``found``'s
    eye lines first, and the first whose faces are upright is kept: any such turn is the
    upright photo, so later ones could not do better. A turned view must also have a face
    scoring ``SECOND_CHANCE_MIN``, as the padded second chance must: three more looks see
    three times the false candidates (blurred noise: 0.60-0.73; the real faces of the
    tests 0.86-0.92).

    Cost: up to three detector passes without the grey-border second chance (a turned
    view must score ``SECOND_CHANCE_MIN`` anyway, and that pass was half the cost), paid
    only by such photos: one with no face at all takes about 2.4 times as long (measured
    on one thread: 640x480 10 -> 24 ms).

    Returns:
        The detections in ``image`` pixels and the turn (degrees counter-clockwise, as
        ``np.rot90``) in which they are upright; None when no turn shows upright faces.
    """
    h, w = image.shape[:2]
    for degrees in _turns_to_try(found):
        dets = detector(turn_image(image, degrees), second_chance=False)
        if len(dets) and dets.score.max() >= SECOND_CHANCE_MIN and faces_upright(dets):
            return detections_from_turned(dets, degrees, w, h), degrees
    return None


def _eye_roll(dets: Detections) -> np.ndarray:
    """Each face's eye-line angle in degrees (0: level, the subject's right eye on the left)."""
    dx, dy = (dets.keypoints[:, 1] - dets.keypoints[:, 0]).T
    return np.degrees(np.arctan2(dy, dx))


def _turns_to_try(found: Detections) -> tuple[int, ...]:
    """``ROTATIONS``, the turn that levels most of ``found``'s eye lines first."""
    if not len(found):
        return ROTATIONS
    quarters = np.round(_eye_roll(found) / 90).astype(int) % 4
    level = int(np.bincount(quarters, minlength=4).argmax()) * 90
    return (level, *(t for t in ROTATIONS if t != level)) if level in ROTATIONS else ROTATIONS
