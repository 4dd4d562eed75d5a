"""``duchenne enhance``: write a happier version of a photo and print the smile change per face."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from duchenne.cli.options import (
    add_analyzer_args,
    config_from_args,
    non_negative_int,
    output_file,
    same_file,
    unit_interval,
)
from duchenne.errors import DuchenneError
from duchenne.io.argtypes import int_range

OUTPUT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
"""Output formats; PNG and (lossless) WebP keep a transparent input's alpha channel."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "enhance",
        help="make faces in a photo smile more (landmark-driven warp)",
        description="Move each face's landmarks toward a Duchenne smile (lip corners up and "
        "out, cheeks and lower eyelids raised) and warp the photo; everything else is kept. "
        "Prints smile score and smile geometry before -> after for every face.",
    )
    p.add_argument("input", type=Path, help="photo to enhance")
    p.add_argument(
        "output",
        type=output_file,
        help="where to write the result (.jpg, .jpeg, .png or .webp; PNG and WebP keep "
        "transparency, JPEG composites it on white)",
    )
    p.add_argument(
        "--amount",
        type=unit_interval,
        default=0.5,
        help="0 (unchanged) .. 1 (strongest); default 0.5",
    )
    p.add_argument(
        "--face",
        type=non_negative_int,  # faces count from 0: -1 is a usage error, not a missing face
        action="append",
        dest="faces",
        metavar="N",
        help="enhance only face N (repeatable; faces are numbered as `duchenne analyze` lists them)",
    )
    p.add_argument(
        "--quality", type=int_range(1, 100), default=92, help="JPEG quality 1-100 (default 92)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of a table"
    )
    add_analyzer_args(p, stages=False, limits=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Enhance one photo; 0 on success, 1 for a bad input, 2 for a bad output name."""
    if args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        print(
            f"duchenne enhance: {args.output}: output must end in {', '.join(OUTPUT_SUFFIXES)}",
            file=sys.stderr,
        )
        return 2
    if same_file(args.output, args.input):
        # the original would be lost for good, as `analyze --draw` refuses too
        print(
            f"duchenne enhance: {args.output}: would replace the input photo; name another file",
            file=sys.stderr,
        )
        return 2
    from duchenne.analysis.analyzer import Analyzer
    from duchenne.analysis.enhance import enhance

    analyzer = Analyzer(config_from_args(args))
    try:
        result = enhance(analyzer, args.input, amount=args.amount, faces=args.faces)
        result.save(args.output, quality=args.quality)
    except (DuchenneError, ValueError, OSError) as exc:
        print(f"duchenne enhance: {_message(exc, args.input)}", file=sys.stderr)
        return 1
    if args.json:
        from duchenne.io.jsonsafe import to_json_text

        print(to_json_text(result.to_dict(), indent=2))
    else:
        print(format_table(result.changes(), args.input, args.output, args.amount))
    return 0


def _message(exc: Exception, path: Path) -> str:
    """One line that names the file (load errors already start with it)."""
    text = str(exc) or type(exc).__name__
    return text if str(path) in text else f"{path}: {text}"


def format_table(rows: list[dict[str, Any]], source: Path, output: Path, amount: float) -> str:
    """Plain-text before -> after table, one line per face."""
    lines = [f"{source} -> {output} (amount {amount:g})"]
    header = ("face", "enhanced", "smile_score", "lip_corner_elev", "mouth_width", "eye_aperture")
    table = [header]
    for row in rows:
        table.append(
            (
                str(row["face"]),
                "yes" if row["enhanced"] else "no",
                _change(row, "smile_score", 1),
                _change(row, "lip_corner_elevation", 3),
                _change(row, "mouth_width", 3),
                _change(row, "eye_aperture", 3),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if rows and rows[0]["smile_score_before"] is None:
        lines.append("(no smile model installed: smile_score not measured; geometry shown)")
    return "\n".join(lines)


def _change(row: dict[str, Any], key: str, digits: int) -> str:
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    return f"{fmt(row[f'{key}_before'])} -> {fmt(row[f'{key}_after'])}"
