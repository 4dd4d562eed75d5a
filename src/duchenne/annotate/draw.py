"""Draw ``Faces`` on an image: boxes, key landmarks and a smile/emotion label per face.

Style goes in the constructor, data in ``annotate`` (supervision's split), so one
annotator can be reused for every frame of a video.

Labels follow their face's size within bounds set by the image's size
(:func:`label_text_height`: legible when the whole image is shown on a phone, no banner on
a close-up), always lie wholly inside the image, and are placed together (:func:`label_boxes`): beside their face,
off the other faces and labels wherever there is room, the number first and the score and
emotion where they fit. They sit on an opaque box with a dark outline, so they read on
any photo.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
        colors = []
        for i, face in enumerate(faces):
            t = self.thickness or max(1, round((face.box[2] - face.box[0]) / 80))
            color = self.smile_color if face.is_smiling else self.neutral_color
            x1, y1, x2, y2 = (round(v) for v in face.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), color, t, cv2.LINE_AA)
            if self.landmarks:
                self._points(out, faces, i, round((face.box[2] - face.box[0]) / 50))
            colors.append(color)
        for box, color in zip(label_boxes(faces, out.shape), colors, strict=True):
            draw_label(out, box, color)
        return out

    def _points(self, out: np.ndarray, faces: Faces, i: int, radius: int) -> None:
        """The key points of the ``i``-th face of ``faces`` (its position, not its number:
        a selection such as ``faces[faces.smile >= 0.5]`` keeps the numbers of the image),
        ``radius`` a 50th of the face width (0: one pixel), so they do not hide a small
        face."""
        if faces.landmarks is not None:
            pts = faces.landmarks[i][list(KEY_LANDMARKS), :2]
        elif faces.keypoints is not None:
            pts = faces.keypoints[i]
        else:
            return
        for x, y in pts:
            cv2.circle(
                out, (round(float(x)), round(float(y))), radius, (255, 230, 0), -1, cv2.LINE_AA
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


# Label text height (the font's cap height, px) follows the face between two bounds set by
# the image's longer side, the side a viewer fits to the screen when it shows the whole image:
# at least 1.25% (5 px on a 390 px wide phone screen) and LABEL_MIN_PX, at most 2.5% (a face
# filling the frame does not get a banner).
LABEL_FACE_FRACTION = 0.1
LABEL_MIN_FRACTION = 0.0125
LABEL_MAX_FRACTION = 0.025
LABEL_MIN_PX = 8
_CAP_HEIGHT = 21.0  # cap height of FONT at scale 1, without the stroke
_DESCENDERS = frozenset("gjpqy,;()[]{}|/_@$")
# Cost of a label position: a pixel of another label hidden counts as much as this many
# pixels of a face (two overlapping labels are both unreadable).
_LABEL_WEIGHT = 100.0


def label_text_height(face_width: float, shape: tuple[int, ...]) -> float:
    """Cap height in pixels of the label of a face ``face_width`` wide in an image of
    ``shape``: a tenth of the face, clipped to [1.25%, 2.5%] of the image's longer side
    (never under ``LABEL_MIN_PX``), so a group photo's small faces get labels that read
    when the whole photo is on a phone, and a close-up's one face no giant one.

    Example:
        >>> label_text_height(48, (1101, 1600)), label_text_height(900, (1000, 1000))
        (20.0, 25.0)
    """
    side = max(int(shape[0]), int(shape[1]))
    low = max(LABEL_MIN_PX, LABEL_MIN_FRACTION * side)
    high = max(low, LABEL_MAX_FRACTION * side)
    return float(np.clip(LABEL_FACE_FRACTION * face_width, low, high))


def _sized(text: str, text_height: float, width: int) -> LabelBox:
    """``text``'s label at ``text_height`` (at ``(0, 0)``), its font shrunk while the label is
    wider than an image ``width`` wide (a tiny image)."""
    # cv2.getTextSize's height is _CAP_HEIGHT * scale plus half the stroke
    thick = max(1, round(1.6 * text_height / (_CAP_HEIGHT + 1)))
    scale = max(0.25, (text_height - (thick + 1) / 2) / _CAP_HEIGHT)
    while True:
        pad = _padding(scale)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
        w, h = tw + 2 * pad, th + _descent(text, base, pad) + 2 * pad
        if w <= width or scale <= 0.25:
            return LabelBox(text, scale, thick, 0, 0, w, h)
        scale *= 0.8
        thick = max(1, round(scale * 1.6))


def _padding(scale: float) -> int:
    """Space around a label's text at font ``scale``: the box is sized (``_sized``) and the
    text placed in it (``draw_label``) with the same one."""
    return max(1, round(4 * scale))


def _descent(text: str, base: int, pad: int) -> int:
    """Room below the baseline: the font's descent if a glyph reaches below it (``g``,
    ``/``), else a little (digits and ``#`` sit on it), so number labels stay short."""
    return base if _DESCENDERS & set(text) else max(1, pad // 2)


def _candidates(
    box: LabelBox, face: tuple[int, int, int, int], shape: tuple[int, ...]
) -> np.ndarray:
    """Positions ``(x, y)`` for ``box`` beside ``face``, best first: above it, below it
    (each left-aligned, centred, right-aligned, then slid along while still over the face),
    last inside its top edge; each moved wholly into the image."""
    height, width = int(shape[0]), int(shape[1])
    x1, y1, x2, y2 = face
    w, h = box.w, box.h
    margin = max(1, min(w, x2 - x1) // 3)  # a slid label still spans this much of the face
    xs = [x1, (x1 + x2 - w) // 2, x2 - w]
    xs += [round(v) for v in np.linspace(x1 - w + margin, x2 - margin, 9)]
    out = [(x, y) for y in (y1 - h, y2) for x in xs]
    out += [(x, y1) for x in xs[:3]]
    return np.array(
        [(min(max(0, x), max(0, width - w)), min(max(0, y), max(0, height - h))) for x, y in out]
    )


def _overlap(rects: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Area of each ``(x1, y1, x2, y2)`` row of ``rects`` covered by the rows of ``others``
    (summed)."""
    if len(others) == 0:
        return np.zeros(len(rects))
    ix = np.minimum(rects[:, None, 2], others[None, :, 2]) - np.maximum(
        rects[:, None, 0], others[None, :, 0]
    )
    iy = np.minimum(rects[:, None, 3], others[None, :, 3]) - np.maximum(
        rects[:, None, 1], others[None, :, 1]
    )
    return (np.clip(ix, 0, None) * np.clip(iy, 0, None)).sum(axis=1)


def _rect(box: LabelBox) -> tuple[int, int, int, int]:
    return box.x, box.y, box.x + box.w, box.y + box.h


def _rects(boxes: Iterable[LabelBox]) -> np.ndarray:
    """``(n, 4)`` float array of the ``(x1, y1, x2, y2)`` of ``boxes``."""
    return np.array([_rect(b) for b in boxes], np.float64).reshape(-1, 4)


def _place(
    box: LabelBox,
    face: tuple[int, int, int, int],
    shape: tuple[int, ...],
    faces: np.ndarray,
    labels: np.ndarray,
) -> tuple[LabelBox, np.ndarray]:
    """``box`` at its best position beside ``face``: the first of :func:`_candidates` that
    hides the least (faces, and other labels weighted by ``_LABEL_WEIGHT``). Returns the
    placed box and the area it hides of the labels, of the faces (``face`` included) and
    of ``face`` itself."""
    pos = _candidates(box, face, shape)
    rects = np.concatenate([pos, pos + (box.w, box.h)], axis=1).astype(np.float64)
    hidden = _hidden(rects, face, faces, labels)
    best = int(np.argmin(hidden[:, 1] + _LABEL_WEIGHT * hidden[:, 0]))  # first of equals
    x, y = (int(v) for v in pos[best])
    return LabelBox(box.text, box.scale, box.thickness, x, y, box.w, box.h), hidden[best]


def _hidden(
    rects: np.ndarray, face: tuple[int, int, int, int], faces: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """``(n, 3)``: the area each label rectangle hides of ``labels``, of ``faces`` and of its
    own ``face``."""
    own = _overlap(rects, np.array([face], np.float64))
    return np.stack([_overlap(rects, labels), _overlap(rects, faces), own], axis=1)


def label_boxes(faces: Faces | Sequence[Face], shape: tuple[int, ...]) -> list[LabelBox]:
    """The labels of ``faces`` in an image of ``shape``, one per face in order, each wholly
    inside the image and off the faces and the other labels wherever there is room.

    Text height is :func:`label_text_height`. Placement is greedy, top row first: every
    face first gets its number (``face_label(short=2)``) at the first position of
    :func:`_candidates` that hides no face and no label (else the one hiding least, a label
    counting ``_LABEL_WEIGHT`` times a face; in a crowd with no spot free of labels the
    number is made smaller, down to ``LABEL_MIN_PX``); then each label is lengthened to
    ``short=1``, then all again to the full text, wherever that hides no more of the other
    labels and faces, nor moves onto its own face (a face filling the image, whose label
    is on it anyway, still gets its score).

    Example:
        >>> faces = Faces(xyxy=np.array([[100, 100, 150, 150], [160, 100, 210, 150]], "f4"),
        ...               score=np.array([0.9, 0.8], "f4"))
        >>> [(b.text, b.y + b.h <= 100) for b in label_boxes(faces, (600, 800))]
        [('#0 0.90', True), ('#1 0.80', True)]
    """
    faces = list(faces)
    width = int(shape[1])
    boxes = [tuple(round(float(v)) for v in f.box) for f in faces]
    face_rects = np.array(boxes, np.float64).reshape(-1, 4)
    sizes = [label_text_height(max(1.0, b[2] - b[0]), shape) for b in boxes]
    order = sorted(range(len(faces)), key=lambda i: (boxes[i][1], boxes[i][0]))
    placed: dict[int, LabelBox] = {}
    for i in order:
        placed[i] = _place_number(faces[i], boxes[i], sizes[i], shape, face_rects, placed)
    for short in (1, 0):  # every label gets its score before any gets the full text
        for i in order:
            others = _rects(b for j, b in placed.items() if j != i)
            now = _hidden(_rects([placed[i]]), boxes[i], face_rects, others)[0]
            longer = _sized(face_label(faces[i], short), sizes[i], width)
            if longer.w > width:
                continue
            box, more = _place(longer, boxes[i], shape, face_rects, others)
            no_more_labels = more[0] <= now[0]
            no_more_faces = more[1] - more[2] <= now[1] - now[2]  # of the other faces
            own_face_ok = more[2] == 0 or now[2] > 0  # the number is on it already
            if no_more_labels and no_more_faces and own_face_ok:
                placed[i] = box
    return [placed[i] for i in range(len(faces))]


def _place_number(
    face: Face,
    box: tuple[int, int, int, int],
    size: float,
    shape: tuple[int, ...],
    faces: np.ndarray,
    placed: dict[int, LabelBox],
) -> LabelBox:
    """The number label of ``face`` at ``size``, or smaller (down to ``LABEL_MIN_PX``) when
    a crowd leaves no spot beside the face that is free of the ``placed`` labels: two
    labels on top of each other read at no size."""
    labels = _rects(placed.values())
    while True:
        number = _sized(face_label(face, 2), size, int(shape[1]))
        label, hidden = _place(number, box, shape, faces, labels)
        if hidden[0] == 0 or size <= LABEL_MIN_PX:
            return label
        size = max(LABEL_MIN_PX, 0.8 * size)


def label_box(face: Face, shape: tuple[int, ...]) -> LabelBox:
    """The label of a lone ``face`` in an image of ``shape`` (:func:`label_boxes`)."""
    return label_boxes([face], shape)[0]


def draw_label(out: np.ndarray, box: LabelBox, color: tuple[int, int, int]) -> None:
    """An opaque coloured box with a dark outline and black text (legible on any photo)."""
    x, y, w, h = box.x, box.y, box.w, box.h
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), color, -1)
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), (20, 20, 20), 1)
    (tw, th), base = cv2.getTextSize(box.text, FONT, box.scale, box.thickness)
    pad = _padding(box.scale)
    top = (h - th - _descent(box.text, base, pad)) // 2
    origin = (x + (w - tw) // 2, y + top + th)
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
