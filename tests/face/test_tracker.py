"""FaceTracker: stable IDs through crossings, occlusions and new faces; Hungarian solver."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from duchenne.face.tracker import (
    FaceTracker,
    geometric_signature,
    iou_matrix,
    linear_sum_assignment,
)

FPS = 30.0


def _box(cx: float, cy: float, size: float) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def _mesh(cx: float, cy: float, size: float, proportions: float = 1.0) -> np.ndarray:
    """A 468-point face whose signature points are placed on a plausible layout."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.4, 0.4, (468, 3))
    layout = {
        33: (-0.25, -0.1),
        133: (-0.08, -0.1),
        362: (0.08, -0.1),
        263: (0.25, -0.1),
        168: (0.0, -0.1),
        1: (0.0, 0.1 * proportions),
        10: (0.0, -0.45),
        234: (-0.45 * proportions, 0.0),
        454: (0.45 * proportions, 0.0),
    }
    for i, (x, y) in layout.items():
        pts[i, :2] = (x, y)
    pts[:, :2] = pts[:, :2] * size + (cx, cy)
    pts[:, 2] *= size
    return pts


# ------------------------------------------------------------------------- Hungarian


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (4, 4), (3, 5), (5, 2)])
def test_hungarian_matches_brute_force(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        cost = rng.uniform(0, 10, shape)
        rows, cols = linear_sum_assignment(cost)
        n, m = shape
        k = min(n, m)
        if n <= m:
            best = min(
                sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), k)
            )
        else:
            best = min(
                sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), k)
            )
        assert len(rows) == k and len(set(rows)) == k and len(set(cols)) == k
        assert cost[rows, cols].sum() == pytest.approx(best)


def test_hungarian_empty_and_invalid() -> None:
    rows, cols = linear_sum_assignment(np.zeros((0, 3)))
    assert rows.size == cols.size == 0
    with pytest.raises(ValueError):
        linear_sum_assignment(np.array([[np.inf]]))


def test_iou_matrix() -> None:
    a = np.array([_box(0, 0, 2)])
    b = np.array([_box(0, 0, 2), _box(1, 0, 2), _box(10, 10, 2)])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 2 / 6, 0.0]])


def test_signature_invariant_to_position_and_scale() -> None:
    s1 = geometric_signature(_mesh(100, 100, 80))
    s2 = geometric_signature(_mesh(400, 250, 160))
    s3 = geometric_signature(_mesh(100, 100, 80, proportions=1.3))
    np.testing.assert_allclose(s1, s2, rtol=1e-9)
    assert np.abs(s3 - s1).max() > 0.1
    kp = np.array([[0, 0], [10, 0], [5, 5], [5, 10]], dtype=float)
    np.testing.assert_allclose(geometric_signature(kp), geometric_signature(kp * 3 + 7))
    assert geometric_signature(np.zeros((2, 2))) is None


# ------------------------------------------------------------------------- tracking


def test_two_faces_crossing_keep_ids() -> None:
    tracker = FaceTracker()
    rng = np.random.default_rng(3)
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    for f in range(40):
        faces = {
            "a": (_box(50 + 10 * f, 200, 80), _mesh(50 + 10 * f, 200, 80)),
            "b": (_box(450 - 10 * f, 215, 70), _mesh(450 - 10 * f, 215, 70, 1.25)),
        }
        order = list(faces) if rng.random() < 0.5 else list(faces)[::-1]
        boxes = np.array([faces[k][0] for k in order])
        lms = np.stack([faces[k][1] for k in order])
        ids, _ = tracker.update(boxes, lms, t=f / FPS)
        for k, i in zip(order, ids, strict=True):
            seen[k].add(int(i))
    assert len(seen["a"]) == 1 and len(seen["b"]) == 1
    assert seen["a"] != seen["b"]


