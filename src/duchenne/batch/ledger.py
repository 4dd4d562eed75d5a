"""Resume bookkeeping: which inputs are done, committed parts, and the final single file.

Layout of an output ``results.parquet`` while a job runs::

    results.parquet            the previous complete output, if any (never touched mid-run)
    results.parquet.parts/
        _job.json              format and analysis settings of the unfinished run
        part-00000.parquet     rows of the first ``part_size`` inputs, committed atomically
        part-00001.parquet     ...

Why this design:

* **The rows are the ledger.** Every input gets at least one row (a face, a no-face row
  or an error row) carrying its ``source`` and ``fingerprint``, so "what is done" is read
  back from the committed parts and the previous output. There is no second record that
  could disagree with the data.
* **A fingerprint names the input and the settings.** :meth:`Ledger.key` appends a digest
  of the analysis settings to the input's own fingerprint, so a run with other settings
  (another model, more stages, crops) redoes every input instead of keeping the previous
  output's rows, made the other way, beside its own.
* **A part is committed by a rename.** Parts are written with ``write_records`` (temp
  file, fsync, ``os.replace``), so a part either exists complete or not at all. A crash or
  ``kill -9`` loses at most the rows buffered for the part in flight; stray temp files
  are removed on the next start.
* **Parts form a prefix.** Engines hand rows over in input order, so the parts of a run
  always hold a prefix of its pending inputs, and a resumed run appends the rest: the
  final table of an interrupted-then-resumed job equals that of an uninterrupted one.
* **One file at the end.** :meth:`Ledger.finalize` streams the previous output (minus
  sources that were redone) and the parts, in order, into one new file that replaces the
  output atomically, then deletes the parts (unless asked to keep them). Parts win over
  the previous output for the same source, so a crash between the replace and the
  clean-up cannot duplicate rows. Memory stays flat: one part (or row group) at a time.

Parts are Parquet for Parquet output and JSON Lines for CSV and JSONL output (typed,
schema-free and needing no pyarrow).

Parquet parts share one schema, so ``OUT.parts/`` reads as one dataset: the schema of
all parts so far, unified as the final file's writer unifies its row groups (new columns
last, a column all null so far takes the type its first values have). A part is written
with that schema; a part that widens it (the first face after parts of failed inputs,
the first error) has the earlier parts rewritten to the wider schema, each atomically.
That happens a handful of times per job, mostly in its first parts; a run that stopped
part way through it finishes it when the next run starts.

Only one job may write an output at a time: :class:`OutputLock` holds an advisory
``flock`` on ``OUT.lock`` for the job's life. Two jobs on the same parts folder would
number their parts from the same counter and replace each other's rows, so the second
job is refused up front instead.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duchenne._version import __version__
from duchenne.errors import BatchError, require_extra
from duchenne.io.atomic import atomic_write, output_errors, stale_temps
from duchenne.io.jsonsafe import json_digest, to_json_text
from duchenne.io.sinks import RecordWriter, write_records

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

Row = dict[str, Any]

JOB_FILE = "_job.json"  # leading "_": pyarrow.dataset skips it when reading the parts
PARTS_SUFFIX = ".parts"
LOCK_SUFFIX = ".lock"
_PART_RE = re.compile(r"^part-(\d{5,})\.(parquet|jsonl)$")


class OutputLock:
    """The advisory lock that lets one batch job at a time write ``out``.

    The lock is an exclusive ``flock`` on ``OUT.lock`` (beside the output), taken without
    waiting: a second job is refused at once with a ``BatchError`` naming the holder's
    process id and host. Why ``flock``: the kernel drops it when the holding process
    ends, however it ends (``kill -9``, a crash, a power cut), so a lock file left by a
    dead job never blocks the next run; only a live holder does. The file is deleted on
    release; a waiter that locked a file just deleted sees that it is no longer the file
    at that path and tries again, so two jobs never hold two different lock files.

    On a filesystem without locks (some network mounts) the job runs unlocked with a
    warning.

    Example:
        >>> with OutputLock("faces.parquet"):       # doctest: +SKIP
        ...     pass                                 # only this process writes faces.parquet
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.path = self.out.with_name(self.out.name + LOCK_SUFFIX)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> OutputLock:
        """Take the lock or raise ``BatchError`` (another live job holds it).

        Raises:
            BatchError: Another live job holds the lock.
            OutputError: The lock file cannot be made or written (a folder without write
                permission, a full disk, a read-only file system), named as the output:
                the job could not write its results there either.
        """
        if self._fd is not None or fcntl is None:
            return self
        with output_errors(self.out):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with output_errors(self.out):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                os.close(fd)
                raise BatchError(
                    f"{self.out} is being written by another batch job{holder}; only one job "
                    "may write an output at a time: wait for it to finish or choose another --out"
                ) from None
            except OSError as exc:  # no locking on this filesystem
                os.close(fd)
                logger.warning(
                    "%s: cannot lock (%s); make sure no other job writes %s",
                    self.path,
                    exc,
                    self.out,
                )
                return self
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the previous holder deleted it between our open and lock: again
        self._fd = fd
        try:
            with output_errors(self.out):  # a full disk: fail now, not after the first part
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Delete the lock file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _lock_holder(fd: int) -> str:
    """`` (pid N on HOST)`` from a lock file, or nothing when it cannot be read."""
    try:
        pid, _, host = os.pread(fd, 256, 0).decode("utf-8", "replace").strip().partition(" ")
    except OSError:
        return ""
    if not pid.isdigit():
        return ""
    return f" (pid {pid} on {host})" if host else f" (pid {pid})"


