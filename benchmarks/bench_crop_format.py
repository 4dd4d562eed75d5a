"""Does a larger or colour crop help on real photos? One net, one recipe, several crop formats.

Issue 11 asks to decide from measurements whether the larger variants should see colour
and/or a larger crop than the shipped 48 px grey. This trains the same net with the same
seeded recipe on MTFL's colour photos (``mtfl_train``, selection on ``mtfl_calib``), once
per crop format, and compares the formats on MTFL ``valid`` (never used for training or
selection):

* ROC-AUC, and its paired-bootstrap difference to the first arm (95% interval);
* accuracy at 0.5 after Platt scaling fitted on ``calib`` (what shipping would do);
* seconds per training epoch on this machine and the ONNX batch-1 latency on one thread.

Each arm is a crops cache directory made by ``duchenne train crops --datasets mtfl
--crop-size S [--colour] [--framing F] --cache-dir DIR`` (or ``--recut-from`` another
arm's caches); the crops of all arms come from the same detected eyes, so only the format
differs. The recipe is short (``--epochs``, default
15, from scratch, MTFL only) so that every arm fits a 2-core CPU: it ranks the formats, it
does not reproduce the shipped models' accuracy (they also train on FER+ and
SMILEsmileD). Checkpoints in ``--out`` are reused when their recipe matches (delete one
to retrain it).

    python benchmarks/bench_crop_format.py --arm 48-grey=cache/crops \\
        --arm 64-grey=cache/g64 --arm 48-rgb=cache/c48 --arm 64-rgb=cache/c64 \\
        --out artifacts/crop_format [--card]
    python benchmarks/bench_crop_format.py --arm face=cache/crops \\
        --arm tight=cache/tight --arm lower=cache/lower --out artifacts/crop_format \\
        --card --card-block card-framing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, update_readme  # noqa: E402
from duchenne.evaluation.runner import MIN_BOOT  # noqa: E402
from duchenne.io.argtypes import int_range  # noqa: E402

CARD = ROOT / "MODEL_CARD.md"
TRAIN, SELECT, TEST = "mtfl_train", "mtfl_calib", "mtfl_valid"


def recipe(args: argparse.Namespace, name: str, cache_dir: str) -> Any:
    """The one training recipe every arm shares (only the cache differs)."""
    from duchenne.train.loop import TrainConfig

    return TrainConfig(
        net=args.net,
        cache_dir=cache_dir,
        train_sets=(TRAIN,),
        valid_set=SELECT,
        oversample=((TRAIN, 1),),
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
        device="cpu",
        run_name=f"format_{name}",
    )


def same_recipe(saved: dict[str, Any], cfg: Any) -> bool:
    """Whether a saved run used ``cfg``'s recipe (paths, names and threads aside)."""
    ignore = {"cache_dir", "run_name", "threads", "device"}
    want = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ignore}
    got = {k: v for k, v in saved.items() if k not in ignore}
    return json.loads(json.dumps(want)) == json.loads(json.dumps(got))  # tuples as lists


def trained_net(args: argparse.Namespace, name: str, cache_dir: str) -> tuple[Any, dict]:
    """The arm's checkpoint: reused when its recipe matches, else trained now."""
    from duchenne.train import loop

    cfg = recipe(args, name, cache_dir)
    path = Path(args.out) / f"{cfg.name}.pt"
    if path.is_file():
        net, summary = loop.load_checkpoint(path)
        if same_recipe(summary["config"], cfg):
            return net, summary
        print(f"{path}: another recipe, retraining", file=sys.stderr)
    result = loop.train(cfg)
    loop.save_checkpoint(result, path)
    return loop.load_checkpoint(path)


