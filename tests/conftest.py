"""Shared fixtures: a tiny hand-built smile ONNX model (no training, no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_tiny_smile_onnx(
    path: Path,
    *,
    size: int = 48,
    channels: int = 1,
    temperature: float = 1.0,
    extra_meta: dict[str, str] | None = None,
) -> Path:
    """A smile/emotion ONNX with the shipped I/O contract whose outputs are known functions.

    smile_logit = 8 * (mean brightness of the lower half - mean of the upper half), so a
    bright-bottom crop "smiles"; intensity = sigmoid(smile_logit); emotion logits put
    ``smile_logit`` on happiness and 0 elsewhere. Lets tests check the plumbing exactly.
    ``channels`` 3 makes a colour model (the brightness is the mean over the channels).
    """
    import onnx
    from onnx import TensorProto, helper

    half = size // 2
    w = np.zeros((1, channels, size, size), np.float32)
    w[..., half:, :] = 8.0 / (half * size * channels)
    w[..., :half, :] = -8.0 / (half * size * channels)
    emo = np.zeros((1, 8), np.float32)
    emo[0, 1] = 1.0
    nodes = [
        helper.make_node("Mul", ["x", "w"], ["xw"]),
        helper.make_node("ReduceSum", ["xw", "axes"], ["summed"], keepdims=1),
        helper.make_node("Flatten", ["summed"], ["smile_logit"], axis=1),
        helper.make_node("Sigmoid", ["smile_logit"], ["intensity"]),
        helper.make_node("MatMul", ["smile_logit", "emo"], ["emotion_logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_smile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", channels, size, size])],
        [
            helper.make_tensor_value_info("smile_logit", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("intensity", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("emotion_logits", TensorProto.FLOAT, ["batch", 8]),
        ],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
            helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
            helper.make_tensor("emo", TensorProto.FLOAT, emo.shape, emo.ravel()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "duchenne.task": "smile_emotion",
        "duchenne.name": "tiny_test",
        "duchenne.input_size": str(size),
        "duchenne.channels": str(channels),
        "duchenne.mean": "0.5",
        "duchenne.std": "0.5",
        "duchenne.temperature": str(temperature),
        "duchenne.emotion_labels": "neutral,happiness,surprise,sadness,anger,disgust,fear,contempt",
        **(extra_meta or {}),
    }
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def tiny_smile_onnx(tmp_path_factory) -> Path:
    return make_tiny_smile_onnx(tmp_path_factory.mktemp("models") / "tiny_smile.onnx")
