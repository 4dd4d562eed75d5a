"""The converter's PRelu rewrite (``scripts/convert_mediapipe.py``) computes PRelu.

The shipped Face Mesh graphs carry this rewrite, so a wrong formula would shift every
landmark; here it is checked on a small graph against onnxruntime's own PRelu.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx", reason="the converter's graph rewrite needs the onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "convert_mediapipe.py"


def _converter():
    spec = importlib.util.spec_from_file_location("convert_mediapipe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _prelu_graph(slope: np.ndarray) -> onnx.ModelProto:
    c = len(slope)
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(c, 3, 3, 3)).astype(np.float32), "w")
    a = numpy_helper.from_array(slope.reshape(c, 1, 1).astype(np.float32), "slope")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["h", "slope"], ["y"], name="act"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", c, 16, 16])],
        [w, a],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_rewritten_prelu_equals_prelu() -> None:
    cm = _converter()
    slope = np.array([-0.25, 0.0, 0.1, 0.5, 1.0, 1.25, 2.0, 0.03], np.float32)
    model = _prelu_graph(slope)
    x = np.random.default_rng(1).normal(size=(2, 3, 16, 16)).astype(np.float32)
    want = _run(model, x)
    assert cm.rewrite_prelu(model) == 1
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "PRelu" not in ops and ops.count("Conv") == 3
    assert "slope" not in {t.name for t in model.graph.initializer}
    assert [n.name for n in model.graph.node if n.output[0] == "y"] == ["act"]
    np.testing.assert_allclose(_run(model, x), want, rtol=1e-5, atol=1e-5)
    assert (want < 0).any() and (want > 0).any()
