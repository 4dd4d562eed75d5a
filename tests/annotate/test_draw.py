"""Labels of drawn faces: legible at the size the image is seen, inside it, hiding nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from duchenne.annotate import FaceAnnotator, label_box, label_boxes
from duchenne.annotate.draw import FONT, face_label
from duchenne.errors import ImageLoadError
from duchenne.io.image import save_image_atomic
from tests.helpers import mock_faces


def _faces(boxes, smile=True):
    n = len(boxes)
    faces = mock_faces(n=n, smile=[0.9] * n) if smile else mock_faces(n=n)
    faces.xyxy = np.asarray(boxes, np.float32)
    return faces


@pytest.mark.parametrize(
    ("shape", "box"),
    [
        ((256, 256), (60, 40, 250, 250)),  # a portrait whose face fills the right edge
        ((256, 256), (0, 0, 256, 256)),  # the whole image is the face: no room outside
        ((480, 640), (600, 200, 640, 240)),  # a small face at the right edge
        ((480, 640), (10, 440, 60, 480)),  # at the bottom edge
        ((48, 48), (0, 0, 48, 48)),  # a tiny crop
        ((1101, 1600), (1560, 5, 1600, 45)),  # top-right corner of a group photo
    ],
)
def test_label_lies_inside_the_image(shape, box) -> None:
    face = _faces([box]).face(0)
    lb = label_box(face, shape)
    assert 0 <= lb.x and lb.x + lb.w <= shape[1], lb
    assert 0 <= lb.y and lb.y + lb.h <= shape[0], lb


def test_label_flips_below_when_no_room_above_and_scales_with_the_face() -> None:
    near_top = label_box(_faces([(100, 2, 200, 102)]).face(0), (600, 600))
    assert near_top.y >= 102  # below the box
    roomy = label_box(_faces([(100, 300, 200, 400)]).face(0), (600, 600))
    assert roomy.y + roomy.h <= 300  # above the box
    big = label_box(_faces([(50, 300, 450, 700)]).face(0), (800, 800))
    small = label_box(_faces([(50, 300, 90, 340)]).face(0), (800, 800))
    mid = label_box(_faces([(50, 300, 200, 450)]).face(0), (800, 800))
    assert big.scale > mid.scale > small.scale


def test_labels_are_whole_texts_shortened_only_where_there_is_no_room() -> None:
    """A lone small face has room for its full text; in a tight row each label is one of
    the label texts (never a cut one) and the number always shows."""
    lone = _faces([(500, 500, 530, 530)]).face(0)
    assert label_box(lone, (1000, 1000)).text == face_label(lone)
    row = _faces([(100 + 32 * i, 500, 130 + 32 * i, 530) for i in range(20)])
    labels = label_boxes(row, (1000, 1000))
    for i, lb in enumerate(labels):
        assert lb.text in [face_label(row.face(i), s) for s in (0, 1, 2)]
        assert lb.text.split()[0] == f"#{i}"
    assert any(lb.text == face_label(row.face(i), 2) for i, lb in enumerate(labels))


# The faces found in tests/data/solvay_1927.jpg (1600 x 1101): 29 faces 41-59 px wide in
# three staggered rows, the group photo whose labels came out 7 px tall (1.7 px on a phone).
SOLVAY = [
    (302, 392, 356, 446), (421, 433, 462, 474), (502, 470, 545, 512), (632, 439, 685, 493),
    (766, 462, 814, 510), (897, 436, 941, 480), (998, 442, 1044, 488), (1106, 437, 1147, 479),
    (1233, 432, 1277, 476), (1320, 383, 1363, 426), (1377, 431, 1424, 478), (135, 536, 185, 586),
    (277, 553, 322, 598), (427, 538, 473, 584), (593, 534, 641, 582), (771, 524, 817, 570),
    (916, 522, 962, 568), (1063, 534, 1107, 578), (1225, 539, 1272, 585), (1363, 542, 1414, 592),
    (180, 578, 239, 638), (338, 591, 395, 648), (507, 588, 551, 632), (676, 589, 733, 646),
    (865, 576, 920, 631), (1024, 573, 1076, 625), (1137, 574, 1183, 620), (1308, 583, 1354, 629),
    (1423, 601, 1473, 651),
]  # fmt: skip


def _text_height(lb) -> int:
    return cv2.getTextSize(lb.text, FONT, lb.scale, lb.thickness)[0][1]


def _overlap(a: tuple, b: tuple) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _check_layout(boxes, shape, min_text: float, on_own_face: int = 0) -> list:
    """Labels of ``boxes``: each at least ``min_text`` px tall, inside the image, beside
    its own face (at most ``on_own_face`` inside its top edge), on no other face and on no
    other label."""
    labels = label_boxes(_faces(boxes), shape)
    rects = [(lb.x, lb.y, lb.x + lb.w, lb.y + lb.h) for lb in labels]
    inside_own = 0
    for lb, r, face in zip(labels, rects, boxes, strict=True):
        assert _text_height(lb) >= min_text, lb
        assert 0 <= r[0] and 0 <= r[1] and r[2] <= shape[1] and r[3] <= shape[0], lb
        assert r[0] < face[2] and r[2] > face[0], (lb, face)  # over or under its face
        assert r[3] == face[1] or r[1] in (face[1], face[3]), (lb, face)  # touching it
        assert not any(_overlap(r, f) for f in boxes if f != face), (lb, face)
        inside_own += _overlap(r, face)
    assert inside_own <= on_own_face
    for i, a in enumerate(rects):
        assert not any(_overlap(a, b) for b in rects[i + 1 :]), (labels[i], a)
    return labels


@pytest.mark.parametrize("zoom", [0.5, 1.0, 2.0])
def test_group_photo_labels_read_on_a_phone_and_hide_no_face_or_label(zoom) -> None:
    """Solvay at 800, 1600 and 3200 px: labels were 7-11 px tall whatever the photo's
    size (under 2 px when it is shown 390 px wide) and two of them sat on faces. Now text
    is at least 1.25% of the photo's width (5 px at 390) and the labels hide nothing."""
    shape = (round(1101 * zoom), round(1600 * zoom))
    boxes = [tuple(round(v * zoom) for v in b) for b in SOLVAY]
    labels = _check_layout(boxes, shape, min_text=0.0125 * shape[1] - 1)
    assert any(" " in lb.text for lb in labels)  # there is room for some scores


