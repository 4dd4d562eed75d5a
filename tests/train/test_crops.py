"""Crops cache builder on a few generated images (no shared datasets, no face models)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from duchenne.train import crops
from duchenne.train.crops import CanvasConfig

pytest.importorskip("torch")  # data.py (cache I/O) lives beside the torch Dataset

from duchenne.train.data import cache_path, load_cache, save_cache  # noqa: E402


def _face(rng: np.random.Generator, size: int, bright: bool) -> np.ndarray:
    img = rng.integers(0, 60, (size, size), dtype=np.uint8) + (150 if bright else 20)
    cv2.circle(img, (size // 3, size // 3), max(1, size // 12), 0, -1)
    cv2.circle(img, (2 * size // 3, size // 3), max(1, size // 12), 0, -1)
    return img.astype(np.uint8)


def make_ferplus(root: Path, n: int = 6) -> Path:
    """A FER+ layout with ``n`` generated 48x48 images per split."""
    rng = np.random.default_rng(0)
    for split in ("Train", "Valid", "Test"):
        folder = root / "ferplus" / f"FER2013{split}"
        folder.mkdir(parents=True)
        rows = []
        for i in range(n):
            name = f"fer{i:07d}.png"
            cv2.imwrite(str(folder / name), _face(rng, 48, bright=i % 2 == 0))
            votes = [0] * 10
            votes[1 if i % 3 == 0 else 0] = 7
            votes[2] = 3
            rows.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
        (folder / "label.csv").write_text("\n".join(rows) + "\n")
    return root


def make_smilesmiled(root: Path, n: int = 5) -> Path:
    rng = np.random.default_rng(1)
    for cls in ("positives", "negatives"):
        folder = root / "smilesmiled" / "SMILEs" / cls / f"{cls}7"
        folder.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(folder / f"{i}.jpg"), _face(rng, 64, bright=cls == "positives"))
    return root


class BrightFinder:
    """Stub face finder: 'detects' bright images only, eyes where the generator drew them."""

    def __init__(self, canvas: CanvasConfig) -> None:
        self.canvas = canvas

    def __call__(self, canvas_rgb: np.ndarray) -> np.ndarray | None:
        c = self.canvas
        inner = canvas_rgb[c.border : c.border + c.upscale, c.border : c.border + c.upscale]
        if inner.mean() < 100:
            return None
        s = c.upscale
        return np.array(
            [[c.border + s / 3, c.border + s / 3], [c.border + 2 * s / 3, c.border + s / 3]],
            np.float32,
        )


def test_resize_mode_builds_cache(tmp_path: Path) -> None:
    root = make_ferplus(tmp_path / "data")
    meta = crops.build_cache(
        "ferplus", "train", data_root=root, cache_dir=tmp_path / "cache", mode="resize", processes=1
    )
    assert meta["n"] == 6 and meta["mode"] == "resize"
    c = load_cache(cache_path(tmp_path / "cache", "ferplus_train"))
    assert c.images.shape == (6, 48, 48) and c.images.dtype == np.uint8
    assert c.has_votes.all() and np.allclose(c.votes.sum(1), 1.0)
    assert c.label.tolist() == [1, 0, 0, 1, 0, 0]
    np.testing.assert_allclose(c.intensity[0], 0.7)
    assert c.files[0] == "ferplus/FER2013Train/fer0000000.png"


def test_an_empty_split_builds_no_cache(tmp_path: Path) -> None:
    """An empty label.csv made a 0-row cache (exit 0) that a run then trained on."""
    from duchenne.errors import DatasetError

    folder = tmp_path / "data" / "ferplus" / "FER2013Test"
    folder.mkdir(parents=True)
    (folder / "label.csv").write_text("")
    with pytest.raises(DatasetError, match="ferplus test .*no samples"):
        crops.build_cache(
            "ferplus",
            "test",
            data_root=tmp_path / "data",
            cache_dir=tmp_path / "cache",
            mode="resize",
        )
    assert not cache_path(tmp_path / "cache", "ferplus_test").exists()


def test_pipeline_mode_records_failures_and_uses_template(tmp_path: Path) -> None:
    root = make_smilesmiled(tmp_path / "data")
    meta = crops.build_cache(
        "smilesmiled",
        "train",
        data_root=root,
        cache_dir=tmp_path / "cache",
        processes=1,
        finder_factory=BrightFinder,
    )
    c = load_cache(cache_path(tmp_path / "cache", "smilesmiled_train"))
    assert meta["n"] == 8  # 80% of 5 + 5
    assert meta["failed"] == int((~c.detected).sum()) == 4  # the dark negatives
    assert meta["failure_rate"] == pytest.approx(0.5)
    assert c.meta[0]["template_eyes"] is not None
    assert not c.has_votes.any() and set(c.label.tolist()) == {0.0, 1.0}
    assert c.images.shape == (8, 48, 48)
    assert "smilesmiled_train" in crops.failure_table([meta])


def test_template_eyes_without_detections_is_canonical() -> None:
    cfg = CanvasConfig(upscale=100, border=10)
    eyes = crops.template_eyes(np.zeros((3, 2, 2), np.float32), np.zeros(3, bool), cfg)
    assert eyes[0, 1] == eyes[1, 1] == pytest.approx(10 + 33)
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(36)


def test_pack_roundtrip_is_near_lossless(tmp_path: Path) -> None:
    root = make_ferplus(tmp_path / "data", n=10)
    crops.build_cache(
        "ferplus", "valid", data_root=root, cache_dir=tmp_path / "cache", mode="resize", processes=1
    )
    raw = load_cache(cache_path(tmp_path / "cache", "ferplus_valid"))
    save_cache(tmp_path / "pack" / "ferplus_valid.npz", raw, pack_quality=100)
    packed = load_cache(tmp_path / "pack" / "ferplus_valid.npz")
    assert packed.images.shape == raw.images.shape
    assert np.abs(packed.images.astype(int) - raw.images.astype(int)).mean() < 3
    np.testing.assert_array_equal(packed.label, raw.label)
    assert packed.meta[0]["packed_webp_quality"] == 100


def test_implausible_detections_are_rejected() -> None:
    cfg = CanvasConfig()
    base = np.array([[70.0, 80.0], [118.0, 80.0]], np.float32)
    eyes = np.stack([base, base + 1, base * 0.2, base + 60, base])
    found = np.array([True, True, True, True, False])
    ok = crops.plausible_eyes(eyes, found, cfg)
    assert ok.tolist() == [True, True, False, False, False]


def test_match_hint_picks_the_labelled_face() -> None:
    from duchenne.analysis.crops import match_hint

    hint = np.array([[100, 100], [140, 100]], np.float32)
    far = hint + 300
    near = hint + 5
    assert match_hint(np.stack([far, near]), hint) == 1
    assert match_hint(np.stack([far]), hint) is None
    tiny = np.array([[118, 100], [122, 100]], np.float32)  # right place, 10x too small
    assert match_hint(np.stack([tiny]), hint) is None
    assert match_hint(np.zeros((0, 2, 2), np.float32), hint) is None


def test_labelled_face_on_a_real_photo_and_on_a_blank_one() -> None:
    from duchenne import Analyzer
    from duchenne.analysis.crops import labelled_face
    from duchenne.data import astronaut

    analyzer = Analyzer(stages="detect,landmarks", threads=1)
    image = astronaut()
    eyes = analyzer.face_eyes(analyzer.analyze(image))[0]
    faces, index = labelled_face(analyzer, image, eyes + 2.0)
    assert index == 0 and len(faces) == 1
    assert labelled_face(analyzer, image, eyes + 400.0)[1] is None  # labelled elsewhere
    assert labelled_face(analyzer, np.zeros((64, 64, 3), np.uint8), eyes)[1] is None


class TwoFaceFinder:
    """Photos whose top-left pixel is bright hold two faces (a background one first);
    dark ones hold none. Stands in for the real detector in worker processes."""

    def __init__(self, canvas: CanvasConfig) -> None:
        self.canvas = canvas

    def all_eyes(self, image: np.ndarray) -> np.ndarray:
        if image[0, 0].mean() < 100:
            return np.zeros((0, 2, 2), np.float32)
        return np.array([[[5, 5], [15, 5]], [[102, 111], [148, 113]]], np.float32)


def test_photo_dataset_crops_match_the_labelled_face(tmp_path: Path) -> None:
    from PIL import Image

    from duchenne.errors import DatasetError
    from tests.test_datasets import make_mtfl

    root = tmp_path / "data" / "mtfl"
    make_mtfl(root, n_people=2, photos_each=2, n_net=2)
    rng = np.random.default_rng(0)
    for i, path in enumerate(sorted(root.rglob("*.jpg"))):
        img = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
        img[:16, :16] = 255 if i % 2 == 0 else 0
        Image.fromarray(img).save(path)
    metas = []
    for split in ("train", "calib", "valid"):
        try:
            metas.append(
                crops.build_cache(
                    "mtfl", split, data_root=root.parent, cache_dir=tmp_path / "cache",
                    processes=1, finder_factory=TwoFaceFinder,
                )
            )  # fmt: skip
        except DatasetError:  # a split this small fake leaves empty: no cache
            assert not cache_path(tmp_path / "cache", f"mtfl_{split}").exists()
    assert sum(m["n"] for m in metas) == 6
    n_detected = 0
    for split in ("train", "calib", "valid"):
        if not cache_path(tmp_path / "cache", f"mtfl_{split}").exists():
            continue
        z = np.load(cache_path(tmp_path / "cache", f"mtfl_{split}"))
        n_detected += int(z["detected"].sum())
        for found, detected, eyes, source in zip(
            z["extra_found"], z["detected"], z["extra_eyes"], z["extra_source"], strict=True
        ):
            # the background face is never taken; without a match the labelled eyes are
            assert found or not detected
            if detected:
                want = [[102, 111], [148, 113]]
            else:
                want = [[100, 110], [150, 112]] if source == "lfw_5590" else [[10, 20], [50, 22]]
            np.testing.assert_allclose(eyes, want)
        assert set(z["extra_pose"]) <= {"frontal", "left", "right", "left_profile", "right_profile"}
    assert n_detected == 2  # the two bright LFW photos; web photos' labels lie elsewhere


def test_crop_format_sets_size_and_colour_of_every_crop(tmp_path: Path) -> None:
    """Pipeline crops (found and template) and photo crops come out in the asked format."""
    fmt = crops.CropFormat(64, colour=True)
    root = make_smilesmiled(tmp_path / "data")
    meta = crops.build_cache(
        "smilesmiled", "train", data_root=root, cache_dir=tmp_path / "c64",
        processes=1, finder_factory=BrightFinder, fmt=fmt,
    )  # fmt: skip
    c = load_cache(cache_path(tmp_path / "c64", "smilesmiled_train"))
    assert c.images.shape == (8, 64, 64, 3) and c.channels == 3 and c.crop_size == 64
    assert meta["crop_size"] == 64 and meta["colour"] is True
    # a grey dataset image stays grey in an RGB crop
    assert np.array_equal(c.images[..., 0], c.images[..., 2])
    # the same eyes cut at 48 px grey give the grey version of the same face
    grey = crops.build_crops(
        [str(p) for p in sorted((root / "smilesmiled").rglob("*.jpg"))][:2],
        processes=1, finder_factory=BrightFinder,
    )  # fmt: skip
    assert grey.images.shape == (2, 48, 48)
    resized = crops.build_crops(
        [str(p) for p in sorted((root / "smilesmiled").rglob("*.jpg"))][:2],
        mode="resize", processes=1, fmt=crops.CropFormat(32, colour=True),
    )  # fmt: skip
    assert resized.images.shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match=">= 16"):
        crops.CropFormat(8)


def test_a_model_of_any_side_has_a_crop_format(tmp_path: Path) -> None:
    """The multiple-of-8 rule is the training caches' (``--crop-size``): a 44 px model's
    format used to raise, so ``duchenne evaluate`` failed on it and the Analyzer needed a
    second path to cut its crops."""
    from duchenne.models.smile import SmileModel
    from tests.conftest import make_tiny_smile_onnx

    model = SmileModel(make_tiny_smile_onnx(tmp_path / "m44.onnx", size=44), threads=1)
    fmt = crops.CropFormat.of_model(model)
    assert fmt.size == 44 and fmt.align_config().size == 44


def test_photo_crops_keep_colour(tmp_path: Path) -> None:
    from PIL import Image

    photo = np.zeros((160, 160, 3), np.uint8)
    photo[..., 0] = 200  # a red photo: colour crops keep it, grey ones cannot
    photo[:16, :16] = 255
    Image.fromarray(photo).save(tmp_path / "red.jpg")
    hint = np.array([[[102, 111], [148, 113]]], np.float32)
    out = crops.build_photo_crops(
        [tmp_path / "red.jpg"], hint, processes=1, finder_factory=TwoFaceFinder,
        fmt=crops.CropFormat(56, colour=True),
    )  # fmt: skip
    assert out.images.shape == (1, 56, 56, 3) and bool(out.detected[0])
    centre = out.images[0, 20:36, 20:36].reshape(-1, 3).mean(0)
    assert centre[0] > 150 and centre[1] < 60 and centre[2] < 60


def test_a_framed_cache_records_its_framing_and_a_run_refuses_mixed_framings(
    tmp_path: Path,
) -> None:
    """The framing travels from the cache to the run's geometry (then to the model file);
    train and valid crops of different framings, or one set mixing them, are refused."""
    from duchenne.train.loop import input_geometry

    root = make_smilesmiled(tmp_path / "data")
    kwargs = dict(data_root=root, processes=1, finder_factory=BrightFinder)
    lower = crops.CropFormat.named(framing="lower")
    crops.build_cache("smilesmiled", "train", cache_dir=tmp_path / "lo", fmt=lower, **kwargs)
    crops.build_cache("smilesmiled", "test", cache_dir=tmp_path / "lo", fmt=lower, **kwargs)
    crops.build_cache("smilesmiled", "test", cache_dir=tmp_path / "face", **kwargs)
    train = load_cache(cache_path(tmp_path / "lo", "smilesmiled_train"))
    valid = load_cache(cache_path(tmp_path / "lo", "smilesmiled_test"))
    face = load_cache(cache_path(tmp_path / "face", "smilesmiled_test"))
    assert train.framing == {"iod_fraction": 0.52, "eye_y": 0.10}
    assert face.framing == crops.CropFormat().framing
    assert input_geometry(train, valid) == {"input_size": 48, "channels": 1, **lower.framing}
    with pytest.raises(ValueError, match="same --framing"):
        input_geometry(train, face)
    face.meta = face.meta + train.meta
    with pytest.raises(ValueError, match="different framings"):
        _ = face.framing
    with pytest.raises(ValueError, match="framing must be one of"):
        crops.CropFormat.named(framing="mouth")
    # the crops differ: the closer framing fills the crop with the lower face
    assert not np.array_equal(valid.images, face.images)


def test_recut_cache_changes_only_the_pixels(tmp_path: Path) -> None:
    """Re-cutting from the stored eyes gives the crops a fresh build in that format gives,
    and keeps every row's label, teacher outputs and eyes."""
    from duchenne.train.data import update_cache

    root = make_smilesmiled(tmp_path / "data")
    kwargs = dict(data_root=root, processes=1, finder_factory=BrightFinder)
    lower = crops.CropFormat.named(framing="lower")
    crops.build_cache("smilesmiled", "train", cache_dir=tmp_path / "face", **kwargs)
    crops.build_cache("smilesmiled", "train", cache_dir=tmp_path / "fresh", fmt=lower, **kwargs)
    source = cache_path(tmp_path / "face", "smilesmiled_train")
    update_cache(source, {"teacher_smile": np.linspace(0, 1, 8, dtype=np.float32)})
    meta = crops.recut_cache(
        "smilesmiled_train", source_dir=tmp_path / "face", cache_dir=tmp_path / "lo",
        data_root=root, fmt=lower,
    )  # fmt: skip
    assert meta["iod_fraction"] == 0.52 and meta["eye_y"] == 0.10
    before, after = load_cache(source), load_cache(cache_path(tmp_path / "lo", "smilesmiled_train"))
    fresh = load_cache(cache_path(tmp_path / "fresh", "smilesmiled_train"))
    np.testing.assert_array_equal(after.images, fresh.images)
    assert not np.array_equal(after.images, before.images)
    np.testing.assert_array_equal(after.label, before.label)
    np.testing.assert_array_equal(after.teacher_smile, before.teacher_smile)
    assert after.framing == lower.framing
    crops.build_cache(
        "smilesmiled", "test", cache_dir=tmp_path / "rs", mode="resize", data_root=root
    )
    with pytest.raises(ValueError, match="no stored eyes"):
        crops.recut_cache(
            "smilesmiled_test", source_dir=tmp_path / "rs", cache_dir=tmp_path / "x",
            data_root=root, fmt=lower,
        )  # fmt: skip


