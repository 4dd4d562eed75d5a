"""Landmark-based smile geometry: interpretable action-unit proxies and head pose.

Why normalise: raw pixel distances depend on face size and head roll. Every value here is
computed after rotating the landmarks so the eye line is horizontal and dividing by the
inter-ocular distance (IOD), so a value means the same for a 40 px and a 400 px face.

Values (all floats, unitless unless stated):
- ``mouth_width``: lip-corner distance / IOD (AU12 widens the mouth).
- ``lip_corner_elevation``: height of the lip corners above the lip centre / IOD
  (AU12 pulls the corners up; > 0 in a smile, < 0 for a frown).
- ``mouth_open``: inner-lip gap / IOD.
- ``eye_aperture``: eyelid gap / eye width, mean of both eyes (AU6/AU7 narrow it).
- ``cheek_eye_distance``: cheek point to lower eyelid / IOD (AU6 raises the cheek, so it
  falls in a Duchenne smile).
- ``yaw``, ``pitch``, ``roll``: head pose in degrees (yaw > 0: face turned to the image's
  right; pitch > 0: looking up; roll > 0: eye line sloping down to the image's right).

``au_proxies`` turns these into single-photo AU6/AU12 proxies in [0, 1].
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

import numpy as np

from duchenne.face import topology as T
from duchenne.face.align import eye_centres
from duchenne.face.topology import (
    CHEEK_LEFT,
    CHEEK_RIGHT,
    CHIN,
    FOREHEAD,
    LIP_LOWER_INNER,
    LIP_UPPER_INNER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
)

RIGHT_EYE = {"outer": T.RIGHT_EYE_OUTER, "inner": T.RIGHT_EYE_INNER,
             "upper": T.RIGHT_EYE_UPPER, "lower": T.RIGHT_EYE_LOWER}  # fmt: skip
LEFT_EYE = {"outer": T.LEFT_EYE_OUTER, "inner": T.LEFT_EYE_INNER,
            "upper": T.LEFT_EYE_UPPER, "lower": T.LEFT_EYE_LOWER}  # fmt: skip

GEOMETRY_KEYS = (
    "mouth_width",
    "lip_corner_elevation",
    "mouth_open",
    "eye_aperture",
    "cheek_eye_distance",
    "yaw",
    "pitch",
    "roll",
)


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Landmarks (468, 2) rotated to a level eye line, centred on the eye midpoint, in IOD units.

    Returns:
        The normalised (468, 2) points, the IOD in pixels and the roll in radians.
    """
    right, left = eye_centres(landmarks)
    d = left - right
    iod = max(float(np.hypot(*d)), 1e-6)
    roll = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(roll), np.sin(roll)
    rot = np.array([[c, s], [-s, c]])
    pts = (landmarks[:, :2] - (right + left) / 2) @ rot.T / iod
    return pts, iod, roll


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the 3-D mesh's own axes.

    The face's x axis runs from the right to the left outer eye corner, its y axis from
    forehead to chin (orthogonalised); their directions in camera space give the angles.
    Face Mesh z grows away from the camera.
    """
    p = landmarks.astype(np.float64)
    x = p[LEFT_EYE["outer"]] - p[RIGHT_EYE["outer"]]
    x /= np.linalg.norm(x) + 1e-9
    y = p[CHIN] - p[FOREHEAD]
    y -= x * (y @ x)
    y /= np.linalg.norm(y) + 1e-9
    yaw = np.degrees(np.arctan2(x[2], np.hypot(x[0], x[1])))
    pitch = np.degrees(np.arctan2(-y[2], np.hypot(y[0], y[1])))
    roll = np.degrees(np.arctan2(x[1], x[0]))
    return float(yaw), float(pitch), float(roll)


def smile_geometry(landmarks: np.ndarray) -> dict[str, float]:
    """All ``GEOMETRY_KEYS`` for one face's (468, 3) landmarks (see module docstring)."""
    pts, _, _ = face_frame(landmarks)
    corners = pts[[MOUTH_RIGHT, MOUTH_LEFT]]
    lip_centre = (pts[LIP_UPPER_INNER] + pts[LIP_LOWER_INNER]) / 2
    yaw, pitch, roll = head_pose(landmarks)
    return {
        "mouth_width": _dist(corners[0], corners[1]),
        "lip_corner_elevation": float(lip_centre[1] - corners[:, 1].mean()),
        "mouth_open": _dist(pts[LIP_UPPER_INNER], pts[LIP_LOWER_INNER]),
        "eye_aperture": (_aperture(pts, RIGHT_EYE) + _aperture(pts, LEFT_EYE)) / 2,
        "cheek_eye_distance": (
            _dist(pts[CHEEK_RIGHT], pts[RIGHT_EYE["lower"]])
            + _dist(pts[CHEEK_LEFT], pts[LEFT_EYE["lower"]])
        )
        / 2,
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
    }


