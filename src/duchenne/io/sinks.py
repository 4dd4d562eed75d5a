"""Write per-face result records to JSON, JSON Lines, CSV or Parquet -- atomically.

Why atomic: results files are read by other programs (spreadsheets, notebooks, the next
pipeline stage), often while a long batch is still running or after it crashed. Every
writer here writes to a hidden temporary file *in the destination folder*, fsyncs it and
moves it over the destination with ``os.replace``, so a reader sees either the previous
complete file or the new complete file, never a half-written one. On failure the
temporary file is removed and the previous file is left untouched.

Records are mappings of ``str`` to ``str``/``int``/``float``/``bool``/``None``, lists of
numbers, or nested mappings; numpy scalars and arrays, tuples and paths are converted.
Non-finite floats (NaN, +-inf) are written as null in every format (JSON has no NaN, and
one rule for all formats means they read back alike). CSV flattens nesting into dotted
columns (``emotions.happiness``, ``box.0``); JSON and Parquet keep the nesting.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from duchenne.errors import require_extra
from duchenne.io.atomic import (
    atomic_write,
    commit_file,
    create_temp,
    fsync_close,
    output_errors,
    unlink_quietly,
)
from duchenne.io.jsonsafe import (
    Record,
    flatten_record,
    printable_text,
    to_json_text,
    to_jsonable,
)

__all__ = [
    "FORMATS",
    "RecordWriter",
    "atomic_write",
    "commit_file",
    "flatten_record",
    "infer_format",
    "printable_text",
    "to_json_text",
    "to_jsonable",
    "write_records",
]

FORMATS = ("json", "jsonl", "csv", "parquet")
"""Record file formats, by name."""

_SUFFIX_FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


# --------------------------------------------------------------------------- backends


class _Backend(Protocol):
    """One output format: writes records into a temp file it owns."""

    tmp: Path

    def write(self, record: Record) -> None: ...

    def finish(self) -> None: ...

    def discard(self) -> None: ...


class _JsonLinesBackend:
    """One JSON object per line; the streaming-friendly format."""

    def __init__(self, path: Path, **_: Any) -> None:
        self.tmp, fd = create_temp(path)
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="\n")

    def write(self, record: Record) -> None:
        self._fh.write(to_json_text(record) + "\n")

    def finish(self) -> None:
        fsync_close(self._fh)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        unlink_quietly(self.tmp)


class _JsonBackend(_JsonLinesBackend):
    """One JSON list, one record per line so large files stay diff- and grep-friendly."""

    def __init__(self, path: Path, **_: Any) -> None:
        super().__init__(path)
        self._count = 0

    def write(self, record: Record) -> None:
        self._fh.write(("[\n" if self._count == 0 else ",\n") + to_json_text(record))
        self._count += 1

    def finish(self) -> None:
        self._fh.write("\n]\n" if self._count else "[]\n")
        super().finish()


class _CsvBackend:
    """Flattened rows; columns = union of keys in first-seen order.

    Rows are streamed to disk. A key first seen after the header was written is added
    as a new last column, and the file is rewritten once at :meth:`finish` with the full
    header (earlier rows padded with empty cells), so no record is ever dropped.
    """

    def __init__(self, path: Path, columns: Sequence[str] | None = None, **_: Any) -> None:
        self.tmp, fd = create_temp(path)
        self._path = path
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        self._columns: dict[str, None] = dict.fromkeys(columns or ())
        self._header_len: int | None = None

    def write(self, record: Record) -> None:
        flat = flatten_record(record)
        self._columns.update(dict.fromkeys(flat))
        if self._header_len is None:
            self._writer.writerow(self._columns)
            self._header_len = len(self._columns)
        self._writer.writerow([_csv_cell(flat.get(col)) for col in self._columns])

    def finish(self) -> None:
        if self._header_len is None and self._columns:  # no rows: header only
            self._writer.writerow(self._columns)
            self._header_len = len(self._columns)
        fsync_close(self._fh)
        if self._header_len is not None and len(self._columns) > self._header_len:
            self._rewrite_with_full_header()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        unlink_quietly(self.tmp)

    def _rewrite_with_full_header(self) -> None:
        """Copy rows into a new temp file under the complete header."""
        old = self.tmp
        self.tmp, fd = create_temp(self._path)
        width = len(self._columns)
        try:
            with (
                open(old, encoding="utf-8", newline="") as src,
                os.fdopen(fd, "w", encoding="utf-8", newline="") as dst,
            ):
                reader, writer = csv.reader(src), csv.writer(dst)
                next(reader)
                writer.writerow(self._columns)
                for row in reader:
                    writer.writerow(row + [""] * (width - len(row)))
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException:
            unlink_quietly(self.tmp)
            self.tmp = old
            raise
        unlink_quietly(old)


def _csv_cell(value: Any) -> str:
    """CSV text of a flattened value: null -> empty, booleans as JSON spells them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)  # float str() is the shortest round-tripping repr


