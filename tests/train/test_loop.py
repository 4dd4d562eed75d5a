"""Smoke training through the real loop + export, reproducibility, calibration, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import onnxruntime as ort  # noqa: E402

from duchenne.evaluation.metrics import binary_nll, fit_temperature  # noqa: E402
from duchenne.train import ladder, loop, losses  # noqa: E402
from duchenne.train.data import CropSet, augment, cache_path, save_cache  # noqa: E402


def _crops(name: str, n: int, seed: int, votes: bool, every_class: bool = False) -> CropSet:
    """Generated crops whose smile label is visible (a bright 'mouth' bar); with
    ``every_class`` the non-smiling rows' votes go to each non-happy class in turn (so each
    class is some row's plurality label, as the emotion-prior fit needs)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(40, 120, (n, 48, 48), dtype=np.uint8)
    label = (np.arange(n) % 3 == 0).astype(np.float32)
    images[label > 0, 32:38, 14:34] = 230
    v = np.zeros((n, 8), np.float32)
    v[:, 0] = 1 - 0.8 * label
    v[:, 1] = 0.8 * label
    if every_class:
        others = [0, 2, 3, 4, 5, 6, 7]
        for j, i in enumerate(np.flatnonzero(label == 0)):
            v[i] = np.eye(8)[others[j % len(others)]]
    has = np.full(n, votes)
    return CropSet(
        images=images,
        label=label,
        votes=v if votes else np.zeros((n, 8), np.float32),
        has_votes=has,
        intensity=(0.8 * label) if votes else np.zeros(n, np.float32),
        detected=np.ones(n, bool),
        source=np.full(n, name),
        files=np.array([f"{name}/{i}.png" for i in range(n)]),
        meta=[{"name": name}],
    )


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cache"
    save_cache(cache_path(d, "ferplus_train"), _crops("ferplus_train", 28, 0, True))
    save_cache(cache_path(d, "smilesmiled_train"), _crops("smilesmiled_train", 12, 1, False))
    save_cache(
        cache_path(d, "ferplus_valid"), _crops("ferplus_valid", 16, 2, True, every_class=True)
    )
    save_cache(cache_path(d, "mtfl_train"), _crops("mtfl_train", 10, 4, False))
    save_cache(cache_path(d, "mtfl_calib"), _crops("mtfl_calib", 6, 5, False))
    return d


def _cfg(cache_dir: Path, **kw) -> loop.TrainConfig:
    base = dict(
        net="smile_n",
        cache_dir=str(cache_dir),
        epochs=2,
        batch_size=8,
        device="cpu",
        threads=1,
        seed=3,
    )
    return loop.TrainConfig(**{**base, **kw})


def test_smoke_train_and_export(cache_dir: Path, tmp_path: Path) -> None:
    result = loop.train(_cfg(cache_dir))
    assert len(result.history) == 2 and 1 <= result.best_epoch <= 2
    assert result.extra["train_rows"] == 50
    assert result.history[0]["valid_smile_f1"] >= 0  # selection on FER+ Valid + MTFL calib
    ckpt = loop.save_checkpoint(result, tmp_path / "out" / "smile_n.pt")
    net, summary = loop.load_checkpoint(ckpt)
    assert summary["name"] == "smile_n" and summary["params"] == result.params
    assert summary["config"]["oversample"] == [["mtfl_train", 2]]  # the shipped mix's default
    models_json = tmp_path / "models.json"
    report = ladder.finish(
        net,
        summary,
        onnx_path=tmp_path / "out" / "smile_n.onnx",
        cache_dir=cache_dir,
        report_dir=tmp_path / "out",
        register=True,
        models_json=models_json,
    )
    assert report["temperature"] > 0
    sess = ort.InferenceSession(
        str(tmp_path / "out" / "smile_n.onnx"), providers=["CPUExecutionProvider"]
    )
    meta = sess.get_modelmeta().custom_metadata_map
    assert float(meta["duchenne.temperature"]) == pytest.approx(report["temperature"], rel=1e-4)
    # the emotion prior fitted on Valid's votes travels in the file
    from duchenne.models.smile import SmileModel

    model = SmileModel(tmp_path / "out" / "smile_n.onnx")
    assert len(meta["duchenne.emotion_bias"].split(",")) == 8
    plurality = _crops("ferplus_valid", 16, 2, True, every_class=True).votes.argmax(1)
    np.testing.assert_allclose(
        model.training_prior, np.bincount(plurality, minlength=8) / 16, atol=1e-5
    )
    entry = json.loads(models_json.read_text())["models"][0]
    for key in (
        "name",
        "file",
        "sha256",
        "bytes",
        "params",
        "arch",
        "input_size",
        "training",
        "temperature",
    ):
        assert key in entry
    assert "valid" in entry["metrics"]
    assert (
        json.loads((tmp_path / "out" / "smile_n.json").read_text())["best_epoch"]
        == result.best_epoch
    )