@dataclass(frozen=True)
class DoneEntry:
    """What the ledger knows about one finished source."""

    fingerprint: str
    failed: bool


class Ledger:
    """The committed state of one batch output, and the only code that writes it.

    Args:
        out: The final output file.
        format: ``"parquet"``, ``"csv"`` or ``"jsonl"``.
        settings: What makes rows differ between runs (format excluded); a resumed run
            must match the unfinished run's settings.
        overwrite: Start again: drop unfinished parts and ignore the previous output
            (it is replaced when this run finalizes).

    Raises:
        BatchError: Unfinished parts were made with other settings, or ``out`` exists
            but was not written by ``duchenne batch``.
    """

    def __init__(
        self, out: str | Path, format: str, settings: dict[str, Any], *, overwrite: bool = False
    ) -> None:
        self.out = Path(out)
        self.format = format
        self.parts_dir = self.out.with_name(self.out.name + PARTS_SUFFIX)
        self.part_format = "parquet" if format == "parquet" else "jsonl"
        self.job = {"format": format, "settings": settings, "duchenne_version": __version__}
        self.settings_tag = json_digest(settings)
        self.done: dict[str, DoneEntry] = {}
        if overwrite:
            self._remove_parts()
            self.job["use_previous_output"] = False
            self._write_job()  # so an interrupted --overwrite run is never resumed onto `out`
        self._check_job()
        self._clean_temp_files()
        self._next = max((i for i, _ in self.parts()), default=-1) + 1
        if self.use_previous_output and self.out.exists():
            self._read_done(self.out, self.format, label=str(self.out))
        for _, part in self.parts():
            self._read_done(part, self.part_format, label=str(part))
        self._schema: Any = None  # of the parquet parts (None: no part yet)
        self._conform_parts()  # after _read_done, which names a part it cannot read

    # ------------------------------------------------------------------ state

    @property
    def use_previous_output(self) -> bool:
        """False after ``overwrite``: the previous output is replaced, not extended."""
        return bool(self.job.get("use_previous_output", True))

    def key(self, fingerprint: str) -> str:
        """The fingerprint written into the rows: the input's own and this run's settings."""
        return f"{fingerprint};settings={self.settings_tag}"

    def is_done(self, source: str, fingerprint: str, *, retry_errors: bool = False) -> bool:
        """True if ``source`` was finished with the same fingerprint (and, with
        ``retry_errors``, without an error). ``fingerprint`` is a :meth:`key`."""
        entry = self.done.get(source)
        if entry is None or entry.fingerprint != fingerprint:
            return False
        return not (retry_errors and entry.failed)

    def parts(self) -> list[tuple[int, Path]]:
        """Committed parts, in order."""
        if not self.parts_dir.is_dir():
            return []
        found = []
        for path in self.parts_dir.iterdir():
            m = _PART_RE.match(path.name)
            if m and m.group(2) == self.part_format:
                found.append((int(m.group(1)), path))
        return sorted(found)

    # ------------------------------------------------------------------ writing

    def commit_part(self, rows: Sequence[Row]) -> Path:
        """Write ``rows`` as the next part, atomically; returns its path."""
        if not (self.parts_dir / JOB_FILE).exists():
            self._write_job()
        path = self.parts_dir / f"part-{self._next:05d}.{self.part_format}"
        write_records(rows, path, format=self.part_format, schema=self._schema)
        self._next += 1
        self._conform_parts(new=path)  # parquet parts only
        for source, entry in _done_of(rows).items():
            self.done[source] = entry
        return path

    def finalize(self, *, keep_parts: bool = False) -> Path | None:
        """Merge the previous output and the parts into ``out`` (atomically).

        Returns:
            ``out``, or None when there is nothing to write (no parts, no output).
        """
        parts = self.parts()
        if not parts:
            self._remove_parts()
            return self.out if self.out.exists() else None
        latest: dict[str, int] = {}
        for index, part in parts:
            for row in iter_rows(part, self.part_format, columns=["source"]):
                latest[row["source"]] = index
        with RecordWriter(self.out, self.format) as writer:
            if self.use_previous_output and self.out.exists():
                for row in iter_rows(self.out, self.format):
                    if row.get("source") not in latest:
                        writer.write(row)
            for index, part in parts:
                for row in iter_rows(part, self.part_format):
                    if latest.get(row["source"]) == index:
                        writer.write(row)
        if not keep_parts:
            self._remove_parts()
        return self.out

    # ------------------------------------------------------------------ helpers

    def _write_job(self) -> None:
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.parts_dir / JOB_FILE, "w") as fh:
            fh.write(to_json_text(self.job, indent=2) + "\n")

    def _conform_parts(self, new: Path | None = None) -> None:
        """Give every parquet part the parts' common schema (see the module docstring).

        ``new``: the part just written from the common schema (possibly widening it);
        None: establish the common schema of the parts a run left (on start).
        """
        if self.part_format != "parquet":
            return
        pq = require_extra("pyarrow.parquet", "parquet")
        if new is not None:
            schema = pq.read_schema(new)
            if schema == self._schema:
                return
            stale = [p for _, p in self.parts() if p != new]  # all of the narrower schema
        else:
            found = {p: pq.read_schema(p) for _, p in self.parts()}
            if not found:
                return
            pa = require_extra("pyarrow", "parquet")
            try:
                schema = pa.unify_schemas(list(found.values()), promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise BatchError(
                    f"{self.parts_dir}: parts that do not fit one schema ({exc}); "
                    "pass --overwrite to start again"
                ) from None
            stale = [p for p, s in found.items() if s != schema]
        for part in stale:
            write_records(list(iter_rows(part, "parquet")), part, "parquet", schema=schema)
        self._schema = schema

    def _check_job(self) -> None:
        path = self.parts_dir / JOB_FILE
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BatchError(f"{path}: unreadable job file ({exc}); pass --overwrite") from None
        for key in ("format", "settings"):
            if old.get(key) != self.job[key]:
                raise BatchError(
                    f"{self.parts_dir} holds an unfinished run with other {key} "
                    f"({_diff(old.get(key), self.job[key])}); rerun with the same options "
                    "to resume, or pass --overwrite to start again"
                )
        if old.get("duchenne_version") != __version__:
            logger.warning(
                "%s was started by duchenne %s, resuming with %s",
                self.parts_dir,
                old.get("duchenne_version"),
                __version__,
            )
        self.job["use_previous_output"] = old.get("use_previous_output", True)

    def _read_done(self, path: Path, fmt: str, label: str) -> None:
        try:
            rows = iter_rows(path, fmt, columns=["source", "fingerprint", "error"])
            entries = _done_of(rows)
        except (KeyError, ValueError, OSError) as exc:
            raise BatchError(
                f"{label} is not a duchenne batch output read as {fmt} ({exc}); "
                "choose another --out or pass --overwrite to replace it"
            ) from None
        self.done.update(entries)

    def _clean_temp_files(self) -> None:
        """Remove hidden temp files left by a writer that was killed: any in the parts
        folder, and those of ``out`` itself (a kill while :meth:`finalize` wrote it).

        Next to ``out`` only the names :func:`duchenne.io.atomic.create_temp` gives a
        write to ``out`` are removed (``.NAME.<8 hex>.tmp`` beside the file ``out``
        resolves to), never another file's; the caller holds :class:`OutputLock`, so no
        live writer of ``out`` owns one. A special-file ``out`` (``/dev/null``) has its
        temp files in the system temp folder, shared with others: left alone.
        """
        if self.parts_dir.is_dir():
            for path in self.parts_dir.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    path.unlink()
        for path in stale_temps(self.out):
            with contextlib.suppress(OSError):
                path.unlink()

    def _remove_parts(self) -> None:
        """Delete the parts folder (only files this module writes, then the folder)."""
        if not self.parts_dir.is_dir():
            return
        for path in self.parts_dir.iterdir():
            if _PART_RE.match(path.name) or path.name == JOB_FILE or path.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    path.unlink()
        try:
            self.parts_dir.rmdir()
        except OSError:
            logger.warning(
                "%s: left in place (it holds files duchenne did not write)", self.parts_dir
            )


def _done_of(rows: Any) -> dict[str, DoneEntry]:
    """Fingerprint and failure per source, from rows that carry them."""
    out: dict[str, DoneEntry] = {}
    for row in rows:
        source, fp, err = row["source"], row["fingerprint"], row.get("error")
        failed = err not in (None, "")
        prev = out.get(source)
        out[source] = DoneEntry(str(fp), failed or (prev is not None and prev.failed))
    return out


def _diff(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        return ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys)
    return f"{old!r} then, {new!r} now"


def iter_rows(path: Path, fmt: str, columns: Sequence[str] | None = None) -> Iterator[Row]:
    """Stream the rows of a parquet, jsonl or csv file (CSV values are strings).

    Raises:
        KeyError: A requested column is missing.
    """
    if fmt == "parquet":
        pq = require_extra("pyarrow.parquet", "parquet")
        pf = pq.ParquetFile(path)
        if columns is not None:
            missing = [c for c in columns if c not in pf.schema_arrow.names and c != "error"]
            if missing:
                raise KeyError(f"no column {missing[0]!r}")
            columns = [c for c in columns if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=4096, columns=columns):
            yield from batch.to_pylist()
    elif fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"line {number} is not a JSON object")
                    _require(row, columns)
                    yield row
    elif fmt == "csv":
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            # the header, not only the rows: a file of one line (a one-row JSON Lines
            # output) reads as a header without rows, which passed for an empty output
            if reader.fieldnames is not None:  # None: an empty file, an empty output
                _require(dict.fromkeys(reader.fieldnames), columns)
            for row in reader:
                _require_whole(row, reader)
                _require(row, columns)
                yield row
    else:
        raise ValueError(f"cannot read back {fmt!r} batch output")


