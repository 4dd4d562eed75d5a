#!/usr/bin/env python
"""Reproduce the shipped smile/emotion ladder end to end (or one stage of it).

Stages (each a thin wrapper over ``duchenne train ...``):

    crops     build cache/crops/*.npz with the face pipeline (2 processes)
    pack      WebP-packed train/valid caches in cache/pack (to carry to a GPU machine)
    parallel  train several nets at once on one device, checkpoints only (the GPU call)
    export    calibrate + export + register checkpoints (local, CPU)
    all       crops (if missing) -> train every net in turn -> export -> register

Examples:
    # everything on this machine (CPU works, slowly; add --device cuda on a GPU box)
    python scripts/train_ladder.py all --device cpu --threads 2 --default smile_m
    # what produced the shipped files (one H100 call, 5 runs in parallel, ~7 min):
    python scripts/train_ladder.py crops && python scripts/train_ladder.py pack
    #   on the GPU machine, with cache/pack carried over:
    python3 scripts/train_ladder.py parallel --isolated --cache-dir cache/pack --device cuda \
        --time-budget 420 --patience 15 \
        --jobs smile_n smile_s smile_m smile_l smile_l::fer --out /tmp/run
    #   back here: calibrate on FER+ Valid, export ONNX, write models.json
    python scripts/train_ladder.py export /tmp/run/*.pt --default smile_m
    # v2 (FER+ + SMILEsmileD + MTFL): the ladder, leave-one-dataset-out and a sweep in one call
    python scripts/train_ladder.py crops && python scripts/train_ladder.py pack --quality 85
    python3 scripts/train_ladder.py parallel --isolated --cache-dir cache/pack --device cuda \
        --time-budget 400 --jobs smile_s smile_l \
        'smile_s@run-name=smile_s_lodo_mtfl@train-sets=ferplus_train+smilesmiled_train' --out /tmp/run
    # a longer GPU run (fixed 120-epoch cosine schedule per net, no time cut):
    python3 scripts/train_ladder.py parallel --isolated --cache-dir cache/pack --device cuda \
        --jobs smile_m:120 smile_l:120 --out /tmp/run
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ladder() -> tuple[str, ...]:
    """``duchenne.train.LADDER`` (the one list of the ladder), read without running
    ``duchenne/__init__`` (so a GPU machine with only torch can run this script)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_duchenne_train", ROOT / "src" / "duchenne" / "train" / "__init__.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.LADDER)


LADDER = _ladder()
log = logging.getLogger("train_ladder")


