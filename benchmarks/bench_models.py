"""Smile/emotion model ladder: file size, parameters, latency and throughput.

Per shipped variant: ONNX file size, parameter count (from the ONNX initializers),
latency per 48x48 crop at batch 1 on one thread (median and p90), and throughput at
batch 64 (crops/s, one thread and default threads).

    python benchmarks/bench_models.py [--runs 300] [--readme]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_note, markdown_table, time_calls, update_readme  # noqa: E402
from duchenne.models.registry import default_smile_model, get_model_cfg, list_models  # noqa: E402
from duchenne.models.smile import SmileModel  # noqa: E402


def count_params(path: Path) -> int:
    """Parameters of the shipped graph = elements of all float initializers (BatchNorm folded
    into the convolutions at export, so fewer than the training count in models.json)."""
    import onnx

    model = onnx.load(str(path))
    return int(
        sum(
            np.prod(t.dims)
            for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.FLOAT
        )
    )


def measure(name: str, runs: int) -> dict[str, object]:
    """Size, parameters, batch-1 latency (1 thread) and batch-64 throughput of one variant."""
    cfg = get_model_cfg(name)
    single = SmileModel(name, threads=1)
    s = single.input_size
    rng = np.random.default_rng(0)
    one = single.preprocess(rng.integers(0, 255, (1, s, s), dtype=np.uint8))
    batch = single.preprocess(rng.integers(0, 255, (64, s, s), dtype=np.uint8))
    lat = time_calls(lambda: single.model(one), runs, warmup=20)
    thr1 = time_calls(lambda: single.model(batch), max(10, runs // 10), warmup=3)
    default = SmileModel(name)
    thr_all = time_calls(lambda: default.model(batch), max(10, runs // 10), warmup=3)
    return {
        "model": name + (" (default)" if name == default_smile_model() else ""),
        "arch": cfg.arch,
        "KB": round(cfg.path.stat().st_size / 1024, 1),
        "params (BN folded)": count_params(cfg.path),
        "input": f"{s}x{s} gray",
        "batch-1 median ms (1 thread)": float(np.median(lat)),
        "batch-1 p90 ms": float(np.percentile(lat, 90)),
        "batch-64 crops/s (1 thread)": round(64_000 / float(np.median(thr1))),
        "batch-64 crops/s (default threads)": round(64_000 / float(np.median(thr_all))),
    }


PARAMS_NOTE = (
    "`params (BN folded)` counts the shipped graph's weights (BatchNorm folded into the "
    "convolutions at export); `duchenne models` gives the training-time count, BatchNorm "
    "scales and shifts included, hence a slightly larger number."
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    names = list_models("smile_*", task="smile_emotion")
    if not names:
        raise SystemExit("no smile models are registered (src/duchenne/models/assets/models.json)")
    rows = [measure(n, args.runs) for n in names]
    table = markdown_table(list(rows[0]), [list(r.values()) for r in rows])
    text = f"{table}\n\n{PARAMS_NOTE} " + machine_note().format(script="benchmarks/bench_models.py")
    print(text)
    if args.readme:
        update_readme("bench-models", text)
        record_latency(rows)


def record_latency(rows: list[dict[str, object]]) -> None:
    """Store each variant's measured batch-1 latency in models.json (shown by `duchenne models`)."""
    import json

    from duchenne.io.sinks import atomic_write
    from duchenne.models.registry import ASSETS

    path = ASSETS / "models.json"
    doc = json.loads(path.read_text())
    measured = {str(r["model"]).split(" ")[0]: r["batch-1 median ms (1 thread)"] for r in rows}
    for entry in doc["models"]:
        if entry["name"] in measured:
            entry["latency"] = {
                "cpu_1thread_batch1_ms": round(float(measured[entry["name"]]), 3),
                "by": "benchmarks/bench_models.py",
            }
    with atomic_write(path, mode="w") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