def test_a_packed_cache_can_be_recut_and_a_recut_never_replaces_its_source(
    tmp_path: Path,
) -> None:
    """``train pack`` keeps the stored eyes (it used to drop them, and ``--recut-from`` a
    pack said ``cut it with --mode pipeline``); re-cutting into the folder it reads is
    refused, where it silently replaced the source crops."""
    from duchenne.train.cli import main

    root = make_smilesmiled(tmp_path / "data")
    crops.build_cache(
        "smilesmiled", "train", cache_dir=tmp_path / "face", data_root=root, processes=1,
        finder_factory=BrightFinder,
    )  # fmt: skip
    common = ["--data-root", str(root), "--datasets", "smilesmiled", "--splits", "train"]
    pack = ["train", "pack", "--cache-dir", str(tmp_path / "face"), "--out", str(tmp_path / "pk")]
    assert main([*pack, "--sets", "smilesmiled_train"]) == 0
    recut = ["train", "crops", *common, "--framing", "lower"]
    assert (
        main([*recut, "--recut-from", str(tmp_path / "pk"), "--cache-dir", str(tmp_path / "a")])
        == 0
    )
    assert (
        main([*recut, "--recut-from", str(tmp_path / "face"), "--cache-dir", str(tmp_path / "b")])
        == 0
    )
    from_pack = load_cache(cache_path(tmp_path / "a", "smilesmiled_train"))
    from_raw = load_cache(cache_path(tmp_path / "b", "smilesmiled_train"))
    np.testing.assert_array_equal(from_pack.images, from_raw.images)
    assert "packed_webp_quality" not in from_pack.meta[0]  # raw pixels again

    source = cache_path(tmp_path / "face", "smilesmiled_train")
    before = source.read_bytes()
    same = ["--recut-from", str(tmp_path / "face"), "--cache-dir", str(tmp_path / "face") + "/"]
    assert main([*recut, *same]) == 2
    with pytest.raises(ValueError, match="would replace it"):
        crops.recut_cache(
            "smilesmiled_train", source_dir=tmp_path / "face", cache_dir=tmp_path / "face",
            data_root=root, fmt=crops.CropFormat.named(framing="lower"),
        )  # fmt: skip
    assert source.read_bytes() == before


