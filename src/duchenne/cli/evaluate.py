"""``duchenne evaluate``: accuracy, F1, ROC-AUC, calibration and score correlation with CIs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from duchenne.cli.options import emotion_prior, output_dir, output_or_stdout, positive_int
from duchenne.evaluation.runner import MIN_BOOT
from duchenne.io.argtypes import int_range
from duchenne.io.jsonsafe import to_json_text
from duchenne.io.sinks import records_to_text, write_records

FORMATS = ("json", "md", "csv")
SUFFIX_FORMATS = {".json": "json", ".csv": "csv", ".md": "md", ".markdown": "md", ".txt": "md"}
"""Report format of an ``--output`` name when ``--format`` is not given."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a smile model on a labelled dataset")
    p.add_argument(
        "--model", required=True, help="model name (see `duchenne models`) or .onnx path"
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="dataset folder or CSV (FER+, SMILEsmileD, MTFL, GENKI-4K, class folders, CSV)",
    )
    p.add_argument(
        "--split",
        default=None,
        help="split: FER+ Train/Valid/Test, SMILEsmileD train/test/all, MTFL "
        "train/calib/valid/all, or a sub-folder (default: every sample of the dataset, "
        "training splits included)",
    )
    p.add_argument(
        "--compare",
        default=None,
        metavar="OTHER",
        help="second model: paired McNemar + bootstrap AUC test",
    )
    p.add_argument(
        "--crops",
        default="auto",
        choices=("auto", "canvas", "photo", "resize"),
        help="how face crops are made: canvas (small crops upscaled onto a canvas, then the "
        "face pipeline, as for training), photo (the Analyzer's most confident face), resize "
        "(the whole image as the crop, no detection); default auto: canvas when the first "
        "image is at most 128 px, else photo",
    )
    p.add_argument(
        "--eyes",
        default="mesh",
        choices=("mesh", "keypoints"),
        help="align crops on Face Mesh eyes (default) or on the detector's eye keypoints "
        "(what `--stages detect,smile` does: no Face Mesh pass)",
    )
    p.add_argument(
        "--emotion-prior",
        type=emotion_prior,
        default="balanced",
        metavar="PRIOR",
        help="class prior of the emotion probabilities: balanced (default), natural or 8 "
        "comma-separated weights (as for `duchenne analyze`)",
    )
    p.add_argument(
        "--format",
        default=None,
        choices=FORMATS,
        help="report format (default: from the --output suffix .json/.csv/.md, else md)",
    )
    p.add_argument(
        "--output",
        "-o",
        type=output_or_stdout,
        help="write the report here (.json, .csv, .md; '-': stdout, the default)",
    )
    p.add_argument(
        "--plots",
        type=output_dir,
        metavar="DIR",
        help="write ROC / reliability / confusion PNGs here",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="only N samples, drawn at random with a fixed seed (quick checks; default: all)",
    )
    p.add_argument(
        "--n-boot",
        type=int_range(MIN_BOOT),
        default=1000,
        help=f"bootstrap resamples for the 95%% CIs (at least {MIN_BOOT}; default 1000)",
    )
    p.add_argument(
        "--processes",
        type=positive_int,
        default=2,
        help="worker processes for the crops (default 2)",
    )
    p.set_defaults(func=run)


def report_format(format: str | None, output: Path | None) -> str:
    """``--format``, else the ``--output`` suffix's format, else Markdown.

    Raises:
        ValueError: an ``--output`` suffix that names no report format.
    """
    if format is not None:
        return format
    if output is None:
        return "md"
    try:
        return SUFFIX_FORMATS[output.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"cannot tell the report format from {output.name!r}; give --format "
            f"({', '.join(FORMATS)}) or a {'/'.join(SUFFIX_FORMATS)} name"
        ) from None


def run(args: argparse.Namespace) -> int:
    from duchenne.evaluation.runner import evaluate, summary_rows

    try:
        fmt = report_format(args.format, args.output)
    except ValueError as exc:  # a usage error: said before the (long) evaluation runs
        print(f"duchenne evaluate: {exc}", file=sys.stderr)
        return 2
    report = evaluate(
        args.model,
        args.data,
        split=args.split,
        compare=args.compare,
        crop_mode=args.crops,
        limit=args.limit,
        n_boot=args.n_boot,
        plots=args.plots,
        processes=args.processes,
        eyes=args.eyes,
        emotion_prior=args.emotion_prior,
    )
    if fmt == "json":
        text = to_json_text(report, indent=2)
    elif fmt == "csv":
        if args.output:
            write_records(summary_rows(report), args.output, format="csv")
            return 0
        text = records_to_text(summary_rows(report), "csv").rstrip()
    else:
        text = markdown(report)
    if args.output:
        from duchenne.io.atomic import atomic_write

        with atomic_write(args.output, mode="w") as fh:
            fh.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


def _fmt(est: dict | None) -> str:
    if not est or est.get("value") is None:
        return "-"
    lo, hi = est["ci"]
    return f"{est['value']:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{est['value']:.3f}"


def _recall_lines(report: dict) -> list[str]:
    """Per-class emotion recall of each model (does a class collapse into another?)."""
    from duchenne.evaluation.metrics import recall_cells

    rows = {n: r["emotion"] for n, r in report["models"].items() if "emotion" in r}
    if not rows:
        return []
    labels = next(iter(rows.values()))["labels"]
    lines = [
        "",
        f"Emotion recall per class (prior: {report.get('emotion_prior', 'balanced')}):",
        "",
        "| model | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for name, emo in rows.items():
        lines.append(f"| {name} | " + " | ".join(recall_cells(emo, labels)) + " |")
    clear = {n: r["emotion_clear"] for n, r in report["models"].items() if "emotion_clear" in r}
    for name, emo in clear.items():
        share = round(100 * emo["min_agreement"])
        cells = recall_cells(emo, labels, support=True)
        lines.append(
            f"| {name}, clear faces (>= {share}% of votes agree) | " + " | ".join(cells) + " |"
        )
    return lines


def markdown(report: dict) -> str:
    """Headline table (value [95% CI]) and, with --compare, the paired test results."""
    lines = [
        # no --split: every split of the dataset (not a Python None in the report)
        f"Dataset `{report['data']}` split `{report['split'] or 'all'}`: n = {report['n']}, "
        f"crops `{report['crops']['mode']}` "
        f"(eyes: {report['crops'].get('eyes', 'mesh')}), "
        f"face found in {100 * (report['crops']['detected_rate'] or 0):.1f}%",
        "",
        "| model | smile accuracy | smile F1 | ROC-AUC | ECE | score Spearman | emotion accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["models"].items():
        s = r["smile"]
        lines.append(
            f"| {name} | {_fmt(s['accuracy'])} | {_fmt(s['f1'])} | {_fmt(s['roc_auc'])} | {_fmt(s['ece'])} "
            f"| {_fmt(r.get('smile_score_spearman'))} | {_fmt(r.get('emotion', {}).get('accuracy'))} |"
        )
    lines += _recall_lines(report)
    if "compare" in report:
        c = report["compare"]
        m = c["mcnemar"]
        lines += [
            "",
            f"Paired comparison {c['names'][0]} - {c['names'][1]}: accuracy difference {_fmt(c['delta_accuracy'])}, "
            f"McNemar p = {m['p_value']:.4g} ({m['method']}); ROC-AUC difference {_fmt(c['delta_roc_auc'])}.",
        ]
    return "\n".join(lines)