def test_fer_only_run_name(cache_dir: Path) -> None:
    cfg = _cfg(cache_dir, train_sets=loop.FER_ONLY, epochs=1)
    assert cfg.name == "smile_n_ferplus"
    # another mix never takes the shipped run's name (its files would replace the shipped
    # run's), nor FER+'s
    assert _cfg(cache_dir, train_sets=("mtfl_train",)).name == "smile_n_mtfl"
    mix = ("ferplus_train", "smilesmiled_train")
    assert _cfg(cache_dir, train_sets=mix).name == "smile_n_ferplus+smilesmiled"
    assert _cfg(cache_dir).name == "smile_n"
    assert loop.train(cfg).extra["train_rows"] == 28


def test_same_seed_same_loss(cache_dir: Path) -> None:
    a = loop.train(_cfg(cache_dir, epochs=1))
    b = loop.train(_cfg(cache_dir, epochs=1))
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    for k, v in a.net.state_dict().items():
        assert torch.equal(v, b.net.state_dict()[k])


def test_masked_heads_ignore_smilesmiled_rows() -> None:
    torch.manual_seed(0)
    outs = (torch.randn(4, 1), torch.randn(4, 1), torch.randn(4, 8))
    t = {
        "label": torch.tensor([1.0, 0, 1, 0]),
        "votes": torch.softmax(torch.randn(4, 8), 1),
        "has_votes": torch.tensor([True, True, False, False]),
        "intensity": torch.rand(4),
    }
    _, parts = losses.multitask_loss(outs, t, torch.tensor(1.0), (1, 1, 1))
    t2 = dict(t, votes=t["votes"].clone(), intensity=t["intensity"].clone())
    t2["votes"][2:] = 0.0
    t2["intensity"][2:] = 0.5
    _, parts2 = losses.multitask_loss(outs, t2, torch.tensor(1.0), (1, 1, 1))
    assert parts["emotion"] == parts2["emotion"] and parts["intensity"] == parts2["intensity"]


def test_augment_keeps_shape_and_range() -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 1, 48, 48)
    y = augment(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)


def test_temperature_recovers_known_scale() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(float)
    t = fit_temperature(y.astype(int), z * 2.5)  # logits 2.5x over-confident
    assert t == pytest.approx(2.5, rel=0.08)
    assert binary_nll(y.astype(int), z * 2.5, t) <= binary_nll(y.astype(int), z * 2.5, 1.0)


def test_auto_epochs_fit_the_budget(cache_dir: Path) -> None:
    cfg = _cfg(cache_dir, epochs=0, time_budget_s=600.0, max_epochs=3, patience=100)
    result = loop.train(cfg)
    assert cfg.epochs == 3 and len(result.history) == 3
    with pytest.raises(ValueError):
        loop.auto_epochs(_cfg(cache_dir, epochs=0), 1.0, 0.0)
    # the pace is the last warm-up epoch's, and the time already spent is subtracted
    cfg = _cfg(cache_dir, epochs=0, time_budget_s=100.0, max_epochs=300)
    assert loop.auto_epochs(cfg, 10.0, 30.0) == 2 + int(0.95 * 70 / 10)