def test_two_faces_crossing_without_landmarks() -> None:
    tracker = FaceTracker()
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    for f in range(40):
        boxes = np.array([_box(450 - 10 * f, 210, 70), _box(50 + 10 * f, 200, 80)])
        ids, lms = tracker.update(boxes, t=f / FPS)
        assert lms is None
        seen["b"].add(int(ids[0]))
        seen["a"].add(int(ids[1]))
    assert len(seen["a"]) == len(seen["b"]) == 1 and seen["a"] != seen["b"]


@pytest.mark.parametrize("speed", [0.0, 4.0])
def test_face_missing_five_frames_keeps_id(speed: float) -> None:
    tracker = FaceTracker(max_missed=10)
    other = (_box(500, 100, 60), _mesh(500, 100, 60, 1.3))
    ids_a = []
    for f in range(30):
        a = (_box(100 + speed * f, 200, 90), _mesh(100 + speed * f, 200, 90))
        visible = not 10 <= f < 15
        faces = [a, other] if visible else [other]
        ids, _ = tracker.update(
            np.array([b for b, _ in faces]), np.stack([m for _, m in faces]), t=f / FPS
        )
        if visible:
            ids_a.append(int(ids[0]))
    assert len(set(ids_a)) == 1


def test_new_face_gets_new_id_and_ids_are_not_reused() -> None:
    tracker = FaceTracker(max_missed=2)
    ids0, _ = tracker.update(np.array([_box(100, 100, 80)]))
    ids1, _ = tracker.update(np.array([_box(102, 100, 80), _box(400, 300, 60)]))
    assert ids1[0] == ids0[0] and ids1[1] != ids0[0]
    for _ in range(3):  # both disappear longer than max_missed
        tracker.update(np.zeros((0, 4)))
    assert tracker.active_ids == []
    ids2, _ = tracker.update(np.array([_box(100, 100, 80)]))
    assert ids2[0] not in (ids0[0], ids1[1])


def test_max_gap_seconds() -> None:
    tracker = FaceTracker(max_missed=100, max_gap_s=0.1)
    a, _ = tracker.update(np.array([_box(100, 100, 80)]), t=0.0)
    tracker.update(np.zeros((0, 4)), t=0.2)
    b, _ = tracker.update(np.array([_box(100, 100, 80)]), t=0.25)
    assert a[0] != b[0]


def test_landmarks_smoothed_per_track() -> None:
    rng = np.random.default_rng(4)
    tracker = FaceTracker()
    base = _mesh(200, 200, 100).astype(np.float32)
    raw, out = [], []
    for f in range(60):
        noisy = base + rng.normal(0, 0.5, base.shape).astype(np.float32)
        ids, sm = tracker.update(np.array([_box(200, 200, 100)]), noisy[None], t=f / FPS)
        assert sm is not None and sm.shape == (1, 468, 3) and sm.dtype == np.float32
        raw.append(noisy)
        out.append(sm[0])
    assert np.var(np.array(out)[20:] - base) < 0.4 * np.var(np.array(raw)[20:] - base)
    unsmoothed = FaceTracker(smooth=False)
    _, same = unsmoothed.update(np.array([_box(0, 0, 10)]), base[None])
    np.testing.assert_array_equal(same, base[None])


def test_reset_and_validation() -> None:
    tracker = FaceTracker()
    tracker.update(np.array([_box(10, 10, 10)]), t=1.0)
    with pytest.raises(ValueError, match="decrease"):
        tracker.update(np.array([_box(10, 10, 10)]), t=0.5)
    with pytest.raises(ValueError, match="boxes"):
        tracker.update(np.zeros((2, 3)), t=2.0)
    with pytest.raises(ValueError, match="landmarks"):
        tracker.update(np.array([_box(10, 10, 10)]), np.zeros((2, 468, 3)), t=2.0)
    tracker.reset()
    ids, _ = tracker.update(np.array([_box(10, 10, 10)]), t=0.0)
    assert ids.tolist() == [0] and ids.dtype == np.int64
    ids, lms = tracker.update(np.zeros((0, 4)), np.zeros((0, 468, 3)), t=0.1)
    assert ids.shape == (0,) and lms is not None and lms.shape == (0, 468, 3)


