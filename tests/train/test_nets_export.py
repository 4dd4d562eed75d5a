"""Ladder nets: forward shapes and ONNX export (parity, BN folded, dynamic batch, metadata)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from duchenne.train import LADDER  # noqa: E402
from duchenne.train.calibrate import Calibration  # noqa: E402
from duchenne.train.export import (  # noqa: E402
    EMOTION_LABELS,
    OUTPUT_NAMES,
    export_onnx,
    update_metadata,
)
from duchenne.train.nets import NETS, build_net, count_params, fold_batchnorm  # noqa: E402


def _randomise_bn(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN scales and shifts, and running statistics of the net's own activations
    (one train-mode pass, momentum 1), so folding is exercised and the outputs depend on
    the input.

    Why not random running statistics: against the activations of a fresh net (tiny after
    a few layers) they flattened every input to one output (two random inputs differed by
    < 5e-6 for smile_n/s/m, 20 times under the parity tolerance), so the parity checks
    passed whatever the exported graph did with its input.
    """
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
            m.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.rand(16, 1, 48, 48, generator=g) * 2 - 1)
    return net.eval()


PARITY_ATOL = 1e-4
"""``export_onnx``'s default tolerance (|onnxruntime - torch| on any output)."""


def _input_spread(net: torch.nn.Module, x: np.ndarray) -> float:
    """Smallest, over the three outputs, of the largest change between two inputs' outputs:
    a parity check within ``PARITY_ATOL`` means something only where this is far above it."""
    with torch.no_grad():
        outs = [t.numpy() for t in net(torch.from_numpy(x))]
    return min(float((o.max(axis=0) - o.min(axis=0)).max()) for o in outs)


def test_ladder_names_match_registry() -> None:
    assert list(LADDER) == list(NETS)


@pytest.mark.parametrize("name", LADDER)
def test_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    net = build_net(name).eval()
    smile, intensity, emotion = net(torch.randn(3, 1, 48, 48))
    assert smile.shape == (3, 1) and intensity.shape == (3, 1) and emotion.shape == (3, 8)


def test_ladder_sizes_increase_and_tiny_is_small() -> None:
    params = [count_params(build_net(n)) for n in LADDER]
    assert params[0] * 4 < 200_000  # tiny: well under 200 KB of fp32 weights
    assert params == sorted(params)


def test_fold_batchnorm_is_exact() -> None:
    torch.manual_seed(0)
    net = _randomise_bn(build_net("smile_s"))
    x = torch.randn(4, 1, 48, 48)
    assert _input_spread(net, x.numpy()) > 1e4 * 1e-5  # the folded convs are on the path
    with torch.no_grad():
        want = net(x)
        got = fold_batchnorm(net)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", LADDER)
