"""Face Mesh landmarks (MediaPipe's 468-point model on onnxruntime).

The crop follows MediaPipe's ``face_landmark_front`` graph: a square region centred on
the detection box, side 1.5x its longer side, rotated so the eye line (detector keypoints
0 -> 1) is horizontal, resampled to 192x192 RGB in [0, 1]. The model's points are then
mapped back through the inverse of that warp, so landmarks are in original image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from duchenne.face.topology import LEFT_EYE_OUTER, NUM_LANDMARKS, RIGHT_EYE_OUTER
from duchenne.face.warp import warp_affine
from duchenne.models.registry import create_model

INPUT_SIZE = 192
ROI_SCALE = 1.5


@dataclass(frozen=True)
class FaceRoi:
    """A rotated square region of interest: centre (px), side (px), rotation (radians, CCW)."""

    cx: float
    cy: float
    size: float
    rotation: float

    def crop_matrix(self, out_size: int = INPUT_SIZE) -> np.ndarray:
        """2x3 affine mapping image pixels to the ``out_size`` crop (rotation removed)."""
        scale = out_size / self.size
        m = cv2.getRotationMatrix2D((self.cx, self.cy), math.degrees(self.rotation), scale)
        m[:, 2] += np.array([out_size / 2 - self.cx, out_size / 2 - self.cy])
        return m


def roi_from_detection(box: np.ndarray, keypoints: np.ndarray) -> FaceRoi:
    """MediaPipe's detection-to-ROI rule: eye-line rotation, 1.5x square box."""
    right_eye, left_eye = keypoints[0], keypoints[1]
    rotation = -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    w, h = box[2] - box[0], box[3] - box[1]
    return FaceRoi(
        float((box[0] + box[2]) / 2),
        float((box[1] + box[3]) / 2),
        float(max(w, h) * ROI_SCALE),
        rotation,
    )


def roi_from_landmarks(landmarks: np.ndarray) -> FaceRoi:
    """ROI for the next video frame from this frame's landmarks (MediaPipe's tracking rule).

    Uses the eye corners for rotation and the landmark bounding box for centre and size.
    """
    xy = landmarks[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    right_eye, left_eye = xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER]
    rotation = -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    side = float(max(hi - lo)) * ROI_SCALE
    centre = (lo + hi) / 2
    return FaceRoi(float(centre[0]), float(centre[1]), side, rotation)


class FaceMesh:
    """468 3-D landmarks per face.

    Example:
        >>> import numpy as np
        >>> mesh = FaceMesh()
        >>> roi = FaceRoi(100, 100, 150, 0.0)
        >>> pts, score = mesh(np.zeros((200, 200, 3), np.uint8), [roi])
        >>> pts.shape
        (1, 468, 3)
    """

    def __init__(self, *, threads: int | None = None, device: str = "cpu") -> None:
        self.model = create_model("face_landmark", threads=threads, device=device)

    def __call__(self, image: np.ndarray, rois: list[FaceRoi]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks (n, 468, 3) in image pixels and face-presence probability (n,)."""
        if not rois:
            return np.zeros((0, NUM_LANDMARKS, 3), np.float32), np.zeros(0, np.float32)
        mats = [roi.crop_matrix() for roi in rois]
        pixels = np.stack([warp_affine(image, m, (INPUT_SIZE, INPUT_SIZE)) for m in mats])
        crops = np.multiply(pixels, np.float32(1 / 255), dtype=np.float32)
        raw, presence = self._run(crops)
        points = np.stack([_to_image(p, m, roi) for p, m, roi in zip(raw, mats, rois, strict=True)])
        return points.astype(np.float32), presence.astype(np.float32)

    def _run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.model.run_chunked(crops, self.model.image_batch)
        values = sorted(out.values(), key=lambda a: -a.size)
        n = len(crops)
        logits = values[-1].reshape(n)
        return values[0].reshape(n, NUM_LANDMARKS, 3), 1.0 / (1.0 + np.exp(-logits))


def _to_image(points: np.ndarray, matrix: np.ndarray, roi: FaceRoi) -> np.ndarray:
    """Map crop-space points back to image pixels; z scales with x (MediaPipe's convention)."""
    inv = cv2.invertAffineTransform(matrix)
    xy = points[:, :2] @ inv[:, :2].T + inv[:, 2]
    z = points[:, 2:3] * (roi.size / INPUT_SIZE)
    return np.concatenate([xy, z], axis=1)