def test_jpeg_augment_makes_block_artefacts_that_grow_with_compression() -> None:
    from duchenne.train.data import AugmentConfig, _jpeg

    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    x = (0.5 + 0.4 * torch.sin(9 * xx) * torch.cos(7 * yy)).expand(4, 1, 48, 48).clone()
    strong = _jpeg(x, AugmentConfig(jpeg_p=1.0, jpeg_quality=(5.0, 5.0)))
    mild = _jpeg(x, AugmentConfig(jpeg_p=1.0, jpeg_quality=(95.0, 95.0)))
    off = _jpeg(x, AugmentConfig(jpeg_p=0.0))
    assert torch.equal(off, x)
    err_strong, err_mild = (strong - x).abs().mean(), (mild - x).abs().mean()
    assert 0 < err_mild < err_strong
    # compared with cv2's real JPEG of the same image at the same quality, same ballpark
    import cv2

    img = (x[0, 0].numpy() * 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 5])
    real = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    err_real = float(np.abs(real - x[0, 0].numpy()).mean())
    assert 0.3 * err_real < float(err_strong) < 3 * err_real


def test_photo_augmentations_change_pixels_and_keep_range() -> None:
    from duchenne.train.data import AugmentConfig, _down_up, _lighting, _noise

    torch.manual_seed(1)
    x = torch.rand(8, 1, 48, 48)
    cfg = AugmentConfig(noise_p=1.0, downup_p=1.0, light_p=1.0)
    for fn in (_noise, _down_up, _lighting):
        y = fn(x, cfg)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        assert not torch.equal(x, y), fn.__name__
    # down-up scaling removes high frequencies: neighbour differences shrink
    y = _down_up(x, cfg)
    assert (y[..., 1:] - y[..., :-1]).abs().mean() < (x[..., 1:] - x[..., :-1]).abs().mean()


def test_emotion_class_weights_lift_rare_classes() -> None:
    from duchenne.train.data import emotion_class_weights

    votes = np.zeros((100, 8), np.float32)
    votes[:90, 0] = 1.0  # neutral
    votes[90:, 5] = 1.0  # disgust, 9x rarer
    has = np.ones(100, bool)
    off = emotion_class_weights(votes, has, 0.0)
    assert np.allclose(off, 1.0)
    w = emotion_class_weights(votes, has, 0.5)
    assert w[5] / w[0] == pytest.approx(3.0, rel=1e-4)  # sqrt(9)
    share = votes.sum(0) / votes.sum()
    assert float((share * w).sum()) == pytest.approx(1.0, rel=1e-5)  # loss scale kept


def test_class_weights_change_only_the_emotion_loss() -> None:
    torch.manual_seed(0)
    outs = (torch.randn(4, 1), torch.randn(4, 1), torch.randn(4, 8))
    t = {
        "label": torch.tensor([1.0, 0, 1, 0]),
        "votes": torch.softmax(torch.randn(4, 8), 1),
        "has_votes": torch.ones(4, dtype=torch.bool),
        "intensity": torch.rand(4),
    }
    _, plain = losses.multitask_loss(outs, t, torch.tensor(1.0), (1, 1, 1))
    w = torch.ones(8)
    _, same = losses.multitask_loss(outs, t, torch.tensor(1.0), (1, 1, 1), w)
    _, heavy = losses.multitask_loss(outs, t, torch.tensor(1.0), (1, 1, 1), w * 2)
    assert same["emotion"] == plain["emotion"] and heavy["smile"] == plain["smile"]
    assert heavy["emotion"] == pytest.approx(2 * plain["emotion"])


