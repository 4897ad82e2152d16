"""The state budget counts the other server's time, not the time the worker's event loop was busy."""

from __future__ import annotations

import asyncio
import time

import pytest

from sentinel.server.budget import within_budget


async def test_an_answer_is_returned() -> None:
    assert await within_budget(asyncio.sleep(0.001, result="ok"), 0.5) == "ok"


async def test_a_missing_answer_times_out_near_the_budget_and_is_cancelled() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await within_budget(never, 0.05)
    assert 0.05 <= time.perf_counter() - started < 1.0
    assert never.cancelled()


async def test_a_busy_loop_does_not_use_up_the_budget() -> None:
    """The reply is due 60 ms after the call, with a 50 ms budget, but the loop is blocked from 5 ms to
    205 ms: only 5 ms of listening passed. asyncio.wait_for times out (next test); the budget must not."""
    loop = asyncio.get_running_loop()
    loop.call_later(0.005, time.sleep, 0.2)  # a large batch scored on the loop
    reply = asyncio.sleep(0.06, result="reply")
    assert await within_budget(reply, 0.05) == "reply"


async def test_wait_for_would_have_timed_out_in_the_same_situation() -> None:
    """The situation of the test above, with a plain wait_for: proof that the test above tests something."""
    loop = asyncio.get_running_loop()
    loop.call_later(0.005, time.sleep, 0.2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(0.06, result="reply"), 0.05)


async def test_errors_of_the_call_pass_through() -> None:
    async def failing() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        await within_budget(failing(), 0.5)