def test_lineage_from_the_face_stage_decides_identity_before_any_matching():
    a, b = [0.0, 0.0, 100.0, 100.0], [300.0, 0.0, 400.0, 100.0]
    by_cost, by_lineage = FaceTracker(), FaceTracker()
    assert by_cost.update(np.array([a, b]), t=0.0)[0].tolist() == [0, 1]
    assert by_lineage.update(np.array([a, b]), t=0.0, lineage=np.array([7, 8]))[0].tolist() == [
        0,
        1,
    ]
    # the two faces swap places between frames: position says one thing, the ROI chains
    # the stage followed (lineage) say the other
    swapped = np.array([b, a])
    assert by_cost.update(swapped, t=0.04)[0].tolist() == [1, 0]
    assert by_lineage.update(swapped, t=0.04, lineage=np.array([7, 8]))[0].tolist() == [0, 1]
    # a new lineage (a fresh detection) goes through cost matching: far from every
    # track, it starts a new one
    boxes = np.array([b, a, [1000.0, 0.0, 1100.0, 100.0]])
    ids = by_lineage.update(boxes, t=0.08, lineage=np.array([7, 8, 9]))[0]
    assert ids.tolist() == [0, 1, 2]


def test_box_iou_is_one_row_of_iou_matrix():
    from duchenne.face.boxes import box_iou

    rng = np.random.default_rng(1)
    boxes = rng.uniform(0, 100, (12, 4))
    boxes[:, 2:] += boxes[:, :2] + 1
    np.testing.assert_allclose(box_iou(boxes[3], boxes), iou_matrix(boxes[3:4], boxes)[0])


# ------------------------------------------------------------------------- occlusion

#: Half the width of a head (hair, ears) in face-box widths: how far a face in front hides
#: the one behind it.
_HEAD = 0.87


def _seen(cx: float, cy: float, w: float, h: float, lo: float, hi: float, p: float = 1.0):
    """Box and landmarks of a face whose visible part spans ``lo..hi`` in x: Face Mesh puts
    the whole face into the visible part, so the box shrinks and the proportions warp."""
    mesh = _mesh(cx, cy, h, p)
    x1, x2 = cx - w / 2, cx + w / 2
    mesh[:, 0] = lo + (mesh[:, 0] - x1) * (hi - lo) / (x2 - x1)
    return [lo, cy - h / 2, hi, cy + h / 2], mesh


def _crossing(frames: int = 120, speed: float = 4.0):
    """Per frame, the boxes and landmarks of two faces walking past each other: A in front,
    left to right, first; B right to left, hidden by A's head (0.87 face widths either
    side of A's centre), and missed while less than half of it shows."""
    w, h = 68.0, 78.0
    for f in range(frames):
        ax, bx = 80 + speed * f, 560 - speed * f
        lo, hi = bx - w / 2, bx + w / 2
        if ax < bx:
            lo = max(lo, ax + _HEAD * w)
        else:
            hi = min(hi, ax - _HEAD * w)
        faces = [_seen(ax, 120, w, h, ax - w / 2, ax + w / 2)]
        if hi - lo >= 0.5 * w:
            faces.append(_seen(bx, 120, w, h, lo, hi, 1.1))
        yield f, faces


@pytest.mark.parametrize("landmarks", [True, False], ids=["landmarks", "boxes"])
def test_a_face_hidden_behind_another_while_they_cross_keeps_its_id(landmarks) -> None:
    """The probe's crossing: while A covers B, B's box follows B's visible part, slowing to
    a stop and shrinking, and its landmarks warp; B is then missed for 0.6 s. B took a new
    ID when it came out: its track had learnt a stop, a shrinking box (turned inside out
    within 0.5 s, with no gate left) and warped proportions."""
    tracker = FaceTracker(max_missed=25, max_gap_s=1.0, fps=25.0)
    ids: dict[str, list[int]] = {"a": [], "b": []}
    hidden = 0
    for f, faces in _crossing():
        boxes = np.array([b for b, _ in faces])
        lms = np.stack([m for _, m in faces]) if landmarks else None
        out, _ = tracker.update(boxes, lms, t=f / 25.0, image_size=(640, 240))
        ids["a"].append(int(out[0]))
        if len(out) == 2:
            ids["b"].append(int(out[1]))
        hidden += len(out) == 1
    assert hidden >= 15  # B was really gone for a while, within max_gap_s
    assert set(ids["a"]) == {0} and set(ids["b"]) == {1}


