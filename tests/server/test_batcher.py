"""``MicroBatcher``: batching, grouping by options, per-item errors, bounds, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from duchenne.server.batcher import MicroBatcher, QueueFullError, ShuttingDownError


class Recorder:
    """``run_batch`` stand-in that records batches; values < 0 fail individually."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, key, values):
        with self.lock:
            self.batches.append((key, list(values)))
        time.sleep(self.delay)
        return [ValueError(f"bad {v}") if v < 0 else v * 10 for v in values]


def run(coro):
    return asyncio.run(coro)


async def make(recorder, **kw) -> MicroBatcher:
    batcher = MicroBatcher(recorder, ThreadPoolExecutor(kw.pop("threads", 1)), **kw)
    await batcher.start()
    return batcher


def test_concurrent_items_share_batches_and_keep_their_results():
    async def main():
        rec = Recorder(delay=0.05)
        b = await make(rec, slots=1, max_size=4, max_wait_s=0.01)
        out = await asyncio.gather(*(b.submit("k", i) for i in range(10)))
        await b.close()
        return rec, out

    rec, out = run(main())
    assert out == [i * 10 for i in range(10)]
    sizes = [len(v) for _, v in rec.batches]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) < 10


def test_different_options_never_share_a_batch():
    async def main():
        rec = Recorder(delay=0.02)
        b = await make(rec, slots=1, max_size=8, max_wait_s=0.01)
        keys = ["a", "b"] * 5
        out = await asyncio.gather(*(b.submit(k, i) for i, k in enumerate(keys)))
        await b.close()
        return rec, out

    rec, out = run(main())
    assert out == [i * 10 for i in range(10)]
    for key, values in rec.batches:
        assert all((v % 2 == 0) == (key == "a") for v in values)


def test_an_error_reaches_only_its_own_caller():
    async def main():
        b = await make(Recorder(), slots=1, max_size=8, max_wait_s=0.02)
        out = await asyncio.gather(*(b.submit("k", v) for v in (1, -1, 2)), return_exceptions=True)
        await b.close()
        return out

    ok1, bad, ok2 = run(main())
    assert (ok1, ok2) == (10, 20) and isinstance(bad, ValueError)


def test_a_crashing_batch_fails_its_items_and_the_batcher_lives_on():
    calls = []

    def flaky(key, values):
        calls.append(values)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return values

    async def main():
        b = await make(flaky, slots=1, max_wait_s=0)
        first = await asyncio.gather(b.submit("k", 1), return_exceptions=True)
        second = await b.submit("k", 2)
        await b.close()
        return first, second

    first, second = run(main())
    assert isinstance(first[0], RuntimeError) and second == 2


def test_queue_bound_refuses_at_once():
    async def main():
        rec = Recorder(delay=0.2)
        b = await make(rec, slots=1, max_pending=2, max_wait_s=0)
        tasks = [asyncio.create_task(b.submit("k", i)) for i in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            await b.submit("k", 9)
        assert b.pending == 2
        out = await asyncio.gather(*tasks)
        await b.close()
        return out

    assert run(main()) == [0, 10]


def test_a_caller_that_gives_up_is_dropped_from_the_queue():
    async def main():
        rec = Recorder(delay=0.1)
        b = await make(rec, slots=1, max_size=1, max_wait_s=0)
        first = asyncio.create_task(b.submit("k", 1))
        await asyncio.sleep(0.01)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(b.submit("k", 2), 0.02)  # queued behind the first
        assert await first == 10
        await asyncio.sleep(0.05)
        await b.close()
        return rec

    rec = run(main())
    assert [v for _, v in rec.batches] == [[1]]  # the abandoned item never ran


def test_close_drains_then_refuses():
    async def main():
        rec = Recorder(delay=0.05)
        b = await make(rec, slots=1, max_size=1, max_wait_s=0)
        tasks = [asyncio.create_task(b.submit("k", i)) for i in range(3)]
        await asyncio.sleep(0.01)
        await b.close(timeout=5)
        with pytest.raises(ShuttingDownError):
            await b.submit("k", 5)
        return [t.result() for t in tasks]

    assert run(main()) == [0, 10, 20]


def test_unbatched_mode_runs_each_item_alone():
    async def main():
        rec = Recorder(delay=0.01)
        b = await make(rec, slots=2, threads=2, enabled=False)
        out = await asyncio.gather(*(b.submit("k", i) for i in range(6)))
        await b.close()
        return rec, out

    rec, out = run(main())
    assert out == [i * 10 for i in range(6)]
    assert sorted(len(v) for _, v in rec.batches) == [1] * 6


def test_no_waiting_while_another_worker_is_idle():
    """A lone request must not pay the batching wait when a second worker is free."""

    async def main():
        b = await make(Recorder(), slots=2, threads=2, max_wait_s=5.0)
        t0 = time.perf_counter()
        await b.submit("k", 1)
        elapsed = time.perf_counter() - t0
        await b.close()
        return elapsed

    assert run(main()) < 2.5  # far below the 5 s wait bound


def test_reserved_places_count_against_the_bound():
    async def main():
        b = await make(Recorder(), slots=1, max_pending=2, max_wait_s=0)
        with b.reserve(2):
            with pytest.raises(QueueFullError):
                await b.submit("k", 1)
            out = await b.submit("k", 1, reserved=True)
        assert b.pending == 0
        await b.close()
        return out

    assert run(main()) == 10
