"""Smile enhancement: the smile grows with ``amount``, nothing outside the face moves, no folds.

Geometry is always re-measured by running the Analyzer on the output (``changes()`` does
exactly that). Smile-score checks skip while no smile model ships.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from duchenne import Analyzer, data
from duchenne.analysis.enhance import (
    DEFAULT_MODEL,
    FACE_OVAL,
    EnhanceResult,
    enhance,
    face_frame_3d,
    signed_areas,
    smile_displacements,
    ssim,
    warp_face,
)
from duchenne.analysis.enhance_model import LIP_INNER_RING, mouth_open_weight
from duchenne.analysis.enhance_shade import shading_layer
from duchenne.errors import ImageLoadError, NoFaceDetectedError
from duchenne.face.detector import Detections
from duchenne.face.geometry import smile_geometry
from duchenne.io.image import load_image
from duchenne.models.registry import default_smile_model
from tests.helpers import SHARED_DATASETS, TEST_DATA

AMOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)
NO_SMILE_MODEL = "no smile model ships yet (duchenne.models.registry.default_smile_model() is None)"


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(threads=1)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut2x(astronaut: np.ndarray) -> np.ndarray:
    """The demo photo upscaled: a 90 px inter-ocular distance, like a typical portrait."""
    return cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def grace() -> np.ndarray:
    return load_image(TEST_DATA / "grace_hopper.jpg")


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def _sweep(analyzer: Analyzer, image: np.ndarray, amounts=AMOUNTS) -> list[EnhanceResult]:
    return [enhance(analyzer, image, a) for a in amounts]


def _after(results: list[EnhanceResult], key: str, face: int = 0) -> np.ndarray:
    return np.array([r.changes()[face][f"{key}_after"] for r in results], float)


def _lower_face_mask(
    landmarks: np.ndarray, shape: tuple[int, ...], margin: float = 0.1
) -> np.ndarray:
    """The face from the eyebrows down (mouth, cheeks, eyes), dilated by ``margin`` IOD."""
    frame = face_frame_3d(landmarks)
    pts = landmarks[frame.uv[:, 1] > -0.3, :2]  # the brows are 0.2-0.4 IOD above the eyes
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
    r = int(math.ceil(margin * frame.iod))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    return mask.astype(bool)


# --------------------------------------------------------------------------- the smile grows


def test_amount_zero_returns_input_exactly(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    result = enhance(analyzer, astronaut, amount=0.0)
    assert np.array_equal(result.image, astronaut)
    assert result.image is not astronaut and result.warps == []
    row = result.changes()[0]
    assert row["lip_corner_elevation_after"] == row["lip_corner_elevation_before"]


@pytest.mark.parametrize("name", ["astronaut2x", "grace"])
def test_mouth_geometry_rises_monotonically(analyzer: Analyzer, request, name: str) -> None:
    """Re-measured lip-corner elevation and mouth width rise strictly at every step of 0.25."""
    results = _sweep(analyzer, request.getfixturevalue(name))
    assert np.all(np.diff(_after(results, "lip_corner_elevation")) > 0)
    assert np.all(np.diff(_after(results, "mouth_width")) > 0)
    # a clear effect at amount 1: corners 0.03 IOD higher, mouth 0.06 IOD wider at least
    assert (
        _after(results, "lip_corner_elevation")[-1] - _after(results, "lip_corner_elevation")[0]
        > 0.03
    )
    assert _after(results, "mouth_width")[-1] - _after(results, "mouth_width")[0] > 0.06


def test_eye_aperture_falls(analyzer: Analyzer, astronaut2x: np.ndarray) -> None:
    """The eyes narrow (re-measured). Face Mesh tracks eyelids coarsely, so steps of 0.5."""
    aperture = _after(_sweep(analyzer, astronaut2x, (0.0, 0.5, 1.0)), "eye_aperture")
    assert np.all(np.diff(aperture) < 0)


def test_eye_aperture_model_narrows_eyes_behind_glasses(
    analyzer: Analyzer, grace: np.ndarray
) -> None:
    """On Grace Hopper (glasses) Face Mesh barely re-detects the lid move, so check the displaced mesh."""
    landmarks = analyzer.analyze(grace).landmarks[0]
    apertures = []
    for amount in AMOUNTS:
        moved = landmarks.copy()
        moved[:, :2] += smile_displacements(landmarks, amount)
        apertures.append(smile_geometry(moved)["eye_aperture"])
    assert np.all(np.diff(apertures) < 0)
    assert apertures[-1] < 0.8 * apertures[0]


def test_smile_score_rises_monotonically(
    analyzer: Analyzer, astronaut2x: np.ndarray, grace: np.ndarray
) -> None:
    if default_smile_model() is None:
        pytest.skip(NO_SMILE_MODEL)
    for image in (astronaut2x, grace):
        scores = _after(_sweep(analyzer, image), "smile_score")
        # strictly rising below the 1-10 scale's ceiling; the astronaut, who already smiles
        # broadly, reaches it (9.98-9.99 with smile_s v2), where steps are float noise
        at_ceiling = (scores[:-1] >= 9.95) & (scores[1:] >= 9.95)
        steps = np.diff(scores)
        assert np.all((steps > 0) | (at_ceiling & (np.abs(steps) < 0.01))), scores
        assert scores[-1] > scores[0], scores


@pytest.mark.parametrize("degrees", [90, 25, -35])
def test_rotated_heads(analyzer: Analyzer, astronaut: np.ndarray, degrees: float) -> None:
    """The displacement lives in the face's own frame, so a rolled head smiles the same way."""
    image = (
        np.ascontiguousarray(np.rot90(astronaut)) if degrees == 90 else _rotate(astronaut, degrees)
    )
    results = _sweep(analyzer, image, (0.0, 0.5, 1.0))
    assert np.all(np.diff(_after(results, "lip_corner_elevation")) > 0)
    assert np.all(np.diff(_after(results, "mouth_width")) > 0)
    assert all(w.folds == 0 and w.scale == 1.0 for r in results for w in r.warps)


