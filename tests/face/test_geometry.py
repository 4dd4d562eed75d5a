"""Smile geometry: invariant to head roll, scale and position; responds to smiles; pose angles."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.face import geometry as g


def synthetic_face(smile: float = 0.0, squint: float = 0.0) -> np.ndarray:
    """468 3-D points in a frontal face frame, IOD = 60 px; only the points geometry uses matter."""
    p = np.zeros((468, 3))
    eye_pts = {
        "right": (np.array([-30.0, 0.0]), g.RIGHT_EYE, (33, 133, 159, 145, 160, 144, 158, 153)),
        "left": (np.array([30.0, 0.0]), g.LEFT_EYE, (263, 362, 386, 374, 387, 373, 385, 380)),
    }
    aperture = 6.0 * (1 - squint)
    for centre, eye, contour in eye_pts.values():
        for idx in contour:
            p[idx, :2] = centre
        sign = 1 if centre[0] > 0 else -1
        p[eye["outer"], :2] = centre + [sign * 12, 0]
        p[eye["inner"], :2] = centre - [sign * 12, 0]
        p[eye["upper"], :2] = centre - [0, aperture / 2]
        p[eye["lower"], :2] = centre + [0, aperture / 2]
    # keep the eye centre (mean of contour) exactly on `centre`: outer/inner and upper/lower cancel
    p[g.CHEEK_RIGHT, :2] = [-32, 30 - 8 * squint]
    p[g.CHEEK_LEFT, :2] = [32, 30 - 8 * squint]
    p[g.MOUTH_RIGHT, :2] = [-25 - 5 * smile, 70 - 8 * smile]
    p[g.MOUTH_LEFT, :2] = [25 + 5 * smile, 70 - 8 * smile]
    p[g.LIP_UPPER_INNER, :2] = [0, 68]
    p[g.LIP_LOWER_INNER, :2] = [0, 72 + 4 * smile]
    p[g.FOREHEAD, :2] = [0, -50]
    p[g.CHIN, :2] = [0, 110]
    return p


def transform(p: np.ndarray, angle_deg: float, scale: float, shift) -> np.ndarray:
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    out = p.copy()
    out[:, :2] = p[:, :2] @ rot.T * scale + shift
    out[:, 2] *= scale
    return out


def test_invariant_to_roll_scale_translation() -> None:
    base = g.smile_geometry(synthetic_face(smile=0.5))
    moved = g.smile_geometry(transform(synthetic_face(smile=0.5), 25, 3.0, [400, 300]))
    for key in (
        "mouth_width",
        "lip_corner_elevation",
        "mouth_open",
        "eye_aperture",
        "cheek_eye_distance",
    ):
        assert moved[key] == pytest.approx(base[key], abs=1e-6), key
    assert moved["roll"] == pytest.approx(25, abs=1e-6)


def test_known_values() -> None:
    geo = g.smile_geometry(synthetic_face())
    assert geo["mouth_width"] == pytest.approx(50 / 60)
    assert geo["lip_corner_elevation"] == pytest.approx(0.0)
    assert geo["mouth_open"] == pytest.approx(4 / 60)
    assert geo["eye_aperture"] == pytest.approx(6 / 24)


def test_smile_and_squint_move_the_proxies_the_right_way() -> None:
    neutral, smile = (
        g.smile_geometry(synthetic_face()),
        g.smile_geometry(synthetic_face(smile=1, squint=0.5)),
    )
    assert smile["mouth_width"] > neutral["mouth_width"]
    assert smile["lip_corner_elevation"] > neutral["lip_corner_elevation"] > -1e-9
    assert smile["eye_aperture"] < neutral["eye_aperture"]
    assert smile["cheek_eye_distance"] < neutral["cheek_eye_distance"]


@pytest.mark.parametrize("yaw", [-30.0, 0.0, 20.0])
def test_head_pose_yaw(yaw: float) -> None:
    p = synthetic_face()
    a = np.radians(yaw)
    # rotate about the vertical axis: x' = x cos + z sin, z' = -x sin + z cos
    x, z = p[:, 0].copy(), p[:, 2].copy()
    p[:, 0], p[:, 2] = x * np.cos(a) + z * np.sin(a), -x * np.sin(a) + z * np.cos(a)
    got_yaw, pitch, roll = g.head_pose(p)
    assert got_yaw == pytest.approx(-yaw, abs=1e-6)
    assert pitch == pytest.approx(0, abs=1e-6) and roll == pytest.approx(0, abs=1e-6)


def test_head_pose_pitch_sign() -> None:
    p = synthetic_face()
    p[g.CHIN, 2] = -30.0  # chin comes toward the camera: looking up
    p[g.FOREHEAD, 2] = 30.0
    assert g.head_pose(p)[1] > 10
