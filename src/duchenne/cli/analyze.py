"""``duchenne analyze``: photos in, per-face results out (JSON, JSONL, CSV or Parquet)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from duchenne import data
from duchenne.analysis.analyzer import Analyzer
from duchenne.annotate import FaceAnnotator
from duchenne.cli.options import add_analyzer_args, config_from_args
from duchenne.errors import DuchenneError
from duchenne.faces import Faces, result_rows
from duchenne.io.image import iter_image_paths, load_image, save_image_atomic
from duchenne.io.sinks import records_to_text, to_json_text, write_records

DEMO_IMAGE = "astronaut.jpg"
FORMATS = ("json", "jsonl", "csv", "parquet")


def demo_image_path() -> Path:
    """The bundled demo photo (NASA astronaut Eileen Collins, public domain; via scikit-image)."""
    return data.path(DEMO_IMAGE)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="find faces and measure smiles in photos")
    p.add_argument("inputs", nargs="*", help="image files, folders (recursive) or glob patterns")
    p.add_argument(
        "--demo", action="store_true", help="run on the bundled public-domain example photo"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: from --output suffix, else json)",
    )
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        help="write results to this file (atomically) instead of stdout",
    )
    p.add_argument("--draw", type=Path, metavar="DIR", help="save annotated images into DIR")
    add_analyzer_args(p)
    p.add_argument(
        "--crop", action="store_true", help="inputs are face crops: no detection (head-crop mode)"
    )
    p.add_argument(
        "--landmarks", action="store_true", help="include the 468 landmarks in JSON output"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Analyse every input; return 0 if all succeeded, 1 if some failed, 2 if none were given."""
    inputs = [str(demo_image_path())] if args.demo else list(args.inputs)
    paths = iter_image_paths(inputs) if inputs else []
    if not paths:
        print(
            "duchenne analyze: no input images (give files, folders or globs, or --demo)",
            file=sys.stderr,
        )
        return 2
    analyzer = Analyzer(config_from_args(args))
    results = analyzer.analyze_batch(
        paths, crop=args.crop, progress=len(paths) > 1 and not args.quiet
    )
    fmt = args.format or _format_from(args.output)
    _emit(paths, results, fmt, args.output, args.landmarks)
    if args.draw:
        _draw(paths, results, args.draw)
    return _report_errors(paths, results)


def _format_from(output: Path | None) -> str:
    suffix = output.suffix.lstrip(".").lower() if output else ""
    return suffix if suffix in FORMATS else "json"


def _documents(
    paths: Sequence[Path], results: Sequence[Faces | DuchenneError], landmarks: bool
) -> list[dict[str, Any]]:
    docs = []
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, DuchenneError):
            docs.append(
                {
                    "image": {"source": str(path)},
                    "error": {"type": type(result).__name__, "message": str(result)},
                }
            )
        else:
            docs.append(result.to_dict(landmarks=landmarks))
    return docs


def _emit(paths, results, fmt: str, output: Path | None, landmarks: bool) -> None:
    if fmt == "json":
        docs = _documents(paths, results, landmarks)
        if output:
            write_records(docs, output, format="json")
        else:
            print(to_json_text(docs, indent=2))
        return
    rows = [
        row
        for p, r in zip(paths, results, strict=True)
        for row in result_rows(p, r, landmarks=landmarks)
    ]
    if output:
        write_records(rows, output, format=fmt)
    elif fmt in ("jsonl", "csv"):
        sys.stdout.write(records_to_text(rows, fmt))
    else:
        raise SystemExit("duchenne analyze: --format parquet needs --output FILE")


def _draw(paths: Sequence[Path], results: Sequence[Faces | DuchenneError], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    annotator = FaceAnnotator()
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, Faces):
            image = annotator.annotate(load_image(path), result)
            save_image_atomic(image, folder / (Path(path).stem + ".jpg"))


def _report_errors(paths: Sequence[Path], results: Sequence[Faces | DuchenneError]) -> int:
    failed = [(p, r) for p, r in zip(paths, results, strict=True) if isinstance(r, DuchenneError)]
    for path, err in failed:
        print(f"error: {path}: {type(err).__name__}: {err}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(paths)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
