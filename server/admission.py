"""Admission: whether a scoring call's transactions may enter the pipeline now.

Two checks, cheapest first, just before the work is queued: the worker's in-flight bound (local, no
I/O: an overloaded worker sheds without even asking Redis, and a shed call costs its caller no
tokens), then the caller's rate limit (``current_caller()``, a Redis round trip when a limit applies).
A refused unary call ends with RESOURCE_EXHAUSTED, google.rpc.RetryInfo and the retry pushback. A
ScoreStream chunk waits for room under the in-flight bound instead (the stream is slowed, see
``overload``); refused by a rate limit, it is answered message by message with RESOURCE_EXHAUSTED item
errors and the stream goes on (its trailers come only at its end).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import grpc
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sentinel.config import Settings
from sentinel.server.errors import Refusal, abort_exhausted
from sentinel.server.identity import current_caller
from sentinel.server.overload import InFlight, Ticket
from sentinel.server.rate_limit import RateLimiter


class Admission:
    """The in-flight bound of this worker and the callers' rate limits."""

    def __init__(self, in_flight: InFlight, limiter: RateLimiter | None) -> None:
        self._in_flight = in_flight
        self._limiter = limiter if limiter is not None and limiter.enabled else None

    @classmethod
    def unbounded(cls) -> Admission:
        """Admits every call (a servicer built without settings, as in tests of the scoring path)."""
        return cls(InFlight(sys.maxsize, sys.maxsize), None)

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | RedisCluster) -> Admission:
        """The worker's admission over its Redis client (used only when a rate limit is configured)."""
        limiter = RateLimiter(
            settings.rate_limits,
            redis,
            budget_s=settings.redis_budget_ms / 1000,
            retry_after_s=settings.redis_retry_after_s,
        )
        return cls(InFlight(settings.max_in_flight_transactions, settings.max_in_flight_bytes), limiter)

    async def enter(self, method: str, transactions: int, size: int) -> Ticket | Refusal:
        """A ticket holding the call's share of the worker (release it when the call is answered), or
        why the call is refused."""
        return await self._charged(self._in_flight.take(method, transactions, size), transactions)

    async def enter_stream_chunk(self, transactions: int, size: int) -> Ticket | Refusal:
        """Like ``enter`` for a ScoreStream chunk, which waits for room rather than being shed."""
        return await self._charged(await self._in_flight.take_when_fits(transactions, size), transactions)

    async def _charged(self, ticket: Ticket | Refusal, transactions: int) -> Ticket | Refusal:
        """The ticket once the caller's rate limit allows its transactions (given back if it does not)."""
        if isinstance(ticket, Refusal) or self._limiter is None:
            return ticket
        try:
            refusal = await self._limiter.charge(current_caller(), transactions)
        except BaseException:  # cancelled while asking Redis: the share goes back
            ticket.release()
            raise
        if refusal is not None:
            ticket.release()
            return refusal
        return ticket

    @contextlib.asynccontextmanager
    async def admit(
        self, context: grpc.aio.ServicerContext, method: str, transactions: int, size: int
    ) -> AsyncIterator[None]:
        """Hold the call's share while the block runs; end the call with RESOURCE_EXHAUSTED if refused."""
        admitted = await self.enter(method, transactions, size)
        if isinstance(admitted, Refusal):
            await abort_exhausted(context, admitted)
        with admitted:
            yield
