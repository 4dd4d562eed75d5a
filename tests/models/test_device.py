"""``device="cuda"``: a typed error naming the fix where CUDA is absent; CPU stays the default."""

from __future__ import annotations

import pickle
from argparse import Namespace

import onnxruntime as ort
import pytest

from duchenne import Analyzer
from duchenne.analysis.config import AnalyzerConfig
from duchenne.cli.main import main
from duchenne.errors import DeviceUnavailableError
from duchenne.models.registry import create_model
from duchenne.models.session import providers_for

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA: the error cannot occur")


def test_cpu_is_the_default_everywhere() -> None:
    assert AnalyzerConfig().device == "cpu"
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    model = create_model("face_detection_short_range", threads=1)
    assert model.session.get_providers() == ["CPUExecutionProvider"]


def test_unknown_device_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cpu"):
        AnalyzerConfig(device="gpu")
    with pytest.raises(ValueError, match="cuda"):
        providers_for("tpu")


def test_cuda_providers_when_onnxruntime_offers_them(monkeypatch) -> None:
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cuda_without_onnxruntime_gpu_names_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(DeviceUnavailableError, match=r"duchenne\[gpu\]"):
        providers_for("cuda")


@no_cuda
def test_analyzer_on_cuda_fails_clearly_here() -> None:
    with pytest.raises(DeviceUnavailableError, match="onnxruntime-gpu"):
        Analyzer(stages=("detect",), device="cuda", threads=1)


@no_cuda
def test_cli_device_cuda_is_one_line_and_exit_1(capsys) -> None:
    assert main(["analyze", "--demo", "--stages", "detect", "--device", "cuda", "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DeviceUnavailableError" in err[0] and "duchenne[gpu]" in err[0]


def test_device_survives_pickling_and_reaches_batch_and_server(monkeypatch) -> None:
    model = create_model("face_detection_short_range", threads=1)
    assert pickle.loads(pickle.dumps(model)).device == "cpu"
    from duchenne.batch.worker import WorkerConfig

    cfg = WorkerConfig(analyzer=AnalyzerConfig(device="cuda", threads=1))
    assert cfg.analyzer.device == "cuda"
    assert "device" not in cfg.results_key()  # the same rows on either device
    pytest.importorskip("pydantic_settings")
    from duchenne.cli.serve import settings_from
    from duchenne.server.engine import analyzer_config

    args = Namespace(
        host=None,
        port=None,
        workers=None,
        processes=None,
        model=None,
        detector=None,
        emotion_prior=None,
        device="cuda",
        log_level=None,
        no_batching=False,
    )
    assert analyzer_config(settings_from(args)).device == "cuda"