def measure(net: Any, summary: dict[str, Any], cache_dir: str) -> dict[str, Any]:
    """Valid-split scores of one arm, with the Platt map fitted on the selection split."""
    from duchenne.evaluation.metrics import expected_calibration_error, fit_platt, roc_auc, sigmoid
    from duchenne.models.smile import SmileModel
    from duchenne.train.data import load_sets
    from duchenne.train.export import export_onnx
    from duchenne.train.ladder import onnx_latency_ms

    calib, valid = load_sets(cache_dir, SELECT), load_sets(cache_dir, TEST)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "arm.onnx"
        export_onnx(net, onnx, name="arm", input_size=valid.crop_size, framing=valid.framing)
        latency = onnx_latency_ms(onnx, valid.crop_size, channels=valid.channels)
        model = SmileModel(onnx)  # flip-averaged raw logits, exactly as inference computes them
        calib_logit = model.raw_outputs(calib.images)["smile_logit"]
        logit = model.raw_outputs(valid.images)["smile_logit"]
    temperature, bias = fit_platt(calib.label, calib_logit)
    prob = sigmoid(logit / temperature + bias)
    history = summary["history"]
    return {
        "crop": f"{valid.crop_size} px {'RGB' if valid.channels == 3 else 'grey'}, "
        f"{framing_name(valid.framing)}",
        "label": valid.label,
        "logit": logit,
        "auc": roc_auc(valid.label, logit),
        "accuracy": float(np.mean((prob >= 0.5) == (valid.label > 0.5))),
        "ece": expected_calibration_error(valid.label.astype(int), prob),
        "epoch_s": float(np.median([h["seconds"] for h in history])),
        "best_epoch": summary["best_epoch"],
        "latency_ms": latency,
    }


def framing_name(framing: dict[str, float]) -> str:
    """The ``FRAMINGS`` name of a cache's framing (its numbers when it has none)."""
    from duchenne.analysis.crop_format import FRAMINGS

    values = (framing["iod_fraction"], framing["eye_y"])
    named = [name for name, v in FRAMINGS.items() if np.allclose(v, values)]
    return f"{named[0]} framing" if named else f"framing {values}"


def table(arms: list[tuple[str, dict[str, Any]]], n_boot: int) -> str:
    from duchenne.evaluation.metrics import paired_bootstrap_auc

    base_name, base = arms[0]
    rows = []
    for name, m in arms:
        if name == base_name:
            diff = "(reference)"
        else:
            d = paired_bootstrap_auc(m["label"], m["logit"], base["logit"], n_boot=n_boot)
            diff = f"{d['value']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]"
        rows.append(
            [
                name,
                m["crop"],
                f"{m['auc']:.4f}",
                diff,
                f"{m['accuracy']:.4f}",
                f"{m['ece']:.3f}",
                m["best_epoch"],
                f"{m['epoch_s']:.0f}",
                f"{m['latency_ms']:.3f}",
            ]
        )
    header = [
        "arm",
        "crop",
        "MTFL valid ROC-AUC",
        f"AUC vs {base_name} (95% CI)",
        "accuracy at 0.5",
        "ECE",
        "best epoch",
        "s / epoch",
        "ms / crop (1 thread)",
    ]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--arm", action="append", required=True, help="NAME=CACHE_DIR; the first is the reference"
    )
    parser.add_argument("--net", default="smile_s")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--n-boot",
        type=int_range(MIN_BOOT),
        default=1000,
        help=f"bootstrap resamples (at least {MIN_BOOT}, as duchenne evaluate; default 1000)",
    )
    parser.add_argument("--out", default="artifacts/crop_format", help="checkpoints")
    parser.add_argument("--card", action="store_true", help="write the table into MODEL_CARD.md")
    parser.add_argument(
        "--card-block",
        default="card-format",
        help="the card's block to write (card-format: size and colour; card-framing: framing)",
    )
    args = parser.parse_args(argv)
    arms = []
    for spec in args.arm:
        name, _, cache_dir = spec.partition("=")
        net, summary = trained_net(args, name, cache_dir)
        arms.append((name, measure(net, summary, cache_dir)))
        print(f"{name}: AUC {arms[-1][1]['auc']:.4f}", file=sys.stderr)
    note = (
        f"`{args.net}` trained {args.epochs} epochs from scratch on MTFL train only (seed "
        f"{args.seed}), selected and Platt-scaled on MTFL calib, scored on MTFL valid with "
        "flip averaging; produced by `benchmarks/bench_crop_format.py`."
    )
    text = table(arms, args.n_boot) + "\n\n" + note
    print(text)
    if args.card:
        update_readme(args.card_block, text, readme=CARD)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
