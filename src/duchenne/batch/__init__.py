"""Batch processing at scale: many images and videos into one results file, resumably.

``run`` expands the inputs, skips those an earlier run of the same output already
finished, analyses the rest on a local process pool or on Ray, commits the rows in parts
as it goes and finally merges everything into one Parquet, CSV or JSONL file. See
``docs/batch.md`` for the layout on disk and how to run on a Ray cluster.

Example:
    >>> from duchenne import batch
    >>> summary = batch.run(["photos/"], out="faces.parquet", workers=2)   # doctest: +SKIP
    >>> summary.processed, summary.failed, round(summary.throughput)        # doctest: +SKIP
    (3000, 12, 41)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from duchenne.analysis.config import AnalyzerConfig
from duchenne.batch.inputs import InputItem, MemberLimits, expand_inputs
from duchenne.batch.ledger import Ledger, OutputLock, PartWriter
from duchenne.batch.local import EngineReport, run_local
from duchenne.batch.worker import Row, WorkerConfig
from duchenne.errors import BatchError
from duchenne.io.atomic import output_errors
from duchenne.io.progress import ProgressBar
from duchenne.io.sinks import infer_format

__all__ = ["ENGINES", "OUTPUT_FORMATS", "BatchSummary", "WorkerConfig", "default_workers", "run"]

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")


@dataclass
class BatchSummary:
    """What a batch run did.

    Attributes:
        output: The results file (None if nothing was ever written).
        format: ``"parquet"``, ``"csv"`` or ``"jsonl"``.
        engine: ``"local"`` or ``"ray"``.
        workers: Worker processes or Ray actors used.
        inputs: Inputs found (images, videos, archive members).
        skipped: Inputs already done by an earlier run (not analysed again).
        failed_before: Of ``skipped``, those an earlier run finished with an error: their
            error rows are kept (``retry_errors=True`` analyses them again). Counted
            so that a rerun does not read as a clean job when the output still holds
            errors of the inputs it names.
        processed: Inputs analysed by this run (including those that failed).
        failed: Inputs of this run whose row carries an error.
        faces: Face rows written by this run.
        rows: Rows written by this run.
        seconds: Wall time of the analysis (workers' start-up included).
        startup_seconds: Time until the first results arrived.
        interrupted: The run was stopped by Ctrl-C (finished inputs were kept).
        failures: ``(source, error)`` of every failed input of this run.
        peak_rss_mb: Peak resident memory of each worker process (MiB).
        crashed_workers: Worker processes that died and were replaced.
    """

    output: Path | None
    format: str
    engine: str
    workers: int
    inputs: int
    skipped: int
    failed_before: int = 0
    processed: int = 0
    failed: int = 0
    faces: int = 0
    rows: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    crashed_workers: int = 0

    @property
    def throughput(self) -> float:
        """Inputs analysed per second by this run (0 when none were)."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def remaining(self) -> int:
        """Inputs neither done before nor by this run (after an interruption)."""
        return self.inputs - self.skipped - self.processed

    def describe(self) -> str:
        """One line for people: counts, rate and where the results are."""
        earlier = (
            f" ({self.failed_before} of them failed in an earlier run: error rows kept, "
            "--retry-errors analyses them again)"
            if self.failed_before
            else ""
        )
        if self.processed or self.interrupted:  # stopped before any result: not "all done"
            text = (
                f"{self.processed} analysed ({self.failed} failed, {self.faces} faces), "
                f"{self.skipped} already done{earlier}, in {self.seconds:.1f} s = "
                f"{self.throughput:.1f} inputs/s on {self.workers} {self.engine} worker(s)"
            )
        else:
            text = f"nothing to analyse: all {self.inputs} inputs already done{earlier}"
        if self.output is not None:
            text += f" -> {self.output}"
        if self.interrupted:
            text += f"; interrupted with {self.remaining} left: rerun the same command to finish"
        return text


def default_workers() -> int:
    """One worker per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def output_format(out: str | os.PathLike[str], format: str | None = None) -> str:
    """``format``, else from the suffix of ``out``, else Parquet.

    Raises:
        ValueError: A format batch does not write (``json``: not streamable).
    """
    if format is None:
        try:
            format = infer_format(out)
        except ValueError:
            return "parquet"
    fmt = infer_format(out, format)
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"batch writes {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    return fmt


def run(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    format: str | None = None,
    list_files: Sequence[str | os.PathLike[str]] = (),
    config: AnalyzerConfig | None = None,
    crop: bool = False,
    landmarks: bool = False,
    video_summary: bool = False,
    video_fps: float | None = 5.0,
    chunk_size: int = 8,
    part_size: int = 256,
    keep_parts: bool = False,
    overwrite: bool = False,
    retry_errors: bool = False,
    fingerprint: str = "stat",
    limits: MemberLimits | None = None,
    progress: bool = False,
    **analyzer_options: Any,
) -> BatchSummary:
    """Analyse every input into one results file; resume what an earlier run left.

    Args:
        inputs: Files, folders (recursive), globs, ``@list.txt`` files, zip/tar archives
            and fsspec URIs, images and videos mixed.
        out: Results file (``.parquet``, ``.csv``, ``.jsonl``). Parts are kept in
            ``OUT.parts/`` while the job runs.
        engine: ``"local"`` (worker processes) or ``"ray"`` (Ray Data actor pool).
        workers: Processes or actors (None: one per core; for Ray on a cluster: the
            cluster's CPUs / ``threads``). ``0`` with the local engine analyses in this
            process.
        address: Ray cluster address (``engine="ray"`` only; None = local Ray).
        format: Output format (None: from the suffix of ``out``, else Parquet).
        list_files: Text files listing more inputs, one a line.
        config: The ``Analyzer`` options of every worker
            (:class:`~duchenne.analysis.config.AnalyzerConfig`; ``threads`` is per worker,
            None = 1).
        crop, landmarks: As for ``duchenne analyze``.
        video_summary: One row per face track per video instead of one per sampled frame.
        video_fps: Frames per second sampled from videos (None: every frame).
        chunk_size: Inputs per task sent to a worker.
        part_size: Inputs per committed part (what a crash can lose at most).
        keep_parts: Keep ``OUT.parts/`` after writing ``out``.
        overwrite: Start again, ignoring unfinished parts and the previous ``out``.
        retry_errors: Analyse again inputs that failed in an earlier run.
        fingerprint: ``"stat"`` (path + size + mtime) or ``"content"`` (sha256) to
            decide that an input is unchanged since an earlier run.
        limits: Size caps of archive members (None: 256 MiB per image, 4 GiB per video);
            a member over its cap is reported as a failed input.
        progress: Show a progress bar (rate and ETA) on stderr.
        **analyzer_options: ``AnalyzerConfig`` fields replacing those of ``config``
            (``stages=("detect",)``, ``threads=2``, ...).

    Returns:
        A :class:`BatchSummary`; ``interrupted`` is set after Ctrl-C (finished inputs are
        in ``out``; running again continues).

    Raises:
        BatchError: No inputs, ``out`` is a folder, another job is writing ``out``
            (see :class:`~duchenne.batch.ledger.OutputLock`), unfinished parts with other
            settings, an output that is not a batch output, or workers that cannot start.
        MissingExtraError: ``engine="ray"`` without Ray, or Parquet without pyarrow.
        ValueError: Unknown engine, format, fingerprint mode or stage; ``workers`` < 0,
            ``chunk_size`` or ``part_size`` < 1, ``video_fps`` <= 0, a member limit < 1.
        TypeError: An ``analyzer_options`` key that is not an ``AnalyzerConfig`` field.
    """
    _check_options(engine, workers, chunk_size, part_size, video_fps)
    fmt = output_format(out, format)
    with output_errors(out):  # a name too long for the file system, a folder it cannot see
        is_folder = Path(out).is_dir()
    if is_folder:
        example = Path(out) / f"faces.{fmt}"
        raise BatchError(f"{out} is a folder; --out must name a results file (e.g. {example})")
    worker_config = WorkerConfig(
        AnalyzerConfig.build(config, **analyzer_options),
        crop=crop,
        landmarks=landmarks,
        video_summary=video_summary,
        video_fps=video_fps,
    )
    with OutputLock(out):  # held until the output is written: one job per output
        items = expand_inputs(inputs, list_files=list_files, fingerprint=fingerprint, limits=limits)
        if not items:
            raise BatchError("no inputs found (give files, folders, globs, archives or @list.txt)")
        ledger = Ledger(out, fmt, worker_config.results_key(), overwrite=overwrite)
        items = [replace(i, fingerprint=ledger.key(i.fingerprint)) for i in items]
        pending: list[InputItem] = []
        failed_before = 0
        for item in items:
            if not ledger.is_done(item.source, item.fingerprint, retry_errors=retry_errors):
                pending.append(item)
            elif ledger.done[item.source].failed:  # kept: the summary and exit status say so
                failed_before += 1
        skipped = len(items) - len(pending)
        summary = BatchSummary(
            None, fmt, engine, 0, inputs=len(items), skipped=skipped, failed_before=failed_before
        )
        writer = PartWriter(ledger, part_size=part_size)
        if pending:
            report = _analyse(
                pending,
                worker_config,
                writer,
                summary,
                engine,
                workers,
                address,
                chunk_size,
                progress,
            )
            summary.workers, summary.interrupted = report.workers, report.interrupted
            summary.peak_rss_mb = report.peak_rss_mb
            summary.crashed_workers = report.crashed_workers
        summary.output = ledger.finalize(keep_parts=keep_parts)
    summary.processed, summary.failed, summary.faces = writer.processed, writer.failed, writer.faces
    summary.rows, summary.failures = writer.rows, writer.failures
    return summary


def _check_options(
    engine: str, workers: int | None, chunk_size: int, part_size: int, video_fps: float | None
) -> None:
    """Refuse nonsensical options before anything is listed, locked or written."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if chunk_size < 1 or part_size < 1:
        raise ValueError("chunk_size and part_size must be >= 1")
    if workers is not None and (
        isinstance(workers, bool) or int(workers) != workers or workers < 0
    ):
        raise ValueError(f"workers must be an integer >= 0 (0: this process), got {workers!r}")
    if video_fps is not None and not (math.isfinite(video_fps) and video_fps > 0):
        raise ValueError(f"video_fps must be > 0 (None: every frame), got {video_fps!r}")


def _analyse(
    pending: list[InputItem],
    config: WorkerConfig,
    writer: PartWriter,
    summary: BatchSummary,
    engine: str,
    workers: int | None,
    address: str | None,
    chunk_size: int,
    progress: bool,
) -> EngineReport:
    """Run the engine with a progress bar; commit whatever finished, whatever happens."""
    bar = ProgressBar(
        total=summary.inputs,
        initial=summary.skipped,
        disable=not progress,
        desc="batch",
        unit="input",
        smoothing=0.05,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()

    def on_result(items: Sequence[InputItem], rows: Sequence[Sequence[Row]]) -> None:
        if not summary.startup_seconds:
            summary.startup_seconds = time.perf_counter() - t0
        writer.add(rows)
        # the count first: the line update prints, maybe the last one, shows it
        bar.set_postfix(failed=writer.failed, refresh=False)
        bar.update(len(items))

    try:
        if engine == "ray":
            from duchenne.batch.ray_engine import run_ray

            return run_ray(
                pending, config, on_result, workers=workers, chunk_size=chunk_size, address=address
            )
        n = default_workers() if workers is None else workers
        n = min(n, -(-len(pending) // chunk_size))  # no idle workers on small jobs
        return run_local(_chunks(pending, chunk_size), config, on_result, workers=n)
    finally:
        summary.seconds = time.perf_counter() - t0
        bar.close()
        writer.flush()


def _chunks(items: list[InputItem], size: int) -> Iterator[list[InputItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
