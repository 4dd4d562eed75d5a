"""The video face stage: detection every K frames, landmark-ROI tracking in between."""

from __future__ import annotations

import math

import numpy as np

from duchenne.analysis.analyzer import Analyzer
from duchenne.face import topology as T
from duchenne.face.boxes import iou_matrix
from duchenne.face.landmarks import FaceRoi, roi_from_detection, roi_from_landmarks
from duchenne.faces import BLENDSHAPE_NAMES, EMOTION_LABELS, Faces

#: Face Mesh points whose mean stands in for each BlazeFace keypoint (eyes, nose, mouth,
#: ear tragions)
_MESH_KEYPOINTS = (
    (T.RIGHT_EYE_OUTER, T.RIGHT_EYE_INNER),
    (T.LEFT_EYE_INNER, T.LEFT_EYE_OUTER),
    (T.NOSE_TIP,),
    (T.LIP_UPPER_INNER, T.LIP_LOWER_INNER),
    (T.FACE_RIGHT,),
    (T.FACE_LEFT,),
)
#: Video frames are tiled (``tile="auto"``) only from this long side up, where photos are
#: tiled at any size. Why: the detector runs every few frames and tiles cost 5-11x (a
#: 1280x720 frame: about 4 -> 47 ms per detection, one thread), while a video's faces
#: are tracked by their landmarks between detections and the small far faces tiles find
#: in a photo matter less than keeping up with the frame rate. ``tile=True`` tiles every
#: frame.
VIDEO_TILE_MIN_SIDE = 1400
_DEDUP_IOU = 0.5
_NEW_FACE_IOU = 0.3
_ROI_TOLERANCE = 0.05
_SETTLE_PASSES = 4


