"""Local engine: N worker processes on this machine, each with its own onnxruntime sessions.

Why hand-rolled rather than ``multiprocessing.Pool``: a batch job must (a) keep memory
flat whatever the number of inputs -- each worker holds at most ``PREFETCH`` small chunks
and the parent holds at most ``AHEAD_PER_WORKER * workers`` chunks for re-ordering, (b) hand rows over in
input order so committed parts always form a prefix (see ``ledger``), (c) survive a worker
that dies on a poisonous input -- each worker has its own queue, so the chunk it was on is
known; that chunk is retried one input at a time and the input that kills a worker again
gets an error row -- and (d) stop cleanly on Ctrl-C. ``Pool`` consumes its whole input
iterator up front, cannot attribute a dead worker's task, and leaves Ctrl-C to chance.

Workers are started with the ``spawn`` method (no forked onnxruntime or tqdm threads) and
with SIGINT ignored, so Ctrl-C reaches only the parent: the first press stops handing out
work and waits for the chunks in flight (about a second), the second kills the workers.
Either way every finished input in order is kept.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from duchenne.batch.inputs import InputItem
from duchenne.batch.worker import (
    BatchWorker,
    Row,
    WorkerConfig,
    error_row,
    peak_rss_mb,
    stamp_row,
)
from duchenne.errors import BatchError

logger = logging.getLogger(__name__)

PREFETCH = 2
"""Chunks queued per worker: one in progress, one ready (keeps workers busy, memory flat)."""

AHEAD_PER_WORKER = 32
"""Chunks handed out beyond the oldest unfinished one, per worker: bounds the results held
for re-ordering when one chunk is slow (a long video), at the cost of idling the others."""

OnResult = Callable[[Sequence[InputItem], Sequence[Sequence[Row]]], None]

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class EngineReport:
    """What an engine tells the driver besides the rows."""

    workers: int
    interrupted: bool = False
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    crashed_workers: int = 0


def run_local(
    chunks: Iterator[list[InputItem]],
    config: WorkerConfig,
    on_result: OnResult,
    *,
    workers: int,
) -> EngineReport:
    """Analyse ``chunks`` on ``workers`` processes; ``on_result`` gets rows in input order.

    Args:
        chunks: Consecutive chunks of pending inputs (consumed lazily).
        config: Analysis settings for every worker.
        on_result: Called with each chunk's items and their rows, in chunk order.
        workers: Number of processes; 0 runs in this process (debugging, tiny jobs).

    Returns:
        The engine report (``interrupted`` after Ctrl-C).

    Raises:
        BatchError: A worker could not start (e.g. an unknown smile model).
    """
    if workers <= 0:
        return _run_inline(chunks, config, on_result)
    return _Pool(config, workers, on_result).run(chunks)


def _run_inline(
    chunks: Iterator[list[InputItem]], config: WorkerConfig, on_result: OnResult
) -> EngineReport:
    report = EngineReport(workers=0)
    worker = BatchWorker(config)
    interrupts = Interrupts()
    try:
        with interrupts:
            for chunk in chunks:
                rows = worker.process(chunk)
                with interrupts.protected():
                    on_result(chunk, rows)
                if interrupts.count:
                    report.interrupted = True
                    break
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        worker.close()
        report.peak_rss_mb[f"pid-{os.getpid()}"] = peak_rss_mb()
    return report


class Interrupts:
    """Ctrl-C as a counter: the first press asks the loop to stop after the work in
    flight; the second raises ``KeyboardInterrupt``, but never inside a ``protected()``
    block (handing rows to the part writer), so committed state stays an input prefix.
    Outside the main thread signals cannot be handled and nothing is installed."""

    def __init__(self) -> None:
        self.count = 0
        self._depth = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            logger.warning("stopping after the inputs in flight (Ctrl-C again to stop now)")
        if self.count >= 2 and self._depth == 0:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def protected(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self.count >= 2 and self._depth == 0:
            raise KeyboardInterrupt


@dataclass
class _Task:
    key: int  # chunk number
    sub: int | None  # input index inside the chunk when it is retried one input at a time
    items: list[InputItem]


class _Slot:
    """One worker process and the tasks sent to it, oldest (= in progress) first."""

    def __init__(self, ctx: Any, config: WorkerConfig, name: str) -> None:
        parent, child = ctx.Pipe()
        self.name = name
        self.process = ctx.Process(
            target=_worker_main, args=(child, config.to_dict()), name=name, daemon=True
        )
        with _spawn_environment(config.threads):
            self.process.start()
        child.close()
        self.conn: Connection = parent
        self.tasks: deque[_Task] = deque()
        self.ready = False
        self.dead = False
        self.pid: int | None = None

    def send(self, task: _Task) -> None:
        self.conn.send((task.key, task.sub, task.items))
        self.tasks.append(task)

    def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
        with contextlib.suppress(OSError):
            self.conn.close()

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.process.join(2.0)


class _Pool:
    """The parent's side: hand out chunks, collect rows, reorder, survive crashes."""

    def __init__(self, config: WorkerConfig, workers: int, on_result: OnResult) -> None:
        self.config, self.n, self.on_result = config, workers, on_result
        self.ctx = multiprocessing.get_context("spawn")
        self.report = EngineReport(workers=workers)
        self.slots: list[_Slot] = []
        self.retry: deque[_Task] = deque()
        self.items: dict[int, list[InputItem]] = {}
        self.done: dict[int, list[list[Row]]] = {}
        self.split: dict[int, list[list[Row] | None]] = {}
        self.next_emit = 0
        self.models = ""
        self.interrupts = Interrupts()
        self._spawned = 0

    # ------------------------------------------------------------------ main loop

    def run(self, chunks: Iterator[list[InputItem]]) -> EngineReport:
        source = enumerate(chunks)
        exhausted = False
        try:
            with self.interrupts:
                self.slots = [self._spawn() for _ in range(self.n)]
                while True:
                    self.report.interrupted = self.interrupts.count > 0
                    exhausted = self._fill(source, exhausted or self.report.interrupted)
                    if not any(s.tasks for s in self.slots) and not self.retry:
                        break
                    self._poll(0.5)
                    self._emit()
        except KeyboardInterrupt:
            self.report.interrupted = True
            for slot in self.slots:
                slot.kill()
        finally:
            for slot in self.slots:
                slot.stop()
        self._emit()  # whatever finished, in order (nothing more after a gap)
        return self.report

    def _fill(self, source: Iterator[tuple[int, list[InputItem]]], exhausted: bool) -> bool:
        """Top up every live worker to ``PREFETCH`` tasks: retries first, then new chunks."""
        for slot in self.slots:
            while not slot.dead and len(slot.tasks) < PREFETCH:
                if self.retry:
                    slot.send(self.retry.popleft())
                    continue
                if exhausted or len(self.items) >= AHEAD_PER_WORKER * self.n:
                    break
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                    break
                key, items = nxt
                self.items[key] = items
                slot.send(_Task(key, None, items))
        return exhausted

    def _poll(self, timeout: float) -> None:
        by_conn = {s.conn: s for s in self.slots if not s.dead}
        by_sentinel = {s.process.sentinel: s for s in self.slots if not s.dead}
        for ready in wait([*by_conn, *by_sentinel], timeout):
            slot = by_conn.get(ready) or by_sentinel[ready]  # type: ignore[call-overload]
            if slot.dead:
                continue
            try:
                while slot.conn.poll():
                    self._handle(slot, slot.conn.recv())
            except (EOFError, OSError):
                pass
            if not slot.process.is_alive():
                self._replace(slot)

    def _handle(self, slot: _Slot, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ready":
            slot.ready, slot.pid, self.models = True, msg[1], msg[2]
        elif kind == "fatal":
            raise BatchError(f"a batch worker could not start: {msg[1]}")
        elif kind == "done":
            _, key, sub, rows, rss = msg
            task = slot.tasks.popleft()
            assert (task.key, task.sub) == (key, sub), "worker answered out of order"
            self.report.peak_rss_mb[f"pid-{slot.pid}"] = rss
            self._store(key, sub, rows)

    def _store(self, key: int, sub: int | None, rows: list[list[Row]]) -> None:
        if sub is None:
            self.done[key] = rows
            return
        parts = self.split[key]
        parts[sub] = rows[0]
        if all(p is not None for p in parts):
            self.done[key] = self.split.pop(key)  # type: ignore[assignment]

    def _emit(self) -> None:
        while self.next_emit in self.done:
            key = self.next_emit
            items, rows = self.items.pop(key), self.done.pop(key)
            self.next_emit += 1
            with self.interrupts.protected():
                self.on_result(items, rows)

    # ------------------------------------------------------------------ crashes

    def _replace(self, slot: _Slot) -> None:
        """A worker died: requeue its waiting tasks, isolate or fail the one in progress."""
        slot.dead = True
        code = slot.process.exitcode
        if not slot.ready:
            raise BatchError(
                f"batch worker {slot.name} exited ({_describe_exit(code)}) while starting; "
                "called from a script? workers start by 'spawn' and import it again, so "
                'the call must sit under `if __name__ == "__main__":`'
            )
        self.report.crashed_workers += 1
        logger.warning("batch worker %s died (%s); restarting it", slot.name, _describe_exit(code))
        tasks = list(slot.tasks)
        slot.tasks.clear()
        with contextlib.suppress(OSError):
            slot.conn.close()
        self.retry.extendleft(reversed(tasks[1:]))
        if tasks:
            self._isolate(tasks[0], code)
        index = self.slots.index(slot)
        self.slots[index] = self._spawn()

    def _isolate(self, task: _Task, code: int | None) -> None:
        """Retry a crashed chunk one input at a time; an input that crashed alone fails."""
        if task.sub is None and len(task.items) > 1:
            self.split[task.key] = [None] * len(task.items)
            singles = [_Task(task.key, i, [item]) for i, item in enumerate(task.items)]
            self.retry.extendleft(reversed(singles))
            return
        item = task.items[0]
        message = f"WorkerCrashed: the worker process died ({_describe_exit(code)}) on this input"
        rows = [[stamp_row(error_row(item.source, message), item, self.models)]]
        self._store(task.key, task.sub, rows)

    # ------------------------------------------------------------------ processes

    def _spawn(self) -> _Slot:
        self._spawned += 1
        return _Slot(self.ctx, self.config, f"duchenne-batch-{self._spawned}")


@contextlib.contextmanager
def _spawn_environment(threads: int) -> Iterator[None]:
    """Children inherit SIGINT ignored (Ctrl-C is the parent's to handle) and one BLAS
    thread per onnxruntime thread unless the user set those variables."""
    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    for key in _THREAD_ENV:
        os.environ.setdefault(key, str(max(1, threads)))
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _worker_main(conn: Connection, config: dict[str, Any]) -> None:
    """Body of a worker process: build the sessions once, then answer chunk after chunk."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = BatchWorker(WorkerConfig.from_dict(config))
    except BaseException as exc:  # reported to the parent, which stops the job
        with contextlib.suppress(OSError):
            conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ready", os.getpid(), worker.models))
        while True:
            msg = conn.recv()
            if msg is None:
                break
            key, sub, items = msg
            rows = worker.process(items)
            conn.send(("done", key, sub, rows, peak_rss_mb()))
    except (EOFError, OSError):  # the parent went away (killed): nothing left to do
        pass
    finally:
        worker.close()
