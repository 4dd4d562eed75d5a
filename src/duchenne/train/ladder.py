"""From a trained net to a shipped model: calibrate, export, measure, register.

Why separate from the loop: training may run on a GPU machine that returns only
checkpoints; calibration, export and registration then run where the package lives,
from the checkpoint alone, with the same code as a local CPU run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from duchenne.evaluation.metrics import expected_calibration_error, sigmoid
from duchenne.io.atomic import atomic_write
from duchenne.io.sinks import to_jsonable
from duchenne.train.calibrate import fit_calibration
from duchenne.train.data import DeviceData, load_sets
from duchenne.train.export import OPSET, export_onnx
from duchenne.train.loop import predict
from duchenne.train.metrics import head_metrics
from duchenne.train.nets import NETS

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "models" / "assets"
TRAIN_DATA = {
    "ferplus_train": "FER+ Train (all 3 heads)",
    "smilesmiled_train": "SMILEsmileD train split (80%, seed 0; smile head only)",
    "mtfl_train": "MTFL train split (70%, seed 0, grouped by person; smile head only)",
}


def calibrate_on_valid(net: nn.Module, cache_dir: str | Path, valid_set: str) -> dict[str, Any]:
    """Fit the calibration (``duchenne.train.calibrate``) on Valid; returns it with the
    metrics and the smile ECE before/after."""
    crops = load_sets(cache_dir, valid_set)
    pred = predict(net.eval(), DeviceData.from_crops(crops, torch.device("cpu")))
    logit = pred["smile_logit"].reshape(-1)
    # votes are all-zero rows where has_votes is False (SMILEsmileD, MTFL): not fitted on
    cal = fit_calibration(crops.label, logit, crops.source, crops.votes, pred["emotion_logits"])
    metrics = head_metrics(
        crops.label,
        pred["smile_logit"],
        pred["intensity"],
        pred["emotion_logits"],
        crops.votes,
        crops.has_votes,
    )
    label = crops.label.astype(int)
    metrics["smile_ece_raw"] = expected_calibration_error(label, sigmoid(logit))
    metrics["smile_ece_calibrated"] = expected_calibration_error(
        label, sigmoid(logit / cal.temperature + cal.smile_bias)
    )
    return {"calibration": cal, "metrics": metrics, "rows": len(crops)}


def onnx_latency_ms(
    path: str | Path, input_size: int = 48, runs: int = 200, channels: int = 1
) -> float:
    """Median batch-1 latency on one CPU thread (the tiny variant's budget is 0.3 ms)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.zeros((1, channels, input_size, input_size), np.float32)
    for _ in range(20):
        sess.run(None, {"input": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"input": x})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def finish(
    net: nn.Module,
    summary: dict[str, Any],
    *,
    onnx_path: str | Path,
    cache_dir: str | Path,
    report_dir: str | Path = "artifacts/train",
    register: bool = False,
    models_json: str | Path = ASSETS / "models.json",
) -> dict[str, Any]:
    """Calibrate, export, time and record one run; optionally add it to models.json."""
    cfg = summary["config"]
    name = summary["name"]
    cal = calibrate_on_valid(net, cache_dir, cfg["valid_set"])
    calibration = cal["calibration"]
    size, channels = summary.get("input_size", 48), summary.get("channels", 1)
    framing = {k: summary[k] for k in ("iod_fraction", "eye_y") if k in summary}
    exported = export_onnx(
        net, onnx_path, name=name, calibration=calibration, input_size=size, framing=framing
    )
    report = {
        **summary,
        "temperature": calibration.temperature,
        "smile_bias": calibration.smile_bias,
        "valid_metrics_final": cal["metrics"],
        "onnx": {"file": str(onnx_path), **exported},
        "latency_ms_b1_1thread": onnx_latency_ms(onnx_path, size, channels=channels),
    }
    report_path = write_json(Path(report_dir) / f"{name}.json", to_jsonable(report, default=str))
    log.info(
        "%s: T=%.3f b=%.3f, report %s",
        name,
        calibration.temperature,
        calibration.smile_bias,
        report_path,
    )
    if register:
        register_model(report, models_json)
    return report


def write_json(path: Path, doc: Any) -> Path:
    """Write a run report or models.json (indented, newline-terminated) through a temporary
    file: an interrupted write leaves the previous file whole, never half a JSON."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")
    return path


def models_entry(report: dict[str, Any]) -> dict[str, Any]:
    """The models.json entry of one exported run (test metrics are added by evaluation)."""
    cfg = report["config"]
    onnx_info = report["onnx"]
    return {
        "name": report["name"],
        "file": Path(onnx_info["file"]).name,
        "task": "smile_emotion",
        "sha256": onnx_info["sha256"],
        "bytes": onnx_info["bytes"],
        "params": report["params"],
        "arch": NETS[cfg["net"]].arch,
        "net": cfg["net"],
        "input_size": report.get("input_size", 48),
        "channels": report.get("channels", 1),
        "opset": OPSET,
        "temperature": round(float(report["temperature"]), 6),
        "smile_bias": round(float(report.get("smile_bias", 0.0)), 6),
        "training": {
            "data": [TRAIN_DATA.get(s, s) for s in cfg["train_sets"]],
            "rows": report.get("train_rows"),
            "epochs_run": report["epochs_run"],
            "best_epoch": report["best_epoch"],
            "stopped": report["stopped"],
            "seconds": report["train_seconds"],
            "device": report["device"],
            "seed": cfg["seed"],
            "torch": report.get("torch"),
            **({"init": init_entry(cfg["init"], report)} if cfg.get("init") else {}),
        },
        "metrics": {"valid": _rounded(report["valid_metrics_final"])},
        "latency": {"cpu_1thread_batch1_ms": round(report["latency_ms_b1_1thread"], 4)},
    }


def init_entry(spec: str, report: dict[str, Any]) -> str:
    """What models.json says a fine-tuned file started from: a registered name as given,
    with the start file's name and sha256 when the run recorded them.

    Why not ``--init`` as given: a path there (``/tmp/x/start.onnx``) is a fact about
    the training machine, not the model, and would ship inside the wheel; the file's
    name and sha256 identify the start wherever it lies.
    """
    from duchenne.train.warmstart import is_registered_init

    source = report.get("init_source")
    registered = is_registered_init(spec)
    if not source:
        return spec if registered else Path(spec).name
    return f"{spec}: {source}" if registered else source


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 5) for k, v in metrics.items()}


def register_model(
    report: dict[str, Any], models_json: str | Path = ASSETS / "models.json"
) -> None:
    """Insert or replace this run's entry in models.json, keeping other entries.

    An entry for the same file digest keeps keys other tools added (e.g. test metrics);
    a retrained file replaces the entry, since old test numbers would be stale.
    """
    path = Path(models_json)
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    doc.setdefault("models", [])
    entry = models_entry(report)
    for i, old in enumerate(doc["models"]):
        if old.get("name") == entry["name"]:
            if old.get("sha256") == entry["sha256"]:
                metrics = {**old.get("metrics", {}), **entry["metrics"]}
                entry = {**old, **entry, "metrics": metrics}
            doc["models"][i] = entry
            break
    else:
        doc["models"].append(entry)
    doc["models"].sort(key=lambda e: _ladder_rank(e["name"]))
    write_json(path, doc)
    log.info("registered %s in %s", entry["name"], path)


def set_default(name: str, models_json: str | Path = ASSETS / "models.json") -> None:
    """Mark ``name`` as the variant ``Analyzer`` uses when none is asked for."""
    path = Path(models_json)
    doc = json.loads(path.read_text(encoding="utf-8"))
    write_json(path, {"default": name, **{k: v for k, v in doc.items() if k != "default"}})


def _ladder_rank(name: str) -> tuple[int, str]:
    order = list(NETS)
    return (order.index(name) if name in order else len(order), name)
