"""A time budget for a call to another server that counts that server's time, not the worker's.

A worker's event loop can be busy for tens of milliseconds (scoring a large batch, answering many
calls). A plain ``asyncio.wait_for`` then times out calls whose reply arrived long ago and merely sat
unread in the socket, and the worker would declare a healthy Redis unreachable exactly when it is
busiest. Here a budget only runs out when the reply is really missing: replies that arrived while the
loop was busy are read first, and the time by which the timer itself fired late (the loop was not
listening) is given back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

# Loop steps that let a reply already in the socket reach its caller (read callback, the client's
# parser coroutine, the task's completion) before the budget is declared spent.
_SETTLE_STEPS = 4
# How often the lateness of the timer is given back (each time it must be late again).
_MAX_EXTENSIONS = 8


async def within_budget(call: Awaitable[T], budget_s: float) -> T:
    """Await ``call``; raise TimeoutError (and cancel it) if it has not answered within ``budget_s`` of
    time during which this worker was listening."""
    task = asyncio.ensure_future(call)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + budget_s
    extensions = 0
    while True:
        done, _ = await asyncio.wait((task,), timeout=max(0.0, deadline - loop.time()))
        for _ in range(_SETTLE_STEPS):
            if done or task.done():
                return task.result()
            await asyncio.sleep(0)
        if task.done():
            return task.result()
        now = loop.time()
        late = now - deadline
        if late > 0.001 and extensions < _MAX_EXTENSIONS:
            deadline = now + late
            extensions += 1
            continue
        task.cancel()
        raise TimeoutError(
            f"no answer within {budget_s * 1000:.0f} ms ({(now - started) * 1000:.0f} ms with the time the "
            "event loop was not listening given back)"
        )