def test_a_synthetic_crowd_gets_legible_numbers_on_no_other_face_or_label() -> None:
    """200 faces 48 px wide, 75 px apart in ten staggered rows of a 1600 px photo: labels
    of three-digit numbers are wider than the gaps, so a few go inside their own face."""
    boxes = [
        (40 + 75 * c + 37 * (r % 2), 60 + 100 * r, 88 + 75 * c + 37 * (r % 2), 108 + 100 * r)
        for r in range(10)
        for c in range(20)
    ]
    boxes = [b for b in boxes if b[2] <= 1600]
    _check_layout(boxes, (1101, 1600), min_text=19, on_own_face=len(boxes) // 10)


@pytest.mark.parametrize(
    ("shape", "box"),
    [
        ((1000, 1000), (50, 50, 950, 950)),  # a face filling a photo
        ((4000, 3000), (100, 600, 2900, 3400)),  # a phone selfie
        ((512, 512), (0, 0, 512, 512)),  # a face crop
    ],
)
def test_a_big_face_gets_no_giant_label(shape, box) -> None:
    """A face filling the frame got text 34 px tall on a 1000 px photo; now at most 2.5%
    of the image's longer side, and it still shows its score."""
    lb = label_box(_faces([box]).face(0), shape)
    assert _text_height(lb) <= 0.025 * max(shape) + 1, lb
    assert " " in lb.text


def test_tiny_image_label_fits() -> None:
    lb = label_box(_faces([(10, 20, 54, 64)]).face(0), (64, 64))
    assert 0 <= lb.x and lb.x + lb.w <= 64 and 0 <= lb.y and lb.y + lb.h <= 64, lb
    assert lb.text.startswith("#0")


def test_drawn_label_box_is_opaque_and_inside(tmp_path) -> None:
    """On a white photo the label's box is drawn in the face colour with dark text, fully
    inside the image (the old labels ran off the right edge of 256 px portraits)."""
    image = np.full((256, 256, 3), 255, np.uint8)
    faces = _faces([(60, 40, 250, 250)])
    out = FaceAnnotator(landmarks=False).annotate(image, faces)
    lb = label_box(faces.face(0), image.shape)
    region = out[lb.y : lb.y + lb.h, lb.x : lb.x + lb.w]
    green = np.all(region == FaceAnnotator().smile_color, axis=-1).mean()
    dark = (region.max(axis=-1) < 80).mean()
    assert green > 0.4 and dark > 0.03  # a filled box with text on it


def test_a_selection_is_drawn_with_its_own_landmarks() -> None:
    """``annotate(img, faces[faces.smile >= 0.5])`` used to index the landmarks by the face
    number (IndexError, or another face's points) instead of its position."""
    faces = mock_faces(n=3, smile=[0.1, 0.2, 0.9])
    faces.landmarks[:, :, :2] = 5.0  # every face's points at (5, 5) ...
    faces.landmarks[2, :, :2] = 150.0  # ... but the selected one's at (150, 150)
    faces.xyxy = np.array([[100, 100, 200, 200]] * 3, np.float32)
    out = FaceAnnotator().annotate(np.zeros((300, 300, 3), np.uint8), faces[faces.smile >= 0.5])
    assert out[150, 150].any() and not out[5, 5].any()


def _drawn(out: np.ndarray, image_shape: tuple[int, ...]) -> None:
    assert out.dtype == np.uint8 and out.shape == (*image_shape[:2], 3)
    assert (out == FaceAnnotator().smile_color).all(axis=-1).any()  # the colour shows


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((120, 120), np.uint8),  # grey
        np.zeros((120, 120, 1), np.uint8),
        np.full((120, 120, 4), 255, np.uint8),  # RGBA: boxes drawn opaque, not as alpha
        np.zeros((120, 120, 3), np.float64),  # [0, 1] floats
        np.zeros((120, 120, 3), np.uint16),
    ],
)
def test_any_array_the_analyzer_reads_is_drawn_on_in_colour(image) -> None:
    """A float image came back float64 with colours on the 0-255 scale, a grey one with
    grey boxes, an RGBA one with the boxes punched into its alpha channel."""
    before = image.copy()
    out = FaceAnnotator(landmarks=False).annotate(image, _faces([(20, 40, 100, 110)]))
    _drawn(out, image.shape)
    assert np.array_equal(image, before)  # the caller's image is left alone


def test_a_path_is_drawn_on_as_the_analyzer_reads_it(tmp_path) -> None:
    """``annotate("x.jpg", faces)`` raised ``AttributeError: 'str' object has no attribute
    'copy'``."""
    path = tmp_path / "x.png"
    save_image_atomic(np.zeros((120, 120, 3), np.uint8), path)
    _drawn(FaceAnnotator().annotate(str(path), _faces([(20, 40, 100, 110)])), (120, 120))


def test_a_float_image_on_the_0_255_scale_is_refused_saying_what_to_pass() -> None:
    with pytest.raises(ImageLoadError, match="uint8"):
        FaceAnnotator().annotate(np.full((50, 50, 3), 200.0), _faces([(5, 5, 40, 40)]))