def test_oversampled_sources_are_visited_more_often(cache_dir: Path) -> None:
    train, _ = loop.load_data(_cfg(cache_dir))
    rows = loop.epoch_rows(train, (("mtfl_train", 3),))
    sources = train.source[rows]
    assert (sources == "mtfl_train").sum() == 3 * (train.source == "mtfl_train").sum()
    assert (sources == "ferplus_train").sum() == (train.source == "ferplus_train").sum()


def test_summary_records_only_the_oversampling_of_the_runs_own_caches(
    cache_dir: Path, tmp_path: Path
) -> None:
    """A FER+-only run's summary listed the default ``mtfl_train`` x2, a cache it never read."""
    cfg = _cfg(cache_dir, train_sets=loop.FER_ONLY, epochs=1)
    assert cfg.oversample == (("mtfl_train", 2),)  # the default, left as it is
    result = loop.train(cfg)
    _, summary = loop.load_checkpoint(loop.save_checkpoint(result, tmp_path / "fer.pt"))
    assert summary["config"]["oversample"] == []
    assert summary["config"]["train_sets"] == ["ferplus_train"]
    mixed = _cfg(
        cache_dir, train_sets=loop.FER_ONLY, oversample=(("mtfl_train", 2), ("ferplus_train", 3))
    )
    assert mixed.applied_oversample == (("ferplus_train", 3),)
    train, _ = loop.load_data(mixed)
    assert len(loop.epoch_rows(train, mixed.applied_oversample)) == 3 * len(train)


def test_side_runs_are_never_shipped(cache_dir: Path, tmp_path: Path) -> None:
    """A leave-one-dataset-out run is exported beside the package, not registered."""
    from duchenne.train.cli import main

    out = tmp_path / "out"
    rc = main(
        ["train", "fit", "--net", "smile_n", "--cache-dir", str(cache_dir), "--epochs", "1",
         "--batch-size", "8", "--device", "cpu", "--threads", "1", "--out", str(out),
         "--train-sets", "smilesmiled_train+mtfl_train", "--run-name", "smile_n_lodo_ferplus",
         "--onnx-dir", str(tmp_path / "onnx"), "--register"]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "smile_n_lodo_ferplus.json").read_text())
    assert summary["config"]["train_sets"] == ["smilesmiled_train", "mtfl_train"]
    assert (tmp_path / "onnx" / "smile_n_lodo_ferplus.onnx").is_file()


