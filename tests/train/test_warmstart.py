"""Warm starts from exported ONNX files: the rebuilt net is the file, in both BN modes."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from duchenne.train.export import INPUT_NAME, OUTPUT_NAMES, export_onnx  # noqa: E402
from duchenne.train.nets import build_net  # noqa: E402
from duchenne.train.warmstart import (  # noqa: E402
    is_onnx_init,
    resolve_onnx,
    warm_start_from_onnx,
)


def _trained_like(name: str, x: torch.Tensor) -> torch.nn.Module:
    """A net whose BatchNorms hold real (non-identity) statistics: a few train-mode passes."""
    torch.manual_seed(1)
    net = build_net(name)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x * 1.7 + 0.2)
    return net.eval()


def _sample(n: int = 512, size: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth random images in the model's input scale (more crop-like than white noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
    return (x - 0.5) / 0.5


def _onnx_run(path: Path, x: torch.Tensor) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})


@pytest.mark.parametrize("name", ["smile_n", "smile_m"])
def test_warm_start_reproduces_the_file(name: str, tmp_path: Path) -> None:
    x = _sample(192)
    path = tmp_path / f"{name}.onnx"
    export_onnx(_trained_like(name, x), path, name=name)
    net = build_net(name)
    report = warm_start_from_onnx(net, path, x)
    assert report["eval_max_abs_diff"] < 1e-3
    fresh = x[:64] * 0.9  # crops the statistics were not computed on
    with torch.no_grad():
        smile, _, emotion = net.eval()(fresh)
    want = _onnx_run(path, fresh)
    np.testing.assert_allclose(smile.numpy(), want[0], atol=1e-3)
    np.testing.assert_allclose(emotion.numpy(), want[2], atol=1e-3)


def test_training_mode_batchnorm_keeps_the_function(tmp_path: Path) -> None:
    """The point of rebuilding BatchNorm: a train-mode batch is not scrambled. A naive
    load (identity stats) would normalise every layer by its batch statistics instead."""
    x = _sample(512)
    path = tmp_path / "smile_s.onnx"
    export_onnx(_trained_like("smile_s", x), path, name="smile_s")
    net = build_net("smile_s")
    report = warm_start_from_onnx(net, path, x)
    want = _onnx_run(path, x[:256])[2]
    spread = float(np.abs(want - want.mean(0)).max())
    assert report["train_mode_max_abs_diff"] < 0.25 * spread
    naive = build_net("smile_s")
    naive.load_state_dict(net.state_dict())
    for m in naive.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
    naive.train()
    with torch.no_grad():
        naive_emotion = naive(x[:256])[2].numpy()
    assert float(np.abs(naive_emotion - want).max()) > report["train_mode_max_abs_diff"]


def test_wrong_net_is_refused(tmp_path: Path) -> None:
    x = _sample(64)
    path = tmp_path / "smile_n.onnx"
    export_onnx(_trained_like("smile_n", x), path, name="smile_n")
    with pytest.raises(ValueError, match="not this net|shape"):
        warm_start_from_onnx(build_net("smile_s"), path, x)
    with pytest.raises(ValueError, match="do not fit"):
        warm_start_from_onnx(build_net("smile_n", channels=3), path, x)
    with pytest.raises(ValueError, match="file's format"):  # 64 px crops, a 48 px file
        warm_start_from_onnx(build_net("smile_n"), path, _sample(8, size=64))


def test_resized_warm_start_starts_from_the_file(tmp_path: Path) -> None:
    """Progressive resizing: a 48 px file starts a 96 px run only when asked; parity is
    checked at the file's side and the BatchNorms take the 96 px crops' statistics."""
    x48 = _sample(256)
    path = tmp_path / "smile_n.onnx"
    export_onnx(_trained_like("smile_n", x48), path, name="smile_n")
    x96 = torch.nn.functional.interpolate(x48, size=(96, 96), mode="bilinear")
    with pytest.raises(ValueError, match="file's format"):
        warm_start_from_onnx(build_net("smile_n"), path, x96)
    net = build_net("smile_n")
    report = warm_start_from_onnx(net, path, x96, resize=True)
    assert report["eval_max_abs_diff"] < 1e-3
    assert (report["file_side"], report["crop_side"]) == (48, 96)
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.all(bn.running_var > 0)
    with torch.no_grad():
        smile96 = net.eval()(x96[:64])[0].numpy().ravel()
    smile48 = _onnx_run(path, x48[:64])[0].ravel()
    assert np.corrcoef(smile96, smile48)[0, 1] > 0.5  # the start is the file's function


def test_init_spec_resolution(tmp_path: Path) -> None:
    assert is_onnx_init("smile_l") and is_onnx_init("x/smile_s.onnx")
    assert not is_onnx_init("reports/smile_s.pt") and not is_onnx_init(None)
    assert resolve_onnx("smile_n").name == "smile_n.onnx"
    with pytest.raises(FileNotFoundError):
        resolve_onnx(str(tmp_path / "missing.onnx"))


def test_shipped_default_warm_starts() -> None:
    """The shipped default rebuilds exactly (what `train fit --init smile_s` does)."""
    net = build_net("smile_s")
    report = warm_start_from_onnx(net, resolve_onnx("smile_s"), _sample(256))
    assert report["eval_max_abs_diff"] < 1e-3
