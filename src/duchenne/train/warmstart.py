"""Warm starts from an exported ONNX file: fine-tune a shipped model without its checkpoint.

Why: the shipped files are the only weights that outlive the machine that trained them
(checkpoints stay behind on a GPU machine), and a run that stopped on its time budget
before its cosine schedule annealed (``h200_v2_smile_l``: 23 of 35 planned epochs) can
still gain from a short, low learning-rate run. The export folded every BatchNorm into its
convolution, so the file holds ``W' = W * g / s`` and ``b' = beta - g * m / s``; the
original (W, g, beta, m, s) cannot be recovered. What can be rebuilt is a net with the same
function *and* BatchNorm layers that behave in training mode:

1. load ``W'`` into each conv, and give its BatchNorm the identity statistics with ``b'``
   as shift, so the eval-mode net is the ONNX graph exactly;
2. run sample crops through it and record each BatchNorm's input mean ``m`` and variance
   ``v`` per channel;
3. set running stats (m, v), scale ``sqrt(v + eps)`` and shift ``m + b'``: the eval-mode
   function is unchanged, and in training mode a batch whose statistics are near (m, v)
   sees the same function too, so the first steps start from the shipped model instead of
   a net scrambled by batch statistics.

``warm_start_from_onnx`` checks both properties against onnxruntime on the sample crops.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from duchenne.train.data import CropSet, DeviceData, normalize
from duchenne.train.export import INPUT_NAME, OUTPUT_NAMES
from duchenne.train.nets import ConvBN, ExportWrapper, input_channels

log = logging.getLogger(__name__)

WRAPPER_PREFIX = "net."
"""The exported graph wraps the net in ``ExportWrapper``, whose attribute is ``net``."""

PARITY_ATOL = 1e-3
"""Largest |torch - onnxruntime| allowed after the warm start (float32 re-association)."""


def resolve_onnx(spec: str) -> Path:
    """An ONNX path, or the name of a registered model (``smile_l``): its shipped file."""
    if not is_registered_init(spec):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"--init {spec}: no such ONNX file")
        return path
    from duchenne.models.registry import get_model_cfg

    return get_model_cfg(spec).path


def init_path(spec: str) -> Path:
    """The file ``--init`` names: a checkpoint, an ONNX file or a registered model's file."""
    return resolve_onnx(spec) if is_onnx_init(spec) else Path(spec)


def file_provenance(path: Path) -> str:
    """What a warm start began from, for the run summary and models.json: the file's name
    and sha256. Recorded automatically so the chain of fine-tunes can be followed back to
    the exact bytes."""
    return f"{path.name} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}"


def is_onnx_init(spec: str | None) -> bool:
    """Whether ``--init`` names an ONNX file or a registered model rather than a checkpoint."""
    return bool(spec) and not str(spec).endswith((".pt", ".pth"))


def is_registered_init(spec: str | None) -> bool:
    """Whether ``--init`` names a registered model (``smile_l``) rather than a file."""
    return is_onnx_init(spec) and Path(str(spec)).suffix != ".onnx"


def onnx_weights(path: Path) -> dict[str, torch.Tensor]:
    """The graph's initializers by the net's own parameter names (wrapper prefix dropped)."""
    model = onnx.load(str(path))
    weights = {}
    for init in model.graph.initializer:
        if init.name.startswith(WRAPPER_PREFIX):
            array = numpy_helper.to_array(init).copy()
            weights[init.name[len(WRAPPER_PREFIX) :]] = torch.from_numpy(array)
    return weights


