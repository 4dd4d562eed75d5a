"""Plain JSON values from numpy/dataclass/path results, and flat columns from nested records.

Why a module of its own: every output (result files, server responses, reports, training
ladders) must turn the same numpy scalars, NaNs and odd file names into the same JSON, so
there is one converter, shared by the record writers in :mod:`duchenne.io.sinks`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["Record", "flatten_record", "printable_text", "to_json_text", "to_jsonable"]

Record = Mapping[str, Any]


def to_jsonable(obj: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """Convert ``obj`` to plain JSON-compatible Python (what ``json.dumps`` accepts).

    Numpy scalars and arrays become Python numbers and lists, tuples become lists,
    paths become strings, dataclasses become dicts, mapping keys become strings,
    non-finite floats become ``None``, and undecodable file-name bytes become ``\\xNN``
    escapes (:func:`printable_text`).

    Args:
        obj: The value to convert.
        default: What to do with any other value (e.g. ``str``); None raises.

    Returns:
        An equivalent value made of dict/list/str/int/float/bool/None.

    Raises:
        TypeError: A value of a type with no JSON meaning (bytes, arbitrary objects)
            and no ``default``.
    """
    if isinstance(obj, str):
        return printable_text(obj)
    if obj is None or isinstance(obj, (bool, int)):
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None  # np.float64 -> float
    if isinstance(obj, (np.generic, np.ndarray)):
        return to_jsonable(obj.tolist(), default)
    if isinstance(obj, Mapping):
        return {printable_text(str(k)): to_jsonable(v, default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, default) for v in obj]
    if isinstance(obj, os.PathLike):
        return printable_text(os.fspath(obj))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), default)
    if default is not None:
        return default(obj)
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def printable_text(text: str) -> str:
    """``text`` with lone surrogates (undecodable file-name bytes) written as ``\\xNN``.

    Why: Python decodes a non-UTF-8 file name such as ``caf\\xe9.jpg`` with
    ``surrogateescape``; such a string cannot be encoded as UTF-8, so one odd name used
    to make every JSON, CSV and Parquet writer fail and lose the whole run. Escaping
    keeps the name readable and unique; valid text (ASCII or not) is returned as is.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace")
    return text


def to_json_text(obj: Any, *, indent: int | None = None) -> str:
    """Serialise ``obj`` (numpy values included) to strict JSON text.

    Args:
        obj: Any value :func:`to_jsonable` accepts.
        indent: Pretty-print indentation, or ``None`` for one line.

    Returns:
        JSON text (UTF-8 characters kept as is, NaN/inf written as ``null``).

    Raises:
        TypeError: ``obj`` contains a value with no JSON meaning.
    """
    return json.dumps(to_jsonable(obj), ensure_ascii=False, allow_nan=False, indent=indent)


def json_digest(obj: Any, length: int = 12) -> str:
    """Short sha256 hex digest of ``obj``'s JSON text: a cache or resume key for settings.

    Keys are hashed in their insertion order, so callers build the mapping in a fixed order
    (dataclass fields, literal dicts).
    """
    return hashlib.sha256(to_json_text(obj).encode("utf-8")).hexdigest()[:length]


def flatten_record(record: Record, sep: str = ".") -> dict[str, Any]:
    """Flatten nested mappings and lists into one level of scalar columns.

    ``{"box": [1, 2], "emotions": {"happiness": 0.9}}`` becomes
    ``{"box.0": 1, "box.1": 2, "emotions.happiness": 0.9}``. Empty lists and mappings
    produce no columns.

    Args:
        record: The record; values are first passed through :func:`to_jsonable`.
        sep: Separator between name parts.

    Returns:
        A new flat dict, keys in depth-first order.
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, "", to_jsonable(record), sep)
    return flat


def _flatten_into(flat: dict[str, Any], prefix: str, value: Any, sep: str) -> None:
    """Depth-first helper of :func:`flatten_record`."""
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        flat[prefix] = value
        return
    for key, item in items:
        _flatten_into(flat, f"{prefix}{sep}{key}" if prefix else key, item, sep)