def test_a_face_lost_while_its_box_shrinks_keeps_its_id() -> None:
    """A face turning away shrinks its box until the detector loses it; coasting, its
    predicted box keeps its last size. Extrapolating the shrinking turned the box inside
    out within 0.3 s: a face size of one pixel, so any distance was outside the gate and
    the face took a new ID when it turned back."""
    tracker = FaceTracker(max_missed=25, max_gap_s=1.0, fps=25.0)
    first, _ = tracker.update(np.array([_box(200, 150, 80)]), t=0.0)
    for f in range(1, 7):  # walking right at 3 px a frame, turning away
        cx, w = 200 + 3 * f, 80 * 0.94**f
        tracker.update(np.array([[cx - w / 2, 110, cx + w / 2, 190]]), t=f / 25.0)
    for f in range(7, 19):
        tracker.update(np.zeros((0, 4)), t=f / 25.0)
    back, _ = tracker.update(np.array([_box(218, 150, 80)]), t=19 / 25.0)  # stopped there
    assert back[0] == first[0]


@pytest.mark.parametrize("landmarks", [True, False], ids=["landmarks", "boxes"])
def test_a_face_walking_in_where_another_walked_out_gets_a_new_id(landmarks) -> None:
    """X walks out of the image at the right edge (its box stalls against the edge as it
    goes, as Face Mesh boxes do) and is last seen at 1.96 s; at 2.4 s, within
    ``max_gap_s``, a different face walks in there. X's track ends as soon as its
    prediction has left the image, so Y is not merged into it."""
    tracker = FaceTracker(max_missed=25, max_gap_s=1.0, fps=25.0)
    w, h, width = 68.0, 78.0, 480
    edge = width + 0.2 * w  # how far past the image Face Mesh still puts points
    ids: dict[str, set[int]] = {"x": set(), "y": set()}
    for f in range(80):
        faces, who = [], []
        x_cx, y_cx = 100 + 8 * f, width + w / 2 - 8 * (f - 60)
        for name, cx, p in (("x", x_cx, 1.0), ("y", y_cx, 1.3)):
            if cx - w / 2 < width - 0.3 * w and (name == "x" or f >= 60):
                faces.append(_seen(cx, 120, w, h, cx - w / 2, min(cx + w / 2, edge), p))
                who.append(name)
        boxes = np.array([b for b, _ in faces]).reshape(-1, 4)
        lms = np.stack([m for _, m in faces]) if landmarks and faces else None
        out, _ = tracker.update(boxes, lms, t=f / 25.0, image_size=(width, 240))
        for name, i in zip(who, out.tolist(), strict=True):
            ids[name].add(i)
        if f == 60:
            assert tracker.active_ids == []  # X left: ended before max_gap_s
    assert ids["x"] == {0} and ids["y"] == {1}


def test_end_all_ends_every_track_and_never_reuses_an_id():
    """At a scene cut the session ends every track: a face at the same place after it is
    a new face (position alone would give it the old ID), and IDs stay unique."""
    tracker = FaceTracker()
    boxes = np.array([_box(50, 50, 40), _box(150, 50, 40)])
    assert tracker.update(boxes, t=0.0)[0].tolist() == [0, 1]
    assert tracker.update(boxes, t=0.04)[0].tolist() == [0, 1]
    tracker.end_all()
    assert tracker.active_ids == []
    assert tracker.update(boxes, t=0.08)[0].tolist() == [2, 3]
    assert tracker.update(boxes, t=0.12)[0].tolist() == [2, 3]
