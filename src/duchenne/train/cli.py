"""``duchenne train ...``: build crops, train, export and register the smile ladder.

The main CLI wires ``duchenne.train.arguments.add_train_parser`` (the flags) and
``run_train`` (the handlers here) together. Subcommands:

    crops    build cache/crops/<dataset>_<split>.npz with the face pipeline (--tune: canvas search)
    pack     write compact (WebP) copies of caches, to carry them to a GPU machine
    teach    write shipped models' outputs into caches (soft targets for --distill-weight)
    fit      train one net; by default also calibrate, export and write the report
    export   calibrate + export + report (+ register) from a checkpoint
    ladder   fit + export every ladder variant (and the FER+-only one) in turn

torch is imported only inside the subcommands that need it, so ``duchenne --help``
works without the ``train`` extra.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from duchenne.errors import run_reporting_failure
from duchenne.train import LADDER
from duchenne.train.arguments import add_train_parser
from duchenne.train.options import (
    crop_jobs,
    fit_usage_error,
    full_caches_in_the_way,
    missing_caches,
    parse_oversample,
)

log = logging.getLogger(__name__)


def run_train(args: argparse.Namespace) -> int:
    """Run the parsed ``train`` subcommand; returns the process exit status."""
    handlers = {
        "crops": _run_crops,
        "pack": _run_pack,
        "teach": _run_teach,
        "fit": _run_fit,
        "export": _run_export,
        "ladder": _run_ladder,
    }
    return handlers[args.train_command](args)


# ----------------------------------------------------------------- crops / pack


def _run_crops(args: argparse.Namespace) -> int:
    from duchenne.train import crops

    try:
        jobs = crop_jobs(args.datasets, args.splits, crops.DATASET_SPLITS)
    except ValueError as exc:  # a usage error: nothing was built
        return _usage_error("crops", str(exc))
    if args.mode == "resize" and args.framing != "face" and not args.recut_from:
        # resize crops are the whole image: no eyes to frame by, yet the cache (and the
        # model trained on it) would record the framing and the Analyzer cut that
        return _usage_error("crops", "--framing needs --mode pipeline (resize has no eyes)")
    if args.recut_from and Path(args.recut_from).resolve() == Path(args.cache_dir).resolve():
        return _usage_error("crops", "--recut-from needs another --cache-dir to write into")
    if args.recut_from and args.limit:  # a re-cut keeps its source's rows: all of them
        return _usage_error("crops", "--limit does not apply to --recut-from (it keeps every row)")
    if args.recut_from and (problem := missing_caches(args.recut_from, _cache_names(jobs))):
        return _usage_error("crops", problem)
    if args.limit and (
        problem := full_caches_in_the_way(args.cache_dir, _cache_names(jobs), args.limit)
    ):
        return _usage_error("crops", problem)
    if args.tune:
        every = crop_jobs(args.datasets, None, crops.DATASET_SPLITS)  # tunes on the first split
        return _run_tune(args, list(dict.fromkeys(d for d, _ in every)))
    fmt = crops.CropFormat.named(args.crop_size, args.colour, args.framing)
    metas = [_one_cache(args, dataset, split, fmt) for dataset, split in jobs]
    print(crops.failure_table(metas))
    return 0


def _one_cache(args: argparse.Namespace, dataset: str, split: str, fmt: Any) -> dict[str, Any]:
    """Build one crops cache, or re-cut it from ``--recut-from``'s stored eyes."""
    from duchenne.train import crops

    if args.recut_from:
        return crops.recut_cache(
            _cache_names([(dataset, split)])[0],
            source_dir=args.recut_from,
            cache_dir=args.cache_dir,
            data_root=args.data_root,
            fmt=fmt,
        )
    return crops.build_cache(
        dataset,
        split,
        data_root=args.data_root,
        cache_dir=args.cache_dir,
        mode=args.mode,
        processes=args.processes,
        limit=args.limit,
        fmt=fmt,
    )


def _cache_names(jobs: Sequence[tuple[str, str]]) -> list[str]:
    """The cache names (``ferplus_train``) of ``(dataset, split)`` jobs."""
    return [f"{dataset}_{split.lower()}" for dataset, split in jobs]


