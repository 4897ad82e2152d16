"""The micro-batcher: order, size bound, coalescing under load, no waiting when idle, errors, and
submissions split across batches."""

from __future__ import annotations

import asyncio

import pytest

from sentinel.server.batching import BatcherClosed, MicroBatcher, Span


class Recorder:
    """A process function over submissions of numbers: the rows of a span are its list's items."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    async def __call__(self, spans: list[Span[list[int]]], waits: list[float]) -> list[int]:
        assert len(waits) == len(spans) and all(w >= 0 for w in waits)
        items = [item for span in spans for item in span.item[span.start : span.stop]]
        self.batches.append(items)
        if self.delay:
            await asyncio.sleep(self.delay)
        return [item * 10 for item in items]


async def submit(batcher: MicroBatcher[list[int], int], item: int) -> int:
    (result,) = await batcher.submit([item], 1)
    return result


async def test_results_in_order_and_size_bound() -> None:
    recorder = Recorder(delay=0.005)
    batcher = MicroBatcher(recorder, max_size=8, max_wait_s=0.002, max_in_flight=1)
    batcher.start()
    results = await asyncio.gather(*(submit(batcher, i) for i in range(50)))
    await batcher.close()
    assert results == [i * 10 for i in range(50)]
    assert max(len(batch) for batch in recorder.batches) <= 8
    assert [item for batch in recorder.batches for item in batch] == list(range(50))


async def test_concurrent_requests_are_coalesced() -> None:
    recorder = Recorder(delay=0.01)
    batcher = MicroBatcher(recorder, max_size=256, max_wait_s=0.001, max_in_flight=1)
    batcher.start()
    await asyncio.gather(*(submit(batcher, i) for i in range(100)))
    await batcher.close()
    assert len(recorder.batches) < 10  # one call per item would be 100


async def test_lone_request_is_not_held_back() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_size=256, max_wait_s=5.0, max_in_flight=2)
    batcher.start()
    # With an idle server the batch is cut at once, far below the 5 s maximum wait.
    assert await asyncio.wait_for(submit(batcher, 7), timeout=1.0) == 70
    await batcher.close()


async def test_max_wait_bounds_waiting_when_busy() -> None:
    recorder = Recorder(delay=0.3)
    batcher = MicroBatcher(recorder, max_size=256, max_wait_s=0.01, max_in_flight=2)
    batcher.start()
    first = asyncio.ensure_future(submit(batcher, 1))
    await asyncio.sleep(0.02)  # the first batch is now being processed for 0.3 s
    # The second item may wait for company at most max_wait, not until the first batch is done.
    second = await asyncio.wait_for(submit(batcher, 2), timeout=0.5)
    assert second == 20
    assert await first == 10
    await batcher.close()


async def test_submissions_and_failures_reach_every_caller() -> None:
    async def failing(spans: list[Span[list[int]]], waits: list[float]) -> list[int]:
        raise RuntimeError("redis exploded")

    batcher: MicroBatcher[list[int], int] = MicroBatcher(
        failing, max_size=4, max_wait_s=0.001, max_in_flight=1
    )
    batcher.start()
    futures = [batcher.submit([1, 2, 3], 3), batcher.submit([4], 1)]  # one future per submission
    for future in futures:
        with pytest.raises(RuntimeError, match="redis exploded"):
            await future
    await batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit([5], 1)


async def test_large_submissions_are_split_across_batches_in_order() -> None:
    """A submission larger than a batch, or one that does not fit in what a batch has left, is split:
    every batch is full up to its bound, and each caller gets its rows' results in order."""
    recorder = Recorder(delay=0.005)
    batcher: MicroBatcher[list[int], int] = MicroBatcher(
        recorder, max_size=8, max_wait_s=0.002, max_in_flight=1
    )
    batcher.start()
    sizes = [3, 20, 1, 7, 8, 2]
    submissions = []
    first = 0
    for size in sizes:
        submissions.append(list(range(first, first + size)))
        first += size
    futures = [batcher.submit(items, len(items)) for items in submissions]
    answered = await asyncio.gather(*futures)
    await batcher.close()
    assert answered == [[item * 10 for item in items] for items in submissions]
    assert [item for batch in recorder.batches for item in batch] == list(range(first))
    assert max(len(batch) for batch in recorder.batches) == 8
    assert all(len(batch) == 8 for batch in recorder.batches[1:-1])  # cut full while rows were queued


async def test_an_empty_submission_is_answered_at_once() -> None:
    recorder = Recorder()
    batcher: MicroBatcher[list[int], int] = MicroBatcher(
        recorder, max_size=8, max_wait_s=0.001, max_in_flight=1
    )
    batcher.start()
    assert await asyncio.wait_for(batcher.submit([], 0), timeout=1.0) == []
    await batcher.close()
    assert recorder.batches == []


async def test_a_batch_answering_too_few_rows_fails_its_callers() -> None:
    async def short(spans: list[Span[list[int]]], waits: list[float]) -> list[int]:
        return [0]

    batcher: MicroBatcher[list[int], int] = MicroBatcher(short, max_size=8, max_wait_s=0.001, max_in_flight=1)
    batcher.start()
    with pytest.raises(RuntimeError, match="did not answer every row"):
        await batcher.submit([1, 2], 2)
    await batcher.close()
