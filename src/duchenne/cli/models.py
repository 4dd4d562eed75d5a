"""``duchenne models``: the shipped models with size, parameters, accuracy and latency;
``--verify`` checks that each file is the one shipped and loads."""

from __future__ import annotations

import argparse
import sys

from duchenne.errors import DuchenneError
from duchenne.io.jsonsafe import to_json_text
from duchenne.models.registry import default_smile_model, get_model_cfg, list_models, verify_model

COLUMNS = ("name", "task", "bytes", "params", "input", "accuracy", "latency_ms")
"""The table's columns; ``--json`` rows have these plus ``default`` (true for the smile
model ``analyze`` uses when ``--model`` is not given)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped models")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check each model file against the sha256 of its manifest and that onnxruntime "
        "loads it: one line per model, exit status 1 when any fails (a broken install)",
    )
    p.set_defaults(func=run)


def model_rows() -> list[dict[str, object]]:
    """One row per registered model, facts taken from the shipped manifests.

    ``name`` is the name ``--model`` takes; the default is flagged in its own ``default``
    field (the table marks it after the name), so a program reading ``--json`` can pass
    every name back as it is.
    """
    rows = []
    default = default_smile_model()
    for name in list_models():
        cfg = get_model_cfg(name)
        rows.append(
            {
                "name": name,
                "default": name == default,
                "task": cfg.task,
                "bytes": cfg.path.stat().st_size if cfg.path.is_file() else None,
                "params": cfg.params,
                "input": cfg.input_size or cfg.input_shape,
                "accuracy": cfg.accuracy,
                "latency_ms": cfg.latency_ms,
            }
        )
    return rows


def verify_rows() -> list[dict[str, object]]:
    """One record per registered model: ``name``, ``ok`` and ``problem`` (the one-line
    error, None when ok), from :func:`~duchenne.models.registry.verify_model`."""
    rows: list[dict[str, object]] = []
    for name in list_models():
        try:
            verify_model(name)
        except DuchenneError as exc:
            rows.append({"name": name, "ok": False, "problem": str(exc)})
        else:
            rows.append({"name": name, "ok": True, "problem": None})
    return rows


def run_verify(args: argparse.Namespace) -> int:
    rows = verify_rows()
    failed = sum(not row["ok"] for row in rows)
    if args.json:
        print(to_json_text(rows, indent=2))
    else:
        width = max((len(str(row["name"])) for row in rows), default=0)
        for row in rows:
            print(f"{str(row['name']).ljust(width)}  {row['problem'] or 'ok'}")
    if failed:
        print(
            f"duchenne models: {failed} of {len(rows)} models failed the check; reinstall duchenne",
            file=sys.stderr,
        )
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    if args.verify:
        return run_verify(args)
    rows = model_rows()
    if args.json:
        print(to_json_text(rows, indent=2))
        return 0
    for row in rows:
        row["name"] = f"{row['name']} (default)" if row["default"] else row["name"]
    table = [[str(r[c]) if r[c] is not None else "-" for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    sys.stdout.write(
        line
        + "\n"
        + "\n".join("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) for t in table)
        + "\n"
    )
    return 0
