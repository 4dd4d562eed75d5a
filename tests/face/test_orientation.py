"""Turned photos: mapping points and detections from a turned image back into it."""

from __future__ import annotations

import numpy as np

from duchenne.face.detector import Detections
from duchenne.face.orientation import (
    ROTATIONS,
    detections_from_turned,
    find_turned,
    points_from_turned,
    turn_image,
    upright_presence,
)


def test_points_found_in_a_turned_image_map_back_to_the_same_pixel() -> None:
    """Every pixel of ``turn_image(image, d)`` maps back onto the pixel it came from (pixel
    centres at whole coordinates, as OpenCV's crop warps read points)."""
    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)  # h 5, w 7: all distinct
    for degrees in (0, 90, 180, 270):
        turned = turn_image(image, degrees)
        assert turned.flags.c_contiguous
        ys, xs = np.mgrid[: turned.shape[0], : turned.shape[1]]
        points = np.stack([xs, ys], -1).astype(np.float32)
        back = points_from_turned(points, degrees, 7, 5).astype(int)
        np.testing.assert_array_equal(image[back[..., 1], back[..., 0]], turned)


def test_detections_from_a_turned_image_keep_boxes_ordered_and_keypoints_mapped() -> None:
    """A box at x 10-20, y 30-50 of a 100x60 image turned a quarter (60 wide, 100 high)
    lies at x 99 - (50..30), y 10-20 of the image, corners still (x1, y1) < (x2, y2)."""
    dets = Detections(
        np.array([[10, 30, 20, 50]], np.float32),
        np.tile(np.array([[10.0, 30.0]], np.float32), (1, 6, 1)),
        np.array([0.9], np.float32),
    )
    back = detections_from_turned(dets, 90, 100, 60)
    np.testing.assert_allclose(back.xyxy, [[49, 10, 69, 20]])
    np.testing.assert_allclose(back.keypoints[0, 0], [69, 10])
    np.testing.assert_allclose(back.score, dets.score)


def _mesh_faces(rolls: list[float]) -> np.ndarray:
    """Landmarks (n, 468, 3) whose outer eye corners (33 right, 263 left) make these eye-line
    angles in degrees (0: level, the subject's right eye on the left)."""
    marks = np.zeros((len(rolls), 468, 3), np.float32)
    for i, roll in enumerate(rolls):
        a = np.radians(roll)
        marks[i, 33, :2] = (100.0, 100.0)
        marks[i, 263, :2] = (100 + 50 * np.cos(a), 100 + 50 * np.sin(a))
    return marks


def test_upright_presence_counts_only_faces_face_mesh_finds_level() -> None:
    """A face the mesh sees sideways (its refined ROI follows a sideways face into a view
    90 degrees off, at presence near 1) says nothing of an upright one."""
    presence = np.array([0.7, 0.9999999, 0.95], np.float32)
    assert upright_presence(_mesh_faces([10.0, 80.0, -40.0]), presence) == np.float32(0.95)
    assert upright_presence(_mesh_faces([180.0, 90.0]), presence[:2]) == 0.0
    assert upright_presence(_mesh_faces([]), np.zeros(0, np.float32)) == 0.0
    # level in the photo turned 90 degrees counter-clockwise: its eye line points down here
    assert upright_presence(_mesh_faces([95.0, -90.0]), presence[:2], 90) == np.float32(0.7)


class _LevelFaces:
    """A stand-in detector that finds one level face (score 0.9) in every look."""

    def __init__(self) -> None:
        self.looks = 0

    def __call__(self, image: np.ndarray, second_chance: bool | None = None) -> Detections:
        self.looks += 1
        keypoints = np.zeros((1, 6, 2), np.float32)
        keypoints[0, :2] = [[10, 20], [30, 20]]
        return Detections(np.array([[0, 0, 40, 40]], np.float32), keypoints, np.array([0.9]))


def test_find_turned_passes_over_turns_its_test_rejects() -> None:
    """``accept`` (the analyzer's Face Mesh check) turns down a view: the next turn is
    tried, and no turn at all when it turns down every one."""
    image = np.zeros((60, 80, 3), np.uint8)
    seen: list[Detections] = []
    detector = _LevelFaces()
    found = find_turned(
        detector, image, Detections.empty(), accept=lambda d, t: seen.append(d) or len(seen) == 2
    )
    assert found is not None and found[1] == ROTATIONS[1] and detector.looks == 2
    np.testing.assert_allclose(found[0].xyxy, seen[1].xyxy)
    assert find_turned(_LevelFaces(), image, Detections.empty(), accept=lambda d, t: False) is None
    assert find_turned(_LevelFaces(), image, Detections.empty())[1] == ROTATIONS[0]