def geometry_arrays(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """``smile_geometry`` for (n, 468, 3) landmarks as arrays of shape (n,) per key."""
    rows = [smile_geometry(lm) for lm in landmarks]
    return {k: np.array([r[k] for r in rows], np.float32) for k in GEOMETRY_KEYS}


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a - b)))


def _aperture(pts: np.ndarray, eye: dict[str, int]) -> float:
    width = max(_dist(pts[eye["outer"]], pts[eye["inner"]]), 1e-6)
    return _dist(pts[eye["upper"]], pts[eye["lower"]]) / width


@functools.lru_cache(maxsize=1)
def face_norms() -> dict[str, dict[str, float]]:
    """Neutral-face medians and full-strength changes (``scripts/measure_face_norms.py``)."""
    from duchenne import data

    doc = json.loads(data.path("face_norms.json").read_text())
    return {"neutral": doc["neutral"], "full": doc["full"]}


def au_proxies(geometry: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Single-photo action-unit proxies in [0, 1] from ``geometry_arrays`` values.

    Why a population reference: a video compares each frame with the same face at rest
    (``duchenne.analysis.authenticity``); one photo has no rest frame, so each cue is the
    change from the median neutral FER+ face, divided by the change seen at the 90th
    percentile of clearly happy FER+ faces, clipped to [0, 1]. They are proxies: a face
    whose eyes are narrow at rest reads as some ``eye_narrowing``.

    - ``cheek_raise``: relative fall of ``cheek_eye_distance`` (AU6).
    - ``eye_narrowing``: relative fall of ``eye_aperture`` (AU6 with AU7).
    - ``lip_corner_pull``: mean of the lip-corner rise and the mouth widening (AU12).
    - ``au6``: mean of ``cheek_raise`` and ``eye_narrowing``; ``au12``: ``lip_corner_pull``.
    """
    norms = face_norms()
    neutral, full = norms["neutral"], norms["full"]

    def clip(x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, 1.0).astype(np.float32)  # NaN stays NaN (written as null)

    eye = np.asarray(geometry["eye_aperture"], np.float64)
    cheek = np.asarray(geometry["cheek_eye_distance"], np.float64)
    elev = np.asarray(geometry["lip_corner_elevation"], np.float64)
    width = np.asarray(geometry["mouth_width"], np.float64)
    eye_n = clip((1 - eye / neutral["eye_aperture"]) / full["eye_narrowing"])
    cheek_r = clip((1 - cheek / neutral["cheek_eye_distance"]) / full["cheek_raise"])
    rise = clip((elev - neutral["lip_corner_elevation"]) / full["lip_corner_rise"])
    widen = clip((width / neutral["mouth_width"] - 1) / full["mouth_widening"])
    pull = ((rise + widen) / 2).astype(np.float32)
    return {
        "au6": ((eye_n + cheek_r) / 2).astype(np.float32),
        "au12": pull,
        "cheek_raise": cheek_r,
        "eye_narrowing": eye_n,
        "lip_corner_pull": pull,
    }