def test_export_parity_no_bn_dynamic_batch(name: str, tmp_path) -> None:
    torch.manual_seed(1)
    net = _randomise_bn(build_net(name))
    path = tmp_path / f"{name}.onnx"
    probe = np.random.default_rng(0).uniform(-1, 1, (5, 1, 48, 48)).astype(np.float32)
    assert _input_spread(net, probe) > 100 * PARITY_ATOL  # the net sees its input
    info = export_onnx(net, path, name=name, calibration=Calibration(1.25, -0.3))
    assert info["parity_max_abs_diff"] < PARITY_ATOL
    model = onnx.load(str(path))
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in model.opset_import)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["duchenne.task"] == "smile_emotion"
    assert meta["duchenne.name"] == name
    assert meta["duchenne.input_size"] == "48" and meta["duchenne.channels"] == "1"
    assert float(meta["duchenne.mean"]) == 0.5 and float(meta["duchenne.std"]) == 0.5
    assert meta["duchenne.emotion_labels"].split(",") == list(EMOTION_LABELS)
    assert float(meta["duchenne.temperature"]) == pytest.approx(1.25)
    assert float(meta["duchenne.smile_bias"]) == pytest.approx(-0.3)
    assert "duchenne.emotion_bias" not in meta  # not fitted: the raw softmax ships
    assert meta["duchenne.opset"] == "17" and meta["duchenne.version"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == list(OUTPUT_NAMES)
    assert not isinstance(sess.get_inputs()[0].shape[0], int)
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        x = rng.uniform(-1, 1, (batch, 1, 48, 48)).astype(np.float32)
        smile, intensity, emotion = sess.run(None, {"input": x})
        with torch.no_grad():
            ref = [t.numpy() for t in net(torch.from_numpy(x))]
        assert (
            smile.shape == (batch, 1)
            and intensity.shape == (batch, 1)
            and emotion.shape == (batch, 8)
        )
        np.testing.assert_allclose(smile, ref[0], atol=PARITY_ATOL)
        np.testing.assert_allclose(intensity, 1 / (1 + np.exp(-ref[1])), atol=PARITY_ATOL)
        np.testing.assert_allclose(emotion, ref[2], atol=PARITY_ATOL)
        assert np.all((intensity >= 0) & (intensity <= 1))


def test_update_metadata_adds_the_emotion_prior_and_keeps_the_rest(tmp_path) -> None:
    import hashlib

    from duchenne.models.smile import SmileModel

    path = tmp_path / "smile_n.onnx"
    export_onnx(build_net("smile_n"), path, name="smile_n", calibration=Calibration(1.5))
    crops = np.random.default_rng(2).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    before = SmileModel(path)(crops)
    bias = np.linspace(-0.7, 0.7, 8)
    info = update_metadata(path, Calibration(1.5, 0.0, bias, np.full(8, 0.125)).metadata())
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    model = SmileModel(path)
    assert model.temperature == pytest.approx(1.5)
    np.testing.assert_allclose(model.emotion_bias, bias, atol=1e-6)
    after = model(crops)
    np.testing.assert_allclose(after.smile, before.smile, rtol=1e-6)  # the graph is untouched
    shifted = np.log(before.emotion) + bias
    want = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    np.testing.assert_allclose(after.emotion, want, rtol=1e-4, atol=1e-6)


def test_a_framed_export_tells_the_analyzer_how_to_cut_its_crops(tmp_path) -> None:
    """The framing a run trained on reaches the model file, and the Analyzer and the
    evaluation cut that model's crops in it (a canonical model keeps the old crops)."""
    from duchenne import Analyzer
    from duchenne.analysis.crop_format import CropFormat
    from duchenne.data import path as data_path
    from duchenne.face.align import align_batch
    from duchenne.io.image import load_image
    from duchenne.models.smile import SmileModel

    lower = CropFormat.named(framing="lower")
    framed, plain = tmp_path / "lower.onnx", tmp_path / "face.onnx"
    export_onnx(build_net("smile_n"), framed, name="lower", framing=lower.framing)
    export_onnx(build_net("smile_n"), plain, name="face")
    assert SmileModel(framed).framing == {"iod_fraction": 0.52, "eye_y": 0.10}
    assert (
        SmileModel(plain).framing == {} and CropFormat.of_model(SmileModel(plain)) == CropFormat()
    )
    image = load_image(data_path("astronaut.jpg"))
    for model, fmt in ((framed, lower), (plain, CropFormat())):
        analyzer = Analyzer(smile_model=str(model), stages="detect,landmarks,smile")
        faces = analyzer.faces_in(image)
        want = align_batch(image, analyzer.face_eyes(faces), fmt.align_config())
        np.testing.assert_array_equal(analyzer.face_crops(image, faces), want)
    a = Analyzer(smile_model=str(framed), stages="detect,landmarks,smile")
    b = Analyzer(smile_model=str(plain), stages="detect,landmarks,smile")
    faces = a.faces_in(image)
    assert not np.array_equal(a.face_crops(image, faces), b.face_crops(image, faces))