# Imports duchenne.train without running duchenne/__init__ (the inference stack): a GPU
# machine then needs only torch, numpy and opencv to train.
_ISOLATED = (
    "import sys, types; m = types.ModuleType('duchenne'); m.__path__ = [sys.argv.pop(1)]; "
    "sys.modules['duchenne'] = m; from duchenne.train.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _cli(*args: str, isolated: bool = False) -> list[str]:
    if isolated:
        return [sys.executable, "-c", _ISOLATED, str(ROOT / "src" / "duchenne"), "train", *args]
    return [sys.executable, "-m", "duchenne.train.cli", "train", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _run(cmd: list[str]) -> None:
    log.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True, env=_env(), cwd=ROOT)


def parse_job(spec: str) -> tuple[str, int | None, bool]:
    """``net[:epochs[:fer]]`` -> (net, epochs, fer_only) (any ``@flag=value`` suffix ignored)."""
    parts = spec.split("@")[0].split(":")
    epochs = int(parts[1]) if len(parts) > 1 and parts[1] else None
    return parts[0], epochs, len(parts) > 2 and parts[2] == "fer"


def job_flags(spec: str) -> list[str]:
    """Extra ``train fit`` flags of a job: ``smile_s@run-name=x@emotion-balance=1`` ->
    ``["--run-name", "x", "--emotion-balance", "1"]`` (a sweep or leave-one-out run)."""
    flags = []
    for item in spec.split("@")[1:]:
        key, _, value = item.partition("=")
        flags += [f"--{key}", value] if value else [f"--{key}"]
    return flags


def job_name(spec: str) -> str:
    """The name ``train fit`` gives the job's files (``TrainConfig.name``: one rule)."""
    from duchenne.train.loop import ALL_SOURCES, FER_ONLY, TrainConfig

    net, _, fer = parse_job(spec)
    flags = job_flags(spec)
    if "--run-name" in flags:
        return flags[flags.index("--run-name") + 1]
    sets = FER_ONLY if fer else ALL_SOURCES
    if "--train-sets" in flags:
        sets = tuple(flags[flags.index("--train-sets") + 1].split("+"))
    limit = int(flags[flags.index("--limit") + 1]) if "--limit" in flags else None
    return TrainConfig(net=net, train_sets=sets, limit=limit).name


def run_parallel(args: argparse.Namespace) -> int:
    """One training process per job on the same device; logs tarred into ``out``."""
    out = Path(args.out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for spec in args.jobs:
        net, epochs, fer = parse_job(spec)
        cmd = _cli("fit", "--net", net, "--no-export", isolated=args.isolated)
        cmd += ["--device", args.device, "--cache-dir", args.cache_dir]
        cmd += ["--out", str(out), "--seed", str(args.seed)]
        cmd += ["--epochs", str(epochs)] if epochs is not None else []
        cmd += ["--fer-only"] if fer else []
        cmd += ["--time-budget", str(args.time_budget)] if args.time_budget else []
        cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
        cmd += ["--patience", str(args.patience)] if args.patience else []
        cmd += job_flags(spec)
        name = job_name(spec)
        fh = (logs / f"{name}.log").open("w")
        log.info("start %s: %s", name, " ".join(cmd))
        procs.append(
            (
                name,
                subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT),
                fh,
            )
        )
    failed = 0
    for name, proc, fh in procs:
        rc = proc.wait()
        fh.close()
        failed += rc != 0
        log.info("%s finished rc=%d", name, rc)
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for path in sorted(out.glob("*.json")) + sorted(logs.glob("*.log")):
            tar.add(path, arcname=path.name)
    return 1 if failed else 0


def run_all(args: argparse.Namespace) -> int:
    cache = Path(args.cache_dir)
    needed = [
        "ferplus_train",
        "ferplus_valid",
        "ferplus_test",
        "smilesmiled_train",
        "smilesmiled_test",
        "mtfl_train",
        "mtfl_calib",
        "mtfl_valid",
    ]
    if not all((cache / f"{n}.npz").is_file() for n in needed):
        _run(
            _cli(
                "crops",
                "--cache-dir",
                str(cache),
                "--data-root",
                args.data_root,
                "--processes",
                "2",
            )
        )
    common = [
        "--cache-dir",
        str(cache),
        "--device",
        args.device,
        "--seed",
        str(args.seed),
        "--out",
        args.out,
    ]
    common += ["--threads", str(args.threads)] if args.threads else []
    for spec in args.jobs or [*LADDER, "smile_l::fer"]:
        net, epochs, fer = parse_job(spec)
        cmd = _cli("fit", "--net", net, *common)
        cmd += ["--epochs", str(epochs)] if epochs is not None else []
        cmd += ["--fer-only"] if fer else ["--register"]
        _run(cmd)
    if args.default:
        _run(
            _cli(
                "export",
                *sorted(str(p) for p in Path(args.out).glob("*.pt")),
                "--cache-dir",
                str(cache),
                "--out",
                args.out,
                "--register",
                "--default",
                args.default,
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("crops")
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--cache-dir", default="cache/crops")
    p = sub.add_parser("pack")
    p.add_argument("--cache-dir", default="cache/crops")
    p.add_argument("--out", default="cache/pack")
    p.add_argument("--quality", default="100")
    p = sub.add_parser("parallel")
    p.add_argument(
        "--jobs",
        nargs="+",
        required=True,
        help="net[:epochs[:fer]][@flag=value...]; epochs 0 = auto; flags go to `train fit`",
    )
    p.add_argument("--cache-dir", default="cache/pack")
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (epochs)")
    p.add_argument("--out", required=True)
    p.add_argument("--isolated", action="store_true", help="skip duchenne/__init__ (GPU box)")
    p = sub.add_parser("export")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--cache-dir", default="cache/crops")
    p.add_argument("--out", default="artifacts/train")
    p.add_argument("--default", default=None)
    p = sub.add_parser("all")
    p.add_argument(
        "--jobs",
        nargs="*",
        default=None,
        help="net[:epochs[:fer]] (default: ladder + smile_l FER+-only)",
    )
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--cache-dir", default="cache/crops")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="artifacts/train")
    p.add_argument("--default", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    if args.stage == "crops":
        _run(_cli("crops", "--cache-dir", args.cache_dir, "--data-root", args.data_root))
        rc = 0
    elif args.stage == "pack":
        _run(
            _cli(
                "pack", "--cache-dir", args.cache_dir, "--out", args.out, "--quality", args.quality
            )
        )
        rc = 0
    elif args.stage == "parallel":
        rc = run_parallel(args)
    elif args.stage == "export":
        extra = ["--default", args.default] if args.default else []
        _run(
            _cli(
                "export",
                *args.checkpoints,
                "--cache-dir",
                args.cache_dir,
                "--out",
                args.out,
                "--register",
                *extra,
            )
        )
        rc = 0
    else:
        rc = run_all(args)
    log.info("done in %.0fs", time.perf_counter() - start)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
