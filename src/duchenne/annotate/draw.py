"""Draw ``Faces`` on an image: boxes, key landmarks and a smile/emotion label per face.

Style goes in the constructor, data in ``annotate`` (supervision's split), so one
annotator can be reused for every frame of a video.

Labels are sized from their face, always lie wholly inside the image (above the box,
flipped below it or inside it when there is no room, shortened when the full text would
not fit) and sit on an opaque box with a dark outline, so they read on any photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from duchenne.face import topology as T
from duchenne.faces import Face, Faces
from duchenne.io.image import ImageSource, load_image

# Landmarks worth showing: eye corners and lids, cheeks, lip corners and lip centres.
KEY_LANDMARKS = (
    T.RIGHT_EYE_OUTER, T.RIGHT_EYE_INNER, T.RIGHT_EYE_UPPER, T.RIGHT_EYE_LOWER,
    T.LEFT_EYE_OUTER, T.LEFT_EYE_INNER, T.LEFT_EYE_UPPER, T.LEFT_EYE_LOWER,
    T.CHEEK_RIGHT, T.CHEEK_LEFT, T.MOUTH_RIGHT, T.MOUTH_LEFT,
    T.LIP_UPPER_INNER, T.LIP_LOWER_INNER, T.LIP_UPPER_OUTER, T.LIP_LOWER_OUTER, T.NOSE_TIP,
)  # fmt: skip


FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class LabelBox:
    """Where a label goes: its text, font scale, stroke, and its box ``(x, y, w, h)``."""

    text: str
    scale: float
    thickness: int
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class FaceAnnotator:
    """Annotate faces on images (drawn on an RGB copy).

    Args:
        smile_color: box colour (RGB) for smiling faces.
        neutral_color: box colour for non-smiling faces (or when no smile model ran).
        thickness: line thickness in pixels (None = scale with the face size).
        landmarks: draw the key landmarks.

    Example:
        >>> FaceAnnotator().annotate(np.zeros((10, 10, 3), np.uint8), Faces.empty()).shape
        (10, 10, 3)
    """

    smile_color: tuple[int, int, int] = (40, 200, 90)
    neutral_color: tuple[int, int, int] = (60, 140, 255)
    thickness: int | None = None
    landmarks: bool = True

    def annotate(self, image: ImageSource, faces: Faces) -> np.ndarray:
        """A new RGB ``uint8`` (H, W, 3) image: ``image`` with every face drawn (labels
        last, so no box covers one); ``image`` itself is never changed.

        ``image`` is any source the ``Analyzer`` accepts (a path, bytes, a PIL image, an
        array), read by :func:`~duchenne.io.image.load_image` as the ``Analyzer`` read it,
        so the boxes land where the faces were found: grey becomes RGB (so the colours
        show), transparency is composited on white, a float image in [0, 1] is scaled to
        0-255 (one on the 0-255 scale is refused with ``ImageLoadError``). An encoded
        image is held to ``load_image``'s default ``max_pixels``; an array is not.
        """
        out = _decoded(image)
        labels = []
        for i, face in enumerate(faces):
            t = self.thickness or max(1, round((face.box[2] - face.box[0]) / 80))
            color = self.smile_color if face.is_smiling else self.neutral_color
            x1, y1, x2, y2 = (round(v) for v in face.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), color, t, cv2.LINE_AA)
            if self.landmarks:
                self._points(out, faces, i, t)
            labels.append((label_box(face, out.shape), color))
        for box, color in labels:
            draw_label(out, box, color)
        return out

    def _points(self, out: np.ndarray, faces: Faces, i: int, t: int) -> None:
        """The key points of the ``i``-th face of ``faces`` (its position, not its number:
        a selection such as ``faces[faces.smile >= 0.5]`` keeps the numbers of the image)."""
        if faces.landmarks is not None:
            pts = faces.landmarks[i][list(KEY_LANDMARKS), :2]
        elif faces.keypoints is not None:
            pts = faces.keypoints[i]
        else:
            return
        for x, y in pts:
            cv2.circle(
                out, (round(float(x)), round(float(y))), t + 1, (255, 230, 0), -1, cv2.LINE_AA
            )


def _decoded(image: ImageSource) -> np.ndarray:
    """``image`` as a new RGB ``uint8`` array (``load_image``). An array is decoded
    already, so the decompression-bomb limit is not applied to it: the caller analysed it
    under its own ``max_pixels``, and drawing must not refuse what was analysed."""
    if isinstance(image, np.ndarray):
        return load_image(image, max_pixels=max(1, image.size))
    return load_image(image)


def face_label(face: Face, short: int = 0) -> str:
    """Label text: ``#0 smile 8.1/10 happiness``; ``short=1`` ``#0 8.1``; ``short=2`` ``#0``.

    The number is the face's number in every output (``track_id`` in a video).
    """
    number = f"#{face.index if face.track_id is None else face.track_id}"
    if short >= 2:
        return number
    if face.smile_score is None:
        return number if short else f"{number} {face.score:.2f}"
    if short:
        return f"{number} {face.smile_score:.1f}"
    parts = [number, f"smile {face.smile_score:.1f}/10"]
    if face.top_emotion:
        parts.append(face.top_emotion)
    return " ".join(parts)


def label_box(face: Face, shape: tuple[int, ...]) -> LabelBox:
    """Place the label of ``face`` in an image of ``shape``, wholly inside it.

    Font scale follows the face width (a label about as wide as the face); the full text
    is shortened (``face_label(short=1)``, then ``short=2``) while it is wider than
    1.5 face widths or the image. It goes above the box, else below it, else inside its
    top edge, and is shifted left/right/up/down into the image.
    """
    height, width = int(shape[0]), int(shape[1])
    face_w = max(1.0, face.box[2] - face.box[0])
    scale = float(np.clip(face_w / 230.0, 0.3, 1.6))
    thick = max(1, round(scale * 1.6))
    pad = max(2, round(4 * scale))
    for short in (0, 1, 2):
        text = face_label(face, short)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        w, h = tw + 2 * pad, th + base + 2 * pad
        if w <= min(1.5 * face_w + 2 * pad, width) or short == 2:
            break
    while w > width and scale > 0.25:  # a tiny image: shrink the font until it fits
        scale *= 0.8
        thick = max(1, round(scale * 1.6))
        pad = max(1, round(4 * scale))
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        w, h = tw + 2 * pad, th + base + 2 * pad
    x1, y1, _, y2 = (round(v) for v in face.box)
    if y1 - h >= 0:
        y = y1 - h  # above the box
    elif y2 + h <= height:
        y = y2  # flipped below
    else:
        y = max(0, y1)  # inside the top of the box
    x = min(max(0, x1), max(0, width - w))
    y = min(max(0, y), max(0, height - h))
    return LabelBox(text, scale, thick, x, y, w, h)


def draw_label(out: np.ndarray, box: LabelBox, color: tuple[int, int, int]) -> None:
    """An opaque coloured box with a dark outline and black text (legible on any photo)."""
    x, y, w, h = box.x, box.y, box.w, box.h
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), color, -1)
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), (20, 20, 20), 1)
    (_, th), base = cv2.getTextSize(box.text, FONT, box.scale, box.thickness)
    pad = (h - th - base) // 2
    origin = (x + (w - cv2.getTextSize(box.text, FONT, box.scale, box.thickness)[0][0]) // 2,
              y + pad + th)  # fmt: skip
    cv2.putText(out, box.text, origin, FONT, box.scale, (0, 0, 0), box.thickness, cv2.LINE_AA)


def draw_caption(out: np.ndarray, text: str, corner: str = "top-left") -> None:
    """White text on a dark box in a corner, sized from the image (video timestamps)."""
    height, width = out.shape[:2]
    scale = max(0.4, min(height, width) / 700)
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    pad = max(3, round(5 * scale))
    w, h = tw + 2 * pad, th + base + 2 * pad
    x = 4 if corner.endswith("left") else max(0, width - w - 4)
    y = 4 if corner.startswith("top") else max(0, height - h - 4)
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), (0, 0, 0), -1)
    cv2.putText(out, text, (x + pad, y + pad + th), FONT, scale, (255, 255, 255), thick,
                cv2.LINE_AA)  # fmt: skip
