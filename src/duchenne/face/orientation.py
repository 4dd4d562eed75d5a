"""Faces of photos turned sideways or upside down (no EXIF orientation tag to say so).

Why: a scanned print or an export that lost its EXIF orientation may be upside down, and
BlazeFace then finds nothing (the astronaut and Grace Hopper photos turned 180 degrees: 0
faces). Sideways it does find faces, but with coarse eye keypoints, which put boxes 6-38 px
off and Grace's P(smile) at 0.29-0.32 instead of 0.14. :func:`find_turned` looks for the
faces in the turned photo where they are upright and maps them back; the Face Mesh ROI and
the smile crop turn with the eye line, so such faces then measure as in the upright photo.

BlazeFace also finds some upside-down and sideways faces with a level eye line (0.6-0.8), so
the photo looks upright and is never searched (measured on 1,603 photos turned 90, 180 and
270 degrees: 584 of the 2,715 turned copies with a face). Face Mesh tells them apart:
:func:`upright_presence` is its face presence of faces that it finds level, under
``SURE_PRESENCE`` for such a copy and at or above it for nearly every upright photo, so the
analyzer searches those too and keeps a turn only where Face Mesh is surer (see
:data:`SURE_PRESENCE`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from duchenne.face.detector import SECOND_CHANCE_MIN, Detections, FaceDetector
from duchenne.face.topology import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

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
#: A Face Mesh face is level when its eye line (outer eye corners) is within this many
#: degrees of level: nearer level than any other quarter turn. The mesh's eye line is
#: precise (upright MTFL photos: at most 29 degrees; views 90 degrees off: 71-79).
MESH_UPRIGHT_ROLL = 45.0
#: With the landmarks stage, a photo that looks upright is searched turned when its
#: :func:`upright_presence` is under this, and a turn kept only where that is higher.
#: Measured on 1,603 photos (astronaut, Grace Hopper, Solvay; 800 MTFL ``lfw_5590`` and
#: 800 ``net_7876``, 331 of them profiles) and their 4,809 turned copies: 566 of the 590
#: copies with a face (one scoring ``SECOND_CHANCE_MIN`` upright) that the eye-line test
#: got wrong now come back upright (0.99: 496; 0.99999: 575), none it got right is lost;
#: 25 upright photos (1.6%) pay the search, none is turned. Even searched, no upright photo,
#: nor any of 66 without a face, has a turned view with a level mesh face surer than its
#: own (the closest 8.7 logits short). Without the level test four would turn: in a view
#: 90 degrees off, the mesh's refined ROI finds the same face sideways, at presence up to
#: 1 - 1e-17. Of the 24 copies still wrong, 13 are upside down with Face Mesh sure of the
#: face the wrong way up, 6 sideways ones the eye-line search turns wrong. Cost (one
#: thread): an upright photo that pays the search 23 -> 68 ms (250x250), an upside-down
#: face found at 180 degrees 15 -> 26 ms; nothing for the others. Without the landmarks
#: stage (``stages=detect``) only the eye line decides.
SURE_PRESENCE = 0.9999


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


def upright_presence(landmarks: np.ndarray, presence: np.ndarray, degrees: int = 0) -> float:
    """Face Mesh's best face presence among faces whose eye line it finds within
    ``MESH_UPRIGHT_ROLL`` of level in ``turn_image(image, degrees)`` (0.0 for none): how
    sure it is of an upright face there.

    Args:
        landmarks: Face Mesh landmarks (n, 468, 3) in the pixels of ``image``.
        presence: their face-presence probabilities (n,).
        degrees: the turn (counter-clockwise, as ``np.rot90``) they should be upright in.
    """
    dx, dy = (landmarks[:, LEFT_EYE_OUTER, :2] - landmarks[:, RIGHT_EYE_OUTER, :2]).T
    roll = (np.degrees(np.arctan2(dy, dx)) - degrees + 180) % 360 - 180  # in the turned image
    level = np.abs(roll) <= MESH_UPRIGHT_ROLL
    return float(presence[level].max()) if level.any() else 0.0


def find_turned(
    detector: FaceDetector,
    image: np.ndarray,
    found: Detections,
    accept: Callable[[Detections, int], bool] | None = None,
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
    only by such photos: one with no face at all takes about 3 times as long (measured
    on one thread, tiles included: 640x480 grey 17 -> 59 ms).

    Args:
        detector: BlazeFace.
        image: the photo as given.
        found: its faces as found (they order the turns).
        accept: a further test of a turn's faces (in ``image`` pixels) and the turn; a
            turn it rejects is passed over for the next (the analyzer's Face Mesh check,
            for photos that look upright).

    Returns:
        The detections in ``image`` pixels and the turn (degrees counter-clockwise, as
        ``np.rot90``) in which they are upright; None when no turn shows upright faces.
    """
    h, w = image.shape[:2]
    for degrees in _turns_to_try(found):
        dets = detector(turn_image(image, degrees), second_chance=False)
        if len(dets) and dets.score.max() >= SECOND_CHANCE_MIN and faces_upright(dets):
            back = detections_from_turned(dets, degrees, w, h)
            if accept is None or accept(back, degrees):
                return back, degrees
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
