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
from typing import Generic, NamedTuple, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Span(NamedTuple, Generic[Item]):
    """Rows ``start`` to ``stop`` (exclusive) of a submitted item: a batch may take part of a large
    submission and the next batch the rest."""

    item: Item
    start: int
    stop: int


class _Group(Generic[Result]):
    """One submission: one future for all its results, set when the last one is in."""

    __slots__ = ("future", "remaining", "results")

    def __init__(self, future: asyncio.Future[list[Result]], size: int) -> None:
        self.future = future
        self.results: list[Result | None] = [None] * size
        self.remaining = size

    def resolve(self, start: int, results: Sequence[Result]) -> None:
        """The results of the submission's rows from ``start`` on (one batch's share of them)."""
        self.results[start : start + len(results)] = results
        self.remaining -= len(results)
        if not self.remaining and not self.future.done():
            self.future.set_result(self.results)  # type: ignore[arg-type]  # every slot is filled now


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new items."""


class Coalescer(Generic[Item]):
    """Cuts added items into batches and runs ``handle(items, waits)`` for each, ``max_in_flight`` at once.

    The cutting policy of this module; ``handle`` gets each item's wait in the queue and must not raise
    (whatever it answers, it answers by itself: MicroBatcher resolves futures, a ScoreStream call queues
    its responses).

    An item counts as one towards ``max_size`` unless the coalescer can ``split(item, count)`` it into
    its first ``count`` units and the rest: then ``add_many`` says each item's size, and a batch takes
    whole items up to ``max_size`` units and the head of the next one if it does not fit whole."""

    def __init__(
        self,
        handle: Callable[[list[Item], list[float]], Awaitable[None]],
        *,
        max_size: int,
        max_wait_s: float,
        max_in_flight: int,
        split: Callable[[Item, int], tuple[Item, Item]] | None = None,
    ) -> None:
        self._handle = handle
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._split = split
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queue: list[Item] = []
        self._enqueued: list[float] = []  # perf_counter() at add time, parallel to _queue
        self._sizes: list[int] = []  # units of each queued item, parallel to _queue (with split only)
        self._queued = 0  # units queued
        self._wakeup = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy = 0  # batches being handled (the task set lags behind by one loop step)
        self._closed = False
        self._collector: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start collecting (needs a running event loop)."""
        self._collector = asyncio.get_running_loop().create_task(self._collect(), name="micro-batcher")

    def add_many(self, items: Sequence[Item], sizes: Sequence[int] | None = None) -> None:
        """Queue items for the next batches (``sizes``: their units, when the coalescer splits items)."""
        if self._closed:
            raise BatcherClosed("server is shutting down")
        if (sizes is None) != (self._split is None):
            raise TypeError("sizes are given exactly when the coalescer splits items")
        self._queue.extend(items)
        self._enqueued.extend([time.perf_counter()] * len(items))
        if sizes is None:
            self._queued += len(items)
        else:
            self._sizes.extend(sizes)
            self._queued += sum(sizes)
        self._wakeup.set()

    def _oldest_wait(self) -> float:
        return time.perf_counter() - self._enqueued[0]

    def _ready(self) -> bool:
        """Cut a batch now: full, idle, oldest item waited long enough, or shutting down."""
        return (
            self._closed
            or self._queued >= self._max_size
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
            batch, enqueued = self._cut()
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._run(batch, enqueued))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _cut(self) -> tuple[list[Item], list[float]]:
        """The next batch's items and their enqueue times, taken off the queue."""
        room = 0  # units the batch has left after the whole items it takes
        if self._split is None:
            count = min(self._max_size, len(self._queue))
        else:
            room, count = self._max_size, 0
            for size in self._sizes:  # one entry per submission, not per unit
                if size > room:
                    break
                room -= size
                count += 1
            self._sizes = self._sizes[count:]
        batch, self._queue = self._queue[:count], self._queue[count:]
        enqueued, self._enqueued = self._enqueued[:count], self._enqueued[count:]
        if room and self._queue:  # the head of the next item fills the batch; the rest stays queued
            assert self._split is not None
            head, self._queue[0] = self._split(self._queue[0], room)
            self._sizes[0] -= room
            batch.append(head)
            enqueued.append(self._enqueued[0])
            room = 0
        self._queued -= count if self._split is None else self._max_size - room
        return batch, enqueued

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


class _Queued(NamedTuple, Generic[Item, Result]):
    """Rows ``start`` to ``stop`` of a submission in the batcher's queue."""

    item: Item
    group: _Group[Result]
    start: int
    stop: int


def _split_queued(
    queued: _Queued[Item, Result], count: int
) -> tuple[_Queued[Item, Result], _Queued[Item, Result]]:
    middle = queued.start + count
    return queued._replace(stop=middle), queued._replace(start=middle)


class MicroBatcher(Generic[Item, Result]):
    """Runs ``process(spans, waits) -> results`` over coalesced submissions.

    A submission is an item with a number of rows (one call's transactions); a batch holds spans of
    submissions (a large one may be split across batches) and ``process`` returns one result per row
    of its spans, in order. A submission gets one future for all its rows' results, not one per row, and
    the batcher's bookkeeping is per span: a batch of hundreds of transactions from a few calls costs a
    few Python steps here, not hundreds."""

    def __init__(
        self,
        process: Callable[[list[Span[Item]], list[float]], Awaitable[Sequence[Result]]],
        *,
        max_size: int,
        max_wait_s: float,
        max_in_flight: int,
    ) -> None:
        self._process = process
        self._batches: Coalescer[_Queued[Item, Result]] = Coalescer(
            self._run,
            max_size=max_size,
            max_wait_s=max_wait_s,
            max_in_flight=max_in_flight,
            split=_split_queued,
        )

    def start(self) -> None:
        """Start collecting (needs a running event loop)."""
        self._batches.start()

    def submit(self, item: Item, rows: int) -> asyncio.Future[list[Result]]:
        """Queue ``rows`` rows of ``item`` (e.g. one ScoreBatch call's transactions); one future for
        their results, in row order, or for the exception of a batch that failed."""
        group: _Group[Result] = _Group(asyncio.get_running_loop().create_future(), rows)
        if rows:
            self._batches.add_many([_Queued(item, group, 0, rows)], [rows])
        else:  # nothing to process: answered at once
            group.future.set_result([])
        return group.future

    async def _run(self, batch: list[_Queued[Item, Result]], waits: list[float]) -> None:
        try:
            results = await self._process([Span(q.item, q.start, q.stop) for q in batch], waits)
            if len(results) != sum(queued.stop - queued.start for queued in batch):
                raise RuntimeError("the batch did not answer every row of its spans")
        except Exception as exc:  # the whole batch failed: every caller gets the error
            for queued in batch:
                if not queued.group.future.done():
                    queued.group.future.set_exception(exc)
            return
        at = 0
        for queued in batch:
            size = queued.stop - queued.start
            queued.group.resolve(queued.start, results[at : at + size])
            at += size

    async def close(self) -> None:
        """Stop taking items, process what is queued, wait for batches in flight."""
        await self._batches.close()