def _require_whole(row: Row, reader: csv.DictReader) -> None:
    """Refuse a CSV row with fewer or more cells than the header.

    Why: every row a batch writes has all the header's cells, so a short one was torn
    (a file cut by hand or a copy that stopped). Read as it is, a row cut inside its
    ``source`` (``photos/a``) would be kept in the output as a made-up input, and one
    cut after its ``fingerprint`` would count as done with its last columns empty.

    Raises:
        ValueError: Naming the line.
    """
    if None in row or None in row.values():  # DictReader's marks for extra / missing cells
        raise ValueError(
            f"line {reader.line_num} does not have one cell per column of the header "
            "(a torn or edited row)"
        )


def _require(row: Row, columns: Sequence[str] | None) -> None:
    for c in columns or ():
        if c not in row and c != "error":
            raise KeyError(f"no column {c!r}")


@dataclass
class PartWriter:
    """Buffers rows in input order and commits a part every ``part_size`` inputs (or
    every ``flush_seconds``, so slow inputs such as long videos lose little on a crash),
    counting what the run did for its summary."""

    ledger: Ledger
    part_size: int = 256
    flush_seconds: float = 60.0
    processed: int = 0
    failed: int = 0
    faces: int = 0
    rows: int = 0
    parts_written: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    _buffer: list[Row] = field(default_factory=list)
    _buffered_inputs: int = 0
    _last: float = field(default_factory=time.monotonic)

    def add(self, results: Sequence[Sequence[Row]]) -> None:
        """Rows of consecutive inputs (one list per input, in input order)."""
        for rows in results:
            self.processed += 1
            error = next((r.get("error") for r in rows if r.get("error")), None)
            if error:
                self.failed += 1
                self.failures.append((str(rows[0]["source"]), str(error)))
            self.faces += sum(1 for r in rows if r.get("face") is not None)
            self._buffer.extend(rows)
            self._buffered_inputs += 1
        if self._buffered_inputs >= self.part_size or (
            self._buffer and time.monotonic() - self._last >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Commit the buffered rows as one part (the buffer is kept if that fails)."""
        if self._buffer:
            self.ledger.commit_part(self._buffer)
            self.rows += len(self._buffer)
            self.parts_written += 1
            self._buffer, self._buffered_inputs = [], 0
        self._last = time.monotonic()
