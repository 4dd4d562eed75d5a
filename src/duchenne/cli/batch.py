"""``duchenne batch``: thousands of photos and videos into one results file, resumably.

Only argument parsing and reporting live here; the work is :func:`duchenne.batch.run`.
"""

from __future__ import annotations

import argparse
import sys

from duchenne.cli.options import (
    add_analyzer_args,
    config_from_args,
    non_negative,
    non_negative_int,
    output_file,
    positive_int,
    positive_number,
)

MAX_LISTED_FAILURES = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="analyse many images/videos in parallel into one Parquet/CSV/JSONL file (resumable)",
        description=(
            "Analyse files, folders (recursive), globs, @list.txt files, zip/tar archives and "
            "URIs into one results file: one row per face per image (and per sampled video "
            "frame), with an error column for inputs that failed. Results are committed in "
            "parts as the job runs; running the same command again skips finished inputs."
        ),
    )
    p.add_argument("inputs", nargs="*", help="files, folders, globs, archives, URIs, @list.txt")
    p.add_argument("--out", "-o", type=output_file, required=True, help="results file")
    p.add_argument("--list", dest="list_files", action="append", default=[], metavar="FILE",
                   help="text file of inputs, one per line (repeatable)")  # fmt: skip
    p.add_argument("--format", choices=("parquet", "csv", "jsonl"), default=None,
                   help="output format (default: from the --out suffix, else parquet)")  # fmt: skip
    run = p.add_argument_group("engine")
    run.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local worker processes (default) or a Ray Data actor pool "
                          "(duchenne[ray])")  # fmt: skip
    run.add_argument("--address", default=None,
                     help="Ray cluster address (--engine ray; default: start Ray here)")  # fmt: skip
    run.add_argument("--workers", "-j", type=non_negative_int, default=None,
                     help="worker processes / Ray actors (default: one per core; 0: analyse "
                          "in this process)")  # fmt: skip
    run.add_argument(
        "--chunk-size", type=positive_int, default=8, help="inputs per worker task (default 8)"
    )
    run.add_argument("--part-size", type=positive_int, default=256,
                     help="inputs per committed part (at most this is lost on a crash; "
                          "default 256)")  # fmt: skip
    run.add_argument("--keep-parts", action="store_true",
                     help="keep OUT.parts/ (a dataset of part files) after writing OUT")  # fmt: skip
    run.add_argument("--overwrite", action="store_true",
                     help="start again instead of resuming / appending to OUT")  # fmt: skip
    run.add_argument("--retry-errors", action="store_true",
                     help="analyse again the inputs that failed in an earlier run (without "
                          "it their error rows are kept and the exit status stays 1)")  # fmt: skip
    run.add_argument("--fingerprint", choices=("stat", "content"), default="stat",
                     help="how an unchanged input is recognised: stat (size+mtime, default) or "
                          "content (sha256)")  # fmt: skip
    run.add_argument("--max-member-mb", type=positive_number, default=256, metavar="MB",
                     help="largest image member of a zip/tar read (held in memory; larger "
                          "ones are reported as failed; default 256)")  # fmt: skip
    run.add_argument("--max-video-member-mb", type=positive_number, default=4096, metavar="MB",
                     help="largest video member of a zip/tar read (copied to a temp file; "
                          "default 4096)")  # fmt: skip
    an = p.add_argument_group("analysis")
    add_analyzer_args(
        an,
        threads_default=1,
        threads_help="onnxruntime threads per worker (default 1)",
        rotations=True,
    )
    an.add_argument("--crop", action="store_true", help="inputs are face crops (no detection)")
    an.add_argument("--landmarks", action="store_true", help="include the 468 landmarks")
    an.add_argument("--video-fps", type=non_negative, default=5.0,
                    help="frames per second sampled from videos (default 5; 0: every frame)")  # fmt: skip
    an.add_argument("--video-summary", action="store_true",
                    help="one row per face track per video instead of one per frame")  # fmt: skip
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar or summary line (failed inputs are still listed on stderr)",
    )
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """0: every input named has its results; 1: some failed, in this run or in an earlier
    one whose error rows were kept (without ``--retry-errors``: a rerun must not turn a
    failed job into a clean one); 2: no inputs / bad options / an output that cannot be
    read or written; 130: interrupted."""
    from duchenne import batch
    from duchenne.batch.inputs import MemberLimits, MiB
    from duchenne.errors import DuchenneError, error_text

    if not args.inputs and not args.list_files:
        print(
            "duchenne batch: no inputs (give files, folders, globs or --list FILE)", file=sys.stderr
        )
        return 2
    try:
        summary = batch.run(
            args.inputs,
            args.out,
            engine=args.engine,
            workers=args.workers,
            address=args.address,
            format=args.format,
            list_files=args.list_files,
            config=config_from_args(args),
            crop=args.crop,
            landmarks=args.landmarks,
            video_summary=args.video_summary,
            video_fps=args.video_fps or None,
            chunk_size=args.chunk_size,
            part_size=args.part_size,
            keep_parts=args.keep_parts,
            overwrite=args.overwrite,
            retry_errors=args.retry_errors,
            fingerprint=args.fingerprint,
            limits=MemberLimits(
                image_bytes=max(1, round(args.max_member_mb * MiB)),
                video_bytes=max(1, round(args.max_video_member_mb * MiB)),
            ),
            progress=not args.quiet,
        )
    except (DuchenneError, ValueError) as exc:  # bad options or an unusable output
        print(f"duchenne batch: {exc}", file=sys.stderr)
        return 2
    for source, error in summary.failures[:MAX_LISTED_FAILURES]:
        print(f"error: {source}: {error_text(error, source)}", file=sys.stderr)
    if len(summary.failures) > MAX_LISTED_FAILURES:
        more = len(summary.failures) - MAX_LISTED_FAILURES
        print(f"... and {more} more failed input(s): see the error column", file=sys.stderr)
    if not args.quiet or summary.interrupted or (summary.failed_before and not summary.failed):
        print(summary.describe(), file=sys.stderr)  # never a silent 1, even with --quiet
    if summary.interrupted:
        return 130
    return 1 if summary.failed or summary.failed_before else 0
