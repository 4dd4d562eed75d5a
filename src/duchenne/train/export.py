"""Export a trained ladder net to the ONNX file inference loads.

What the export guarantees (checked here, not assumed):
    * the contract's signature: input ``input`` (N, C, S, S) float32 (C from the net's
      first convolution, written to ``duchenne.channels``) with a symbolic batch
      dimension; outputs ``smile_logit`` (N, 1), ``intensity`` (N, 1, sigmoid applied) and
      ``emotion_logits`` (N, 8);
    * opset 17 (onnxruntime >= 1.17 runs it; the newest ops we would gain add nothing here);
    * no BatchNormalization node: BN is fused into the convs by ``fold_batchnorm`` first;
    * onnxruntime matches torch within ``atol`` at batch 1 and batch 5;
    * ``metadata_props`` exactly as ``notes/CONTRACTS.md`` lists them.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from duchenne.faces import EMOTION_LABELS
from duchenne.io.atomic import atomic_write
from duchenne.models.smile import OUTPUTS
from duchenne.train.calibrate import Calibration
from duchenne.train.nets import ExportWrapper, fold_batchnorm, input_channels

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = OUTPUTS  # the contract SmileModel reads (one list of names)
MEAN = 0.5
STD = 0.5


class ExportError(RuntimeError):
    """The exported graph broke one of the guarantees above (a bug, so not a DuchenneError)."""


def package_version() -> str:
    """duchenne's version: installed metadata, else ``pyproject.toml`` of a source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("duchenne")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
        if pyproject.is_file():
            match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
            if match:
                return match.group(1)
        return "0+unknown"


def contract_metadata(
    name: str,
    input_size: int,
    calibration: Calibration | None = None,
    channels: int = 1,
    framing: dict[str, float] | None = None,
) -> dict[str, str]:
    """The ``duchenne.*`` metadata_props every smile/emotion model carries (with the
    calibration's keys; none given: temperature 1, bias 0, raw emotion softmax) and, when
    given, the crop ``framing`` (``CropFormat.framing``: ``duchenne.iod_fraction``,
    ``duchenne.eye_y``; absent, the Analyzer cuts the canonical framing)."""
    framed = {f"duchenne.{k}": repr(float(v)) for k, v in (framing or {}).items()}
    return {
        "duchenne.task": "smile_emotion",
        "duchenne.name": name,
        "duchenne.input_size": str(int(input_size)),
        "duchenne.channels": str(int(channels)),
        "duchenne.mean": repr(MEAN),
        "duchenne.std": repr(STD),
        "duchenne.emotion_labels": ",".join(EMOTION_LABELS),
        "duchenne.opset": str(OPSET),
        "duchenne.version": package_version(),
        **framed,
        **(calibration or Calibration()).metadata(),
    }


def _to_onnx(wrapper: nn.Module, path: Path, input_size: int, channels: int) -> None:
    """TorchScript-based exporter: deterministic, needs no onnxscript, folds constants."""
    dummy = torch.zeros(2, channels, input_size, input_size)
    axes = {INPUT_NAME: {0: "batch"}} | {o: {0: "batch"} for o in OUTPUT_NAMES}
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, not broken
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        _export(wrapper, dummy, path, axes)


def _export(
    wrapper: nn.Module, dummy: torch.Tensor, path: Path, axes: dict[str, dict[int, str]]
) -> None:
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_axes=axes,
        opset_version=OPSET,
        do_constant_folding=True,
    )


def _set_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    """Replace the file's metadata_props with ``metadata`` (one file, weights inline),
    through a temporary file, so a failure leaves the old file whole."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "duchenne.train"
    onnx.checker.check_model(model)
    with atomic_write(path, mode="wb") as fh:
        fh.write(model.SerializeToString())


def update_metadata(path: str | Path, updates: Mapping[str, str]) -> dict[str, object]:
    """Add or replace some metadata keys of an exported file, keeping the others and the
    graph (e.g. refit the emotion prior of a shipped model); returns its new sha256 and
    bytes for ``models.json``."""
    path = Path(path)
    current = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    _set_metadata(path, {**current, **updates})
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def check_no_batchnorm(path: Path) -> None:
    """Raise ``ExportError`` if any BatchNormalization node survived the export."""
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    if "BatchNormalization" in ops:
        raise ExportError(f"{path.name}: BatchNormalization left in the graph")


def check_parity(
    path: Path, reference: nn.Module, input_size: int, atol: float = 1e-4, seed: int = 0
) -> float:
    """Max |onnxruntime - torch| over all outputs at batch 1 and 5; raises past ``atol``."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    if tuple(names) != OUTPUT_NAMES:
        raise ExportError(f"{path.name}: outputs {names} != {list(OUTPUT_NAMES)}")
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in (1, 5):
        shape = (batch, input_channels(reference), input_size, input_size)
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        got = sess.run(names, {INPUT_NAME: x})
        with torch.no_grad():
            want = [t.numpy() for t in reference(torch.from_numpy(x))]
        for g, w in zip(got, want, strict=True):
            if g.shape != w.shape:
                raise ExportError(f"{path.name}: shape {g.shape} != torch {w.shape}")
            worst = max(worst, float(np.abs(g - w).max()))
    if worst > atol:
        raise ExportError(f"{path.name}: onnx vs torch max diff {worst:.2e} > {atol:.0e}")
    return worst


def export_onnx(
    net: nn.Module,
    path: str | Path,
    *,
    name: str,
    calibration: Calibration | None = None,
    input_size: int = 48,
    framing: dict[str, float] | None = None,
    atol: float = 1e-4,
) -> dict[str, object]:
    """Export ``net`` (left untouched) to ``path``; returns sha256, bytes and parity error.

    The reference for the parity check is the *unfolded* net in eval mode, so the check
    also proves the BatchNorm folding exact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reference = ExportWrapper(copy.deepcopy(net).cpu().float().eval())
    folded = ExportWrapper(fold_batchnorm(copy.deepcopy(net).cpu().float().eval()))
    channels = input_channels(net)
    _to_onnx(folded, path, input_size, channels)
    _set_metadata(path, contract_metadata(name, input_size, calibration, channels, framing))
    check_no_batchnorm(path)
    diff = check_parity(path, reference, input_size, atol)
    data = path.read_bytes()
    log.info("exported %s (%d bytes, parity %.1e)", path, len(data), diff)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "parity_max_abs_diff": diff,
        "opset": OPSET,
    }
