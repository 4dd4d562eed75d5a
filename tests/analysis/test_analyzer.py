"""The face pipeline end to end on real public-domain photos (no shared data needed)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from duchenne import Analyzer, Faces, data
from duchenne.analysis.video.face_stage import TrackingFaceStage
from duchenne.errors import DuchenneError, ImageLoadError
from duchenne.face.align import eye_centres
from duchenne.faces import reading_order
from duchenne.io.image import load_image
from duchenne.models.registry import default_smile_model
from tests.helpers import TEST_DATA


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(stages=("detect", "landmarks", "geometry"), threads=1)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def test_demo_photo_one_face_with_landmarks(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    faces = analyzer.analyze(astronaut)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.xyxy[0]
    # the face of the astronaut is around x 175-280, y 65-175 of the 512x512 photo
    assert 150 < x1 < 200 and 250 < x2 < 300 and 40 < y1 < 90 and 150 < y2 < 200
    assert faces.landmarks.shape == (1, 468, 3)
    assert faces.landmark_score[0] > 0.9
    # the mesh eyes agree with the detector's eye keypoints within 10% of the face width
    right, left = eye_centres(faces.landmarks[0])
    width = x2 - x1
    assert np.linalg.norm(right - faces.keypoints[0, 0]) < 0.1 * width
    assert np.linalg.norm(left - faces.keypoints[0, 1]) < 0.1 * width
    assert set(faces.data) >= {
        "mouth_width",
        "lip_corner_elevation",
        "eye_aperture",
        "yaw",
        "pitch",
        "roll",
    }
    assert abs(faces.data["roll"][0]) < 10 and abs(faces.data["yaw"][0]) < 20


@pytest.mark.parametrize("k", [1, 3])
def test_rotated_photo_landmarks_follow(analyzer: Analyzer, astronaut: np.ndarray, k: int) -> None:
    """Rotating the photo by +-90 degrees (a phone photo without EXIF) rotates the measured roll with it.

    Upside-down faces are out of scope: BlazeFace, like MediaPipe itself, rarely detects them.
    """
    base = analyzer.analyze(astronaut).data["roll"][0]
    faces = analyzer.analyze(np.ascontiguousarray(np.rot90(astronaut, k)))
    assert len(faces) == 1
    expected = (base - 90 * k + 180) % 360 - 180  # np.rot90 turns counter-clockwise
    diff = (faces.data["roll"][0] - expected + 180) % 360 - 180
    assert abs(diff) < 5


@pytest.fixture(scope="module")
def smiler() -> Analyzer:
    if default_smile_model() is None:
        pytest.skip("no smile model ships with this installation")
    return Analyzer(threads=1)


@pytest.fixture(scope="module")
def upright(smiler: Analyzer) -> dict[str, tuple[np.ndarray, Faces]]:
    """The two portraits and their upright results (one face each)."""
    images = {"astronaut": data.astronaut(), "grace": load_image(TEST_DATA / "grace_hopper.jpg")}
    return {name: (image, smiler.analyze(image)) for name, image in images.items()}


def _into_turned(xy: np.ndarray, k: int, w: int, h: int) -> np.ndarray:
    """Where points of a w x h image lie in ``np.rot90(image, k)`` (pixel centres at
    whole coordinates)."""
    x, y = xy[..., 0], xy[..., 1]
    turned = {1: (y, w - 1 - x), 2: (w - 1 - x, h - 1 - y), 3: (h - 1 - y, x)}[k]
    return np.stack(turned, -1)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("name", ["astronaut", "grace"])
def test_turned_photo_measures_as_the_upright_one(
    smiler: Analyzer, upright: dict[str, tuple[np.ndarray, Faces]], name: str, k: int
) -> None:
    """A portrait turned without an EXIF tag (np.rot90 by k quarters) gives the upright
    photo's face, in the turned photo's pixels, with the turn that finds it upright.

    Upside down BlazeFace finds nothing; sideways it finds the face with coarse eye
    keypoints (boxes 6-38 px off, Grace's P(smile) 0.29-0.32 for 0.14), so both are
    searched upright and mapped back; Face Mesh and the smile crop turn with the eye line.
    """
    image, up = upright[name]
    h, w = image.shape[:2]
    faces = smiler.analyze(np.ascontiguousarray(np.rot90(image, k)))
    assert len(faces) == 1
    assert faces.rotation.tolist() == [(360 - 90 * k) % 360]  # turning it so makes it upright
    corners = _into_turned(up.xyxy.reshape(2, 2), k, w, h)
    np.testing.assert_allclose(faces.xyxy[0], [*corners.min(0), *corners.max(0)], atol=1.0)
    np.testing.assert_allclose(faces.keypoints[0], _into_turned(up.keypoints[0], k, w, h), atol=1.0)
    points = _into_turned(up.landmarks[0, :, :2], k, w, h)
    assert np.abs(faces.landmarks[0, :, :2] - points).max() < 2.0
    assert abs(faces.smile[0] - up.smile[0]) < 0.01
    assert abs(faces.smile_score[0] - up.smile_score[0]) < 0.1


def test_a_sideways_jpeg_with_a_levelish_eye_line_is_still_turned(astronaut: np.ndarray) -> None:
    """Turned clockwise and saved as JPEG (quality 75), the astronaut's coarse eye line is
    41 degrees off level, which the old 45-degree bar called upright: reported at rotation
    0 with a 0.78 detector box; the search must find it at 90."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, -1))).save(buf, "JPEG", quality=75)
    analyzer = Analyzer(stages=("detect",), threads=1)
    assert analyzer.analyze(buf.getvalue()).rotation.tolist() == [90]


def test_turned_looks_skip_the_grey_border_retry(astronaut: np.ndarray, monkeypatch) -> None:
    """A turned view must score the retry's bar anyway, and the retry was half the cost
    of each look: a photo without a face paid 4-5x instead of about 2.6x."""
    analyzer = Analyzer(stages=("detect",), threads=1)
    calls = []
    real = type(analyzer.detector).__call__
    monkeypatch.setattr(
        type(analyzer.detector),
        "__call__",
        lambda self, image, second_chance=None, tile_min_side=None: (
            calls.append(second_chance) or real(self, image, second_chance, tile_min_side)
        ),
    )
    analyzer.analyze(np.full((240, 320, 3), 128, np.uint8))
    assert calls == [None, False, False, False]


def _solvay_face(index: int, margin: float) -> np.ndarray:
    """Face ``index`` of the Solvay photo (its box in ``solvay_1927_faces.json``), ``margin``
    times its width on each side of its centre, scaled to 250x250 (an LFW-sized portrait)."""
    import cv2

    image = load_image(TEST_DATA / "solvay_1927.jpg")
    x1, y1, x2, y2 = json.loads((TEST_DATA / "solvay_1927_faces.json").read_text())["boxes_xyxy"][
        index
    ]
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, margin * (x2 - x1)
    crop = image[int(cy - half) : int(cy + half), int(cx - half) : int(cx + half)]
    assert crop.shape[0] == crop.shape[1] > 0
    return cv2.resize(crop, (250, 250), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize(("index", "margin", "k"), [(6, 2.0, 2), (10, 2.0, 2), (16, 1.0, 3)])
def test_a_turned_face_the_detector_finds_level_is_turned_by_face_mesh(
    analyzer: Analyzer, index: int, margin: float, k: int
) -> None:
    """BlazeFace finds these turned faces (0.72-0.77) with a level eye line, so the photo
    looked upright and was never searched: reported at rotation 0 with Face Mesh presence
    0.01-0.35. Face Mesh is not sure of an upright face there, so the photo is searched, and
    the turn that shows the face upright is kept: Face Mesh is sure of it there (presence
    0.999997-1). Without the landmarks stage only the eye line decides, as before."""
    upright = _solvay_face(index, margin)
    turned = np.ascontiguousarray(np.rot90(upright, k))
    found_level = Analyzer(stages=("detect",), threads=1).analyze(turned)
    assert len(found_level) == 1 and found_level.rotation.tolist() == [0]
    faces = analyzer.analyze(turned)
    assert faces.rotation.tolist() == [(360 - 90 * k) % 360]
    assert faces.landmark_score[0] > 0.9999
    up = analyzer.analyze(upright)
    assert up.rotation.tolist() == [0]
    corners = _into_turned(up.xyxy[0].reshape(2, 2), k, 250, 250)
    np.testing.assert_allclose(faces.xyxy[0], [*corners.min(0), *corners.max(0)], atol=2.0)


def test_rotations_off_takes_the_photo_as_given(astronaut: np.ndarray) -> None:
    analyzer = Analyzer(stages=("detect",), rotations=False, threads=1)
    assert len(analyzer.analyze(np.ascontiguousarray(np.rot90(astronaut, 2)))) == 0
    sideways = analyzer.analyze(np.ascontiguousarray(np.rot90(astronaut, 1)))
    assert sideways.rotation.tolist() == [0]  # found sideways, as before


def test_a_photo_without_a_face_still_has_none() -> None:
    """Blurred noise: its turned views show false faces (0.63-0.68) the first pass does
    not; a turned view needs a face scoring ``SECOND_CHANCE_MIN`` to count."""
    import cv2

    rng = np.random.default_rng(1)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8), (0, 0), 2)
    analyzer = Analyzer(stages=("detect",), threads=1)
    for image in (noise, np.full((480, 640, 3), 128, np.uint8)):
        faces = analyzer.analyze(image)
        assert faces.no_face and faces.rotation.shape == (0,)


