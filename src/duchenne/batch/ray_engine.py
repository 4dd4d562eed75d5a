"""Ray engine: the same job on Ray Data, on this machine or on a Ray cluster.

Why Ray Data with an actor pool: ``map_batches`` with a callable class and
``compute=ActorPoolStrategy(size=N)`` builds each :class:`~duchenne.batch.worker.BatchWorker`
(its onnxruntime sessions) once per actor and streams small batches of work items through
it, with Ray's own backpressure, scheduling across nodes and object spilling. Rows come
back to the driver in input order (``preserve_order``) and are committed by the same
:class:`~duchenne.batch.ledger.PartWriter` as the local engine, so resume, the single
output file and the rows themselves are identical whichever engine ran.

On a cluster the inputs must be readable from every node: a shared filesystem path
(absolute paths are sent) or a URI (``s3://``, ``gs://``, ``hdfs://`` ...) that fsspec
can open there. The output is written by the driver. duchenne (with the ``[ray]`` extra)
must be installed on every node, e.g. through the cluster image or ``runtime_env``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from duchenne.batch.inputs import InputItem
from duchenne.batch.local import EngineReport, Interrupts, OnResult
from duchenne.batch.worker import BatchWorker, WorkerConfig, peak_rss_mb
from duchenne.errors import BatchError, require_extra
from duchenne.io.jsonsafe import to_json_text

logger = logging.getLogger(__name__)

MAX_BLOCKS = 20_000
"""Upper bound on dataset blocks (one block per chunk below it) for huge jobs."""


class RayBatchWorker:
    """The Ray actor: one ``BatchWorker`` per actor, called once per batch of items."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.worker = BatchWorker(WorkerConfig.from_dict(config))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [InputItem.from_dict(json.loads(s)) for s in batch["item"]]
        rows = self.worker.process(items)
        n = len(items)
        return {
            "item": batch["item"],
            "rows": np.array([to_json_text(r) for r in rows], dtype=object),
            "pid": np.full(n, os.getpid(), dtype=np.int64),
            "rss_mb": np.full(n, peak_rss_mb(), dtype=np.float64),
        }


def ray_available() -> str | None:
    """None if Ray Data can be imported, else the reason it cannot."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc}"
    return None


def run_ray(
    pending: Sequence[InputItem],
    config: WorkerConfig,
    on_result: OnResult,
    *,
    workers: int | None,
    chunk_size: int,
    address: str | None = None,
) -> EngineReport:
    """Analyse ``pending`` on a Ray actor pool; ``on_result`` gets rows in input order.

    Args:
        pending: Work items, in order.
        config: Analysis settings for every actor.
        on_result: Called with consecutive items and their rows.
        workers: Actors (None: all CPUs of the cluster divided by ``config.threads``).
        chunk_size: Items per ``map_batches`` batch (and per dataset block).
        address: Ray cluster address (``"auto"``, ``"ray://head:10001"``, ``"host:6379"``);
            None starts (or reuses) a Ray instance on this machine.

    Raises:
        MissingExtraError: Ray Data is not installed.
        BatchError: Ray could not start or connect.
    """
    ray = require_extra("ray", "ray")
    require_extra("ray.data", "ray")
    BatchWorker(config).close()  # bad settings fail here in one line, not in every actor
    started = _init(ray, address, workers, config.threads)
    interrupts = Interrupts()
    report = EngineReport(workers=workers or 0)
    try:
        with _quiet_ray_data(verbose=logger.isEnabledFor(logging.INFO)), interrupts:
            size = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // config.threads))
            report.workers = size
            ds = _dataset(ray, pending, config, size, chunk_size)
            for batch in ds.iter_batches(batch_size=chunk_size, batch_format="numpy"):
                items = [InputItem.from_dict(json.loads(s)) for s in batch["item"]]
                rows = [json.loads(r) for r in batch["rows"]]
                for pid, rss in zip(batch["pid"], batch["rss_mb"], strict=True):
                    key = f"pid-{int(pid)}"
                    report.peak_rss_mb[key] = max(report.peak_rss_mb.get(key, 0.0), float(rss))
                with interrupts.protected():
                    on_result(items, rows)
                if interrupts.count:
                    break
        report.interrupted = interrupts.count > 0
    except KeyboardInterrupt:
        report.interrupted = True
    except Exception as exc:  # Ray's own errors (e.g. actors that cannot start) in one line
        if not type(exc).__module__.startswith("ray"):
            raise
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise BatchError(f"the Ray job failed: {lines[-1]}") from exc
    finally:
        if started:
            ray.shutdown()
    return report


def _init(ray: Any, address: str | None, workers: int | None, threads: int) -> bool:
    """Connect to ``address`` or start a local instance; True if this call started Ray."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
        "configure_logging": True,
    }
    if address is None:
        cores = os.cpu_count() or 1
        kwargs["num_cpus"] = max(cores, (workers or 0) * threads)
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise BatchError(f"could not start {where}: {type(exc).__name__}: {exc}") from None
    return True


def _dataset(
    ray: Any, pending: Sequence[InputItem], config: WorkerConfig, size: int, chunk_size: int
) -> Any:
    """Items -> ``map_batches`` on an actor pool of ``size`` actors, order preserved."""
    with warnings.catch_warnings():  # Ray sets its own deprecated defaults when it builds it
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # the driver shows its own bar
    rows = [{"item": to_json_text(item.to_dict())} for item in pending]
    blocks = max(1, min(math.ceil(len(rows) / chunk_size), MAX_BLOCKS))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    return ds.map_batches(
        RayBatchWorker,
        fn_constructor_kwargs={"config": config.to_dict()},
        batch_size=chunk_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=config.threads,
    )


@contextlib.contextmanager
def _quiet_ray_data(verbose: bool) -> Iterator[None]:
    """Ray Data logs every execution at INFO and warns that its progress bars are off (the
    driver shows its own): keep its logger at ERROR during the run unless ``-v``."""
    log = logging.getLogger("ray.data")
    level = log.level
    if not verbose:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
