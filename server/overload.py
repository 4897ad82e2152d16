"""Overload: each worker bounds the transactions and request bytes it holds in flight, and sheds the rest.

A call's share (its transactions and its request bytes) is taken when its work is about to enter the
pipeline and given back when it is answered or fails, whatever way: a ``Ticket`` is a context manager
and releases once. A call that would take the worker past ``max_in_flight_transactions`` or
``max_in_flight_bytes`` is refused at once with RESOURCE_EXHAUSTED instead of queuing behind the work
the worker already holds, so the calls it accepted keep the latency of a busy, not a drowning, worker
(Little's law: the wait grows with what is held, the throughput does not). An idle worker admits any
call, so a call that the call limits allow (``max_batch_items``, ``max_message_bytes``) is never refused
for its size alone.

The refusal says when to come back: the recent mean time calls were held (an exponentially weighted
mean), by which the work held now has mostly been answered. Shedding is logged at most once per
``LOG_INTERVAL_S`` per worker (``calls_shed``, with the count since the last), never once per call.

A ScoreStream chunk is not refused but waits until it fits (``take_when_fits``): a stream is one caller
that can be slowed, and it cannot pile up work while it waits, since it reads at most its window of
messages ahead of their answers; the client's sends then wait in HTTP/2 flow control. Refusing instead
would answer a lone stream's third chunk with errors whenever its pipelining outran the bound.
"""

from __future__ import annotations

import asyncio
import collections
import time
from types import TracebackType

import structlog

from sentinel.server import metrics
from sentinel.server.errors import Refusal

# Weight of the newest hold time in the mean; bounds of the retry hint given to shed callers.
_HOLD_WEIGHT = 0.05
_RETRY_MIN_S = 0.01
_RETRY_MAX_S = 1.0
LOG_INTERVAL_S = 10.0

log = structlog.get_logger("sentinel.admission")


class Ticket:
    """A call's share of the worker; ``release()`` (or leaving the ``with`` block) gives it back, once."""

    __slots__ = ("_bytes", "_in_flight", "_taken_at", "_transactions")

    def __init__(self, in_flight: InFlight, transactions: int, size: int) -> None:
        self._in_flight: InFlight | None = in_flight
        self._transactions = transactions
        self._bytes = size
        self._taken_at = time.perf_counter()

    def release(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight._give_back(self._transactions, self._bytes, time.perf_counter() - self._taken_at)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


_Waiting = tuple[asyncio.Future[Ticket], int, int]  # a waiting chunk: its future, transactions, bytes


class InFlight:
    """What one worker holds: admitted transactions and request bytes not yet answered."""

    def __init__(self, max_transactions: int, max_bytes: int) -> None:
        self.max_transactions = max_transactions
        self.max_bytes = max_bytes
        self.transactions = 0
        self.bytes = 0
        self._mean_hold_s = _RETRY_MIN_S
        self._shed_unlogged = 0
        self._logged_at = -LOG_INTERVAL_S
        self._waiting: collections.deque[_Waiting] = collections.deque()

    def _fits(self, transactions: int, size: int) -> bool:
        return not self.transactions or (
            self.transactions + transactions <= self.max_transactions and self.bytes + size <= self.max_bytes
        )

    def take(self, method: str, transactions: int, size: int) -> Ticket | Refusal:
        """A ticket for a call of ``transactions`` and ``size`` request bytes, or a Refusal (shed)."""
        if not self._fits(transactions, size):
            metrics.SHED_CALLS.labels(method).inc()
            metrics.SHED_TRANSACTIONS.labels(method).inc(transactions)
            self._note_shed()
            retry_after_s = min(_RETRY_MAX_S, max(_RETRY_MIN_S, self._mean_hold_s))
            return Refusal(
                f"server overloaded: this worker holds {self.transactions} transactions "
                f"({self.bytes} request bytes) in flight, and {transactions} more would pass its bound "
                f"(max_in_flight_transactions {self.max_transactions}, max_in_flight_bytes "
                f"{self.max_bytes}); retry in {retry_after_s * 1000:.0f} ms",
                retry_after_s,
            )
        return self._ticket(transactions, size)

    async def take_when_fits(self, transactions: int, size: int) -> Ticket:
        """A ticket for a ScoreStream chunk once it fits; chunks that wait get the room given back before
        any new call, first come first served."""
        if not self._waiting and self._fits(transactions, size):
            return self._ticket(transactions, size)
        metrics.DELAYED_CHUNKS.inc()
        entry: _Waiting = (asyncio.get_running_loop().create_future(), transactions, size)
        self._waiting.append(entry)
        try:
            return await entry[0]
        except asyncio.CancelledError:
            if entry[0].done() and not entry[0].cancelled():  # handed a ticket as it was cancelled
                entry[0].result().release()
            elif entry in self._waiting:
                self._waiting.remove(entry)
                self._hand_over()  # the chunks behind it may fit now
            raise

    def _hand_over(self) -> None:
        """Give the room just freed to the waiting chunks that fit, in order."""
        while self._waiting:
            waiter, transactions, size = self._waiting[0]
            if not waiter.cancelled() and not self._fits(transactions, size):
                return
            self._waiting.popleft()
            if not waiter.cancelled():
                waiter.set_result(self._ticket(transactions, size))

    def _ticket(self, transactions: int, size: int) -> Ticket:
        self.transactions += transactions
        self.bytes += size
        metrics.IN_FLIGHT_TRANSACTIONS.inc(transactions)
        metrics.IN_FLIGHT_BYTES.inc(size)
        return Ticket(self, transactions, size)

    def _give_back(self, transactions: int, size: int, held_s: float) -> None:
        self.transactions -= transactions
        self.bytes -= size
        metrics.IN_FLIGHT_TRANSACTIONS.dec(transactions)
        metrics.IN_FLIGHT_BYTES.dec(size)
        self._mean_hold_s += _HOLD_WEIGHT * (held_s - self._mean_hold_s)
        self._hand_over()

    def _note_shed(self) -> None:
        self._shed_unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL_S:
            log.warning(
                "calls_shed",
                calls=self._shed_unlogged,
                in_flight_transactions=self.transactions,
                in_flight_bytes=self.bytes,
                detail="the worker holds its in-flight bound: new calls get RESOURCE_EXHAUSTED",
            )
            self._shed_unlogged = 0
            self._logged_at = now