def test_video_frames_are_never_turned(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    """``detect`` (the video face stage's) takes a frame as it stands: a video's
    orientation comes from its container, and empty frames must not cost three passes."""
    upside_down = np.ascontiguousarray(np.rot90(astronaut, 2))
    assert len(analyzer.faces_in(upside_down)) == 1  # a photo is searched turned
    assert len(analyzer.detect(upside_down)) == 0
    assert len(TrackingFaceStage(analyzer)(upside_down)) == 0


def test_group_photo_finds_every_visible_face(analyzer: Analyzer) -> None:
    """The 1927 Solvay photo shows 29 faces of 40-60 px; tiling must find nearly all of them."""
    faces = analyzer.analyze(TEST_DATA / "solvay_1927.jpg")
    assert len(faces) >= 27
    widths = faces.xyxy[:, 2] - faces.xyxy[:, 0]
    assert np.all((widths > 25) & (widths < 90))
    assert not _overlapping(faces)


def _overlapping(faces: Faces) -> bool:
    from duchenne.face.detector import box_iou

    return any(
        (box_iou(b, np.delete(faces.xyxy, i, 0)) > 0.3).any() for i, b in enumerate(faces.xyxy)
    )


def test_options_max_faces_and_min_size(astronaut: np.ndarray) -> None:
    group = Analyzer(stages=("detect",), max_faces=5, threads=1).analyze(
        TEST_DATA / "solvay_1927.jpg"
    )
    assert len(group) == 5
    everyone = Analyzer(stages=("detect",), threads=1).analyze(TEST_DATA / "solvay_1927.jpg")
    top5 = np.sort(everyone.score)[-5:]
    np.testing.assert_allclose(np.sort(group.score), top5)  # the 5 most confident faces
    np.testing.assert_array_equal(reading_order(group.xyxy), np.arange(5))  # in reading order
    none = Analyzer(stages=("detect",), min_face_size=200, threads=1).analyze(astronaut)
    assert len(none) == 0
    assert none.meta["faces_below_min_size"] == 1  # found, then dropped: not "no face"
    det_only = Analyzer(stages=("detect",), threads=1).analyze(astronaut)
    assert det_only.landmarks is None and not det_only.data


def test_every_input_kind_gives_the_same_faces(
    analyzer: Analyzer, astronaut: np.ndarray, tmp_path
) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(astronaut).save(path)
    sources = [
        astronaut,
        path,
        str(path),
        path.read_bytes(),
        Image.fromarray(astronaut),
        io.BytesIO(path.read_bytes()),
    ]
    boxes = [analyzer.analyze(s).xyxy for s in sources]
    for b in boxes[1:]:
        np.testing.assert_allclose(b, boxes[0], atol=1e-3)


def test_exif_rotated_photo_is_upright(analyzer: Analyzer, astronaut: np.ndarray, tmp_path) -> None:
    """A camera-rotated JPEG (pixels sideways + EXIF Orientation=6) is analysed upright."""
    sideways = Image.fromarray(
        np.ascontiguousarray(np.rot90(astronaut, 1))
    )  # stored rotated 90 CCW
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "exif.jpg"
    sideways.save(path, exif=exif, quality=95)
    faces = analyzer.analyze(path)
    assert len(faces) == 1 and abs(faces.data["roll"][0]) < 10


def test_batch_keeps_going_after_bad_input(
    analyzer: Analyzer, astronaut: np.ndarray, tmp_path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    results = analyzer.analyze_batch([astronaut, bad, tmp_path / "missing.png", astronaut])
    assert isinstance(results[1], ImageLoadError) and isinstance(results[2], DuchenneError)
    assert len(results[0]) == 1 and len(results[3]) == 1
    with pytest.raises(ImageLoadError):
        analyzer.analyze(bad)


@pytest.mark.parametrize("source", [123, None])
def test_no_image_source_at_all_is_the_callers_type_error_not_a_bug_report(
    analyzer: Analyzer, astronaut: np.ndarray, source
) -> None:
    with pytest.raises(TypeError, match="cannot load an image from"):
        analyzer.analyze(source)
    with pytest.raises(TypeError):
        analyzer.analyze_batch([astronaut, source])


def test_empty_path_names_itself() -> None:
    with pytest.raises(ImageLoadError, match="empty path"):
        Analyzer(stages="detect").analyze("")


def test_grayscale_and_blank_images(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert len(analyzer.analyze(gray)) == 1
    assert len(analyzer.analyze(np.zeros((300, 500, 3), np.uint8))) == 0
    assert len(analyzer.analyze(np.zeros((1, 1, 3), np.uint8))) == 0


def test_unknown_stage_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        Analyzer(stages=("detect", "smiles"))


def test_smile_stage_batches_all_faces(tiny_smile_onnx, astronaut: np.ndarray) -> None:
    """Smile outputs land on the right faces when several images share one model batch."""
    an = Analyzer(smile_model=tiny_smile_onnx, threads=1)
    blank = np.zeros((200, 200, 3), np.uint8)
    results = an.analyze_batch([astronaut, blank, TEST_DATA / "grace_hopper.jpg"])
    assert [len(r) for r in results] == [1, 0, 1]
    for faces in results:
        if len(faces):
            assert faces.smile.shape == (1,) and faces.emotion.shape == (1, 8)
            assert 1 <= faces.smile_score[0] <= 10
            assert faces.meta["models"]["smile"] == "tiny_smile"
    # the same face analysed alone gives the same numbers (no cross-talk inside the batch)
    alone = an.analyze(astronaut)
    np.testing.assert_allclose(alone.smile, results[0].smile, rtol=1e-5)


def test_crop_mode_skips_detection(tiny_smile_onnx) -> None:
    an = Analyzer(smile_model=tiny_smile_onnx, threads=1)
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[32:] = 255  # bright lower half: the tiny model's "smile"
    faces = an.analyze(crop, crop=True)
    assert len(faces) == 1 and faces.meta["crop_mode"] is True
    np.testing.assert_allclose(faces.xyxy[0], [0, 0, 64, 64])
    assert faces.smile[0] > 0.99
    assert set(faces.meta["models"]) == {"smile"}  # no detector or landmarks ran


def test_a_model_of_any_side_gets_its_crops(tmp_path, astronaut: np.ndarray) -> None:
    """A 44 px model (not a multiple of 8: the training caches' rule, not the models') got an
    AnalysisError calling itself a bug on every face once crops went through CropFormat."""
    from tests.conftest import make_tiny_smile_onnx

    an = Analyzer(smile_model=make_tiny_smile_onnx(tmp_path / "m44.onnx", size=44), threads=1)
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[32:] = 255
    assert an.analyze(crop, crop=True).smile[0] > 0.99
    faces = an.analyze(astronaut)
    assert len(faces) == 1 and faces.smile is not None
    assert an.face_crops(astronaut, faces).shape == (1, 44, 44, 3)


def test_with_options_shares_sessions_and_only_drops_stages(
    analyzer: Analyzer, astronaut: np.ndarray
) -> None:
    lighter = analyzer.with_options(stages=("detect",), max_faces=1)
    assert lighter.detector is analyzer.detector and lighter.mesh is None
    faces = lighter.analyze(astronaut)
    assert len(faces) == 1 and faces.landmarks is None
    assert analyzer.analyze(astronaut).landmarks is not None  # the original is untouched
    with pytest.raises(ValueError, match="not loaded"):
        Analyzer(stages=("detect",), threads=1).with_options(stages=("detect", "landmarks"))


def test_face_eyes_come_from_face_mesh_else_from_detector_keypoints(
    analyzer: Analyzer, astronaut: np.ndarray
) -> None:
    with_mesh = analyzer.analyze(astronaut)
    mesh_eyes = Analyzer.face_eyes(with_mesh)
    keypoint_eyes = Analyzer.face_eyes(analyzer.with_options(stages=["detect"]).analyze(astronaut))
    assert mesh_eyes.shape == keypoint_eyes.shape == (1, 2, 2)
    iod = np.linalg.norm(mesh_eyes[0, 0] - mesh_eyes[0, 1])
    # the two sources agree to a fraction of the eye distance (same eye order, same face)
    assert np.abs(mesh_eyes - keypoint_eyes).max() < 0.15 * iod
    assert Analyzer.face_eyes(with_mesh[[]]).shape == (0, 2, 2)


@pytest.mark.parametrize("wide", [True, False])
def test_face_in_photo_beyond_opencv_side_limit(
    tiny_smile_onnx, astronaut: np.ndarray, wide: bool
) -> None:
    """A 33,000 px panorama with a face is analysed like the face alone (used to crash in
    cv2.warpAffine's SHRT_MAX assertion and lose the whole batch)."""
    shape = (512, 33_000, 3) if wide else (33_000, 512, 3)
    big = np.full(shape, 255, np.uint8)
    big[:512, :512] = astronaut
    an = Analyzer(smile_model=tiny_smile_onnx, threads=1)
    alone, faces = an.analyze_batch([astronaut, big], on_error="raise")
    assert len(faces) >= 1 and faces.smile is not None and faces.landmarks is not None
    best = int(np.argmax(faces.score))
    np.testing.assert_allclose(faces.xyxy[best], alone.xyxy[0], atol=12)


def test_au_proxies_for_a_single_photo(analyzer: Analyzer, astronaut: np.ndarray) -> None:
    """AU6/AU12 proxies ride with every face (JSON ``au``, rows ``au.*``), in [0, 1]; the
    smiling astronaut pulls her lip corners well beyond the median neutral face."""
    face = analyzer.analyze(astronaut).to_dict()["faces"][0]
    au = face["au"]
    assert set(au) == {"au6", "au12", "cheek_raise", "eye_narrowing", "lip_corner_pull"}
    assert all(0.0 <= v <= 1.0 for v in au.values())
    assert au["au12"] > 0.4
    assert "au6" not in face["geometry"]


def test_an_unexpected_failure_loses_only_its_own_image(
    tiny_smile_onnx, astronaut: np.ndarray, monkeypatch, tmp_path
) -> None:
    """A bug on one input (here: faked in Face Mesh, then in the smile crops) is that
    input's ``AnalysisError`` naming it; the other images of the call keep their results
    (an OpenCV assertion on one photo used to lose the whole batch)."""
    from duchenne.errors import AnalysisError

    an = Analyzer(smile_model=tiny_smile_onnx, threads=1)
    odd = np.ascontiguousarray(astronaut[:, ::-1])
    Image.fromarray(odd).save(tmp_path / "odd.png")
    real_faces_in, real_crops = an.faces_in, an.face_crops

    def faces_in(image):
        if np.array_equal(image, odd):
            raise RuntimeError("simulated OpenCV assertion")
        return real_faces_in(image)

    monkeypatch.setattr(an, "faces_in", faces_in)
    good, bad, good2 = an.analyze_batch([astronaut, tmp_path / "odd.png", astronaut])
    assert isinstance(bad, AnalysisError) and str(tmp_path / "odd.png") in str(bad)
    assert "simulated OpenCV assertion" in str(bad)
    assert len(good) == 1 and good.smile is not None and len(good2) == 1
    with pytest.raises(AnalysisError, match="odd.png"):
        an.analyze(tmp_path / "odd.png")

    monkeypatch.setattr(an, "faces_in", real_faces_in)

    def face_crops(image, faces, crop=False):
        if np.array_equal(image, odd):
            raise RuntimeError("simulated warp failure")
        return real_crops(image, faces, crop)

    monkeypatch.setattr(an, "face_crops", face_crops)
    good, bad = an.analyze_batch([astronaut, odd])
    assert isinstance(bad, AnalysisError) and "<ndarray>" in str(bad)
    assert good.smile is not None and good.smile.shape == (1,)


@pytest.mark.parametrize(
    "one",
    [
        "photo.jpg",
        b"\xff\xd8",
        Image.new("RGB", (8, 8)),
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((8, 8), np.uint8),
    ],
    ids=["str", "bytes", "pil", "rgb-array", "grey-array"],
)
def test_batch_of_one_image_is_a_type_error_not_one_result_per_character_or_row(
    analyzer: Analyzer, one: object
) -> None:
    """``analyze_batch("photo.jpg")`` used to analyse "p", "h", "o", ... and an RGB array
    each pixel row, returning a list of errors or of empty results."""
    with pytest.raises(TypeError, match="analyze\\(\\)"):
        analyzer.analyze_batch(one)  # type: ignore[arg-type]


def test_batch_takes_generators_and_stacks_and_refuses_unknown_on_error(
    analyzer: Analyzer,
) -> None:
    blank = np.zeros((16, 16, 3), np.uint8)
    assert len(analyzer.analyze_batch(im for im in [blank, blank])) == 2
    assert len(analyzer.analyze_batch(np.stack([blank] * 3))) == 3  # (N, H, W, 3)
    with pytest.raises(ValueError, match="on_error"):
        analyzer.analyze_batch([blank], on_error="ignore")
