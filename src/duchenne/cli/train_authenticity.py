"""``duchenne train-authenticity``: posed-vs-spontaneous classifiers on a fold protocol.

Reads labelled smile videos laid out like UvA-NEMO / MMI / SPOS / BBC (a videos folder and
the dataset's fold JSON files), extracts the 225 D-Markers and the mean per-frame feature
vector of every clip once (cached), then trains and tests the D-Marker baseline and the
Hadamard fusion model on every fold and reports per-fold and mean accuracy. ``--save``
writes a model trained on all usable videos, with that report as its provenance.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from duchenne.cli.options import (
    add_analyzer_args,
    config_from_args,
    output_file,
    positive_int,
    positive_number,
    same_file,
)
from duchenne.errors import DuchenneError, OutputError
from duchenne.io.atomic import atomic_write
from duchenne.io.jsonsafe import to_json_text

KINDS = ("dmarkers", "fusion")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-authenticity",
        help="train and cross-validate posed-vs-spontaneous smile classifiers on labelled videos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--videos", type=Path, required=True, help="folder of the smile videos")
    p.add_argument(
        "--folds",
        type=Path,
        required=True,
        help="fold files: a folder of <fold>/train.json + test.json, fold JSON files, or one JSON",
    )
    p.add_argument(
        "--model",
        choices=(*KINDS, "both"),
        default="both",
        help="which classifier(s) to evaluate (default both)",
    )
    p.add_argument(
        "--save",
        type=output_file,
        help="write the better-scoring kind, trained on all videos (JSON)",
    )
    p.add_argument("--report", type=output_file, help="write the per-fold report (JSON)")
    p.add_argument("--cache", type=Path, help="feature cache (.npz) reused across runs")
    p.add_argument(
        "--every", type=positive_int, default=1, help="analyse every N-th frame (default 1)"
    )
    p.add_argument(
        "--l2",
        type=positive_number,
        default=1.0,
        help="L2 strength of the logistic regression (default 1.0)",
    )
    p.add_argument(
        "--proj-dim", type=positive_int, default=64, help="fusion projection dimension (default 64)"
    )
    p.add_argument(
        "--projection",
        choices=("random", "pca"),
        default="random",
        help="fusion projection: seeded random (default) or whitened PCA",
    )
    p.add_argument("--skip-missing", action="store_true", help="go on when videos are missing")
    add_analyzer_args(p, stages=False, limits=False, model_flags=("--smile-model",))
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """0 on success, 1 on a dataset problem (one line on stderr)."""
    try:
        return _run(args)
    except (DuchenneError, ValueError) as exc:
        print(f"duchenne train-authenticity: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from duchenne.analysis import authenticity_data as ad
    from duchenne.analysis.analyzer import Analyzer
    from duchenne.analysis.authenticity_folds import read_folds, resolve_videos
    from duchenne.analysis.video import VideoAnalyzer, VideoOptions

    if not args.verbose:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    protocol = read_folds(args.folds)
    paths = resolve_videos(protocol, args.videos, skip_missing=args.skip_missing)
    _check_outputs(args, list(paths.values()))
    print(f"protocol: {protocol.describe()}; {len(paths)} videos found in {args.videos}")
    analyzer = Analyzer(config_from_args(args))
    options = VideoOptions(episodes="single", collect_features=True)
    video = VideoAnalyzer(analyzer, options)
    extraction = {
        "episodes": "single (each clip = one smile; D-Marker dataset protocol)",
        "every": args.every,
        "models": analyzer.model_names,
        "emotion_prior": analyzer.config.emotion_prior,  # changes the emotion features
        "frame_features": list(video.feature_names),
        "frame_features_source": (
            "per-frame vector [smile, smile_score, 8 emotions, 8 geometry]: the smile model "
            "exposes no embedding output"
            if video.with_smile
            else "per-frame geometry values (no smile model installed)"
        ),
    }
    cache = ad.FeatureCache(args.cache, extraction) if args.cache else None
    table = ad.build_features(
        protocol, paths, video, cache=cache, progress=not args.quiet, every=args.every
    )
    print(
        f"features: {len(table.names)} videos ({int(table.y.sum())} spontaneous, "
        f"{int(len(table.y) - table.y.sum())} posed), {len(table.failed)} without features"
    )
    kinds = KINDS if args.model == "both" else (args.model,)
    clf_args = {"l2": args.l2, "proj_dim": args.proj_dim, "projection": args.projection}
    report = ad.evaluate_protocol(table, protocol, kinds, **clf_args)
    print(report.markdown())
    print(
        f"\nAccuracy measured on the {len(report.folds)} folds of {protocol.source} "
        "(each model trained on a fold's train list, tested on its test list). It describes "
        "this dataset only; per-frame features: " + extraction["frame_features_source"] + "."
    )
    out = {**report.to_dict(), "extraction": extraction, "classifier": clf_args}
    if args.save is not None:
        kind = max(kinds, key=report.mean)
        clf = ad.train_final(table, kind, **clf_args)
        ad.save_model(clf, args.save, report=report, table=table, extraction=extraction)
        out["saved_model"] = {"path": str(args.save), "kind": kind}
        print(
            f"saved {kind} model trained on all {len(table.names)} videos to {args.save} "
            f"(cross-validated mean accuracy {report.mean(kind):.3f}; use it with "
            "`duchenne video --authenticity-model`)"
        )
    if args.report is not None:
        with atomic_write(args.report, "w") as fh:
            fh.write(to_json_text(out, indent=2) + "\n")
        print(f"report: {args.report}")
    return 0


def _check_outputs(args: argparse.Namespace, videos: list[Path]) -> None:
    """Refuse, before any video is read, outputs that are inputs or one another.

    Why: ``--save``, ``--report`` and ``--cache`` replace their files when written, so
    one naming a fold file or a video destroyed it (after hours of extraction), and two
    naming one file left only the last written.

    Raises:
        OutputError: such a clash, naming both paths.
    """
    folds = args.folds
    inputs = [("--folds", folds)]
    if folds.is_dir():
        inputs += [("--folds", f) for f in sorted(folds.rglob("*.json"))]
    inputs += [("--videos", v) for v in videos]
    outputs = [(f"--{k}", getattr(args, k)) for k in ("save", "report", "cache")]
    outputs = [(flag, path) for flag, path in outputs if path is not None]
    for i, (flag, path) in enumerate(outputs):
        for what, src in inputs:
            if same_file(path, src):
                msg = f"{flag} names an input ({what} {src}), which it would replace"
                raise OutputError(errno.EEXIST, msg, str(path))
        for other, other_path in outputs[i + 1 :]:
            if same_file(path, other_path) or path.resolve() == other_path.resolve():
                msg = f"{flag} and {other} name one file; give each its own"
                raise OutputError(errno.EEXIST, msg, str(path))