# --------------------------------------------------------------------------- displacement model


def _rotation(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


@pytest.mark.parametrize(("deg", "scale"), [(0, 3.0), (30, 1.0), (-70, 0.4), (180, 2.0)])
def test_displacement_follows_rotation_and_size(
    analyzer: Analyzer, astronaut: np.ndarray, deg, scale
) -> None:
    """Rotating and scaling a face rotates and scales its displacements the same way (IOD units)."""
    landmarks = analyzer.analyze(astronaut).landmarks[0].astype(np.float64)
    base = smile_displacements(landmarks, 0.7)
    moved = landmarks * scale
    moved[:, :2] = (landmarks[:, :2] - 256) @ _rotation(deg).T * scale + 1000
    expected = base @ _rotation(deg).T * scale
    # equal up to float32 rounding and the cut of moves under 0.001 IOD to exactly 0
    iod = face_frame_3d(landmarks).iod * scale
    np.testing.assert_allclose(
        smile_displacements(moved, 0.7), expected, rtol=1e-4, atol=2e-3 * iod
    )


def test_displacement_directions(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    """Lip corners up and out, upper lip up, cheeks and lower lids up; outline and brows fixed."""
    landmarks = analyzer.analyze(astronaut).landmarks[0]
    frame = face_frame_3d(landmarks)
    d = smile_displacements(landmarks, 1.0)
    # in the face frame: x toward the subject's left, y toward the chin, unit = IOD
    x, y = d @ frame.x_axis[:2] / frame.iod, d @ frame.y_axis[:2] / frame.iod
    assert y[61] < -0.05 and y[291] < -0.05  # lip corners up
    assert x[61] < -0.03 and x[291] > 0.03  # ... and out
    assert y[0] < -0.01  # upper lip raised
    assert y[50] < -0.02 and y[280] < -0.02  # cheeks lifted
    assert y[145] < -0.02 and y[374] < -0.02  # lower lids up
    assert y[159] > 0 and y[386] > 0  # upper lids slightly down: the eyes narrow
    assert np.abs(d[list(FACE_OVAL)]).max() < 0.01 * frame.iod  # outline pinned
    assert np.abs(d[[70, 105, 300, 334, 10, 151]]).max() < 0.005 * frame.iod  # brows, forehead
    np.testing.assert_allclose(smile_displacements(landmarks, 0.5), 0.5 * d)  # linear in amount


# --------------------------------------------------------------------------- open mouths


def test_open_mouth_teeth_move_rigidly(analyzer: Analyzer, astronaut2x: np.ndarray) -> None:
    """The astronaut smiles with her teeth showing: the opening moves as one piece.

    Before the fix the lip-corner handle bent the inner-lip contour into a U (its points'
    moves differed by 0.09 IOD), and the mesh triangles spanning the opening bent and
    stretched the teeth: the output's teeth matched the input's, shifted by their mean
    move, with SSIM 0.19. Now the contour keeps its shape and the teeth match (0.99).
    """
    result = enhance(analyzer, astronaut2x, amount=1.0, score=False)
    landmarks, (warp,) = result.before.landmarks[0], result.warps
    frame = face_frame_3d(landmarks)
    assert mouth_open_weight(frame.uv) > 0.9  # an open mouth (inner-lip gap 0.17 IOD)
    ring = list(LIP_INNER_RING)
    moves = (warp.target - warp.source)[ring]
    assert np.abs(moves - moves.mean(0)).max() < 0.01 * frame.iod  # one common move
    assert warp.folds == 0 and warp.min_jacobian > 0.3
    # inside the opening the output is the input translated by that move: unbent teeth
    opening = np.zeros(astronaut2x.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(warp.target[ring]).astype(np.int32)], 1)
    dx, dy = moves.mean(0)
    shifted = cv2.warpAffine(
        astronaut2x,
        np.float32([[1, 0, dx], [0, 1, dy]]),  # the input moved by (dx, dy)
        astronaut2x.shape[1::-1],
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT,
    )
    assert opening.sum() > 500  # the teeth
    assert ssim(shifted, result.image, opening.astype(bool)) > 0.95


def test_closed_mouth_is_not_held_rigid(analyzer: Analyzer, grace: np.ndarray) -> None:
    """A closed mouth (Grace Hopper) keeps exactly the smile it had before open mouths
    were held rigid: the lip line still bends up with the corners."""
    landmarks = analyzer.analyze(grace).landmarks[0]
    assert mouth_open_weight(face_frame_3d(landmarks).uv) == 0.0
    free = dataclasses.replace(DEFAULT_MODEL, rigid_mouth=None)
    assert np.array_equal(
        smile_displacements(landmarks, 1.0), smile_displacements(landmarks, 1.0, free)
    )
    out, _ = warp_face(grace, landmarks, 1.0)
    assert np.array_equal(out, warp_face(grace, landmarks, 1.0, free)[0])


def test_open_mouth_has_no_line_between_the_lips(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    """The shading's line between closed lips is not painted on an open mouth's upper
    teeth (it darkened their edge by up to 10 %)."""
    landmarks = analyzer.analyze(astronaut).landmarks[0]
    frame = face_frame_3d(landmarks)
    box = (0, 0, astronaut.shape[1], astronaut.shape[0])
    closed = shading_layer(landmarks[:, :2], frame.image_axes, box)
    opened = shading_layer(landmarks[:, :2], frame.image_axes, box, open_mouth=1.0)
    x, y = np.round(landmarks[13, :2]).astype(int)  # middle of the upper inner lip
    assert closed[y, x] < -0.03 and abs(opened[y, x]) < 0.005
    far = np.ones(closed.shape, bool)
    far[y - 40 : y + 40, x - 60 : x + 60] = False  # elsewhere the layer is the same
    np.testing.assert_allclose(opened[far], closed[far], atol=1e-6)


# --------------------------------------------------------------------------- what must not change


@pytest.mark.parametrize("name", ["astronaut", "grace"])
def test_pixels_outside_lower_face_unchanged(analyzer: Analyzer, request, name: str) -> None:
    image = request.getfixturevalue(name)
    result = enhance(analyzer, image, amount=1.0, score=False)
    inside = _lower_face_mask(result.before.landmarks[0], image.shape)
    assert ssim(image, result.image, ~inside) >= 0.99
    assert np.array_equal(image[~inside], result.image[~inside])  # bit-identical, in fact
    assert ssim(image, result.image, inside) < 0.999  # ... while the face did change


@pytest.mark.parametrize("name", ["astronaut", "astronaut2x", "grace"])
def test_mesh_has_no_folds(analyzer: Analyzer, request, name: str) -> None:
    result = enhance(analyzer, request.getfixturevalue(name), amount=1.0, score=False)
    (warp,) = result.warps
    before = signed_areas(warp.source, warp.triangles)
    after = signed_areas(warp.target, warp.triangles)
    assert len(warp.triangles) > 800 and np.all(before > 0)
    assert np.all(after > 0), f"{(after <= 0).sum()} triangles flipped"
    assert warp.scale == 1.0 and warp.folds == 0
    assert warp.min_jacobian > 0.3  # the smoothed, feathered dense map is fold-free too


def test_face_at_image_border(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    """A face cut by the border is warped without pulling pixels in from outside the photo."""
    for image in (astronaut[:150], astronaut[:, 215:]):
        image = np.ascontiguousarray(image)
        result = enhance(analyzer, image, amount=1.0, score=False)
        assert result.image.shape == image.shape and result.warps[0].changed > 0
        for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
            assert np.array_equal(result.image[edge], image[edge])


def _two_astronauts(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.hstack([astronaut, astronaut[:, ::-1]]))


def test_only_chosen_face_changes(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    image = _two_astronauts(astronaut)
    result = enhance(analyzer, image, amount=1.0, faces=[1])
    assert len(result.before) == 2 and result.indices == (1,)
    other = _lower_face_mask(result.before.landmarks[0], image.shape, margin=0.3)
    chosen = _lower_face_mask(result.before.landmarks[1], image.shape)
    diff = np.any(result.image != image, axis=-1)
    assert diff[chosen].sum() > 1000 and not diff[other].any() and not diff[~chosen].any()
    rows = result.changes()
    assert not rows[0]["enhanced"] and rows[1]["enhanced"]
    assert rows[1]["lip_corner_elevation_after"] > rows[1]["lip_corner_elevation_before"] + 0.02
    # the other face's pixels are identical; its re-measured value moves only by detector
    # jitter (the output is detected again, and the 1024 px image is tiled: a tile holding
    # both faces sees the warp; 0.0067 measured), under half the chosen face's least change
    other_change = rows[0]["lip_corner_elevation_after"] - rows[0]["lip_corner_elevation_before"]
    assert abs(other_change) < 0.01


def test_face_missed_in_output_is_measured_where_it_was(
    analyzer: Analyzer, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A face the detector does not find again in the output (on Solvay 1927, enhancing
    faces 0 and 3 tips face 10 under the threshold) still gets after values, not n/a."""
    image = _two_astronauts(astronaut)
    detect = analyzer.detect

    def miss_face_0_in_output(im: np.ndarray) -> Detections:
        dets = detect(im)
        return dets if np.array_equal(im, image) else dets.select(np.arange(1, len(dets)))

    monkeypatch.setattr(analyzer, "detect", miss_face_0_in_output)
    result = enhance(analyzer, image, amount=1.0, faces=[1])
    assert result.matched is not None and result.matched.tolist() == [False, True]
    row = result.changes()[0]
    assert row["mouth_width_after"] is not None
    for key in ("smile_score", "lip_corner_elevation", "mouth_width", "eye_aperture"):
        assert row[f"{key}_after"] == row[f"{key}_before"]  # its pixels did not change


def test_every_face_changes_by_default(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    result = enhance(analyzer, _two_astronauts(astronaut), amount=0.8)
    assert result.indices == (0, 1) and len(result.warps) == 2
    assert all(r["mouth_width_after"] > r["mouth_width_before"] + 0.03 for r in result.changes())


def test_group_photo_one_face(analyzer: Analyzer) -> None:
    """Solvay 1927 (29 small faces): enhancing one leaves every pixel outside it untouched."""
    image = load_image(TEST_DATA / "solvay_1927.jpg")
    result = enhance(analyzer, image, amount=1.0, faces=3, score=False)
    chosen = _lower_face_mask(result.before.landmarks[3], image.shape)
    diff = np.any(result.image != image, axis=-1)
    assert diff.any() and not diff[~chosen].any()


# --------------------------------------------------------------------------- results and errors


def test_result_is_json_ready(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    result = enhance(analyzer, astronaut, amount=0.6)
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["amount"] == 0.6 and doc["image"]["width"] == 512
    face = doc["faces"][0]
    assert face["enhanced"] and face["box"] == result.before.face(0).to_dict()["box"]
    assert set(face["box"]) == {"x1", "y1", "x2", "y2"}  # as analyze/batch/service write it
    assert {"smile_score_before", "smile_score_after", "eye_aperture_after"} <= set(face)
    if default_smile_model() is None:
        assert face["smile_score_before"] is None


@pytest.mark.parametrize(
    ("source", "kwargs", "error", "match"),
    [
        (b"not an image at all", {}, ImageLoadError, "not"),
        ("no/such/photo.jpg", {}, ImageLoadError, "no such file"),
        ("astronaut", {"faces": 1}, NoFaceDetectedError, "face 1 does not exist"),
        ("astronaut", {"faces": [-1]}, NoFaceDetectedError, "does not exist"),
        ("astronaut", {"faces": ["0"]}, ValueError, "integers"),
        ("astronaut", {"faces": 0.0}, ValueError, "integers, got 0.0"),  # was a TypeError
        ("astronaut", {"faces": "10"}, ValueError, "integers, got '10'"),  # was split: '1'
        ("astronaut", {"faces": []}, ValueError, "empty"),
        ("astronaut", {"amount": 1.5}, ValueError, r"\[0, 1\]"),
        ("astronaut", {"amount": float("nan")}, ValueError, r"\[0, 1\]"),
        ("blank", {}, NoFaceDetectedError, "no face"),
    ],
)
def test_bad_input(analyzer: Analyzer, astronaut, source, kwargs, error, match) -> None:
    if source == "astronaut":
        source = astronaut
    elif source == "blank":
        source = np.full((240, 320, 3), 127, np.uint8)
    with pytest.raises(error, match=match):
        enhance(analyzer, source, **kwargs)


def _transparent(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut as RGBA: a fully transparent left strip whose hidden RGB is green (so
    compositing on white changes it), a half-transparent band, the face opaque."""
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:, :90, :3] = (10, 200, 30)
    rgba[:, :90, 3] = 0
    rgba[:, 90:130, 3] = 128
    return rgba


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_transparency_is_carried_through(
    analyzer: Analyzer, astronaut: np.ndarray, tmp_path
) -> None:
    """Only RGB is enhanced: the alpha channel (and the RGB hidden under transparent
    pixels) come back unchanged in PNG and WebP; the analysis and JPEG see the picture
    composited on white, as load_image gives it."""
    rgba = _transparent(astronaut)
    (tmp_path / "t.png").write_bytes(_png(rgba))
    composited = load_image(_png(rgba))
    assert not np.array_equal(composited, astronaut)  # the strip is white there
    sources = {
        "array": rgba,
        "bytes": _png(rgba),
        "path": tmp_path / "t.png",
        "file": io.BytesIO(_png(rgba)),
        "PIL": Image.open(io.BytesIO(_png(rgba))),
    }
    for kind, source in sources.items():
        same = enhance(analyzer, source, amount=0.0, score=False)
        assert same.rgba is not None and np.array_equal(same.rgba, rgba), kind
        assert np.array_equal(same.image, composited), kind
        assert np.array_equal(_decode(same.encode("png")), rgba), kind
        assert np.array_equal(_decode(same.encode("webp")), rgba), kind

    result = enhance(analyzer, _png(rgba), amount=1.0)
    assert np.array_equal(result.rgba[..., 3], rgba[..., 3])
    moved = (result.rgba[..., :3] != rgba[..., :3]).any(axis=2)
    assert moved.sum() > 500 and (rgba[..., 3][moved] == 255).all()  # the face, opaque
    assert np.array_equal(result.image[moved], result.rgba[..., :3][moved])
    assert np.array_equal(result.image[~moved], composited[~moved])
    assert (
        result.changes()[0]["lip_corner_elevation_after"]
        > result.changes()[0]["lip_corner_elevation_before"]
    )
    assert np.array_equal(_decode(result.encode("png")), result.rgba)
    assert _decode(result.encode("jpeg")).shape == (512, 512, 3)
    assert result.to_dict()["image"]["alpha"] is True


def test_opaque_inputs_have_no_alpha(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    opaque_rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    result = enhance(analyzer, astronaut, amount=0.0, score=False)
    assert result.rgba is None and result.to_dict()["image"]["alpha"] is False
    assert np.array_equal(_decode(result.encode("png")), astronaut)
    assert np.array_equal(_decode(result.encode("webp")), astronaut)
    kept = enhance(analyzer, _png(opaque_rgba), amount=0.0, score=False)  # RGBA stays RGBA
    assert np.array_equal(_decode(kept.encode("png")), opaque_rgba)
    with pytest.raises(ValueError, match="unsupported output image format 'gif'"):
        result.encode("gif")


def test_rgb_colour_profile_is_kept(analyzer: Analyzer, astronaut: np.ndarray, tmp_path) -> None:
    """The pixels keep the input's values, so every output keeps its RGB ICC profile (a
    Display P3 photo written without it looks washed out); a caller's file stays open."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="JPEG", quality=95, icc_profile=icc)
    (tmp_path / "in.jpg").write_bytes(buf.getvalue())
    with open(tmp_path / "in.jpg", "rb") as fh:
        result = enhance(analyzer, fh, amount=0.5, score=False)
        assert not fh.closed
    assert result.icc_profile == icc
    for suffix in (".jpg", ".png", ".webp"):
        result.save(tmp_path / f"out{suffix}")
        assert Image.open(tmp_path / f"out{suffix}").info.get("icc_profile") == icc, suffix
    assert np.array_equal(_decode(result.encode("png")), result.image)
    assert enhance(analyzer, astronaut, amount=0.0, score=False).icc_profile is None


def test_needs_landmarks_stage(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match="landmarks"):
        enhance(Analyzer(stages=("detect",), threads=1), astronaut)


def test_warp_face_is_pure_and_model_is_documented(
    analyzer: Analyzer, astronaut: np.ndarray
) -> None:
    landmarks = analyzer.analyze(astronaut).landmarks[0]
    copy = astronaut.copy()
    out, record = warp_face(astronaut, landmarks, 0.5)
    assert np.array_equal(astronaut, copy) and not np.array_equal(out, astronaut)
    assert record.source.shape == record.target.shape and record.changed > 0
    assert {h.name for h in DEFAULT_MODEL.handles} >= {"lip_corners", "cheeks", "lower_lids"}


def test_ssim_matches_reference() -> None:
    """Our numpy/cv2 SSIM agrees with scikit-image's Gaussian-window SSIM (test-only dependency)."""
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 256, (64, 80), dtype=np.uint8), (0, 0), 2)
    b = np.clip(a.astype(int) + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    ours = ssim(a, b)
    ref = metrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(a, a) == pytest.approx(1.0)
    assert ours == pytest.approx(ref, abs=0.01) and ours < 0.95


# --------------------------------------------------------------------------- datasets


def _neutral_faces(limit: int) -> list[np.ndarray]:
    folder = SHARED_DATASETS / "ferplus" / "FER2013Test"
    with open(folder / "label.csv", newline="") as fh:
        names = [row[0] for row in csv.reader(fh) if int(row[2]) >= 9]  # >= 9 of 10 say neutral
    return [_pad_and_upscale(load_image(folder / n), side=384) for n in names[:limit]]


@pytest.mark.datasets
def test_neutral_dataset_faces_smile_more(analyzer: Analyzer) -> None:
    """FER+ test faces that annotators call neutral, upscaled: the re-measured smile grows."""
    if not (SHARED_DATASETS / "ferplus" / "FER2013Test" / "label.csv").is_file():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    checked, eyes_monotone = 0, 0
    for image in _neutral_faces(12):
        before = analyzer.analyze(image)
        if len(before) != 1 or abs(float(before.data["yaw"][0])) > 20:
            continue  # not detected, or turned too far for a frontal smile check
        results = _sweep(analyzer, image, (0.0, 0.5, 1.0))
        assert np.all(np.diff(_after(results, "lip_corner_elevation")) > 0)
        assert np.all(np.diff(_after(results, "mouth_width")) > 0)
        aperture = _after(results, "eye_aperture")
        assert aperture[-1] < aperture[0]
        eyes_monotone += bool(np.all(np.diff(aperture) < 0))
        if default_smile_model() is not None:
            assert np.all(np.diff(_after(results, "smile_score")) > 0)
        checked += 1
    assert checked >= 6
    assert eyes_monotone >= 0.75 * checked


def _pad_and_upscale(image: np.ndarray, side: int, pad: float = 0.25) -> np.ndarray:
    """A small dataset face with replicated border, upscaled so the detector sees context."""
    border = int(round(max(image.shape[:2]) * pad))
    padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE)
    return cv2.resize(padded, (side, side), interpolation=cv2.INTER_CUBIC)


def test_unfold_relaxes_a_flipping_sliver_without_weakening_the_rest() -> None:
    """A move that would flip one triangle is relaxed locally; far points keep their move."""
    from duchenne.analysis.enhance import _folded, _unfold, delaunay

    xs, ys = np.meshgrid(np.arange(8.0), np.arange(8.0))
    source = np.stack([xs.ravel(), ys.ravel()], axis=1) * 10
    tris = delaunay(source)
    delta = np.zeros_like(source)
    delta[:, 1] = -3.0  # everything moves up 3 px ...
    centre = 3 * 8 + 3
    delta[centre] = (0.0, 14.0)  # ... but one point jumps past its lower neighbour
    assert _folded(source, source + delta, tris).any()
    far = np.linalg.norm(source - source[centre], axis=1) > 35
    for passes in (60, 0):  # without Laplacian passes the local scale-down alone unfolds it
        relaxed = _unfold(source, delta, tris, movable=len(source), passes=passes)
        assert not _folded(source, source + relaxed, tris).any()
        np.testing.assert_allclose(relaxed[far], delta[far])
