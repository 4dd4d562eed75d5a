"""Teacher outputs from shipped models (``duchenne train teach``) and the distillation terms
they feed (``losses.distill_loss``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from duchenne.models.smile import SmileModel, softmax  # noqa: E402
from duchenne.train import losses  # noqa: E402
from duchenne.train.data import cache_path, load_cache, save_cache  # noqa: E402
from duchenne.train.teach import teach_caches, teacher_outputs  # noqa: E402
from tests.conftest import make_tiny_smile_onnx  # noqa: E402
from tests.train.test_loop import _crops  # noqa: E402


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> list[Path]:
    """Two tiny models with the same graph and different calibrations (so their smile
    probabilities differ and the mean is not either one)."""
    d = tmp_path_factory.mktemp("teachers")
    return [
        make_tiny_smile_onnx(d / "a.onnx"),
        make_tiny_smile_onnx(
            d / "b.onnx", temperature=2.0, extra_meta={"duchenne.smile_bias": "0.5"}
        ),
    ]


def _faces() -> np.ndarray:
    """Grey crops: a bright lower half 'smiles' for the tiny model, a dark one does not."""
    crops = np.full((4, 48, 48), 100, np.uint8)
    crops[0, 24:] = 220
    crops[1, 24:] = 30
    crops[2, :24] = 160
    return crops


def test_teacher_outputs_are_the_models_mean_as_inference_sees_them(teachers) -> None:
    models = [SmileModel(t, threads=1) for t in teachers]
    crops = _faces()
    out = teacher_outputs(models, crops, batch_size=3)
    calibrated = [m(crops).smile for m in models]
    np.testing.assert_allclose(out["teacher_smile"], np.mean(calibrated, 0), rtol=1e-5)
    assert not np.allclose(calibrated[0], calibrated[1])
    raw = models[0].raw_outputs(crops)
    np.testing.assert_allclose(out["teacher_intensity"], raw["intensity"], rtol=1e-5)
    # emotion: the raw softmax (no class-prior correction), every class present
    np.testing.assert_allclose(out["teacher"], softmax(raw["emotion_logits"]), rtol=1e-5)
    np.testing.assert_allclose(out["teacher"].sum(1), 1.0, rtol=1e-5)
    assert out["teacher_smile"][0] > 0.9 > 0.1 > out["teacher_smile"][1]
    assert out["teacher"][0].argmax() == 1  # the smiling crop: happiness


def test_a_teacher_of_another_crop_side_is_refused(teachers, tmp_path: Path) -> None:
    big = SmileModel(make_tiny_smile_onnx(tmp_path / "big.onnx", size=64), threads=1)
    with pytest.raises(ValueError, match="64 px"):
        teacher_outputs([big], _faces())
    with pytest.raises(ValueError, match="at least one"):
        teacher_outputs([], _faces())


def test_teach_caches_adds_soft_targets_and_keeps_the_cache(teachers, tmp_path: Path) -> None:
    crops = _crops("mtfl_train", 9, 0, False)
    path = save_cache(cache_path(tmp_path, "mtfl_train"), crops, extra={"eyes": np.ones((9, 2, 2))})
    before = load_cache(path)
    assert np.isnan(before.teacher_smile).all() and not before.has_teacher.any()
    rows = teach_caches(tmp_path, ["mtfl_train"], teachers, threads=1)
    assert rows[0]["rows"] == 9 and rows[0]["teachers"] == ["a", "b"]
    after = load_cache(path)
    np.testing.assert_array_equal(after.images, before.images)
    np.testing.assert_array_equal(after.label, before.label)
    assert np.isfinite(after.teacher_smile).all() and np.isfinite(after.teacher_intensity).all()
    assert after.has_teacher.all()
    smiling = after.label > 0  # the generated 'mouth' bar brightens the lower half
    assert after.teacher_smile[smiling].min() > after.teacher_smile[~smiling].max()
    with np.load(path) as z:
        assert "extra_eyes" in z.files
    recorded = after.meta[0]["teacher"]  # which files taught, for the run summary
    assert [r.split(" sha256 ")[0] for r in recorded] == ["a.onnx", "b.onnx"]
    assert recorded[0].split(" sha256 ")[1] == hashlib.sha256(teachers[0].read_bytes()).hexdigest()
    assert after.meta[0]["name"] == before.meta[0]["name"]  # the rest of the metadata kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mtfl_train.npz"]  # no temp left


def test_a_teacher_of_another_framing_is_refused(teachers, tmp_path: Path) -> None:
    """A canonical teacher would guess on lower-face crops: teaching them is refused."""
    crops = _crops("mtfl_train", 4, 0, False)
    crops.meta = [dict(m, iod_fraction=0.52, eye_y=0.10) for m in crops.meta]
    save_cache(cache_path(tmp_path, "mtfl_train"), crops)
    with pytest.raises(ValueError, match="framed"):
        teach_caches(tmp_path, ["mtfl_train"], teachers, threads=1)


def _targets(n: int) -> dict[str, torch.Tensor]:
    return {
        "label": torch.ones(n),
        "votes": torch.zeros(n, 8),
        "has_votes": torch.zeros(n, dtype=torch.bool),
        "intensity": torch.zeros(n),
        "teacher": torch.zeros(n, 8),
        "teacher_smile": torch.full((n,), float("nan")),
        "teacher_intensity": torch.full((n,), float("nan")),
    }


def test_smile_and_intensity_distillation_use_only_rows_with_a_teacher() -> None:
    torch.manual_seed(0)
    smile = torch.randn(4, 1, requires_grad=True)
    intensity = torch.randn(4, 1, requires_grad=True)
    t = _targets(4)
    t["teacher_smile"][:2] = torch.tensor([0.9, 0.2])
    t["teacher_intensity"][1:3] = torch.tensor([0.7, 0.1])
    terms = losses.distill_loss((smile, intensity, torch.zeros(4, 8)), t)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        smile[:2, 0], t["teacher_smile"][:2]
    )
    assert torch.isclose(terms["distill_smile"], want)
    assert float(terms["distill"]) == 0.0  # no emotion teacher on any row
    sum(terms.values()).backward()
    assert torch.all(smile.grad[:2] != 0) and torch.all(smile.grad[2:] == 0)
    assert torch.all(intensity.grad[1:3] != 0) and intensity.grad[0] == 0 == intensity.grad[3]
    assert torch.isfinite(smile.grad).all() and torch.isfinite(intensity.grad).all()


def test_a_teacher_that_says_contempt_pulls_on_every_class() -> None:
    """The ladder's own teachers know all 8 classes, so contempt is distilled too; a
    face-api row (contempt NaN) leaves the student's contempt alone; a one-hot teacher
    (zeros, not NaN) is a hard pseudo-label over all 8 classes."""
    emotion = torch.zeros(3, 8, requires_grad=True)
    t = _targets(3)
    t["teacher"][0] = torch.softmax(torch.arange(8.0), 0)
    t["teacher"][1, :7] = torch.softmax(torch.arange(7.0), 0)
    t["teacher"][1, 7] = float("nan")
    t["teacher"][2, 2] = 1.0
    terms = losses.distill_loss((torch.zeros(3, 1), torch.zeros(3, 1), emotion), t)
    terms["distill"].backward()
    assert torch.all(emotion.grad[0] != 0) and torch.all(emotion.grad[2] != 0)
    assert torch.all(emotion.grad[1, :7] != 0) and emotion.grad[1, 7] == 0
    # at the teacher's own logits the term is the teacher's entropy (its minimum)
    at_teacher = torch.log(t["teacher"][:1]).requires_grad_(True)
    one = {k: v[:1] for k, v in t.items()}
    best = losses.distill_loss((torch.zeros(1, 1), torch.zeros(1, 1), at_teacher), one)
    entropy = -(t["teacher"][0] * torch.log(t["teacher"][0])).sum()
    assert torch.isclose(best["distill"], entropy, atol=1e-5)


def test_train_teach_then_distilled_fit_through_the_cli(teachers, tmp_path: Path) -> None:
    from duchenne.cli.main import main

    d = tmp_path / "cache"
    for name, n, seed, votes in (
        ("ferplus_train", 16, 0, True),
        ("smilesmiled_train", 8, 1, False),
        ("ferplus_valid", 16, 2, True),
        ("mtfl_train", 8, 4, False),
        ("mtfl_calib", 6, 5, False),
    ):
        save_cache(
            cache_path(d, name), _crops(name, n, seed, votes, every_class=name.endswith("valid"))
        )
    rc = main(
        ["train", "teach", "--teacher", str(teachers[0]), "--cache-dir", str(d), "--threads", "1"]
    )
    assert rc == 0
    for name in ("ferplus_train", "smilesmiled_train", "mtfl_train"):
        assert np.isfinite(load_cache(cache_path(d, name)).teacher_smile).all()
    assert np.isnan(load_cache(cache_path(d, "mtfl_calib")).teacher_smile).all()  # not taught
    out = tmp_path / "runs"
    rc = main(
        ["train", "fit", "--net", "smile_n", "--cache-dir", str(d), "--epochs", "1",
         "--batch-size", "8", "--device", "cpu", "--threads", "1", "--out", str(out),
         "--distill-weight", "1", "--no-export", "--run-name", "kd"]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "kd.json").read_text())
    taught = {"ferplus_train", "smilesmiled_train", "mtfl_train"}
    assert set(summary["distill_teachers"]) == taught
    assert all(
        v[0].startswith(teachers[0].name + " sha256 ") for v in summary["distill_teachers"].values()
    )
    first = summary["history"][0]
    assert first["train_distill_smile"] > 0 and first["train_distill_intensity"] > 0
    assert first["train_distill"] > 0


def test_run_summary_names_each_caches_teacher_or_says_it_is_unrecorded() -> None:
    """A cache taught before the record existed (arrays, no metadata) is flagged rather
    than passed off as untaught; an untaught cache is left out."""
    from duchenne.train.data import concat
    from duchenne.train.loop import distill_teachers

    recorded, old, plain = (_crops(n, 3, 0, False) for n in ("mtfl_train", "ferplus_train", "x"))
    recorded.meta = [{"name": "mtfl_train", "teacher": ["t.onnx sha256 00"]}]
    old.teacher_smile = np.full(3, 0.5, np.float32)
    got = distill_teachers(concat([recorded, old, plain]))
    assert got == {"mtfl_train": ["t.onnx sha256 00"], "ferplus_train": ["unrecorded"]}
