"""Decision events to RabbitMQ: a topic exchange, persistent messages, publisher confirms.

An event counts as delivered to the broker only when the broker confirmed it, so ``publish`` returns
after every message of the batch was confirmed and raises ``AmqpUnavailableError`` otherwise; the
dispatcher then sends the whole batch again later (at least once: a repeat carries the same
``message_id``, the event id, for receivers to drop).

The connection is a plain one that this class replaces after a failure, on the next ``publish``,
rather than aio-pika's robust connection: that one reconnects in the background but does not replay
publications that were in flight, so the caller has to know about the failure and retry anyway, and a
batch must not silently straddle two connections.

Messages are published without the ``mandatory`` flag. With it, an event no queue is bound for would
come back and fail its batch forever, and a receiver binding only ``decision.recorded.decline`` is a
normal use of a topic exchange; without it the broker confirms and drops such an event. Receivers must
therefore bind a durable queue before events they need are published (README: "Decision events on
RabbitMQ"); an operator who wants unroutable events kept sets an alternate exchange by policy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from sentinel.config import Settings
from sentinel.events.model import OutboundEvent

# Closing a connection after a failure waits for the broker's reply; a broker that does not answer
# must not hold the dispatcher up for long.
CLOSE_TIMEOUT_S = 1.0

# Everything a lost, refused or misbehaving broker raises here.
_BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, OSError, TimeoutError)


class AmqpUnavailableError(Exception):
    """The broker did not confirm a batch: no connection, connection lost, a nack, or the confirm
    timeout. Some of its events may have reached the broker all the same."""


class AmqpPublisher:
    """Publishes batches of events to one durable topic exchange over one channel with confirms."""

    def __init__(self, url: str, exchange: str, confirm_timeout_s: float) -> None:
        self.url = url
        self.exchange_name = exchange
        self.confirm_timeout_s = confirm_timeout_s
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AmqpPublisher:
        """The publisher ``events_amqp_*`` describe (``events_amqp_url`` must be set)."""
        if settings.events_amqp_url is None:
            raise ValueError("events_amqp_url is not set")
        return cls(
            settings.events_amqp_url, settings.events_amqp_exchange, settings.events_amqp_confirm_timeout_s
        )

    async def start(self) -> None:
        """Connect and declare the exchange now, to report a wrong URL or exchange early.

        Raises ``AmqpUnavailableError`` when that fails; ``publish`` connects again by itself, so a
        caller may log the error and carry on."""
        await self._ensure_exchange()

    async def close(self) -> None:
        """Close the connection (waiting for no confirmation: ``publish`` has returned or raised)."""
        await self._discard()

    async def publish(self, events: Sequence[OutboundEvent]) -> None:
        """Publish ``events`` in their order and return once the broker confirmed every one.

        The messages go out one after another on the channel and their confirmations are awaited
        together; connecting (if needed), publishing and confirming share ``confirm_timeout_s``. On any
        failure the connection is dropped (the next call opens a new one) and ``AmqpUnavailableError``
        raised."""
        if not events:
            return
        try:
            async with asyncio.timeout(self.confirm_timeout_s):
                exchange = await self._ensure_exchange()
                # Tasks start in creation order and the channel publishes under a FIFO lock, so the
                # messages reach the broker in the order given.
                await asyncio.gather(
                    *(
                        exchange.publish(_message(event), routing_key=event.routing_key, mandatory=False)
                        for event in events
                    )
                )
        except AmqpUnavailableError:
            await self._discard()
            raise
        except _BROKER_ERRORS as exc:
            await self._discard()
            raise AmqpUnavailableError(
                f"RabbitMQ did not confirm {len(events)} event(s) on exchange {self.exchange_name!r}: "
                f"{_describe(exc)}"
            ) from exc
        except BaseException:  # cancelled: the channel may still owe confirmations, start afresh
            await asyncio.shield(self._discard())
            raise

    async def _ensure_exchange(self) -> AbstractExchange:
        if self._exchange is not None and self._channel is not None and not self._channel.is_closed:
            return self._exchange
        await self._discard()
        try:
            self._connection = await aio_pika.connect(self.url, timeout=self.confirm_timeout_s)
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        except _BROKER_ERRORS as exc:
            await self._discard()
            raise AmqpUnavailableError(
                f"cannot open exchange {self.exchange_name!r} on RabbitMQ: {_describe(exc)}"
            ) from exc
        return self._exchange

    async def _discard(self) -> None:
        connection = self._connection
        self._connection, self._channel, self._exchange = None, None, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*_BROKER_ERRORS, RuntimeError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await connection.close()


def _message(event: OutboundEvent) -> aio_pika.Message:
    return aio_pika.Message(
        event.body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.event_id,
        type=event.event_type,
        timestamp=event.occurred_at,
        headers={"sentinel-account": event.account_id},
        app_id="sentinel",
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no confirmation within the timeout"
    return repr(exc)