def _load_folded(net: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Step 1: folded convs, BatchNorms as ``x + b'`` (running var 1 - eps, mean 0)."""
    state = net.state_dict()
    loaded: set[str] = set()
    for prefix, module in net.named_modules():
        if not isinstance(module, ConvBN):
            continue
        key = f"{prefix}.conv"
        bn = module.bn
        assert isinstance(bn, nn.BatchNorm2d)
        _copy(module.conv.weight, weights, f"{key}.weight")
        with torch.no_grad():
            bn.weight.fill_(1.0)
            _copy(bn.bias, weights, f"{key}.bias")
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        loaded |= {f"{key}.weight", f"{key}.bias"}
    for name, tensor in state.items():  # SE convs and the three linear heads
        if name in weights and name not in loaded and ".bn." not in name:
            _copy(tensor, weights, name)
            loaded.add(name)
    missing = set(weights) - loaded
    if missing:
        raise ValueError(f"ONNX weights with no place in the net: {sorted(missing)[:5]}")


def _copy(target: torch.Tensor, weights: dict[str, torch.Tensor], name: str) -> None:
    if name not in weights:
        raise ValueError(f"the ONNX file has no weight {name!r}: not this net")
    source = weights[name]
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(f"{name}: ONNX shape {tuple(source.shape)} != net {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(source)


@torch.no_grad()
def _batchnorm_input_stats(
    net: nn.Module, x: torch.Tensor, batch_size: int = 256
) -> dict[nn.BatchNorm2d, tuple[torch.Tensor, torch.Tensor]]:
    """Step 2: per-channel mean and (biased) variance of every BatchNorm's input,
    accumulated over batches as float64 sums of x and x**2 per channel."""
    sums: dict[nn.BatchNorm2d, torch.Tensor] = {}  # (3, C): sum x, sum x**2, count

    def record(module: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...]) -> None:
        t = inputs[0].double()
        batch = torch.stack(
            [
                t.sum((0, 2, 3)),
                (t * t).sum((0, 2, 3)),
                torch.full_like(t[0, :, 0, 0], t[:, 0].numel()),
            ]
        )
        sums[module] = sums.get(module, 0) + batch

    hooks = [
        m.register_forward_pre_hook(record) for m in net.modules() if isinstance(m, nn.BatchNorm2d)
    ]
    try:
        net.eval()
        for start in range(0, len(x), batch_size):
            net(x[start : start + batch_size])
    finally:
        for h in hooks:
            h.remove()
    stats = {}
    for bn, (s, ss, n) in sums.items():
        mean = s / n
        stats[bn] = (mean.float(), (ss / n - mean * mean).clamp_min(0).float())
    return stats


@torch.no_grad()
def _set_batch_statistics(stats: dict[nn.BatchNorm2d, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Step 3: running (m, v), scale sqrt(v + eps), shift m + b': same eval function."""
    for bn, (mean, var) in stats.items():
        shift = bn.bias.clone()
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(mean + shift)


def _onnx_session(path: Path, x: torch.Tensor, resize: bool) -> tuple[ort.InferenceSession, int]:
    """The file's session and its crop side, after checking that the sample crops fit its
    input (any side when ``resize``: progressive resizing, see ``warm_start_from_onnx``)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = sess.get_inputs()[0].shape[1:]  # (channels, side, side); ints unless symbolic
    got = list(x.shape[1:])
    checked = expected[:1] if resize else expected
    if any(isinstance(e, int) and e != g for e, g in zip(checked, got, strict=False)):
        raise ValueError(
            f"{path.name} takes (channels, side, side) = {expected} but the training crops"
            f" are {got}: cut a crop cache in the file's format"
        )
    side = expected[-1] if isinstance(expected[-1], int) else got[-1]
    return sess, side


def _at_side(x: torch.Tensor, side: int) -> torch.Tensor:
    """The crops at another side (area-averaged down, bilinear up): what the file was fed."""
    if x.shape[-1] == side:
        return x
    mode = "area" if side < x.shape[-1] else "bilinear"
    return torch.nn.functional.interpolate(x, size=(side, side), mode=mode)


@torch.no_grad()
def _torch_outputs(net: nn.Module, x: torch.Tensor, train_mode: bool) -> list[np.ndarray]:
    """The net's outputs in the ONNX contract (``ExportWrapper``), BatchNorm in training
    or eval mode; dropout stays off (noise, not what the check is about)."""
    net.train(train_mode)
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    out = [t.numpy() for t in ExportWrapper(net)(x)]
    net.eval()
    return out


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(p - q).max()) for p, q in zip(a, b, strict=True))


def warm_start_from_onnx(
    net: nn.Module, path: str | Path, x: torch.Tensor, resize: bool = False
) -> dict[str, float]:
    """Load the exported ``path`` into ``net`` (same architecture) in place.

    ``x``: sample crops, normalised (N, C, S, S) float32, ideally a few thousand training
    rows: their statistics become the BatchNorms' (module docstring). Returns the largest
    output difference to onnxruntime in eval mode, and between training and eval mode (one
    batch of the sample); raises ``ValueError`` when the file is not this net or eval mode
    misses parity.

    ``resize``: the crops may have another side than the file (progressive resizing: a
    96 px run started from a 48 px file; the nets end in global pooling, so the weights fit
    any side). Parity with the file is then checked on the sample shrunk to the file's
    side, and the BatchNorm statistics come from the crops at their own side; the start is
    the file's function applied to larger crops, which training then adapts.
    """
    path = Path(path)
    if x.ndim != 4 or x.shape[1] != input_channels(net):
        raise ValueError(f"sample crops {tuple(x.shape)} do not fit the net's input")
    sess, file_side = _onnx_session(path, x, resize)
    _load_folded(net, onnx_weights(path))
    crops = x[:256]
    probe = _at_side(crops, file_side)  # ``crops`` itself when the sides agree
    want = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: probe.numpy()})
    folded_diff = _max_diff(_torch_outputs(net, probe, False), want)
    if folded_diff > PARITY_ATOL:
        raise ValueError(f"{path.name}: torch differs from onnxruntime by {folded_diff:.2e}")
    _set_batch_statistics(_batchnorm_input_stats(net, x))
    probe_eval = _torch_outputs(net, probe, False)
    eval_diff = _max_diff(probe_eval, want)
    if eval_diff > PARITY_ATOL:
        raise ValueError(f"{path.name}: re-parameterised BatchNorm moved outputs {eval_diff:.2e}")
    crops_eval = probe_eval if probe is crops else _torch_outputs(net, crops, False)
    train_diff = _max_diff(_torch_outputs(net, crops, True), crops_eval)
    log.info(
        "warm start from %s (%d px file, %d px crops): eval parity %.1e,"
        " train-mode difference %.3f on %d crops",
        path, file_side, x.shape[-1], eval_diff, train_diff, len(crops),
    )  # fmt: skip
    return {
        "eval_max_abs_diff": eval_diff,
        "train_mode_max_abs_diff": train_diff,
        "file_side": float(file_side),
        "crop_side": float(x.shape[-1]),
    }


WARM_START_ROWS = 4096
"""Training rows (seeded draw) whose statistics rebuild the BatchNorms of an ONNX warm start."""


def warm_start(
    net: nn.Module, init: str, train_set: CropSet, seed: int, resize: bool = False
) -> str:
    """Fine-tuning: load ``init`` into ``net``, a checkpoint of an earlier run of the same
    net (``.pt``) or an exported ONNX file / registered model name (BatchNorm rebuilt from
    ``WARM_START_ROWS`` training crops drawn with ``seed``: ``warm_start_from_onnx``).
    Returns the start file's name and sha256 (``init_source`` of the run summary)."""
    path = init_path(init)
    source = file_provenance(path)
    if not is_onnx_init(init):
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        net.load_state_dict(state)
        return source
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(len(train_set))[: min(WARM_START_ROWS, len(train_set))])
    sample = DeviceData.from_crops(train_set.subset(rows), torch.device("cpu"))
    x, _ = sample.batch(torch.arange(len(sample)))
    warm_start_from_onnx(net, path, normalize(x), resize=resize)
    return source
