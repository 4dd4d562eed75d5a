"""Labels of drawn faces: sized from the face, wholly inside the image, legible."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.annotate import FaceAnnotator, label_box
from duchenne.annotate.draw import face_label
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
    assert big.scale > 2 * small.scale


def test_small_faces_get_short_labels_not_cut_ones() -> None:
    face = _faces([(500, 500, 530, 530)]).face(0)
    lb = label_box(face, (1000, 1000))
    assert lb.text in (face_label(face, 1), face_label(face, 2))
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
