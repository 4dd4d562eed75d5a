"""Stable face identities across video frames, with per-face landmark smoothing.

Why a tracker at all: smile dynamics (D-Markers) are measured on one face's landmark
sequence, so each detection must be attached to the same person from frame to frame, also
when faces cross, when the detector misses a face for a few frames, or when a hand briefly
occludes it. Appearance models would need another network; faces in one video differ
enough in position, motion, size and facial proportions for a purely geometric tracker.

Algorithm, per frame:

1. **Predict** each track's box at the frame time: the centre moves with a constant
   velocity (an exponential average of centre displacements per second), the size stays
   the last one seen. Extrapolating each corner instead (a size velocity) turns a box that
   was shrinking when its face was lost inside out within a fraction of a second, and a
   box of no size has no gate to re-identify the face in (SORT stops its area velocity
   before the area turns negative, for the same reason).
2. **Cost** of detection ``j`` for track ``i`` is a weighted mean of

   - ``1 - IoU(predicted box, detection)``,
   - the centre distance divided by the predicted face size (``sqrt(w * h)``) and by a
     radius that grows with the number of missed frames (a lost face is less certain),
   - ``|log(size ratio)| / log 2`` (faces do not double in size between frames),
   - the distance between geometric signatures (facial proportions normalised by the
     inter-ocular distance, see :func:`geometric_signature`) when landmarks are given;
     this is what re-identifies a face after a short occlusion, when the prediction has
     drifted and IoU is zero.

   Each term is clipped to [0, 1]; pairs whose centre lies outside the gate radius or
   whose cost exceeds ``max_cost`` are forbidden.
3. **Assign** with the Hungarian algorithm (:func:`linear_sum_assignment`, O(n^3) in numpy,
   optimal for the summed cost; n is the number of faces, so tiny).
4. Matched tracks are updated; unmatched tracks count a missed frame and are dropped after
   ``max_missed`` frames or ``max_gap_s`` seconds, or as soon as their predicted box has
   moved wholly out of the image (the face left the frame; a face coming in there later
   is another one); unmatched detections start new tracks with new IDs (IDs are never
   reused).
   A face may be partly hidden: by another face passing in front of it (a detection whose
   centre lies within ``crowd_distance`` face sizes of another face of the frame) or by
   the edge of the image (a box reaching past it). Its box and landmarks then follow the
   visible part, so the box slows to a stop and the proportions warp while the face is
   being covered. Such a detection moves its track's box but teaches it neither velocity
   nor signature: the track coasts on the motion and proportions it had before, which is
   what finds the face again when it comes out on the other side, and what carries a face
   walking out of the image out of it (the occlusion-aware update of multi-object
   trackers: learn motion and appearance from whole observations only).
5. Each track owns a :class:`~duchenne.face.smoothing.OneEuroFilter`; landmarks are
   filtered with the face size as the speed scale, so the defaults are size independent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from duchenne.face import topology as T
from duchenne.face.boxes import iou_matrix
from duchenne.face.smoothing import OneEuroFilter

__all__ = ["FaceTracker", "geometric_signature", "iou_matrix", "linear_sum_assignment"]

logger = logging.getLogger(__name__)

#: Rigid-ish Face Mesh points for the signature: eye corners (33, 133, 362, 263), nose
#: bridge 168, nose tip 1, forehead 10, face sides 234 / 454. The mouth and the chin are
#: left out because a smile or an open jaw changes them.
_MESH_SIGNATURE_PAIRS: tuple[tuple[int, int], ...] = (
    (T.FACE_RIGHT, T.FACE_LEFT),  # face width
    (T.NOSE_BRIDGE, T.NOSE_TIP),  # nose length
    (T.RIGHT_EYE_OUTER, T.RIGHT_EYE_INNER),  # right eye width
    (T.LEFT_EYE_INNER, T.LEFT_EYE_OUTER),  # left eye width
    (T.FOREHEAD, T.NOSE_BRIDGE),  # forehead to nose bridge
    (T.NOSE_TIP, T.FACE_RIGHT),  # nose tip to right face side
    (T.NOSE_TIP, T.FACE_LEFT),  # nose tip to left face side
)
_BIG = 1e6


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular matrix (Hungarian / Kuhn-Munkres).

    The shortest-augmenting-path form with dual potentials (Jonker-Volgenant style):
    O(n^2 m) for n <= m, every row or every column assigned. Same contract as
    ``scipy.optimize.linear_sum_assignment``, which is not a runtime dependency.

    Args:
        cost: (n, m) finite costs.

    Returns:
        ``(rows, cols)`` index arrays, sorted by row.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError("cost must be a 2-D matrix")
    if c.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    if not np.all(np.isfinite(c)):
        raise ValueError("cost must be finite (use a large value to forbid a pair)")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    row_of_col = _hungarian(c)
    cols = np.nonzero(row_of_col >= 0)[0]
    rows = row_of_col[cols]
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.intp), cols[order].astype(np.intp)


def _hungarian(c: np.ndarray) -> np.ndarray:
    """Core of :func:`linear_sum_assignment` for n <= m; returns the row of each column (-1 = none)."""
    n, m = c.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.intp)  # p[j]: row (1-based) assigned to column j; 0 = free
    way = np.zeros(m + 1, dtype=np.intp)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            j1 = int(np.argmin(np.where(free, minv[1:], np.inf))) + 1
            delta = minv[j1]
            cols_used = np.nonzero(used)[0]
            u[p[cols_used]] += delta
            v[cols_used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return p[1:] - 1


def geometric_signature(landmarks: np.ndarray) -> np.ndarray | None:
    """Appearance-free descriptor of facial proportions, invariant to position and scale.

    For the 468/478-point Face Mesh: the lengths of :data:`_MESH_SIGNATURE_PAIRS` divided by
    the inter-ocular distance (between the centres of the eye corners 33/133 and 362/263).
    For any other ``k`` points (e.g. the 6 BlazeFace keypoints): all pairwise distances
    divided by the distance between the first two points (the eyes in BlazeFace order).

    Args:
        landmarks: (k, 2 or 3) points; only x and y are used.

    Returns:
        1-D descriptor, or ``None`` when the reference distance is degenerate or k < 3.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if pts.shape[0] >= T.NUM_LANDMARKS:
        eye_r = 0.5 * (pts[T.RIGHT_EYE_OUTER] + pts[T.RIGHT_EYE_INNER])
        eye_l = 0.5 * (pts[T.LEFT_EYE_INNER] + pts[T.LEFT_EYE_OUTER])
        ref = float(np.linalg.norm(eye_l - eye_r))
        a, b = (np.array(idx) for idx in zip(*_MESH_SIGNATURE_PAIRS, strict=True))
        dist = np.linalg.norm(pts[a] - pts[b], axis=1)
    elif pts.shape[0] >= 3:
        ref = float(np.linalg.norm(pts[1] - pts[0]))
        iu = np.triu_indices(pts.shape[0], k=1)
        dist = np.linalg.norm(pts[iu[0]] - pts[iu[1]], axis=1)
    else:
        return None
    if not np.isfinite(ref) or ref <= 1e-9 or not np.all(np.isfinite(dist)):
        return None
    return dist / ref