class _ParquetBackend:
    """Buffered row groups through ``pyarrow.parquet.ParquetWriter``.

    The schema is inferred from the first row group (unified with ``schema`` when given:
    its columns come first and keep their types, so a group whose column is all null is
    still typed). If a later group brings a new column or needs a wider type (e.g. a
    column that was all null becomes float), the rows already written are copied once
    into a new file with the unified schema.
    """

    def __init__(
        self,
        path: Path,
        row_group_size: int = 10_000,
        template: Record | None = None,
        schema: Any = None,
        **_: Any,
    ) -> None:
        self._template = template
        self._seed = schema
        self._pa = require_extra("pyarrow", "parquet")
        self._pq = require_extra("pyarrow.parquet", "parquet")
        self._path = path
        self._group = max(1, int(row_group_size))
        self._rows: list[dict[str, Any]] = []
        self._writer: Any = None
        self._schema: Any = None
        self.tmp, fd = create_temp(path)
        self._fh: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, record: Record) -> None:
        self._rows.append(to_jsonable(record))
        if len(self._rows) >= self._group:
            self._flush()

    def finish(self) -> None:
        empty = None if self._rows or self._writer is not None else self._empty_schema()
        if empty is not None:  # no record at all: readers still see the columns
            self._writer = self._pq.ParquetWriter(self._fh, empty)
        elif self._rows or self._writer is None:
            self._flush()
        self._writer.close()
        fsync_close(self._fh)

    def _empty_schema(self) -> Any:
        """The schema of a file without records: ``schema``, else the template's."""
        if self._seed is not None or self._template is None:
            return self._seed
        return self._rows_to_table([to_jsonable(self._template)]).schema

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        with contextlib.suppress(OSError):
            self._fh.close()
        unlink_quietly(self.tmp)

    def _flush(self) -> None:
        table = self._rows_to_table(self._rows)
        self._rows = []
        if self._writer is None:
            self._schema = table.schema
            if self._seed is not None:
                self._schema = self._unify(self._seed, table.schema)
                table = _cast_to(self._pa, table, self._schema)
            self._writer = self._pq.ParquetWriter(self._fh, self._schema)
        elif table.schema != self._schema:
            table = self._conform(table)
        self._writer.write_table(table)

    def _rows_to_table(self, rows: list[dict[str, Any]]) -> Any:
        """Build a table column by column so a type clash names its column."""
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        columns = {}
        for name in names:
            try:
                columns[name] = self._pa.array([row.get(name) for row in rows])
            except (self._pa.ArrowInvalid, self._pa.ArrowTypeError) as exc:
                raise TypeError(
                    f"parquet column {name!r} has values of mixed types: {exc}"
                ) from None
        return self._pa.table(columns)

    def _conform(self, table: Any) -> Any:
        """Fit ``table`` to the file schema, widening the file's schema if needed."""
        unified = self._unify(self._schema, table.schema)
        if unified != self._schema:
            self._rewrite(unified)
        return _cast_to(self._pa, table, self._schema)

    def _unify(self, schema: Any, other: Any) -> Any:
        """``schema`` widened to hold ``other`` too (its new columns last)."""
        try:
            return self._pa.unify_schemas([schema, other], promote_options="permissive")
        except (self._pa.ArrowInvalid, self._pa.ArrowTypeError) as exc:
            raise TypeError(f"records do not fit the parquet schema: {exc}") from None

    def _rewrite(self, schema: Any) -> None:
        """Copy what was written so far into a new temp file with ``schema``."""
        self._writer.close()
        fsync_close(self._fh)
        old = self.tmp
        self.tmp, fd = create_temp(self._path)
        self._fh = os.fdopen(fd, "wb")
        self._writer = self._pq.ParquetWriter(self._fh, schema)
        self._schema = schema
        for batch in self._pq.ParquetFile(old).iter_batches():
            table = self._pa.Table.from_batches([batch])
            self._writer.write_table(_cast_to(self._pa, table, schema))
        unlink_quietly(old)


