"""Tests for duchenne.io.sinks: round trips, CSV flattening, NaN handling, atomicity."""

from __future__ import annotations

import csv
import json
import math
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from duchenne.errors import MissingExtraError
from duchenne.io import (
    RecordWriter,
    atomic_write,
    flatten_record,
    infer_format,
    to_json_text,
    to_jsonable,
    write_records,
)
from duchenne.io.sinks import printable_text

FORMATS = ["json", "jsonl", "csv", "parquet"]

RECORDS: list[dict[str, Any]] = [
    {
        "file": "a.jpg",
        "face": 0,
        "smile": 0.75,
        "smiling": True,
        "track_id": None,
        "box": [1.5, 2.0, 30.0, 40.0],
    },
    {
        "file": "a.jpg",
        "face": np.int64(1),
        "smile": np.float32(0.25),
        "smiling": np.bool_(False),
        "track_id": 3,
        "box": np.array([5.0, 6.0, 7.0, 8.0]),
    },
]
EXPECTED = [
    {
        "file": "a.jpg",
        "face": 0,
        "smile": 0.75,
        "smiling": True,
        "track_id": None,
        "box": [1.5, 2.0, 30.0, 40.0],
    },
    {
        "file": "a.jpg",
        "face": 1,
        "smile": 0.25,
        "smiling": False,
        "track_id": 3,
        "box": [5.0, 6.0, 7.0, 8.0],
    },
]


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN/Infinity, which are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def read_back(path: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        return strict_json(path.read_text("utf-8"))
    if fmt == "jsonl":
        return [strict_json(line) for line in path.read_text("utf-8").splitlines()]
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_round_trip_keeps_values_and_nesting(tmp_path: Path, fmt: str) -> None:
    path = write_records(RECORDS, tmp_path / f"faces.{fmt}")
    assert read_back(path, fmt) == EXPECTED
    assert listing(tmp_path) == [f"faces.{fmt}"]


def test_csv_round_trip_flattens_lists(tmp_path: Path) -> None:
    rows = read_back(write_records(RECORDS, tmp_path / "faces.csv"), "csv")
    assert list(rows[0]) == [
        "file",
        "face",
        "smile",
        "smiling",
        "track_id",
        "box.0",
        "box.1",
        "box.2",
        "box.3",
    ]
    assert rows[0]["box.0"] == "1.5" and rows[1]["box.3"] == "8.0"
    assert [r["smiling"] for r in rows] == ["true", "false"]
    assert [r["track_id"] for r in rows] == ["", "3"]
    assert float(rows[1]["smile"]) == 0.25


def test_csv_columns_are_the_union_in_first_seen_order(tmp_path: Path) -> None:
    records = [
        {"a": 1, "emotions": {"happiness": 0.9, "neutral": 0.1}},
        {"b": "x", "a": 2},
        {"emotions": {"surprise": 0.5}, "c": None},
    ]
    rows = read_back(write_records(records, tmp_path / "r.csv"), "csv")
    assert list(rows[0]) == [
        "a",
        "emotions.happiness",
        "emotions.neutral",
        "b",
        "emotions.surprise",
        "c",
    ]
    assert rows[1] == {
        "a": "2",
        "emotions.happiness": "",
        "emotions.neutral": "",
        "b": "x",
        "emotions.surprise": "",
        "c": "",
    }


def test_csv_streaming_new_columns_rewrite_the_header(tmp_path: Path) -> None:
    path = tmp_path / "stream.csv"
    with RecordWriter(path) as writer:
        writer.write({"frame": 0, "smile": 0.1})
        writer.write({"frame": 1, "smile": 0.2, "onset": 1.5})
    rows = read_back(path, "csv")
    assert rows == [
        {"frame": "0", "smile": "0.1", "onset": ""},
        {"frame": "1", "smile": "0.2", "onset": "1.5"},
    ]
    assert listing(tmp_path) == ["stream.csv"]


def test_csv_quotes_awkward_strings(tmp_path: Path) -> None:
    text = 'comma, "quote"\nnewline é'
    rows = read_back(write_records([{"file": text}], tmp_path / "q.csv"), "csv")
    assert rows == [{"file": text}]


@pytest.mark.parametrize(
    ("record", "flat"),
    [
        ({"box": [1, 2]}, {"box.0": 1, "box.1": 2}),
        ({"e": {"happiness": 0.5}}, {"e.happiness": 0.5}),
        ({"kp": [[1, 2], [3, 4]]}, {"kp.0.0": 1, "kp.0.1": 2, "kp.1.0": 3, "kp.1.1": 4}),
        ({"empty": [], "x": np.float64("nan")}, {"x": None}),
        ({"arr": np.arange(2)}, {"arr.0": 0, "arr.1": 1}),
    ],
)
def test_flatten_record(record: dict, flat: dict) -> None:
    assert flatten_record(record) == flat


# --------------------------------------------------------------------------- NaN


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_finite_floats_become_null(tmp_path: Path, fmt: str) -> None:
    records = [{"v": float("nan"), "w": np.float32("inf"), "l": [1.0, -math.inf]}]
    rows = read_back(write_records(records, tmp_path / "n.out", format=fmt), fmt)
    if fmt == "csv":
        assert rows == [{"v": "", "w": "", "l.0": "1.0", "l.1": ""}]
    else:
        assert rows == [{"v": None, "w": None, "l": [1.0, None]}]


def test_to_json_text_handles_numpy_and_refuses_unknown_types() -> None:
    value = {"a": np.float32(0.5), "b": np.arange(3), "c": (np.nan, 1), 7: Path("x/y.jpg")}
    assert strict_json(to_json_text(value)) == {
        "a": 0.5,
        "b": [0, 1, 2],
        "c": [None, 1],
        "7": "x/y.jpg",
    }
    assert to_jsonable(np.bool_(True)) is True
    with pytest.raises(TypeError):
        to_json_text({"raw": b"bytes"})


# --------------------------------------------------------------------------- atomicity


def failing_records() -> Iterator[dict[str, Any]]:
    yield {"frame": 0, "smile": 0.5}
    yield {"frame": 1, "smile": 0.6}
    raise RuntimeError("decoder died")


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_mid_write_keeps_previous_file_and_no_temp(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"results.{fmt}"
    path.write_bytes(b"previous complete file")
    with pytest.raises(RuntimeError, match="decoder died"):
        write_records(failing_records(), path)
    assert path.read_bytes() == b"previous complete file"
    assert listing(tmp_path) == [path.name]


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_without_previous_file_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(RuntimeError):
        with RecordWriter(tmp_path / "r.out", fmt) as writer:
            writer.write_many(failing_records())
    assert listing(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_keep_partial_commits_records_written_before_the_error(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "partial.out"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with RecordWriter(path, fmt, keep_partial=True) as writer:
            writer.write_many(failing_records())
    rows = read_back(path, fmt)
    assert [int(r["frame"]) for r in rows] == [0, 1]
    assert listing(tmp_path) == ["partial.out"]


def test_nothing_appears_before_close(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = RecordWriter(path)
    writer.write({"a": 1})
    assert not path.exists()
    assert writer.close() == path and writer.close() == path  # idempotent
    assert read_back(path, "jsonl") == [{"a": 1}]
    with pytest.raises(ValueError, match="closed"):
        writer.write({"a": 2})


def test_abort_discards(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path / "r.csv")
    writer.write({"a": 1})
    writer.abort()
    assert listing(tmp_path) == []


def test_atomic_write_text_and_failure(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.txt"
    with atomic_write(path, "w") as fh:
        fh.write("héllo")
    assert path.read_text("utf-8") == "héllo"
    with pytest.raises(KeyError), atomic_write(path, "w") as fh:
        fh.write("partial")
        raise KeyError("boom")
    assert path.read_text("utf-8") == "héllo"
    assert listing(path.parent) == ["x.txt"]


def test_written_files_get_normal_permissions(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_records([{"a": 1}], tmp_path / "p.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# --------------------------------------------------------------------------- parquet schema


def test_parquet_widens_schema_across_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "v.parquet"
    with RecordWriter(path, row_group_size=2) as writer:
        writer.write_many([{"frame": 0, "onset": None}, {"frame": 1, "onset": None}])
        writer.write_many([{"frame": 2, "onset": 1.5, "track_id": 4}, {"frame": 3}])
    rows = pq.read_table(path).to_pylist()
    assert rows == [
        {"frame": 0, "onset": None, "track_id": None},
        {"frame": 1, "onset": None, "track_id": None},
        {"frame": 2, "onset": 1.5, "track_id": 4},
        {"frame": 3, "onset": None, "track_id": None},
    ]
    assert listing(tmp_path) == ["v.parquet"]


def test_parquet_mixed_types_name_the_column(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'v'"):
        write_records([{"v": 1}, {"v": "one"}], tmp_path / "m.parquet")
    assert listing(tmp_path) == []


def test_parquet_missing_pyarrow_raises_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match=r"duchenne\[parquet\]"):
        write_records([{"a": 1}], tmp_path / "x.parquet")
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("fmt", "content"),
    [("json", "[]\n"), ("jsonl", ""), ("csv", "")],
)
def test_empty_input_writes_an_empty_but_valid_file(tmp_path: Path, fmt: str, content: str) -> None:
    path = write_records([], tmp_path / f"e.{fmt}")
    assert path.read_text() == content


def test_empty_parquet_and_header_only_csv(tmp_path: Path) -> None:
    assert pq.read_table(write_records([], tmp_path / "e.parquet")).num_rows == 0
    csv_path = write_records([], tmp_path / "h.csv", columns=["file", "smile"])
    assert csv_path.read_bytes() == b"file,smile\r\n"  # RFC 4180 line ends


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("a.json", None, "json"),
        ("a.JSONL", None, "jsonl"),
        ("a.ndjson", None, "jsonl"),
        ("a.csv", None, "csv"),
        ("a.pq", None, "parquet"),
        ("a.parquet", None, "parquet"),
        ("a.txt", "CSV", "csv"),
        ("a.csv", "ndjson", "jsonl"),
    ],
)
def test_infer_format(name: str, fmt: str | None, expected: str) -> None:
    assert infer_format(name, fmt) == expected


@pytest.mark.parametrize(("name", "fmt"), [("a.txt", None), ("a", None), ("a.csv", "xlsx")])
def test_infer_format_errors(tmp_path: Path, name: str, fmt: str | None) -> None:
    with pytest.raises(ValueError):
        write_records([{"a": 1}], tmp_path / name, format=fmt)
    assert listing(tmp_path) == []


def test_records_must_be_mappings(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="mappings"):
        write_records([["not", "a", "dict"]], tmp_path / "r.jsonl")  # type: ignore[list-item]
    assert listing(tmp_path) == []


def test_json_is_one_document_with_one_record_per_line(tmp_path: Path) -> None:
    text = write_records([{"a": 1}, {"a": 2}], tmp_path / "r.json").read_text()
    assert text == '[\n{"a": 1},\n{"a": 2}\n]\n'


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet"])
def test_undecodable_file_names_are_written_escaped(tmp_path, fmt) -> None:
    """A non-UTF-8 file name (surrogate-escaped by Python) must not sink the whole file."""
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    name = os.fsdecode(b"photos/caf\xe9.jpg")
    records = [{"source": name, "n": 1}, {"source": "ok.jpg", "n": 2}]
    out = write_records(records, tmp_path / f"o.{fmt}")
    if fmt == "json":
        rows = json.loads(out.read_text("utf-8"))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
    assert [r["source"] for r in rows] == ["photos/caf\\xe9.jpg", "ok.jpg"]


def test_printable_text_escapes_only_undecodable_bytes() -> None:
    name = os.fsdecode(b"caf\xe9.jpg")
    assert printable_text(name) == "caf\\xe9.jpg"
    assert printable_text("café ☺.jpg") == "café ☺.jpg"
    assert to_jsonable({name: [Path(name)]}) == {"caf\\xe9.jpg": ["caf\\xe9.jpg"]}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_template_gives_an_empty_file_its_columns(tmp_path, suffix) -> None:
    """A file that gets no record (a video without a face) still names its columns."""
    template = {"source": "x.mp4", "time": 0.5, "smile": 0.9, "face": 0}
    out = tmp_path / f"empty{suffix}"
    with RecordWriter(out, template=template):
        pass
    if suffix == ".csv":
        assert out.read_text().splitlines() == ["source,time,smile,face"]
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        table = pq.read_table(out)
        assert table.num_rows == 0 and table.column_names == list(template)
        assert str(table.schema.field("time").type) == "double"


def test_schema_types_a_parquet_file_whose_records_hold_only_nulls(tmp_path) -> None:
    """``schema``: the file starts from it (typed nulls for columns the records lack or
    leave null); the records may still add columns and widen types."""
    import pyarrow as pa

    schema = pa.schema([("source", pa.string()), ("face", pa.int64()), ("box.x1", pa.float64())])
    out = tmp_path / "typed.parquet"
    write_records([{"source": "bad.jpg", "face": None, "error": "x"}], out, schema=schema)
    got = pq.read_schema(out)
    assert got.names == ["source", "face", "box.x1", "error"]
    assert [str(t) for t in got.types] == ["string", "int64", "double", "string"]
    write_records([{"source": "a.jpg", "face": 1.5}], out, schema=schema)  # widened
    assert str(pq.read_schema(out).field("face").type) == "double"
    write_records([], out, schema=schema)
    assert pq.read_schema(out) == schema and pq.read_table(out).num_rows == 0
