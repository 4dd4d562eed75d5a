"""Draw ``Faces`` on an image: boxes, key landmarks and a smile/emotion label per face.

Style goes in the constructor, data in ``annotate`` (supervision's split), so one
annotator can be reused for every frame of a video.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from duchenne.face import topology as T
from duchenne.faces import Face, Faces

# Landmarks worth showing: eye corners and lids, cheeks, lip corners and lip centres.
KEY_LANDMARKS = (
    T.RIGHT_EYE_OUTER, T.RIGHT_EYE_INNER, T.RIGHT_EYE_UPPER, T.RIGHT_EYE_LOWER,
    T.LEFT_EYE_OUTER, T.LEFT_EYE_INNER, T.LEFT_EYE_UPPER, T.LEFT_EYE_LOWER,
    T.CHEEK_RIGHT, T.CHEEK_LEFT, T.MOUTH_RIGHT, T.MOUTH_LEFT,
    T.LIP_UPPER_INNER, T.LIP_LOWER_INNER, T.LIP_UPPER_OUTER, T.LIP_LOWER_OUTER, T.NOSE_TIP,
)  # fmt: skip


@dataclass(frozen=True)
class FaceAnnotator:
    """Annotate faces on RGB images.

    Args:
        smile_color: box colour (RGB) for smiling faces.
        neutral_color: box colour for non-smiling faces (or when no smile model ran).
        thickness: line thickness in pixels (None = scale with image size).
        landmarks: draw the key landmarks.

    Example:
        >>> FaceAnnotator().annotate(np.zeros((10, 10, 3), np.uint8), Faces.empty()).shape
        (10, 10, 3)
    """

    smile_color: tuple[int, int, int] = (40, 200, 90)
    neutral_color: tuple[int, int, int] = (60, 140, 255)
    thickness: int | None = None
    landmarks: bool = True

    def annotate(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """A copy of ``image`` with every face drawn."""
        out = np.ascontiguousarray(image.copy())
        for face in faces:
            t = self.thickness or max(1, round((face.box[2] - face.box[0]) / 80))
            color = self.smile_color if face.is_smiling else self.neutral_color
            x1, y1, x2, y2 = (round(v) for v in face.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), color, t, cv2.LINE_AA)
            if self.landmarks:
                self._points(out, faces, face, t)
            self._label(out, face, (x1, y1), color, t)
        return out

    def _points(self, out: np.ndarray, faces: Faces, face: Face, t: int) -> None:
        if faces.landmarks is not None:
            pts = faces.landmarks[face.index][list(KEY_LANDMARKS), :2]
        elif face.keypoints is not None:
            pts = np.asarray(face.keypoints)
        else:
            return
        for x, y in pts:
            cv2.circle(
                out, (round(float(x)), round(float(y))), t + 1, (255, 230, 0), -1, cv2.LINE_AA
            )

    def _label(
        self,
        out: np.ndarray,
        face: Face,
        origin: tuple[int, int],
        color: tuple[int, int, int],
        t: int,
    ) -> None:
        text = face_label(face)
        scale = float(
            np.clip((face.box[2] - face.box[0]) / 160, 0.3, 1.2)
        )  # label sized to its face
        t = max(1, round(scale * 1.5))
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        x, y = origin[0], max(h + base, origin[1])
        cv2.rectangle(out, (x, y - h - base), (x + w, y), color, -1)
        cv2.putText(
            out, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), t, cv2.LINE_AA
        )


def face_label(face: Face) -> str:
    """Short label: ``#0 smile 8.1/10 happiness`` or ``#0 0.98`` without a smile model."""
    parts = [f"#{face.index if face.track_id is None else face.track_id}"]
    if face.smile_score is not None:
        parts.append(f"smile {face.smile_score:.1f}/10")
        if face.top_emotion:
            parts.append(face.top_emotion)
    else:
        parts.append(f"{face.score:.2f}")
    return " ".join(parts)
