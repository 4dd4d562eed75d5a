"""Image analysis in worker processes: the service's GIL-free execution mode.

Why: in the default mode the service runs the face pipeline in a thread pool. onnxruntime
releases the GIL while a model runs, but the Python between the models (decoding
bookkeeping, alignment, post-processing, JSON) does not, so two threads on two cores
finish fewer images than two processes would, and the gap widens with more cores. With
``processes=N`` every micro-batch is sent to one of N worker processes, each holding its
own ``Analyzer`` (built once, when the pool starts); the server process keeps HTTP,
decoding and drawing. Images travel to the workers as decoded arrays and ``Faces`` come
back, both pickled; a decoded 640x480 image costs well under a millisecond to send.

A worker that dies (killed, out of memory) breaks the pool: the batch that was running
fails with a server error, and the pool is rebuilt for the next one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import AnalyzerConfig
from duchenne.errors import DuchenneError
from duchenne.faces import Faces

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- in the worker

_analyzer: Analyzer | None = None


def _start_worker(config: AnalyzerConfig) -> None:
    """Pool initializer: build this worker's one ``Analyzer``."""
    global _analyzer
    _analyzer = Analyzer(config)


def _worker_pid() -> int:
    """A no-op task; its answer shows the worker is up (warm-up)."""
    return os.getpid()


def _analyze_in_worker(
    config: AnalyzerConfig, crop: bool, images: list[np.ndarray]
) -> list[Faces | DuchenneError]:
    """Run one micro-batch with a view of the worker's ``Analyzer`` for ``config``."""
    if _analyzer is None:  # pragma: no cover - the initializer always ran first
        raise RuntimeError("worker process has no analyzer")
    return _analyzer.view(config).analyze_batch(images, crop=crop)


# --------------------------------------------------------------------------- in the server


class ProcessAnalysis:
    """A pool of analysis worker processes.

    Args:
        processes: worker processes (each runs one micro-batch at a time).
        config: the options every worker builds its ``Analyzer`` from.
    """

    def __init__(self, processes: int, config: AnalyzerConfig) -> None:
        self.processes, self.config = processes, config
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server process already runs threads and onnxruntime sessions
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.config,),
        )

    def warm_up(self) -> list[int]:
        """Start the workers (two no-op tasks per worker) and wait until those that took
        one have built their analyzer; their pids."""
        futures = [self._pool.submit(_worker_pid) for _ in range(self.processes * 2)]
        return sorted({f.result() for f in futures})

    def run(
        self, config: AnalyzerConfig, crop: bool, images: list[np.ndarray]
    ) -> list[Faces | Exception]:
        """Analyse one micro-batch in a worker with a view of its analyzer for ``config``
        (a per-request ``dataclasses.replace`` of the service's config); blocks the calling
        pool thread, not the GIL."""
        pool = self._pool
        try:
            return pool.submit(_analyze_in_worker, config, crop, images).result()
        except BrokenProcessPool:
            logger.error("an analysis worker process died; restarting the pool")
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    def close(self) -> None:
        """Stop the workers after the batches they are running."""
        self._pool.shutdown(wait=True, cancel_futures=True)
