"""``sentinel events dispatch``: delivers the outbox's deliveries to webhooks and to RabbitMQ.

One task per active destination (found again every few seconds) runs rounds: claim up to
``events_batch_size`` due deliveries (at most one per account, see outbox.py), build their bodies from
the ledger, deliver them (webhooks concurrently, up to ``events_webhook_concurrency``; the broker in one
confirmed publish, in order), then delete what was delivered and reschedule what failed with
exponential backoff and full jitter, in the claim's transaction. A destination's circuit breaker stops
its rounds after ``events_circuit_failures`` consecutive failures, for ``events_circuit_cooldown_s``,
then lets one delivery through as a probe. Any number of dispatchers may run against one database.

Nothing here is on the scoring path: a slow or dead receiver only makes its own deliveries wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg
import structlog

from sentinel.config import Settings
from sentinel.events import metrics, outbox
from sentinel.events.body import build_event, event_id, sequence_of
from sentinel.events.model import OutboundEvent
from sentinel.events.retry import CircuitBreaker, CircuitState, retry_delay_s
from sentinel.events.store import InvalidSubscription, SubscriptionStore, check_webhook_url
from sentinel.events.webhook import DeliveryFailure, WebhookSender
from sentinel.ledger.lane import is_unavailable
from sentinel.postgres import EVENTS_ROLE, writer_pool

if TYPE_CHECKING:  # aio_pika is imported by the first broker round only
    from sentinel.events.amqp import AmqpPublisher

log = structlog.get_logger("sentinel.events")

REFRESH_S = 2.0  # how often the set of active destinations is read again
OUTBOX_STATE_S = 5.0  # how often the outbox gauges are read from Postgres
POOL_SIZE = 16  # connections: one per destination in a round, one for the gauges and the refresh
_DATABASE_RETRY_S = 1.0


class Dispatcher:
    """The dispatcher of one process: destination tasks sharing a pool, a webhook session, a publisher."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._pool = pool
        self._webhooks = WebhookSender(settings.events_webhook_timeout_s)
        self._publisher: AmqpPublisher | None = None  # made on the first broker round
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._poll_s = settings.events_poll_interval_ms / 1000

    def stop(self) -> None:
        """Finish the rounds under way, then return from ``run``."""
        self._stop.set()

    async def run(self) -> None:
        """Dispatch until ``stop``."""
        await SubscriptionStore(self._pool).sync_amqp(self._settings.events_amqp_url, actor="dispatcher")
        next_state_at = 0.0
        try:
            while not self._stop.is_set():
                try:
                    await self._refresh()
                    if time.monotonic() >= next_state_at:
                        await self._read_outbox_state()
                        next_state_at = time.monotonic() + OUTBOX_STATE_S
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("events_database_unavailable", error=str(exc))
                await self._sleep(REFRESH_S)
        finally:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await self._webhooks.close()
            if self._publisher is not None:
                await self._publisher.close()

    async def _refresh(self) -> None:
        """Start a task for every active destination that has none (a task ends when its destination is
        no longer active)."""
        for (destination_id,) in await self._pool.fetch(outbox.ACTIVE_DESTINATIONS):
            task = self._tasks.get(destination_id)
            if task is None or task.done():
                self._tasks[destination_id] = asyncio.create_task(self._destination_loop(destination_id))

    async def _read_outbox_state(self) -> None:
        for row in await self._pool.fetch(outbox.OUTBOX_STATE):
            destination = row["destination_id"]
            metrics.OUTBOX_PENDING.labels(destination).set(row["pending"])
            metrics.DEAD_LETTERS.labels(destination).set(row["dead"])
            metrics.OUTBOX_LAG.labels(destination).set(row["lag_s"])

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _destination_loop(self, destination_id: str) -> None:
        breaker = CircuitBreaker(
            self._settings.events_circuit_failures, self._settings.events_circuit_cooldown_s
        )
        while not self._stop.is_set():
            wait_s = breaker.wait_s()
            metrics.CIRCUIT_OPEN.labels(destination_id).set(breaker.state is not CircuitState.CLOSED)
            if wait_s > 0:
                await self._sleep(min(wait_s, REFRESH_S))
                continue
            limit = 1 if breaker.state is CircuitState.HALF_OPEN else self._settings.events_batch_size
            try:
                claimed = await self._round(destination_id, limit, breaker)
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("events_round_failed", destination=destination_id)
                else:
                    log.warning("events_database_unavailable", destination=destination_id, error=str(exc))
                await self._sleep(_DATABASE_RETRY_S)
                continue
            if claimed is None:
                metrics.CIRCUIT_OPEN.labels(destination_id).set(0)
                return  # disabled: the refresh starts a new task if it is enabled again
            if claimed < limit:
                await self._sleep(self._poll_s)

    async def _round(self, destination_id: str, limit: int, breaker: CircuitBreaker) -> int | None:
        """One claim, delivery and record; the number of deliveries claimed, None when the destination is
        not active any more."""
        async with self._pool.acquire() as connection, connection.transaction():
            destination = await connection.fetchrow(outbox.DESTINATION, destination_id)
            if destination is None or not destination["active"]:
                return None
            claimed = await outbox.claim(connection, destination_id, limit)
            if not claimed:
                return 0
            stored = {row["sequence"]: row for row in await outbox.entries(connection, claimed)}
            events = {c.sequence: build_event(stored[c.sequence]) for c in claimed if c.sequence in stored}
            failures = {
                c.sequence: DeliveryFailure("missing_entry", "the ledger has no entry for this delivery")
                for c in claimed
                if c.sequence not in stored
            }
            started = time.perf_counter()
            ordered = [events[c.sequence] for c in claimed if c.sequence in events]
            failures.update(await self._deliver(destination_id, destination, ordered))
            metrics.DELIVERY_SECONDS.labels(destination_id).observe(time.perf_counter() - started)
            metrics.ATTEMPTS.labels(destination_id, destination["kind"]).inc(len(claimed))
            delivered = [c.sequence for c in claimed if c.sequence not in failures]
            if delivered:
                await connection.execute(outbox.DELIVERED, destination_id, delivered)
            if failures:
                await self._reschedule(connection, destination_id, claimed, failures)
        metrics.DELIVERED.labels(destination_id).inc(len(delivered))
        breaker.record(len(delivered), len(failures))
        return len(claimed)

    async def _deliver(
        self, destination_id: str, destination: asyncpg.Record, events: Sequence[OutboundEvent]
    ) -> dict[int, DeliveryFailure]:
        """Deliver ``events`` (in claim order); the failures by ledger sequence."""
        if not events:
            return {}
        if destination["kind"] == "amqp":
            return await self._publish(events)
        try:
            check_webhook_url(destination["url"], self._settings.events_allow_plain_http_loopback)
        except InvalidSubscription as exc:
            failure = DeliveryFailure("invalid_url", str(exc))
            return {sequence_of(event.event_id): failure for event in events}
        signing = [destination["secret"]]
        if destination["previous_secret"] is not None:
            signing.append(destination["previous_secret"])
        limit = asyncio.Semaphore(self._settings.events_webhook_concurrency)

        async def post(event: OutboundEvent) -> tuple[int, DeliveryFailure | None]:
            async with limit:
                return sequence_of(event.event_id), await self._webhooks.post(
                    destination["url"], signing, event
                )

        results = await asyncio.gather(*(post(event) for event in events))
        return {sequence: failure for sequence, failure in results if failure is not None}

    async def _publish(self, events: Sequence[OutboundEvent]) -> dict[int, DeliveryFailure]:
        """One confirmed publish of the whole batch; on any broker failure the whole batch failed."""
        from sentinel.events.amqp import AmqpPublisher, AmqpUnavailableError

        if self._settings.events_amqp_url is None:
            failure = DeliveryFailure("broker", "events_amqp_url is not set in this dispatcher")
            return {sequence_of(event.event_id): failure for event in events}
        if self._publisher is None:
            self._publisher = AmqpPublisher.from_settings(self._settings)  # connects on its first publish
        try:
            await self._publisher.publish(events)
        except AmqpUnavailableError as exc:
            failure = DeliveryFailure("broker", str(exc) or type(exc).__name__)
            return {sequence_of(event.event_id): failure for event in events}
        return {}

    async def _reschedule(
        self,
        connection: asyncpg.Connection,
        destination_id: str,
        claimed: Sequence[outbox.ClaimedDelivery],
        failures: dict[int, DeliveryFailure],
    ) -> None:
        settings = self._settings
        failed = [c for c in claimed if c.sequence in failures]
        delays = [
            retry_delay_s(c.attempts + 1, settings.events_retry_base_s, settings.events_retry_cap_s)
            for c in failed
        ]
        rows = await connection.fetch(
            outbox.FAILED,
            destination_id,
            [c.sequence for c in failed],
            settings.events_retry_max_age_s,
            delays,
            [f"{failures[c.sequence].cause}: {failures[c.sequence].detail}"[:1000] for c in failed],
        )
        states = {row["sequence"]: row["state"] for row in rows}
        for delivery, delay_s in zip(failed, delays, strict=True):
            failure = failures[delivery.sequence]
            dead = states.get(delivery.sequence) == "dead"
            metrics.FAILURES.labels(destination_id, failure.cause).inc()
            if dead:
                metrics.DEAD_LETTERED.labels(destination_id).inc()
            log.warning(
                "event_delivery_failed",
                destination=destination_id,
                event_id=event_id(delivery.sequence),
                account_id=delivery.account_id,
                cause=failure.cause,
                detail=failure.detail,
                attempt=delivery.attempts + 1,
                dead=dead,
                retry_in_s=None if dead else round(delay_s, 3),
            )


async def run_dispatcher(settings: Settings, stop: asyncio.Event) -> None:
    """Dispatch with ``settings`` until ``stop`` is set."""
    if settings.database_url is None:
        raise ValueError("sentinel events dispatch needs database_url")
    pool = await writer_pool(
        settings.database_url,
        connect_timeout_s=settings.ledger_connect_timeout_s,
        max_size=POOL_SIZE,
        application_name="sentinel-events-dispatcher",
        role=EVENTS_ROLE,
    )
    dispatcher = Dispatcher(settings, pool)
    stopper = asyncio.create_task(_stop_when(stop, dispatcher))
    log.info(
        "events_dispatcher_started",
        batch_size=settings.events_batch_size,
        amqp=settings.events_amqp_url is not None,
    )
    try:
        await dispatcher.run()
    finally:
        stopper.cancel()
        await pool.close()
        log.info("events_dispatcher_stopped")


async def _stop_when(stop: asyncio.Event, dispatcher: Dispatcher) -> None:
    await stop.wait()
    dispatcher.stop()