class TrackingFaceStage:
    """Faces of one frame, detecting only every ``detect_every`` frames (MediaPipe's rule).

    Between detections each face's Face Mesh ROI comes from its previous landmarks. On a
    detection frame, detections overlapping a tracked face are ignored (the landmark ROI
    is more precise) and the others become new faces. Faces whose ROIs converge on the
    same face are merged. Boxes are the Face Mesh landmark bounding boxes on every frame
    (detector boxes on detection-only runs), so a box does not jump when detection runs;
    ``score`` is the detector confidence for newly detected faces and the Face Mesh
    presence for tracked ones. ``faces.meta["detected"]`` flags the newly detected faces and
    ``faces.meta["lineage"]`` gives each face the id of the ROI chain it follows: a face
    tracked from its previous landmarks keeps its lineage, so its identity is decided here,
    once, and the tracker (:class:`~duchenne.face.tracker.FaceTracker`) only has to match
    new detections (re-identifying a face after it was lost).

    Args:
        analyzer: whose stages (``detect``, ``landmarks``, ``smiles``) run, with its
            ``max_faces``, ``min_face_size`` and stages.
        detect_every: see :class:`VideoOptions`.
        min_presence: see :class:`VideoOptions`.
    """

    def __init__(
        self, analyzer: Analyzer, detect_every: int = 10, min_presence: float = 0.5
    ) -> None:
        self.analyzer = analyzer
        self.detect_every = int(detect_every)
        self.min_presence = float(min_presence)
        self.detector_runs = 0
        self.reset()

    def reset(self) -> None:
        """Forget the tracked ROIs (a new video)."""
        self._rois: list[FaceRoi] = []
        self._lineage: list[int] = []  # one id per ROI: which face its landmarks follow
        self._next_lineage = 0
        self._since = 0

    @property
    def with_smile(self) -> bool:
        return self.analyzer.smile_model is not None

    def template(self) -> Faces:
        """One placeholder face (zeros) with every field this stage's faces carry: the
        columns of the per-frame table are made from it before any face is seen
        (:func:`~duchenne.analysis.video.session.template_row`)."""
        landmarks = "landmarks" in self.analyzer.stages
        faces = Faces(
            np.zeros((1, 4), np.float32),
            np.zeros(1, np.float32),
            keypoints=np.zeros((1, 6, 2), np.float32),
            landmarks=np.zeros((1, 468, 3), np.float32) if landmarks else None,
            landmark_score=np.zeros(1, np.float32) if landmarks else None,
        )
        if landmarks and self.analyzer.blendshape_stage is not None:
            faces.blendshapes = np.zeros((1, len(BLENDSHAPE_NAMES)), np.float32)
        if self.with_smile:
            faces.smile = np.zeros(1, np.float32)
            faces.smile_score = np.zeros(1, np.float32)
            faces.emotion = np.zeros((1, len(EMOTION_LABELS)), np.float32)
        return faces

    def __call__(self, image: np.ndarray) -> Faces:
        """Faces with raw landmarks (smiles and blendshapes when those stages run); no
        geometry."""
        if "landmarks" in self.analyzer.stages:
            faces = self._tracked(image)
            faces.blendshapes = self.analyzer.blendshapes(image, faces.landmarks)
        else:
            faces = self._detect_only(image)
        self.analyzer.smiles([image], [faces])
        return faces

    def _detect_only(self, image: np.ndarray) -> Faces:
        self.detector_runs += 1
        dets = self.analyzer.detect(image, VIDEO_TILE_MIN_SIDE)
        faces = Faces(dets.xyxy, dets.score, keypoints=dets.keypoints)
        faces.meta["detected"] = np.ones(len(faces), bool)
        return faces

    def _tracked(self, image: np.ndarray) -> Faces:
        lm = np.zeros((0, 468, 3), np.float32)
        presence = score = np.zeros(0, np.float32)
        prev: list[FaceRoi] = []
        lineage: list[int] = []
        need = not self._rois or self._since + 1 >= self.detect_every
        if self._rois:
            lm, presence = self.analyzer.landmarks(image, self._rois, refine=False)
            keep = presence >= self.min_presence
            need = need or not bool(keep.all())
            lm, presence = lm[keep], presence[keep]
            prev = [r for r, k in zip(self._rois, keep, strict=True) if k]
            lineage = [i for i, k in zip(self._lineage, keep, strict=True) if k]
            score = presence.copy()
        detected = np.zeros(len(lm), bool)
        if need:
            lm, presence, score, detected, new_rois = self._detect_new(image, lm, presence, score)
            prev += new_rois
            lineage += list(range(self._next_lineage, self._next_lineage + len(new_rois)))
            self._next_lineage += len(new_rois)
            self._since = 0
        else:
            self._since += 1
        keep = self._select(_landmark_boxes(lm), score)
        lm, presence, score, detected = lm[keep], presence[keep], score[keep], detected[keep]
        self._rois = [_next_roi(points, prev[i]) for points, i in zip(lm, keep, strict=True)]
        self._lineage = [lineage[i] for i in keep]
        faces = Faces(
            _landmark_boxes(lm),
            score,
            keypoints=_mesh_keypoints(lm),
            landmarks=lm,
            landmark_score=presence,
        )
        faces.meta["detected"] = detected
        faces.meta["lineage"] = np.array(self._lineage, dtype=np.int64)
        return faces

    def _detect_new(
        self, image: np.ndarray, lm: np.ndarray, presence: np.ndarray, score: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[FaceRoi]]:
        """Run the detector; faces not already tracked get landmarks and join.

        Returns the grown arrays and the ROIs the new faces' landmarks came from.
        """
        self.detector_runs += 1
        dets = self.analyzer.detect(image, VIDEO_TILE_MIN_SIDE)
        if len(lm) and len(dets):
            overlap = iou_matrix(dets.xyxy, _landmark_boxes(lm)).max(axis=1)
            dets = dets.select(np.nonzero(overlap < _NEW_FACE_IOU)[0])
        detected = np.zeros(len(lm), bool)
        if not len(dets):
            return lm, presence, score, detected, []
        rois = [roi_from_detection(b, k) for b, k in zip(dets.xyxy, dets.keypoints, strict=True)]
        new_lm, new_presence = self.analyzer.landmarks(image, rois)
        # Settle each new face on its landmark ROI, the ROI its next frames use: landmarks
        # from a detection ROI sit a little differently (~1-2 % of the mouth width at the
        # lip corners), and the track's first frame is the neutral reference of its smile
        # signals, so a step after it would read as a smile. A few passes converge.
        rois = [roi_from_landmarks(p) for p in new_lm]
        for _ in range(_SETTLE_PASSES):
            new_lm, new_presence = self.analyzer.landmarks(image, rois, refine=False)
            nxt = [_next_roi(p, r) for p, r in zip(new_lm, rois, strict=True)]
            if all(a is b for a, b in zip(nxt, rois, strict=True)):
                break
            rois = nxt
        return (
            np.concatenate([lm, new_lm]),
            np.concatenate([presence, new_presence]),
            np.concatenate([score, dets.score]),
            np.concatenate([detected, np.ones(len(new_lm), bool)]),
            rois,
        )

    def _select(self, boxes: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Merge duplicates (IoU > 0.5), drop small faces, keep ``max_faces`` best."""
        order = np.argsort(-score, kind="stable")
        kept: list[int] = []
        for i in order:
            if kept and iou_matrix(boxes[i : i + 1], boxes[kept]).max() > _DEDUP_IOU:
                continue
            side = min(boxes[i, 2] - boxes[i, 0], boxes[i, 3] - boxes[i, 1])
            if side < self.analyzer.min_face_size:
                continue
            kept.append(int(i))
        if self.analyzer.max_faces is not None:
            kept = kept[: self.analyzer.max_faces]
        return np.array(sorted(kept), dtype=np.intp)


def _next_roi(landmarks: np.ndarray, previous: FaceRoi | None) -> FaceRoi:
    """The ROI for the next frame: from these landmarks, unless they barely moved.

    Keeping the previous ROI while the face is still (centre within 5 % of the ROI side,
    side within 5 %, rotation within 2 degrees) gives Face Mesh the same crop frame after
    frame: re-deriving it every frame makes the landmarks creep by ~0.5 px over the first
    half second (the ROI and the landmarks settle together), which reads as a slow smile.
    5 % rather than 2 %: a smile itself changes the landmark box by 2-4 %, and a ROI moved
    during a smile left a lasting step of ~4 % in the eye aperture of the generated clips.
    """
    roi = roi_from_landmarks(landmarks)
    if previous is None:
        return roi
    shift = math.hypot(roi.cx - previous.cx, roi.cy - previous.cy) / previous.size
    grow = abs(roi.size / previous.size - 1.0)
    turn = abs((roi.rotation - previous.rotation + math.pi) % (2 * math.pi) - math.pi)
    if shift < _ROI_TOLERANCE and grow < _ROI_TOLERANCE and turn < math.radians(2.0):
        return previous
    return roi


def _landmark_boxes(lm: np.ndarray) -> np.ndarray:
    """(n, 4) bounding boxes of (n, k, 2|3) landmarks."""
    if not len(lm):
        return np.zeros((0, 4), np.float32)
    xy = lm[..., :2]
    return np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1).astype(np.float32)


def _mesh_keypoints(lm: np.ndarray) -> np.ndarray:
    """BlazeFace-order keypoints (n, 6, 2) from Face Mesh points (eyes = corner midpoints)."""
    if not len(lm):
        return np.zeros((0, 6, 2), np.float32)
    return np.stack([lm[:, list(idx), :2].mean(axis=1) for idx in _MESH_KEYPOINTS], axis=1)