def _cast_to(pa: Any, table: Any, schema: Any) -> Any:
    """Add missing columns as nulls, order columns as ``schema`` and cast."""
    columns = [
        table.column(field.name)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


_BACKENDS: dict[str, type] = {
    "json": _JsonBackend,
    "jsonl": _JsonLinesBackend,
    "csv": _CsvBackend,
    "parquet": _ParquetBackend,
}


# --------------------------------------------------------------------------- public writers


def infer_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Pick the record format from ``format`` or the file suffix.

    Args:
        path: Destination file.
        format: Explicit format name (case-insensitive); wins over the suffix.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        ValueError: Unknown format, or no format given and an unknown suffix.
    """
    if format is not None:
        name = format.lower().lstrip(".")
        if name == "ndjson":
            name = "jsonl"
        if name not in FORMATS:
            raise ValueError(f"unknown record format {format!r}; choose from {FORMATS}")
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise ValueError(
            f"{path}: cannot infer the format from suffix {suffix!r}; "
            f"use one of {sorted(_SUFFIX_FORMATS)} or pass format="
        )
    return _SUFFIX_FORMATS[suffix]


class RecordWriter:
    """Stream records into a file that appears (atomically) only when closed.

    Use as a context manager. Records go to a hidden temporary file next to ``path``.
    On a clean exit (or :meth:`close`) the file is completed, fsynced and moved over
    ``path``. If the block raises:

    * ``keep_partial=False`` (default): the temporary file is deleted and any previous
      ``path`` is left intact -- nothing half-written ever appears;
    * ``keep_partial=True``: the records written so far are completed into a valid file
      that replaces ``path`` (even if no record was written), e.g. to keep the frames a
      video analysis got through before a decode error. The exception still propagates.

    Always use it in a ``with`` block or call :meth:`close` / :meth:`abort`: a writer that
    is simply dropped leaves its hidden temporary file behind. Not thread-safe.

    Args:
        path: Destination file; missing parent folders are created.
        format: ``"json"``, ``"jsonl"``, ``"csv"`` or ``"parquet"``; default from suffix.
        keep_partial: See above.
        columns: CSV only: leading columns in this order (others follow as first seen).
        row_group_size: Parquet only: records buffered per row group.
        template: a record with the columns (and value types) the records will have, for
            a file that may get none (a video without a face): the CSV still gets its
            header (``columns`` default to its keys) and the Parquet file its schema.
            Never written as a record.
        schema: Parquet only: a ``pyarrow.Schema`` the file starts from, with or without
            records: its columns come first with its types (columns the records lack are
            typed nulls); the records may still add columns or widen types. Why: files
            that must read as one dataset (the parts of a batch job) keep one schema even
            when one holds only nulls in a column. Wins over ``template``.

    Raises:
        ValueError: Unknown format.
        MissingExtraError: Parquet requested and pyarrow is not installed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        *,
        keep_partial: bool = False,
        columns: Sequence[str] | None = None,
        row_group_size: int = 10_000,
        template: Record | None = None,
        schema: Any = None,
    ) -> None:
        self.path = Path(path)
        self.format = infer_format(self.path, format)
        self.keep_partial = keep_partial
        self.rows_written = 0
        self._closed = False
        if columns is None and template is not None:
            columns = list(template)
        backend_cls = _BACKENDS[self.format]
        self._backend: _Backend = backend_cls(
            self.path,
            columns=columns,
            row_group_size=row_group_size,
            template=template,
            schema=schema,
        )

    def write(self, record: Record) -> None:
        """Append one record.

        Raises:
            ValueError: The writer is closed.
            TypeError: ``record`` is not a mapping or holds unserialisable values.
        """
        if self._closed:
            raise ValueError(f"{self.path}: RecordWriter is closed")
        if not isinstance(record, Mapping):
            raise TypeError(f"records must be mappings, got {type(record).__name__}")
        with output_errors(self.path):  # a full disk names the output, not the temp file
            self._backend.write(record)
        self.rows_written += 1

    def write_many(self, records: Iterable[Record]) -> None:
        """Append every record of ``records`` (which may be a generator)."""
        for record in records:
            self.write(record)

    def close(self) -> Path:
        """Complete the file and move it into place; idempotent.

        Returns:
            The final path.

        Raises:
            OutputError: The file could not be completed or renamed (the temporary file
                is removed and any previous ``path`` left intact).
        """
        if self._closed:
            return self.path
        self._closed = True
        try:
            with output_errors(self.path):
                self._backend.finish()
        except BaseException:
            self._backend.discard()
            raise
        commit_file(self._backend.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written; any previous ``path`` stays as it was."""
        if not self._closed:
            self._closed = True
            self._backend.discard()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        elif self.keep_partial:
            with contextlib.suppress(Exception):  # the original exception matters more
                self.close()
        else:
            self.abort()


def write_records(
    records: Iterable[Record],
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    columns: Sequence[str] | None = None,
    schema: Any = None,
) -> Path:
    """Write all ``records`` to ``path`` atomically (all or nothing).

    Args:
        records: Mappings (a list, or a generator -- if it raises, nothing is written
            and any previous file is kept).
        path: Destination; the suffix picks the format unless ``format`` is given
            (``.json``, ``.jsonl``/``.ndjson``, ``.csv``, ``.parquet``/``.pq``).
        format: ``"json"`` (one list), ``"jsonl"``, ``"csv"`` (flattened) or
            ``"parquet"``.
        columns: CSV only: leading columns in this order.
        schema: Parquet only: the schema the file starts from (see :class:`RecordWriter`).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: Unknown format.
        TypeError: A record is not a mapping or holds unserialisable values.
        MissingExtraError: Parquet requested and pyarrow is not installed.
        OutputError: The file cannot be written (an ``OSError``, naming ``path``).
    """
    group = 10_000
    if isinstance(records, Sequence):
        # Known up front: one CSV pass with the full header, one parquet row group
        # so the schema is inferred from every record.
        if columns is None and infer_format(path, format) == "csv":
            columns = list(_union_columns(records))
        group = min(max(len(records), 1), 1_000_000)
    with RecordWriter(path, format, columns=columns, row_group_size=group, schema=schema) as writer:
        writer.write_many(records)
    return Path(path)


def records_to_text(records: Sequence[Record], format: str) -> str:
    """``records`` as JSON Lines or CSV text (for stdout), with exactly the cells a file gets.

    Why: printed and written tables must not differ; CSV cells are flattened
    (``box.x1``, ``keypoints.right_eye.0``) and formatted as ``write_records`` does.
    """
    if format == "jsonl":
        return "".join(to_json_text(r) + "\n" for r in records)
    if format != "csv":
        raise ValueError(f"records_to_text supports jsonl and csv, not {format!r}")
    columns = list(_union_columns(records))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    for record in records:
        flat = flatten_record(record)
        writer.writerow([_csv_cell(flat.get(col)) for col in columns])
    return buf.getvalue()


def _union_columns(records: Iterable[Record]) -> dict[str, None]:
    """Flattened keys of all records in first-seen order."""
    columns: dict[str, None] = {}
    for record in records:
        if isinstance(record, Mapping):
            columns.update(dict.fromkeys(flatten_record(record)))
    return columns