def test_a_limit_smoke_run_never_replaces_the_shipped_files(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fit --net smile_n --limit 8` used to write the package's smile_n.onnx (and the real
    run's smile_n.pt): a smoke run is a side run, named apart and never shipped."""
    from duchenne.train.cli import _shipped_name, main

    assets = tmp_path / "assets"
    monkeypatch.setattr(ladder, "ASSETS", assets)  # where the shipped ONNX would go
    monkeypatch.chdir(tmp_path)
    assert _cfg(cache_dir, limit=8).name == "smile_n_limit8"
    assert _cfg(cache_dir, limit=8, run_name="x").name == "x"
    out = tmp_path / "out"
    rc = main(
        ["train", "fit", "--net", "smile_n", "--cache-dir", str(cache_dir), "--epochs", "1",
         "--batch-size", "8", "--device", "cpu", "--threads", "1", "--out", str(out),
         "--limit", "8"]
    )  # fmt: skip
    assert rc == 0
    assert not assets.exists() and not (out / "smile_n.pt").exists()
    assert (tmp_path / "artifacts" / "models" / "smile_n_limit8.onnx").is_file()
    summary = json.loads((out / "smile_n_limit8.json").read_text())
    with pytest.raises(SystemExit, match="--limit 8"):
        _shipped_name(summary, "smile_n")


def test_distill_term_uses_only_teacher_rows_and_never_contempt() -> None:
    torch.manual_seed(0)
    emotion = torch.randn(4, 8, requires_grad=True)
    outs = (torch.randn(4, 1), torch.randn(4, 1), emotion)
    teacher = torch.zeros(4, 8)
    teacher[:2, :7] = torch.softmax(torch.randn(2, 7), 1)
    teacher[:2, 7] = float("nan")  # face-api cannot say contempt
    t = {
        "label": torch.tensor([1.0, 0, 1, 0]),
        "votes": torch.zeros(4, 8),
        "has_votes": torch.zeros(4, dtype=torch.bool),
        "intensity": torch.zeros(4),
        "teacher": teacher,
    }
    off, parts_off = losses.multitask_loss(outs, t, torch.tensor(1.0), (1, 1, 1))
    on, parts = losses.multitask_loss(outs, t, torch.tensor(1.0), (1, 1, 1), distill_weight=2.0)
    assert "distill" not in parts_off and float(parts["distill"]) > 0
    assert torch.isclose(on - off, 2.0 * parts["distill"])
    on.backward()
    grad = emotion.grad
    assert grad[:2, :7].abs().sum() > 0  # teacher rows pull on the seven shared classes
    assert torch.all(grad[2:] == 0) and torch.all(grad[:, 7] == 0)  # no teacher, no contempt


def test_caches_without_teacher_load_with_none(tmp_path: Path) -> None:
    from duchenne.train.data import load_cache

    crops = _crops("mtfl_train", 6, 0, False)
    assert not crops.has_teacher.any()
    crops.teacher[:3, 2] = 1.0
    for quality in (None, 90):
        back = load_cache(save_cache(tmp_path / f"c{quality}.npz", crops, pack_quality=quality))
        assert back.has_teacher.tolist() == [True] * 3 + [False] * 3
    old = tmp_path / "old.npz"  # a cache written before the teacher key existed
    with np.load(save_cache(old, crops)) as z:
        np.savez(old, **{k: z[k] for k in z.files if k != "teacher"})
    assert not load_cache(old).has_teacher.any()


def test_distilled_fine_tune_moves_emotions_toward_the_teacher(
    cache_dir: Path, tmp_path: Path
) -> None:
    from duchenne.train.data import DeviceData, load_cache

    base = loop.train(_cfg(cache_dir, epochs=2))
    ckpt = loop.save_checkpoint(base, tmp_path / "base.pt")
    mtfl = load_cache(cache_path(cache_dir, "mtfl_train"))
    mtfl.teacher[:, 2] = 1.0  # the teacher calls every MTFL face "surprise"
    save_cache(cache_path(cache_dir, "mtfl_train"), mtfl)

    def p_surprise(net: torch.nn.Module) -> float:
        out = loop.predict(net, DeviceData.from_crops(mtfl, torch.device("cpu")))
        e = np.exp(out["emotion_logits"] - out["emotion_logits"].max(1, keepdims=True))
        return float((e[:, 2] / e.sum(1)).mean())

    def fine_tune(weight: float) -> loop.TrainResult:
        kw = dict(epochs=5, warmup_epochs=0.0, lr=1e-2, ema_decay=0.0, init=str(ckpt))
        return loop.train(_cfg(cache_dir, distill_weight=weight, **kw))

    tuned, control = fine_tune(5.0), fine_tune(0.0)
    assert tuned.history[0]["train_distill"] > 0 and "train_distill" not in control.history[0]
    assert p_surprise(tuned.net) > max(p_surprise(control.net), p_surprise(base.net)) + 0.1


def _colour(crops: CropSet, size: int = 64) -> CropSet:
    """The same generated crops, upscaled to ``size`` and tinted (an RGB cache)."""
    import cv2

    rgb = np.stack([cv2.resize(im, (size, size))[..., None].repeat(3, 2) for im in crops.images])
    rgb[..., 2] //= 2  # a warm white balance: channels differ
    crops.images = rgb
    return crops


def test_colour_run_trains_exports_and_infers_at_its_size(tmp_path: Path) -> None:
    """A 64 px RGB cache gives a 3-channel net; checkpoint, ONNX metadata and SmileModel
    all carry that geometry, and inference on 64 px RGB crops matches torch."""
    d = tmp_path / "rgb"
    for name, n, seed, votes, every in (
        ("ferplus_train", 20, 0, True, False),
        ("smilesmiled_train", 8, 1, False, False),
        ("mtfl_train", 8, 4, False, False),
        ("ferplus_valid", 16, 2, True, True),
        ("mtfl_calib", 6, 5, False, False),
    ):
        save_cache(cache_path(d, name), _colour(_crops(name, n, seed, votes, every)))
    result = loop.train(_cfg(d, epochs=1))
    assert (result.extra["input_size"], result.extra["channels"]) == (64, 3)
    ckpt = loop.save_checkpoint(result, tmp_path / "out" / "smile_n.pt")
    net, summary = loop.load_checkpoint(ckpt)
    onnx_path = tmp_path / "out" / "smile_n.onnx"
    report = ladder.finish(
        net, summary, onnx_path=onnx_path, cache_dir=d, report_dir=tmp_path / "out"
    )
    assert (ladder.models_entry(report)["input_size"], ladder.models_entry(report)["channels"]) == (
        64,
        3,
    )
    from duchenne.models.smile import SmileModel

    model = SmileModel(onnx_path, flip=False)
    assert (model.input_size, model.channels) == (64, 3)
    crops = _colour(_crops("x", 4, 9, False)).images
    x = model.preprocess(crops)
    assert x.shape == (4, 3, 64, 64)
    with torch.no_grad():
        want = net(torch.from_numpy(x))[0][:, 0].numpy()
    np.testing.assert_allclose(model.raw_outputs(crops)["smile_logit"], want, atol=1e-4)
    # a grey crop is repeated to three channels, not rejected
    assert model.preprocess(crops[:, :, :, 0]).shape == (4, 3, 64, 64)


def test_train_and_valid_crops_must_share_a_format(cache_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    for name in ("ferplus_train", "smilesmiled_train", "mtfl_train"):
        save_cache(cache_path(d, name), _colour(_crops(name, 8, 0, name == "ferplus_train")))
    for name in ("ferplus_valid", "mtfl_calib"):
        save_cache(cache_path(d, name), _crops(name, 8, 2, name == "ferplus_valid", True))
    with pytest.raises(ValueError, match="64 px x 3 channel"):
        loop.train(_cfg(d, epochs=1))


def test_augment_handles_colour_and_keeps_grey_runs_unchanged() -> None:
    from duchenne.train.data import AUGMENT_STEPS, AugmentConfig

    torch.manual_seed(0)
    grey = torch.rand(6, 1, 48, 48)
    torch.manual_seed(1)
    a = AUGMENT_STEPS["colour"](grey, AugmentConfig(colour_p=1.0))
    assert a is grey  # no draw, no change: grey runs replay as before the step existed
    rgb = torch.rand(6, 3, 64, 64)
    out = augment(rgb)
    assert out.shape == rgb.shape and out.min() >= 0 and out.max() <= 1
    # white balance changes channels differently; blur keeps each channel's mean
    wb = AUGMENT_STEPS["colour"](rgb, AugmentConfig(colour_p=1.0, saturation=0.0))
    ratio = (wb.mean((2, 3)) / rgb.mean((2, 3)))[0]
    assert float(ratio.max() - ratio.min()) > 1e-3
    blurred = AUGMENT_STEPS["blur"](rgb, AugmentConfig(blur_p=1.0))
    torch.testing.assert_close(blurred.mean((2, 3)), rgb.mean((2, 3)), atol=0.02, rtol=0)


def test_fine_tune_from_a_shipped_onnx_starts_where_the_file_is(cache_dir: Path) -> None:
    """`--init smile_n`: the run's epoch-0 weights are the shipped file (same outputs on
    the valid crops), and training then moves them."""
    from duchenne.models.registry import get_model_cfg
    from duchenne.models.smile import SmileModel
    from duchenne.train.data import load_sets

    valid = load_sets(cache_dir, loop.VALID_MIX)
    x = loop.normalize(torch.from_numpy(valid.images).float().div(255).unsqueeze(1))
    shipped = SmileModel("smile_n", flip=False).raw_outputs(valid.images)
    cfg = _cfg(cache_dir, init="smile_n", epochs=0, time_budget_s=None)
    run = loop._prepare(cfg, None)
    with torch.no_grad():
        smile, _, emotion = run["net"].eval()(x.contiguous(memory_format=torch.channels_last))
    np.testing.assert_allclose(smile[:, 0].numpy(), shipped["smile_logit"], atol=1e-3)
    np.testing.assert_allclose(emotion.numpy(), shipped["emotion_logits"], atol=1e-3)
    tuned = loop.train(_cfg(cache_dir, init="smile_n", epochs=1, lr=1e-2, ema_decay=0.0))
    with torch.no_grad():
        after = tuned.net.eval()(x)[0][:, 0].numpy()
    assert np.abs(after - shipped["smile_logit"]).max() > 1e-3
    digest = get_model_cfg("smile_n").sha256
    assert tuned.extra["init_source"] == f"smile_n.onnx sha256 {digest}"  # provenance


@pytest.mark.parametrize(
    ("spec", "source", "want"),
    [
        ("smile_n", "smile_n.onnx sha256 ab", "smile_n: smile_n.onnx sha256 ab"),
        ("/tmp/run/start.onnx", "start.onnx sha256 cd", "start.onnx sha256 cd"),
        ("runs/start.pt", None, "start.pt"),
        ("smile_s", None, "smile_s"),
    ],
)
def test_models_json_names_the_start_file_never_a_local_path(
    spec: str, source: str | None, want: str
) -> None:
    """`--init /tmp/run/start.onnx` must not ship a training machine's path in models.json:
    the entry keeps a registered name, else the file's name and sha256."""
    report = {"init_source": source} if source else {}
    got = ladder.init_entry(spec, report)
    assert got == want and "/" not in got


def test_init_resize_starts_a_larger_crop_run_from_a_shipped_file(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train fit --init smile_n --init-resize` on 64 px crops: refused without the flag
    (and the flag without --init), trained and exported at 64 px with it (the 48 px file is
    only the start)."""
    import dataclasses

    import cv2

    from duchenne.train.cli import main
    from duchenne.train.data import load_cache

    big = tmp_path / "cache64"
    for path in cache_dir.iterdir():
        small = load_cache(path)
        images = np.stack([cv2.resize(im, (64, 64)) for im in small.images])
        save_cache(big / path.name, dataclasses.replace(small, images=images))
    args = ["train", "fit", "--net", "smile_n", "--cache-dir", str(big),
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--threads", "1",
            "--out", str(tmp_path / "out"), "--onnx-dir", str(tmp_path / "onnx")]  # fmt: skip
    assert main([*args, "--init-resize"]) == 2  # a usage error
    assert "needs --init" in capsys.readouterr().err
    assert main([*args, "--init", "smile_n"]) == 1
    assert "file's format" in capsys.readouterr().err
    assert main([*args, "--init", "smile_n", "--init-resize"]) == 0
    summary = json.loads((tmp_path / "out" / "smile_n.json").read_text())
    assert summary["config"]["init_resize"] and summary["input_size"] == 64
    sess = ort.InferenceSession(str(tmp_path / "onnx" / "smile_n.onnx"))
    assert sess.get_inputs()[0].shape[-2:] == [64, 64]


def test_ship_as_renames_only_a_run_of_that_net_on_the_shipped_mix() -> None:
    from duchenne.train.cli import _shipped_name

    summary = {
        "name": "smile_l_ft",
        "config": {"net": "smile_l", "train_sets": list(loop.ALL_SOURCES), "run_name": "x"},
    }
    shipped = _shipped_name(summary, "smile_l")
    assert shipped["name"] == "smile_l" and shipped["config"]["run_name"] is None
    with pytest.raises(SystemExit, match="not smile_s"):
        _shipped_name(summary, "smile_s")
    fer_only = {**summary, "config": {**summary["config"], "train_sets": list(loop.FER_ONLY)}}
    with pytest.raises(SystemExit, match="shipped mix"):
        _shipped_name(fer_only, "smile_l")


def test_standalone_entry_answers_a_missing_cache_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m duchenne.train.cli`` (run on GPU machines) reports like ``duchenne``: no
    traceback. A missing cache is a usage error now, checked before anything is loaded (it
    was a FileNotFoundError, exit 1)."""
    from duchenne.train.cli import main

    rc = main(["train", "fit", "--net", "smile_n", "--cache-dir", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("duchenne train fit: no cache ")
    assert "ferplus_train.npz" in err[0] and "`duchenne train crops --cache-dir" in err[0]


def test_ctrl_c_keeps_the_best_epoch_so_far(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in epoch 2 of ``train fit``: exit 130 as before, but the best finished epoch
    is saved the normal way (checkpoint + summary, ``stopped: "interrupted"``); it used to
    write nothing. An interrupt before any finished epoch has nothing to keep."""
    from duchenne.train.cli import main

    real_epoch, calls = loop._run_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "_run_epoch", interrupted_in_epoch_2)
    out = tmp_path / "out"
    fit = ["train", "fit", "--net", "smile_n", "--cache-dir", str(cache_dir), "--epochs", "3",
           "--batch-size", "8", "--device", "cpu", "--threads", "1", "--out", str(out),
           "--onnx-dir", str(tmp_path / "onnx")]  # fmt: skip
    assert main(fit) == 130
    summary = json.loads((out / "smile_n.json").read_text())
    assert summary["stopped"] == loop.INTERRUPTED == "interrupted"
    assert summary["best_epoch"] == 1 and summary["epochs_run"] == 1
    net, saved = loop.load_checkpoint(out / "smile_n.pt")
    assert saved["stopped"] == "interrupted" and not (tmp_path / "onnx").exists()
    assert sorted(p.name for p in out.iterdir()) == ["smile_n.json", "smile_n.pt"]  # no temps

    calls.clear()
    calls.append(1)  # the next epoch is "epoch 2": interrupted before any finished
    assert main([*fit, "--out", str(tmp_path / "early")]) == 130
    assert not (tmp_path / "early").exists()


def test_a_set_mixing_crop_formats_is_refused_by_name(cache_dir: Path, tmp_path: Path) -> None:
    """Training caches of different sides/channels in one mix: a message naming the caches
    and their formats, not numpy's ``all the input arrays must have same number of
    dimensions``."""
    d = tmp_path / "mixed"
    save_cache(cache_path(d, "ferplus_train"), _crops("ferplus_train", 8, 0, True))
    save_cache(cache_path(d, "mtfl_train"), _colour(_crops("mtfl_train", 8, 1, False)))
    with pytest.raises(ValueError, match=r"ferplus_train 48 px x 1 .* mtfl_train 64 px x 3"):
        loop.load_sets(d, "ferplus_train+mtfl_train")


def test_an_interrupted_save_leaves_the_old_checkpoint_and_no_temp_file(
    cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the checkpoint is written: the previous one stays loadable (torch.save
    used to write into the checkpoint itself, leaving a truncated file)."""
    result = loop.train(_cfg(cache_dir, epochs=1))
    path = loop.save_checkpoint(result, tmp_path / "out" / "smile_n.pt")
    before = path.read_bytes()

    def interrupted(obj: object, fh) -> None:
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        loop.save_checkpoint(result, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["smile_n.pt"]
