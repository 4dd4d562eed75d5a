"""Shared bits of the benchmark scripts: timing statistics, markdown tables, README update.

Why a README updater: every table of numbers in the README is produced by a script; each
benchmark prints its table and, with ``--readme``, replaces the block between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` so nobody types numbers by hand.
"""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 3) -> np.ndarray:
    """Wall-clock milliseconds of ``runs`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1000
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_note() -> str:
    import os

    import onnxruntime

    return (
        f"Measured by `{{script}}` on {platform.machine()} with {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}."
    )


def readme_block(name: str, readme: Path = README) -> str:
    """The text of the README block between the ``name`` markers (what ``update_readme``
    wrote last), for a script that re-measures only part of its block."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = readme.read_text(encoding="utf-8")
    found = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), content, re.S)
    if found is None:
        raise SystemExit(f"README has no {start} ... {end} block")
    return found.group(1)


def update_readme(name: str, text: str, readme: Path = README) -> None:
    """Replace the README block between the ``name`` markers with ``text``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        raise SystemExit(f"README has no {start} ... {end} block")
    readme.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", content), encoding="utf-8")
