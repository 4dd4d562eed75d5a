"""A thin, picklable wrapper around one onnxruntime ``InferenceSession``.

Why a wrapper: every model in duchenne needs the same three things: a session built with
an explicit thread count (so batch workers and servers do not oversubscribe cores), the
input/output signature read once, and pickling by path (so worker processes rebuild their
own session instead of failing to pickle a C++ object).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from duchenne.errors import DeviceUnavailableError, UnrecognizedModelError
from duchenne.io.environment import THREADS_VARIABLE

DEVICES = ("cpu", "cuda")
"""Where models run: ``cpu`` (default, onnxruntime's CPU provider) or ``cuda``."""


def default_providers() -> list[str]:
    """CPU always; other providers only when explicitly asked for (predictable by default)."""
    return ["CPUExecutionProvider"]


def providers_for(device: str) -> list[str]:
    """onnxruntime providers for ``device`` (one of ``DEVICES``).

    Why a check here: onnxruntime quietly runs on the CPU when the CUDA provider is missing,
    so a user who asked for the GPU would get CPU speed without knowing.

    Raises:
        ValueError: an unknown device name.
        DeviceUnavailableError: ``cuda`` without onnxruntime-gpu (the ``[gpu]`` extra).
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return default_providers()
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise DeviceUnavailableError(
            f"device='cuda' needs onnxruntime-gpu and an NVIDIA GPU, but this onnxruntime "
            f"({ort.__version__}) offers only {', '.join(available)}: install "
            "'duchenne[gpu]' (it replaces onnxruntime with onnxruntime-gpu) or use device='cpu'"
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


#: Items per onnxruntime call for the 192-pixel face models (detector windows, Face Mesh
#: crops), by device. On the CPU one at a time: in a batch every layer's activations for all
#: items outgrow the cache before the next layer reads them (measured, one thread: the
#: full-range detector 3.1 ms per window alone, 3.8 ms in a batch of 16; Face Mesh 1.9 ms
#: per face alone, 3.1 ms in a batch of 16, 5.6 ms in one of 32). On a GPU a batch spreads
#: the launch and copy costs.
IMAGE_BATCH = {"cpu": 1, "cuda": 16}


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Session options with ``threads`` intra-op threads (None = onnxruntime's default).

    ``DUCHENNE_THREADS`` in the environment sets the default, so a batch launcher can pin
    every worker to one thread without code changes.
    """
    opts = ort.SessionOptions()
    if threads is None and os.environ.get(THREADS_VARIABLE):
        threads = int(os.environ[THREADS_VARIABLE])
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    # No busy-wait spinning between ops: with several sessions/processes on few cores,
    # spinning threads steal the cores the other work needs (measured: one-face video on 2
    # pinned cores 142 -> 200 fps without it).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return opts


class OnnxModel:
    """One ONNX model file, ready to run.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (None = default; see ``session_options``).
        providers: onnxruntime execution providers (default: those of ``device``).
        device: ``"cpu"`` or ``"cuda"`` (see ``providers_for``).

    Raises:
        UnrecognizedModelError: onnxruntime cannot load the file (corrupt, truncated, not
            ONNX, an operator it lacks); the message names the file in one line.
        DeviceUnavailableError: ``device="cuda"`` and the CUDA provider cannot start.

    Example:
        >>> from duchenne.models import create_model
        >>> model = create_model("face_detection_short_range")
        >>> model.input_shape
        ('batch', 128, 128, 3)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.path = Path(path)
        self.threads, self.device = threads, device
        self.providers = list(providers or providers_for(device))
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=session_options(threads), providers=self.providers
            )
        except Exception as exc:
            raise _load_error(self.path, exc, device) from None
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise DeviceUnavailableError(
                f"{self.path.name}: onnxruntime could not start its CUDA provider (no GPU "
                "visible, or CUDA/cuDNN libraries missing); use device='cpu'"
            )
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_shape: tuple[Any, ...] = tuple(inp.shape)
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def dynamic_batch(self) -> bool:
        """True when the first input dimension is symbolic (several items per call)."""
        return not isinstance(self.input_shape[0], int)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run on one input batch; returns outputs by name."""
        outputs = self.session.run(self.output_names, {self.input_name: batch})
        return dict(zip(self.output_names, outputs, strict=True))

    def run_chunked(self, batch: np.ndarray, size: int) -> dict[str, np.ndarray]:
        """``__call__`` on ``batch`` in calls of at most ``size`` items, outputs concatenated
        along the first axis (see ``IMAGE_BATCH`` for why smaller calls can be faster)."""
        if len(batch) <= size:
            return self(batch)
        parts = [self(batch[i : i + size]) for i in range(0, len(batch), size)]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.output_names}

    @property
    def image_batch(self) -> int:
        """Items per call for image models on this model's device (``IMAGE_BATCH``; 1 for a
        graph whose batch dimension is fixed)."""
        return IMAGE_BATCH[self.device] if self.dynamic_batch else 1

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "threads": self.threads,
            "providers": self.providers,
            "device": self.device,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"],
            threads=state["threads"],
            providers=state["providers"],
            device=state.get("device", "cpu"),
        )

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.path.name!r}, input={self.input_shape}, outputs={self.output_names})"
        )


_ORT_MESSAGE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : (\w+) : (.*)$", re.DOTALL)


def _load_error(path: Path, exc: Exception, device: str) -> Exception:
    """onnxruntime's failure to open ``path`` as a duchenne error: one line naming the file.

    Why: onnxruntime raises its own exception types (``InvalidProtobuf``, ``Fail`` ...)
    with a multi-part message, which every CLI would otherwise print as they are. Errors
    that are not onnxruntime's (e.g. ``MemoryError``) are returned unchanged.
    """
    if not type(exc).__module__.startswith("onnxruntime"):
        return exc
    text = " ".join(str(exc).split())
    match = _ORT_MESSAGE.match(text)
    code, reason = (match.group(1), match.group(2)) if match else (type(exc).__name__, text)
    reason = re.sub(r"^Load model from .*? failed:\s*", "", reason)
    if device == "cuda" and code in ("EP_FAIL", "EPFail"):
        return DeviceUnavailableError(
            f"{path}: onnxruntime could not start its CUDA provider ({reason})"
        )
    return UnrecognizedModelError(
        f"{path}: onnxruntime cannot load this model file ({code}: {reason}); "
        "is it a complete, valid .onnx file?"
    )
