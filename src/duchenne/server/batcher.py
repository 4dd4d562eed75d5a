"""Micro-batching: images from concurrent requests share one analysis call.

Why: each request's CPU work must leave the event loop, and handing every image to the
thread pool separately costs a hand-off per image and lets an unbounded number of calls
compete for the cores. The batcher keeps one queue; a collector takes a free worker slot,
then gathers up to ``max_size`` queued items with the same options and runs them as one
``run_batch`` call in the pool. It waits for more items (at most ``max_wait_s`` after the
first) only when it holds the last free slot: while another worker is idle, a late item
would be served at once anyway, so waiting would only add latency (measured: a 3 ms wait
costs a lone request about 4.5 ms). Under load the queue fills while every worker is busy,
so batches form without any waiting at all.

The same class runs unbatched (``enabled=False``: one pool call per item), so the
benchmark can compare both with everything else equal. ``max_pending`` bounds the items
queued or running; beyond it ``submit`` raises ``QueueFullError`` at once (HTTP 503)
instead of letting latency and memory grow without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from duchenne.errors import ServiceError

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


class QueueFullError(ServiceError):
    """More items are pending than ``max_pending``: the caller should answer 503."""


class ShuttingDownError(ServiceError):
    """The batcher is closing and takes no new work."""


@dataclass
class _Item(Generic[K, T]):
    key: K
    value: T
    future: asyncio.Future[Any]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[K, T, R]):
    """Group concurrent ``submit`` calls into ``run_batch(key, values)`` calls on an executor.

    Args:
        run_batch: ``(key, values) -> results``, one result per value, run in ``executor``;
            a result that is an ``Exception`` is raised to that item's caller only.
        executor: the thread pool doing the CPU work.
        slots: batches running at once (normally the pool's size).
        max_size: most items in one batch.
        max_wait_s: longest wait for more items after the first one of a batch.
        max_pending: most items queued or running; more raise ``QueueFullError``.
        enabled: False runs each item alone (``run_batch(key, [value])``), the baseline.
        on_batch: called with the size of every batch run (metrics).

    Example:
        >>> async def demo():
        ...     from concurrent.futures import ThreadPoolExecutor
        ...     b = MicroBatcher(lambda k, xs: [x * 2 for x in xs], ThreadPoolExecutor(1))
        ...     await b.start()
        ...     out = await asyncio.gather(*(b.submit("k", i) for i in range(3)))
        ...     await b.close()
        ...     return out
        >>> asyncio.run(demo())
        [0, 2, 4]
    """

    def __init__(
        self,
        run_batch: Callable[[K, list[T]], Sequence[R | Exception]],
        executor: Executor,
        *,
        slots: int = 1,
        max_size: int = 8,
        max_wait_s: float = 0.003,
        max_pending: int = 64,
        enabled: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.run_batch, self.executor = run_batch, executor
        self.slots, self.max_size, self.max_wait_s = max(1, slots), max(1, max_size), max_wait_s
        self.max_pending, self.enabled, self.on_batch = max_pending, enabled, on_batch
        self.pending = 0
        self.running = 0  # batches in the pool
        self._queue: deque[_Item[K, T]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._free: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the collector task (call from the running event loop)."""
        self._wakeup, self._free = asyncio.Event(), asyncio.Semaphore(self.slots)
        if self.enabled:
            self._task = asyncio.create_task(self._collect(), name="duchenne-batcher")

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new items, let queued and running ones finish (up to ``timeout``), stop."""
        self._closing = True
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.pending:
            logger.warning("batcher closed with %d item(s) unfinished", self.pending)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(ShuttingDownError("server is shutting down"))
        self._queue.clear()

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not yet running)."""
        return len(self._queue)

    # ------------------------------------------------------------------ submit

    @contextlib.contextmanager
    def reserve(self, n: int = 1) -> Iterator[None]:
        """Hold ``n`` queue places for the block (submit inside with ``reserved=True``).

        Reserving before the expensive preparation (decoding an upload) means a request
        refused for a full queue costs no decoding.

        Raises:
            QueueFullError: fewer than ``n`` places are free.
            ShuttingDownError: the batcher is closing.
        """
        if self._closing:
            raise ShuttingDownError("server is shutting down")
        if self.pending + n > self.max_pending:
            raise QueueFullError(
                f"{self.pending} images already queued; the limit is {self.max_pending}"
            )
        self.pending += n
        try:
            yield
        finally:
            self.pending -= n

    async def submit(self, key: K, value: T, *, reserved: bool = False) -> R:
        """Analyse ``value`` with options ``key``; returns its result or raises its error.

        Args:
            reserved: the caller holds a place from ``reserve()`` (else one is taken here).

        Raises:
            QueueFullError: ``max_pending`` items are already queued or running.
            ShuttingDownError: the batcher is closing.
        """
        if reserved:
            return await self._submit(key, value)
        with self.reserve():
            return await self._submit(key, value)

    async def _submit(self, key: K, value: T) -> R:
        if not self.enabled:
            return await self._run_alone(key, value)
        loop = asyncio.get_running_loop()
        item: _Item[K, T] = _Item(key, value, loop.create_future())
        self._queue.append(item)
        assert self._wakeup is not None, "MicroBatcher.start() was not called"
        self._wakeup.set()
        return await item.future

    async def _run_alone(self, key: K, value: T) -> R:
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.executor, self._call, key, [value])
        result = results[0]
        if isinstance(result, Exception):
            raise result
        return result  # type: ignore[return-value]

    def _call(self, key: K, values: list[T]) -> Sequence[R | Exception]:
        if self.on_batch is not None:
            self.on_batch(len(values))
        results = self.run_batch(key, values)
        if len(results) != len(values):
            raise RuntimeError(f"run_batch returned {len(results)} results for {len(values)}")
        return results

    # ------------------------------------------------------------------ collector

    async def _collect(self) -> None:
        """Forever: take a free slot, gather a batch, start it in the pool."""
        assert self._free is not None
        while True:
            await self._free.acquire()
            try:
                key, batch = await self._next_batch()
            except BaseException:
                self._free.release()
                raise
            loop = asyncio.get_running_loop()
            self.running += 1
            running = loop.run_in_executor(self.executor, self._call, key, [i.value for i in batch])
            running.add_done_callback(lambda fut, batch=batch: self._deliver(fut, batch))

    async def _next_batch(self) -> tuple[K, list[_Item[K, T]]]:
        """Wait for a live item, then gather same-key items until full or ``max_wait_s``
        (the wait only when no other worker slot is free)."""
        assert self._wakeup is not None
        while not self._drop_cancelled():
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue[0].key
        batch = self._take(key, self.max_size)
        idle_others = self.slots - self.running - 1
        deadline = time.perf_counter() + (0.0 if idle_others > 0 else self.max_wait_s)
        while len(batch) < self.max_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
            batch += self._take(key, self.max_size - len(batch))
        return key, batch

    def _drop_cancelled(self) -> bool:
        """Remove items whose caller gave up (timeout, disconnect); True if any remain."""
        if any(i.future.done() for i in self._queue):
            self._queue = deque(i for i in self._queue if not i.future.done())
        return bool(self._queue)

    def _take(self, key: K, limit: int) -> list[_Item[K, T]]:
        """Pull up to ``limit`` live items with ``key`` out of the queue, in order."""
        taken: list[_Item[K, T]] = []
        rest: deque[_Item[K, T]] = deque()
        for item in self._queue:
            if item.future.done():
                continue
            if item.key == key and len(taken) < limit:
                taken.append(item)
            else:
                rest.append(item)
        self._queue = rest
        return taken

    def _deliver(self, fut: asyncio.Future[Any], batch: list[_Item[K, T]]) -> None:
        """Hand each caller its result (or the batch's failure) and free the slot."""
        assert self._free is not None
        self.running -= 1
        self._free.release()
        if fut.cancelled():
            results: Sequence[Any] = [asyncio.CancelledError()] * len(batch)
        elif fut.exception() is not None:
            results = [fut.exception()] * len(batch)
        else:
            results = fut.result()
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