def test_pack_roundtrip_of_colour_crops(tmp_path: Path) -> None:
    """A colour cache packs (it failed with ``could not broadcast``) and comes back RGB."""
    rng = np.random.default_rng(0)
    images = np.zeros((5, 16, 16, 3), np.uint8)
    images[..., 0] = 200  # red crops: a swapped channel order would make them blue
    images += rng.integers(0, 20, images.shape, dtype=np.uint8)
    raw = load_cache(save_cache(tmp_path / "raw.npz", _cropset(images)))
    packed = load_cache(save_cache(tmp_path / "pk.npz", raw, pack_quality=100))
    assert packed.images.shape == (5, 16, 16, 3)
    # WebP halves the chroma resolution: near, not exact; the channels stay in RGB order
    assert np.abs(packed.images.astype(int) - images.astype(int)).mean() < 8
    np.testing.assert_allclose(packed.images.mean((0, 1, 2)), images.mean((0, 1, 2)), atol=4)


def _cropset(images: np.ndarray):
    from duchenne.train.data import CropSet

    n = len(images)
    return CropSet(
        images=images, label=np.zeros(n, np.float32), votes=np.zeros((n, 8), np.float32),
        has_votes=np.zeros(n, bool), intensity=np.zeros(n, np.float32),
        detected=np.ones(n, bool), source=np.full(n, "x"), files=np.full(n, "f"),
        meta=[{"name": "x"}],
    )  # fmt: skip