def _box_size(box: np.ndarray) -> float:
    """Geometric-mean side of a box (pixels), floored at one pixel."""
    w = max(float(box[2] - box[0]), 1.0)
    h = max(float(box[3] - box[1]), 1.0)
    return float(np.sqrt(w * h))


def _outside(box: np.ndarray, image_size: tuple[int, int]) -> bool:
    """Whether a box lies wholly outside an image of ``(width, height)``."""
    w, h = image_size
    return bool(box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h)


def _centre(box: np.ndarray) -> np.ndarray:
    """(x, y) centre of a box."""
    return 0.5 * (box[:2] + box[2:])


@dataclass
class _Track:
    """Mutable state of one tracked face."""

    track_id: int
    box: np.ndarray
    t: float
    filter: OneEuroFilter
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre, px/s
    signature: np.ndarray | None = None
    missed: int = 0
    velocity_samples: int = 0  # displacements of the whole face averaged into ``velocity``
    lineage: int | None = None

    def predict(self, t: float) -> np.ndarray:
        """The box at time ``t``: its centre moved at constant velocity, its size held."""
        shift = self.velocity * (t - self.t)
        return self.box + np.concatenate([shift, shift])


class FaceTracker:
    """Assign stable integer IDs to faces across frames and smooth their landmarks.

    Args:
        max_missed: frames a track survives without a detection (occlusion, detector miss).
        max_gap_s: optional limit in seconds on the same survival (whichever ends first).
        max_cost: matching cost above which a detection is not given to a track.
        center_gate: centre distance, in face sizes, beyond which a pair is forbidden; the
            radius grows by ``gate_growth`` per missed frame.
        gate_growth: relative growth of the gate radius per missed frame.
        weights: weights of the (iou, centre, size, signature) cost terms.
        velocity_smoothing: weight of the newest displacement in the velocity average.
        crowd_distance: centre distance between two faces of a frame, in face sizes (the
            mean of theirs), below which either may be partly hidden by the other; such a
            detection updates neither the velocity nor the signature of its track.
        fps: frame rate assumed when ``update`` gets no timestamp.
        smooth: whether to One-Euro-filter the landmarks of each track.
        min_cutoff, beta, d_cutoff: One Euro parameters (landmarks in face-size units).
        signature_tolerance: RMS signature difference (inter-ocular units) counted as a
            full mismatch.

    Example:
        >>> tracker = FaceTracker()
        >>> ids, lms = tracker.update(faces.xyxy, faces.landmarks, t=frame_time)  # doctest: +SKIP
    """

    def __init__(
        self,
        max_missed: int = 10,
        max_gap_s: float | None = None,
        max_cost: float = 0.7,
        center_gate: float = 1.0,
        gate_growth: float = 0.25,
        weights: tuple[float, float, float, float] = (0.45, 0.3, 0.1, 0.15),
        velocity_smoothing: float = 0.6,
        crowd_distance: float = 1.5,
        fps: float = 30.0,
        smooth: bool = True,
        min_cutoff: float = 1.0,
        beta: float = 10.0,
        d_cutoff: float = 1.0,
        signature_tolerance: float = 0.1,
    ) -> None:
        if max_missed < 0 or fps <= 0 or not 0 < velocity_smoothing <= 1:
            raise ValueError("max_missed >= 0, fps > 0 and 0 < velocity_smoothing <= 1")
        self.max_missed = int(max_missed)
        self.max_gap_s = max_gap_s
        self.max_cost = float(max_cost)
        self.center_gate = float(center_gate)
        self.gate_growth = float(gate_growth)
        self.weights = tuple(float(w) for w in weights)
        self.velocity_smoothing = float(velocity_smoothing)
        self.crowd_distance = float(crowd_distance)
        self.fps = float(fps)
        self.smooth = smooth
        self._filter_args = (float(min_cutoff), float(beta), float(d_cutoff))
        self.signature_tolerance = float(signature_tolerance)
        self.reset()

    def reset(self) -> None:
        """Drop all tracks and restart IDs at 0 (e.g. at a scene cut or a new video)."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = 0
        self._last_t: float | None = None

    def end_all(self) -> None:
        """End every track, keeping the ID counter (a scene cut: the faces after it are
        other people, or the same people elsewhere, and get new IDs)."""
        for tr in self._tracks:
            logger.debug("track %d ended by a cut", tr.track_id)
        self._tracks = []

    @property
    def active_ids(self) -> list[int]:
        """IDs of the tracks currently alive (seen or within their missed-frame budget)."""
        return [tr.track_id for tr in self._tracks]

    def update(
        self,
        boxes: np.ndarray,
        landmarks: np.ndarray | None = None,
        t: float | None = None,
        lineage: np.ndarray | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Process one frame.

        Args:
            boxes: (n, 4) face boxes ``x1, y1, x2, y2`` in pixels (n may be 0).
            landmarks: optional (n, k, 2 or 3) landmarks in pixels (e.g. 468 Face Mesh points).
            t: frame time in seconds (non-decreasing); ``None`` = frame index / ``fps``.
            lineage: optional (n,) ids from the face stage saying which faces continue a
                face of the previous frame (the ROI they were found in came from its
                landmarks). A face whose lineage a live track carries joins that track
                without matching; only the others are matched by cost.
            image_size: ``(width, height)`` of the frame, when known: a box reaching past
                the image is a partly hidden face, and a track whose predicted box moves
                wholly out of it has left.

        Returns:
            ``(track_ids, smoothed_landmarks)``: (n,) int64 IDs in the order of ``boxes``,
            and the landmarks after per-track One Euro filtering (same shape and float
            dtype as the input; the input itself when ``smooth=False``), or ``None``.
        """
        boxes, landmarks = self._validate(boxes, landmarks)
        t = self._frame_time(t)
        sigs: list[np.ndarray | None] = (
            [None] * len(boxes)
            if landmarks is None
            else [geometric_signature(lm) for lm in landmarks]
        )
        rows, cols = self._match(boxes, sigs, t, lineage)
        matched = {int(c): self._tracks[r] for r, c in zip(rows, cols, strict=True)}
        whole = self._whole(boxes, image_size)
        for c, tr in matched.items():
            self._correct(tr, boxes[c], sigs[c], t, whole=bool(whole[c]))
        self._age(set(rows.tolist()), t, image_size)
        tracks = [
            matched[j] if j in matched else self._spawn(boxes[j], sigs[j], t)
            for j in range(len(boxes))
        ]
        if lineage is not None:
            for tr, line in zip(tracks, np.asarray(lineage).tolist(), strict=True):
                tr.lineage = int(line)
        ids = np.array([tr.track_id for tr in tracks], dtype=np.int64)
        return ids, self._smooth(tracks, boxes, landmarks, t)

    # -- steps -------------------------------------------------------------------------

    def _validate(
        self, boxes: np.ndarray, landmarks: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Check shapes; boxes become float64 (n, 4)."""
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes must have shape (n, 4), got {b.shape}")
        if landmarks is None:
            return b, None
        lm = np.asarray(landmarks)
        if lm.size == 0 and len(b) == 0 and lm.ndim != 3:
            return b, None
        if lm.ndim != 3 or lm.shape[0] != len(b) or lm.shape[2] not in (2, 3):
            raise ValueError(f"landmarks must have shape ({len(b)}, k, 2|3), got {lm.shape}")
        return b, lm

    def _frame_time(self, t: float | None) -> float:
        """Resolve the frame time and check it does not go backwards."""
        if t is None:
            t = self._frame / self.fps
        t = float(t)
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"timestamps must not decrease ({t} after {self._last_t})")
        self._frame += 1
        self._last_t = t
        return t

    def _match(
        self,
        boxes: np.ndarray,
        sigs: list[np.ndarray | None],
        t: float,
        lineage: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Detections continuing a track's lineage join it; the rest are assigned by the
        Hungarian algorithm, gated by ``max_cost``."""
        empty = np.zeros(0, dtype=np.intp)
        if not self._tracks or len(boxes) == 0:
            return empty, empty
        by_line = {tr.lineage: i for i, tr in enumerate(self._tracks) if tr.lineage is not None}
        lines = [] if lineage is None else np.asarray(lineage).tolist()
        pairs = [(by_line[line], j) for j, line in enumerate(lines) if line in by_line]
        used_r = {r for r, _ in pairs}
        used_c = {c for _, c in pairs}
        free_r = np.array([i for i in range(len(self._tracks)) if i not in used_r], np.intp)
        free_c = np.array([j for j in range(len(boxes)) if j not in used_c], np.intp)
        rows, cols = [r for r, _ in pairs], [c for _, c in pairs]
        if len(free_r) and len(free_c):
            cost = self._cost_matrix(boxes[free_c], [sigs[j] for j in free_c], t, free_r)
            r, c = linear_sum_assignment(np.minimum(cost, _BIG))
            keep = cost[r, c] <= self.max_cost
            rows += free_r[r[keep]].tolist()
            cols += free_c[c[keep]].tolist()
        return np.array(rows, np.intp), np.array(cols, np.intp)

    def _cost_matrix(
        self,
        boxes: np.ndarray,
        sigs: list[np.ndarray | None],
        t: float,
        track_rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """(tracks, detections) matching costs; forbidden pairs get ``inf``. ``track_rows``:
        the tracks to cost (default all)."""
        tracks = self._tracks if track_rows is None else [self._tracks[i] for i in track_rows]
        pred = np.stack([tr.predict(t) for tr in tracks])
        iou = iou_matrix(pred, boxes)
        size_p = np.array([_box_size(b) for b in pred])
        size_d = np.array([_box_size(b) for b in boxes])
        centre_p = 0.5 * (pred[:, :2] + pred[:, 2:])
        centre_d = 0.5 * (boxes[:, :2] + boxes[:, 2:])
        dist = np.linalg.norm(centre_p[:, None] - centre_d[None], axis=2) / size_p[:, None]
        missed = np.array([tr.missed for tr in tracks], dtype=np.float64)
        radius = self.center_gate * (1.0 + self.gate_growth * missed)
        w_iou, w_c, w_s, w_g = self.weights
        terms = (
            w_iou * (1.0 - iou)
            + w_c * np.clip(dist / radius[:, None], 0.0, 1.0)
            + w_s * np.clip(np.abs(np.log(size_d[None] / size_p[:, None])) / np.log(2.0), 0, 1)
        )
        sig_cost, sig_mask = self._signature_costs(tracks, sigs)
        cost = (terms + w_g * sig_cost) / (w_iou + w_c + w_s + w_g * sig_mask)
        cost[dist > radius[:, None]] = np.inf
        return cost

    def _signature_costs(
        self, tracks: list[_Track], sigs: list[np.ndarray | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Clipped signature distances and a 0/1 mask of the pairs where both exist."""
        n, m = len(tracks), len(sigs)
        cost = np.zeros((n, m))
        mask = np.zeros((n, m))
        for i, tr in enumerate(tracks):
            for j, s in enumerate(sigs):
                if tr.signature is None or s is None or s.shape != tr.signature.shape:
                    continue
                rms = float(np.sqrt(np.mean((s - tr.signature) ** 2)))
                cost[i, j] = min(1.0, rms / self.signature_tolerance)
                mask[i, j] = 1.0
        return cost, mask

    def _whole(self, boxes: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
        """(n,) whether each face is seen whole: no other face of the frame within
        ``crowd_distance`` and, when the image size is known, the box inside the image."""
        whole = np.ones(len(boxes), bool)
        if image_size is not None:
            w, h = image_size
            whole &= (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0)
            whole &= (boxes[:, 2] <= w) & (boxes[:, 3] <= h)
        if len(boxes) < 2:
            return whole
        centre = np.array([_centre(b) for b in boxes])
        size = np.array([_box_size(b) for b in boxes])
        dist = np.linalg.norm(centre[:, None] - centre[None], axis=2)
        near = dist < self.crowd_distance * 0.5 * (size[:, None] + size[None])
        np.fill_diagonal(near, False)
        return whole & ~near.any(axis=1)

    def _correct(
        self, tr: _Track, box: np.ndarray, sig: np.ndarray | None, t: float, whole: bool = True
    ) -> None:
        """Update a matched track with its detection; a face that may be partly hidden (not
        ``whole``) moves the box only."""
        dt = t - tr.t
        if dt > 0 and whole:
            inst = (_centre(box) - _centre(tr.box)) / dt
            a = 1.0 if tr.velocity_samples == 0 else self.velocity_smoothing
            tr.velocity = a * inst + (1.0 - a) * tr.velocity
            tr.velocity_samples += 1
        if sig is not None and (whole or tr.signature is None):
            same = tr.signature is not None and tr.signature.shape == sig.shape
            tr.signature = 0.8 * tr.signature + 0.2 * sig if same else sig  # type: ignore[operator]
        tr.box = box.copy()
        tr.t = t
        tr.missed = 0

    def _age(self, matched: set[int], t: float, image_size: tuple[int, int] | None) -> None:
        """Count a miss for unmatched tracks and drop the expired ones and those that left
        the image."""
        alive = []
        for i, tr in enumerate(self._tracks):
            if i not in matched:
                tr.missed += 1
            expired = tr.missed > self.max_missed or (
                self.max_gap_s is not None and t - tr.t > self.max_gap_s
            )
            if tr.missed and image_size is not None:  # moved out of the image: left
                expired |= _outside(tr.predict(t), image_size) and not _outside(tr.box, image_size)
            if expired:
                logger.debug("track %d ended after %d missed frames", tr.track_id, tr.missed)
            else:
                alive.append(tr)
        self._tracks = alive

    def _spawn(self, box: np.ndarray, sig: np.ndarray | None, t: float) -> _Track:
        """Start a new track with a fresh ID."""
        tr = _Track(self._next_id, box.copy(), t, OneEuroFilter(*self._filter_args), signature=sig)
        self._next_id += 1
        self._tracks.append(tr)
        logger.debug("track %d started", tr.track_id)
        return tr

    def _smooth(
        self,
        tracks: list[_Track],
        boxes: np.ndarray,
        landmarks: np.ndarray | None,
        t: float,
    ) -> np.ndarray | None:
        """Filter each detection's landmarks with its track's One Euro filter."""
        if landmarks is None:
            return None
        if not self.smooth:
            return landmarks
        dtype = landmarks.dtype if np.issubdtype(landmarks.dtype, np.floating) else np.float64
        out = np.empty(landmarks.shape, dtype=dtype)
        for j, tr in enumerate(tracks):
            lm = landmarks[j]
            if not np.all(np.isfinite(lm)):
                tr.filter.reset()  # never let a NaN poison the filter state
                out[j] = lm
                continue
            if tr.filter.shape not in (None, lm.shape):
                tr.filter.reset()  # the landmark model changed (e.g. 6 keypoints -> 468 mesh)
            out[j] = tr.filter(lm, t, scale=_box_size(boxes[j]))
        return out
