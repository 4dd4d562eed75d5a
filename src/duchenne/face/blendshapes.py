"""MediaPipe's 52 blendshape coefficients (ARKit-style expression weights) per face.

How: MediaPipe's Face Landmarker reads 146 of its 478 landmarks (the last 10 are iris
points) in image pixels and maps them to 52 coefficients in [0, 1] with a small MLP-Mixer
(``face_blendshapes.onnx``). Our Face Mesh gives 468 points and no iris, and its points
are not the ones the blendshape model was trained on, so this stage runs the Face
Landmarker's own 478-point model (``face_landmark_478.onnx``, 256x256 crop) on each face
and feeds its points to the blendshape model.

Why not our 468 points plus estimated iris points: measured on 163 MTFL faces against
MediaPipe 0.10.21's own Face Landmarker (``benchmarks/bench_blendshapes.py``), our Face
Mesh with template iris points is twice as far from MediaPipe's coefficients (mean
|difference| 0.052 vs 0.024) and loses much of the eye channels (eyeSquint correlation
0.71 vs 0.93); even MediaPipe's true iris points with our 468 points do not help (0.051).
The price is the bigger landmark model (about 4x Face Mesh's time, paired measurement in
``benchmarks/bench_pipeline.py``), which is why the stage is opt-in.

The crop: the rotated square ROI of MediaPipe's tracking rule, from this face's 468 Face
Mesh landmarks (``roi_from_landmarks``), the same for photos and video frames, so the
result does not depend on which detector found the face.
"""

from __future__ import annotations

import cv2
import numpy as np

from duchenne.face.landmarks import FaceRoi, roi_from_landmarks
from duchenne.face.warp import warp_affine
from duchenne.faces import BLENDSHAPE_NAMES
from duchenne.models.registry import create_model

__all__ = [
    "BLENDSHAPE_NAMES",
    "LANDMARKS_SUBSET",
    "TIMELINE_CHANNELS",
    "FaceBlendshapes",
    "blendshape_input",
    "timeline_channels",
]

#: The 146 landmark indices (of 478) the blendshape model reads (``kLandmarksSubsetIdxs``).
LANDMARKS_SUBSET: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39,
    40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133,
    136, 144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160,
    161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295,
    296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334,
    336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382,
    384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454,
    466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
)  # fmt: skip

#: Blendshape channels shown on the video timeline: name -> the coefficients averaged.
TIMELINE_CHANNELS: dict[str, tuple[str, ...]] = {
    "mouthSmile": ("mouthSmileLeft", "mouthSmileRight"),
    "eyeSquint": ("eyeSquintLeft", "eyeSquintRight"),
    "eyeBlink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "jawOpen": ("jawOpen",),
}
_TIMELINE_IDX = [[BLENDSHAPE_NAMES.index(n) for n in names] for names in TIMELINE_CHANNELS.values()]

INPUT_SIZE_478 = 256
NUM_LANDMARKS_478 = 478


def blendshape_input(landmarks_478: np.ndarray) -> np.ndarray:
    """The model input (146, 2) float32 from 478 landmarks in image pixels.

    MediaPipe's graph takes the subset and converts normalised landmarks to pixels
    (``x * width``, ``y * height``); our landmarks are already in pixels. z is unused.
    """
    points = np.asarray(landmarks_478, dtype=np.float32)
    if points.ndim != 2 or points.shape[0] != NUM_LANDMARKS_478 or points.shape[1] < 2:
        raise ValueError(f"need (478, 2|3) landmarks, got {points.shape}")
    return np.ascontiguousarray(points[list(LANDMARKS_SUBSET), :2])


def timeline_channels(coeffs: np.ndarray) -> np.ndarray:
    """The ``TIMELINE_CHANNELS`` values (4,) of one face's 52 coefficients (left/right mean)."""
    c = np.asarray(coeffs, dtype=np.float64)
    return np.array([c[idx].mean() for idx in _TIMELINE_IDX])


class FaceBlendshapes:
    """52 blendshape coefficients per face, from an image and each face's ROI.

    Example:
        >>> import numpy as np
        >>> stage = FaceBlendshapes()
        >>> roi = FaceRoi(100, 100, 150, 0.0)
        >>> coeffs, points = stage.from_rois(np.zeros((200, 200, 3), np.uint8), [roi])
        >>> coeffs.shape, points.shape
        ((1, 52), (1, 478, 3))
    """

    def __init__(self, *, threads: int | None = None, device: str = "cpu") -> None:
        self.landmark_model = create_model("face_landmark_478", threads=threads, device=device)
        self.model = create_model("face_blendshapes", threads=threads, device=device)

    def __call__(self, image: np.ndarray, landmarks_468: np.ndarray) -> np.ndarray:
        """Coefficients (n, 52) for faces given by their (n, 468, 3) Face Mesh landmarks."""
        rois = [roi_from_landmarks(lm) for lm in landmarks_468]
        return self.from_rois(image, rois)[0]

    def from_rois(self, image: np.ndarray, rois: list[FaceRoi]) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients (n, 52) and the 478 landmarks (n, 478, 3, image pixels) they came from."""
        if not rois:
            return (
                np.zeros((0, len(BLENDSHAPE_NAMES)), np.float32),
                np.zeros((0, NUM_LANDMARKS_478, 3), np.float32),
            )
        points = self.landmarks_478(image, rois)
        coeffs = np.stack([self.coefficients(p) for p in points])
        return coeffs, points

    def landmarks_478(self, image: np.ndarray, rois: list[FaceRoi]) -> np.ndarray:
        """The Face Landmarker's 478 points (n, 478, 3) in image pixels, one face per call.

        Why not one batch: this model runs much slower batched on CPU (measured on the
        28-face group photo, 1 thread: batches of 1 / 2 / 4 / 8 / 28 took 0.94 / 1.14 /
        1.32 / 1.76 / 3.16 s for all faces).
        """
        out = np.empty((len(rois), NUM_LANDMARKS_478, 3), np.float32)
        size = (INPUT_SIZE_478, INPUT_SIZE_478)
        for i, roi in enumerate(rois):
            m = roi.crop_matrix(INPUT_SIZE_478)
            crop = warp_affine(image, m, size).astype(np.float32) * np.float32(1.0 / 255.0)
            raw = self.landmark_model(crop[None])["landmarks"].reshape(NUM_LANDMARKS_478, 3)
            inv = cv2.invertAffineTransform(m)
            out[i, :, :2] = raw[:, :2] @ inv[:, :2].T + inv[:, 2]
            out[i, :, 2] = raw[:, 2] * (roi.size / INPUT_SIZE_478)
        return out

    def coefficients(self, landmarks_478: np.ndarray) -> np.ndarray:
        """The 52 coefficients of one face from its 478 landmarks (image pixels)."""
        points = blendshape_input(landmarks_478)[None]
        return self.model(points)["blendshapes"].reshape(len(BLENDSHAPE_NAMES))
