"""The *batch* stage: coalesce concurrent requests into micro-batches.

Redis, the hot path, the model and the ledger each cost a fixed overhead per call, so the server pays
it once per batch instead of once per transaction. A batch is cut when it is full, when the oldest item
has waited ``max_wait_s``, or at once when no batch is being processed (an idle server never makes a
lone request wait for company). While ``max_in_flight`` batches are being processed, new items
accumulate into the next one, so batches grow by themselves exactly when the server is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Group(Generic[Result]):
    """The items of one submission: one future for all their results, set when the last one is in."""

    __slots__ = ("future", "remaining", "results")

    def __init__(self, future: asyncio.Future[list[Result]], size: int) -> None:
        self.future = future
        self.results: list[Result | None] = [None] * size
        self.remaining = size

    def resolve(self, index: int, result: Result) -> None:
        self.results[index] = result
        self.remaining -= 1
        if not self.remaining and not self.future.done():
            self.future.set_result(self.results)  # type: ignore[arg-type]  # every slot is filled now


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new items."""


class Coalescer(Generic[Item]):
    """Cuts added items into batches and runs ``handle(items, waits)`` for each, ``max_in_flight`` at once.

    The cutting policy of this module; ``handle`` gets each item's wait in the queue and must not raise
    (whatever it answers, it answers by itself: MicroBatcher resolves futures, a ScoreStream call queues
    its responses)."""

    def __init__(
        self,
        handle: Callable[[list[Item], list[float]], Awaitable[None]],
        *,
        max_size: int,
        max_wait_s: float,
        max_in_flight: int,
    ) -> None:
        self._handle = handle
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queue: list[Item] = []
        self._enqueued: list[float] = []  # perf_counter() at add time, parallel to _queue
        self._wakeup = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy = 0  # batches being handled (the task set lags behind by one loop step)
        self._closed = False
        self._collector: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start collecting (needs a running event loop)."""
        self._collector = asyncio.get_running_loop().create_task(self._collect(), name="micro-batcher")

    def add_many(self, items: Sequence[Item]) -> None:
        """Queue items for the next batches."""
        if self._closed:
            raise BatcherClosed("server is shutting down")
        self._queue.extend(items)
        self._enqueued.extend([time.perf_counter()] * len(items))
        self._wakeup.set()

    def _oldest_wait(self) -> float:
        return time.perf_counter() - self._enqueued[0]

    def _ready(self) -> bool:
        """Cut a batch now: full, idle, oldest item waited long enough, or shutting down."""
        return (
            self._closed
            or len(self._queue) >= self._max_size
            or self._busy == 0
            or self._oldest_wait() >= self._max_wait_s
        )

    async def _collect(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await asyncio.sleep(0)  # let items that arrived in this loop iteration join
            if not self._ready():
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._max_wait_s - self._oldest_wait())
                if not self._ready():
                    continue
            await self._slots.acquire()
            size = self._max_size
            batch, self._queue = self._queue[:size], self._queue[size:]
            enqueued, self._enqueued = self._enqueued[:size], self._enqueued[size:]
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._run(batch, enqueued))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _run(self, batch: list[Item], enqueued: list[float]) -> None:
        try:
            started = time.perf_counter()
            await self._handle(batch, [started - at for at in enqueued])
        finally:
            self._busy -= 1
            self._slots.release()
            self._wakeup.set()  # a free slot may make the waiting batch ready

    async def close(self) -> None:
        """Stop taking items, handle what is queued, wait for batches in flight."""
        self._closed = True
        self._wakeup.set()
        if self._collector is not None:
            await self._collector
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def cancel(self) -> None:
        """Stop at once: the collector and the batches in flight are cancelled, queued items dropped."""
        self._closed = True
        if self._collector is not None:
            self._collector.cancel()
        for task in self._in_flight:
            task.cancel()


class MicroBatcher(Generic[Item, Result]):
    """Runs ``process(items, waits) -> results`` (same length, same order) over coalesced submissions.

    A submission (one call's transactions) gets one future for all its items, not one per item: a future
    costs a callback scheduled on the event loop when it is set, and a batch holds hundreds of items."""

    def __init__(
        self,
        process: Callable[[list[Item], list[float]], Awaitable[Sequence[Result]]],
        *,
        max_size: int,
        max_wait_s: float,
        max_in_flight: int,
    ) -> None:
        self._process = process
        self._batches: Coalescer[tuple[Item, _Group[Result], int]] = Coalescer(
            self._run, max_size=max_size, max_wait_s=max_wait_s, max_in_flight=max_in_flight
        )

    def start(self) -> None:
        """Start collecting (needs a running event loop)."""
        self._batches.start()

    async def submit(self, item: Item) -> Result:
        """Queue one item and wait for its result (or its exception)."""
        (result,) = await self.submit_many([item])
        return result

    def submit_many(self, items: Sequence[Item]) -> asyncio.Future[list[Result]]:
        """Queue several items at once (e.g. one ScoreBatch call); one future for their results, in the
        same order, or for the exception of a batch that failed."""
        group: _Group[Result] = _Group(asyncio.get_running_loop().create_future(), len(items))
        self._batches.add_many([(item, group, index) for index, item in enumerate(items)])
        return group.future

    async def _run(self, batch: list[tuple[Item, _Group[Result], int]], waits: list[float]) -> None:
        try:
            results = await self._process([item for item, _, _ in batch], waits)
        except Exception as exc:  # the whole batch failed: every caller gets the error
            for _, group, _ in batch:
                if not group.future.done():
                    group.future.set_exception(exc)
            return
        for (_, group, index), result in zip(batch, results, strict=True):
            group.resolve(index, result)

    async def close(self) -> None:
        """Stop taking items, process what is queued, wait for batches in flight."""
        await self._batches.close()
