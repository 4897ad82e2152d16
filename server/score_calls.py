"""Unary Score calls decided a group at a time: the *validate* and *respond* stages of a call of one
transaction, paid once per group of concurrent calls.

A Score call carries one transaction, so whatever a call pays for itself is paid per transaction:
decoding its bytes into a set of columns of one row, joining those one-row columns into the micro-batch,
the pipeline's submission and the decision log's write. Concurrent calls of one caller are therefore
queued here and cut into groups the way micro-batches are cut (at once while no group is being
decided, else when full or after the wait): the group's bodies are decoded in one call, submitted to the
pipeline as one block of rows, and logged with one write. Each call still passes admission (its
in-flight share and its caller's rate limit) on its own before it is queued, and is answered, refused
or aborted on its own.

Calls of different callers are grouped apart: the pipeline records one caller per block, and the
decision log's lines carry the context of the calls they answer.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from sentinel.server.batching import Coalescer
from sentinel.server.requests import Result


class Invalid(NamedTuple):
    """A call whose transaction the decoder refused: its violations, as ``DecodedTransactions.errors``
    holds them."""

    violations: list[tuple[str, str]]


Answer = Result | Invalid


class ScoreGroup(NamedTuple):
    """The calls of one caller cut together, in arrival order."""

    caller: str
    bodies: list[bytes]
    deadline: float | None  # the earliest of the calls' deadlines (None: none of them set one)
    waits: list[float]  # each call's wait in the queue, seconds
    context: contextvars.Context  # the first call's, for the group's log lines


class _Call(NamedTuple):
    body: bytes
    deadline: float | None
    caller: str
    context: contextvars.Context
    answer: asyncio.Future[Answer]


class ScoreCalls:
    """Queues Score calls and runs ``decide_group(group) -> answers`` (one per body, in order) per group."""

    def __init__(
        self,
        decide_group: Callable[[ScoreGroup], Awaitable[list[Answer]]],
        *,
        max_size: int,
        max_wait_s: float,
        max_in_flight: int,
    ) -> None:
        self._decide_group = decide_group
        self._max_size, self._max_wait_s, self._max_in_flight = max_size, max_wait_s, max_in_flight
        self._calls: Coalescer[_Call] | None = None

    async def decide(self, body: bytes, deadline: float | None, caller: str) -> Answer:
        """The answer to one call, decided with the calls queued beside it."""
        if self._calls is None:  # started by the first call: the coalescer needs the running loop
            self._calls = Coalescer(
                self._run,
                max_size=self._max_size,
                max_wait_s=self._max_wait_s,
                max_in_flight=self._max_in_flight,
            )
            self._calls.start()
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._calls.add_many((_Call(body, deadline, caller, contextvars.copy_context(), answer),))
        return await answer  # a caller that gives up cancels only its own answer, never its group

    async def close(self) -> None:
        """Decide what is queued and wait for the groups in flight."""
        if self._calls is not None:
            await self._calls.close()

    async def _run(self, calls: list[_Call], waits: list[float]) -> None:
        by_caller: dict[str, list[int]] = {}
        for index, call in enumerate(calls):
            by_caller.setdefault(call.caller, []).append(index)
        if len(by_caller) == 1:
            await self._run_group(calls, waits)
        else:
            await asyncio.gather(
                *(
                    self._run_group([calls[i] for i in indexes], [waits[i] for i in indexes])
                    for indexes in by_caller.values()
                )
            )

    async def _run_group(self, calls: list[_Call], waits: list[float]) -> None:
        deadlines = [call.deadline for call in calls if call.deadline is not None]
        group = ScoreGroup(
            calls[0].caller,
            [call.body for call in calls],
            min(deadlines) if deadlines else None,
            waits,
            calls[0].context,
        )
        try:
            answers = await self._decide_group(group)
        except Exception as exc:  # the group failed: each of its calls fails with it
            for call in calls:
                if not call.answer.done():
                    call.answer.set_exception(exc)
            return
        for call, answer in zip(calls, answers, strict=True):
            if not call.answer.done():
                call.answer.set_result(answer)