def _run_tune(args: argparse.Namespace, datasets: list[str]) -> int:
    import numpy as np

    from duchenne.train import crops

    grid = [
        crops.CanvasConfig(upscale=u, border=b, border_mode=m, detector=d)
        for d in ("short", "full")
        for m in ("replicate", "constant")
        for u in (96, 128, 160)
        for b in (0, u // 4, u // 2)
    ]
    for dataset in datasets:
        split = crops.DATASET_SPLITS[dataset][0]
        samples = crops.read_split(dataset, split, args.data_root)
        pick = np.random.default_rng(0).permutation(len(samples))[: args.limit or 300]
        rows = crops.tune_canvas([samples[i].path for i in pick], grid, processes=args.processes)
        rows.sort(key=lambda r: -r["detection_rate"])
        print(f"{dataset} ({len(pick)} images of {split})")
        for r in rows:
            print(
                f"  {r['detector']:<5} {r['border_mode']:<9} up={r['upscale']:<4} border={r['border']:<4}"
                f" detected {100 * r['detection_rate']:5.1f}%  {r['seconds']:.1f}s"
            )
    return 0


def _run_pack(args: argparse.Namespace) -> int:
    from duchenne.train.data import cache_extras, cache_path, load_cache, save_cache

    if problem := missing_caches(args.cache_dir, args.sets):
        return _usage_error("pack", problem)
    if Path(args.out).resolve() == Path(args.cache_dir).resolve():
        # the lossy WebP copy replaced the raw cache it was made from
        return _usage_error("pack", "--out needs another folder than --cache-dir")
    total = 0
    for name in args.sets:
        src = cache_path(args.cache_dir, name)
        dst = save_cache(
            cache_path(args.out, name),
            load_cache(src),
            pack_quality=args.quality,
            extra=cache_extras(src),
        )
        total += dst.stat().st_size
        print(f"{dst}: {dst.stat().st_size / 2**20:.1f} MiB")
    print(f"total {total / 2**20:.1f} MiB")
    return 0


def _run_teach(args: argparse.Namespace) -> int:
    from duchenne.train.data import set_names
    from duchenne.train.teach import teach_caches

    if problem := missing_caches(args.cache_dir, set_names(args.sets)):
        return _usage_error("teach", problem)
    rows = teach_caches(args.cache_dir, set_names(args.sets), args.teacher, threads=args.threads)
    for r in rows:
        print(
            f"{r['cache']}: {r['rows']} rows taught by {'+'.join(r['teachers'])};"
            f" mean smile {r['mean_smile']:.3f}, mean emotion {r['mean_emotion']}"
        )
    return 0


# ----------------------------------------------------------------- fit / export


def _config(args: argparse.Namespace, net: str, fer_only: bool) -> Any:
    from duchenne.train.data import set_names
    from duchenne.train.loop import ALL_SOURCES, FER_ONLY, TrainConfig

    sets = set_names(args.train_sets) if args.train_sets else ALL_SOURCES
    cfg = TrainConfig(
        net=net,
        cache_dir=args.cache_dir,
        train_sets=FER_ONLY if fer_only else tuple(sets),
        run_name=args.run_name,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        time_budget_s=args.time_budget,
        limit=args.limit,
        init_resize=args.init_resize,
    )
    if args.oversample is not None:
        cfg.oversample = parse_oversample(args.oversample)
    if args.augment_skip:
        cfg.augment_skip = tuple(set_names(args.augment_skip))
    keys = ("epochs", "batch_size", "lr", "patience", "valid_set", "emotion_balance")
    for key in (*keys, "warmup_epochs", "ema_decay", "distill_weight", "init"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    return cfg


def _usage_error(command: str, message: str) -> int:
    """Print a usage error on one line as argparse would; exit status 2."""
    print(f"duchenne train {command}: {message}", file=sys.stderr)
    return 2


def _onnx_path(args: argparse.Namespace, name: str, fer_only: bool) -> Path:
    from duchenne.train.ladder import ASSETS

    if args.onnx_dir:
        return Path(args.onnx_dir) / f"{name}.onnx"
    return (Path("artifacts/models") if fer_only else ASSETS) / f"{name}.onnx"


def _side_run(config: dict[str, Any]) -> bool:
    """A run that is not the shipped recipe (FER+ only, another mix, a named experiment, a
    ``--limit`` smoke run): its ONNX goes to artifacts/models and it is never registered
    (a 64-row smoke run of the shipped mix used to replace the package's ONNX file)."""
    from duchenne.train.loop import ALL_SOURCES

    if config.get("limit") is not None:
        return True
    return tuple(config["train_sets"]) != ALL_SOURCES or bool(config.get("run_name"))


def _fit_one(args: argparse.Namespace, net: str, fer_only: bool) -> dict[str, Any]:
    from duchenne.train import ladder, loop

    cfg = _config(args, net, fer_only)
    fer_only = _side_run(asdict(cfg))
    try:
        result = loop.train(cfg)
    except loop.TrainingInterrupted as stop:
        # Ctrl-C: keep the best epoch so far as --no-export would, then exit 130 as before
        _save_run(args, stop.result, with_summary=True)
        raise
    summary = _save_run(args, result, with_summary=args.no_export)
    if args.no_export:
        return summary
    return ladder.finish(
        result.net,
        summary,
        onnx_path=_onnx_path(args, cfg.name, fer_only),
        cache_dir=args.cache_dir,
        report_dir=args.out,
        register=args.register and not fer_only,
    )


def _save_run(args: argparse.Namespace, result: Any, *, with_summary: bool) -> dict[str, Any]:
    """Write ``<out>/<name>.pt`` and, where no export will write the report, the summary
    ``<out>/<name>.json`` (both atomically); returns the summary."""
    from duchenne.train import ladder, loop

    ckpt = loop.save_checkpoint(result, Path(args.out) / f"{result.config.name}.pt")
    summary = loop.run_summary(result)
    if with_summary:
        ladder.write_json(Path(args.out) / f"{result.config.name}.json", summary)
    log.info("checkpoint %s (stopped: %s)", ckpt, result.stopped)
    return summary


def _run_fit(args: argparse.Namespace) -> int:
    if problem := fit_usage_error(args):
        return _usage_error("fit", problem)
    print(_summary_table([_fit_one(args, args.net, args.fer_only)]))
    return 0


def _run_ladder(args: argparse.Namespace) -> int:
    from duchenne.train import ladder

    if problem := fit_usage_error(args):
        return _usage_error("ladder", problem)
    reports = [_fit_one(args, net, args.fer_only) for net in (args.nets or LADDER)]
    if args.fer_only_net:
        reports.append(_fit_one(args, args.fer_only_net, True))
    if args.default and args.register:
        ladder.set_default(args.default)
    print(_summary_table(reports))
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from duchenne.train import ladder, loop

    if args.ship_as and len(args.checkpoints) != 1:
        return _usage_error("export", "--ship-as takes one checkpoint")
    reports = []
    for path in args.checkpoints:
        net, summary = loop.load_checkpoint(path)
        if args.ship_as:
            summary = _shipped_name(summary, args.ship_as)
        fer_only = _side_run(summary["config"])
        reports.append(
            ladder.finish(
                net,
                summary,
                onnx_path=_onnx_path(args, summary["name"], fer_only),
                cache_dir=args.cache_dir,
                report_dir=args.out,
                register=args.register and not fer_only,
            )
        )
    if args.default and args.register:
        ladder.set_default(args.default)
    print(_summary_table(reports))
    return 0


def _shipped_name(summary: dict[str, Any], name: str) -> dict[str, Any]:
    """The summary of a named run renamed to the ladder variant ``name``: only a run of
    that net on the shipped training mix may take a shipped name."""
    from duchenne.train.loop import ALL_SOURCES

    config = summary["config"]
    if config["net"] != name or tuple(config["train_sets"]) != ALL_SOURCES:
        raise SystemExit(
            f"--ship-as {name}: the run trained {config['net']} on"
            f" {'+'.join(config['train_sets'])}, not {name} on the shipped mix"
        )
    if config.get("limit") is not None:
        raise SystemExit(f"--ship-as {name}: the run trained on --limit {config['limit']} rows")
    return {**summary, "name": name, "config": {**config, "run_name": None}}


def _summary_table(reports: list[dict[str, Any]]) -> str:
    head = f"{'name':<18} {'params':>9} {'KB':>7} {'ep':>4} {'best':>4} {'acc8':>6} {'f1':>6} {'auc':>6} {'rho':>6} {'T':>5} {'ms':>6}"
    lines = [head]
    for r in reports:
        m = r.get("valid_metrics_final", r.get("valid_metrics", {}))
        kb = r.get("onnx", {}).get("bytes", 0) / 1024
        lines.append(
            f"{r['name']:<18} {r['params']:>9} {kb:>7.0f} {r['epochs_run']:>4} {r['best_epoch']:>4}"
            f" {m.get('emotion_acc', float('nan')):>6.4f} {m.get('smile_f1', float('nan')):>6.4f}"
            f" {m.get('smile_auc', float('nan')):>6.4f} {m.get('intensity_spearman', float('nan')):>6.4f}"
            f" {r.get('temperature', float('nan')):>5.2f} {r.get('latency_ms_b1_1thread', float('nan')):>6.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m duchenne.train.cli train ...``) for machines that have
    torch but not the inference stack (``scripts/train_ladder.py --isolated``)."""
    parser = argparse.ArgumentParser(prog="duchenne")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
    )
    return run_reporting_failure("train", run_train, args, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
