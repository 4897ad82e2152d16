"""The micro-batcher: order, size bound, coalescing under load, no waiting when idle, errors."""

from __future__ import annotations

import asyncio

import pytest

from sentinel.server.batching import BatcherClosed, MicroBatcher


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    async def __call__(self, items: list[int], waits: list[float]) -> list[int]:
        assert len(waits) == len(items) and all(w >= 0 for w in waits)
        self.batches.append(items)
        if self.delay:
            await asyncio.sleep(self.delay)
        return [item * 10 for item in items]


async def test_results_in_order_and_size_bound() -> None:
    recorder = Recorder(delay=0.005)
    batcher = MicroBatcher(recorder, max_size=8, max_wait_s=0.002, max_in_flight=1)
    batcher.start()
    results = await asyncio.gather(*(batcher.submit(i) for i in range(50)))
    await batcher.close()
    assert results == [i * 10 for i in range(50)]
    assert max(len(batch) for batch in recorder.batches) <= 8
    assert [item for batch in recorder.batches for item in batch] == list(range(50))


async def test_concurrent_requests_are_coalesced() -> None:
    recorder = Recorder(delay=0.01)
    batcher = MicroBatcher(recorder, max_size=256, max_wait_s=0.001, max_in_flight=1)
    batcher.start()
    await asyncio.gather(*(batcher.submit(i) for i in range(100)))
    await batcher.close()
    assert len(recorder.batches) < 10  # one call per item would be 100


async def test_lone_request_is_not_held_back() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_size=256, max_wait_s=5.0, max_in_flight=2)
    batcher.start()
    # With an idle server the batch is cut at once, far below the 5 s maximum wait.
    assert await asyncio.wait_for(batcher.submit(7), timeout=1.0) == 70
    await batcher.close()


async def test_max_wait_bounds_waiting_when_busy() -> None:
    recorder = Recorder(delay=0.3)
    batcher = MicroBatcher(recorder, max_size=256, max_wait_s=0.01, max_in_flight=2)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.02)  # the first batch is now being processed for 0.3 s
    # The second item may wait for company at most max_wait, not until the first batch is done.
    second = await asyncio.wait_for(batcher.submit(2), timeout=0.5)
    assert second == 20
    assert await first == 10
    await batcher.close()


async def test_submit_many_and_failures_reach_every_caller() -> None:
    async def failing(items: list[int], waits: list[float]) -> list[int]:
        raise RuntimeError("redis exploded")

    batcher: MicroBatcher[int, int] = MicroBatcher(failing, max_size=4, max_wait_s=0.001, max_in_flight=1)
    batcher.start()
    futures = [batcher.submit_many([1, 2, 3]), batcher.submit_many([4])]  # one future per submission
    for future in futures:
        with pytest.raises(RuntimeError, match="redis exploded"):
            await future
    await batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit_many([5])
