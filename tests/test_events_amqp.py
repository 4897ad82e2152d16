"""AmqpPublisher against the session's real RabbitMQ: order, message properties, confirms, and failures
(broker stopped, broker frozen) from which the same publisher recovers by itself."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from sentinel.config import load_settings
from sentinel.events.amqp import AmqpPublisher, AmqpUnavailableError
from sentinel.events.model import OutboundEvent
from sentinel.localservices import LocalRabbitMQ

OUTCOMES = ("APPROVE", "REVIEW", "DECLINE")
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def events(first: int, count: int) -> list[OutboundEvent]:
    """Events with sequence numbers first..first+count-1, cycling through the outcomes and 3 accounts."""
    return [
        OutboundEvent(
            event_id=f"evt_{sequence}",
            event_type="decision.recorded",
            outcome=OUTCOMES[sequence % 3],
            account_id=f"acct-{sequence % 3}",
            occurred_at=START + timedelta(seconds=sequence),
            body=b'{"version":1,"event_id":"evt_%d"}' % sequence,
        )
        for sequence in range(first, first + count)
    ]


@pytest.fixture
def exchange_name() -> str:
    """An exchange of this test's own on the shared broker."""
    return f"test.decisions.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def publisher(rabbitmq_server: LocalRabbitMQ, exchange_name: str) -> AsyncIterator[AmqpPublisher]:
    settings = load_settings(
        events_amqp_url=rabbitmq_server.amqp_url,
        events_amqp_exchange=exchange_name,
        events_amqp_confirm_timeout_s=5.0,
    )
    publisher = AmqpPublisher.from_settings(settings)
    await publisher.start()
    yield publisher
    await publisher.close()


@contextlib.asynccontextmanager
async def receiver(url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def bind_queue(url: str, exchange: str, binding: str) -> str:
    """Declare a durable queue bound to ``exchange`` with ``binding``, as a receiver does before events
    are published (the exchange is declared by the publisher's start())."""
    name = f"{exchange}.{binding}.{uuid.uuid4().hex[:6]}"
    async with receiver(url) as channel:
        queue = await channel.declare_queue(name, durable=True)
        await queue.bind(exchange, routing_key=binding)
    return name


async def drain(queue: AbstractQueue) -> list[AbstractIncomingMessage]:
    """Every message now in ``queue``, in queue order, acknowledged."""
    received = []
    while (message := await queue.get(fail=False, timeout=5)) is not None:
        await message.ack()
        received.append(message)
    return received


async def received_ids(url: str, queue_name: str) -> list[str | None]:
    async with receiver(url) as channel:
        return [message.message_id for message in await drain(await channel.get_queue(queue_name))]


def ids(batch: Sequence[OutboundEvent]) -> list[str | None]:
    return [event.event_id for event in batch]


async def test_a_confirmed_batch_is_in_the_bound_queues_in_order_with_its_properties(
    rabbitmq_server: LocalRabbitMQ, publisher: AmqpPublisher, exchange_name: str
) -> None:
    url = rabbitmq_server.amqp_url
    everything = await bind_queue(url, exchange_name, "decision.#")
    declines = await bind_queue(url, exchange_name, "decision.recorded.decline")
    batch = events(1, 60)

    await publisher.publish(batch)

    async with receiver(url) as channel:
        received = await drain(await channel.get_queue(everything))
        assert [message.message_id for message in received] == ids(batch)
        for message, event in zip(received, batch, strict=True):
            assert message.routing_key == f"decision.recorded.{event.outcome.lower()}"
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert message.body == event.body
            assert message.content_type == "application/json"
            assert message.type == "decision.recorded"
            assert message.timestamp == event.occurred_at
            assert message.headers == {"sentinel-account": event.account_id}
        assert [message.message_id for message in await drain(await channel.get_queue(declines))] == ids(
            [event for event in batch if event.outcome == "DECLINE"]
        )


async def test_an_empty_batch_sends_nothing(
    rabbitmq_server: LocalRabbitMQ, publisher: AmqpPublisher, exchange_name: str
) -> None:
    queue = await bind_queue(rabbitmq_server.amqp_url, exchange_name, "decision.#")
    await publisher.publish([])
    await publisher.publish(events(1, 1))
    assert await received_ids(rabbitmq_server.amqp_url, queue) == ["evt_1"]


@contextlib.contextmanager
def frozen(broker: LocalRabbitMQ) -> Iterator[None]:
    """The broker's Erlang VM stopped (SIGSTOP): connections stay open, nothing is answered."""
    pid = int((broker.directory / "rabbitmq.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_an_unconfirmed_batch_fails_and_its_repeat_carries_the_same_ids(
    rabbitmq_server: LocalRabbitMQ, exchange_name: str
) -> None:
    url = rabbitmq_server.amqp_url
    publisher = AmqpPublisher(url, exchange_name, confirm_timeout_s=1.0)
    await publisher.start()
    queue = await bind_queue(url, exchange_name, "decision.#")
    batch = events(1, 5)
    try:
        with frozen(rabbitmq_server), pytest.raises(AmqpUnavailableError, match="within the timeout"):
            await publisher.publish(batch)
        publisher.confirm_timeout_s = 10.0  # the thawed broker may first work off a backlog
        await publisher.publish(batch)  # what the dispatcher does: the whole batch again
    finally:
        await publisher.close()
    received = await received_ids(url, queue)
    # The first attempt's messages were on their way, and some or all may have arrived as well: at
    # least once, a duplicate with the same id.
    first_attempt, repeat = received[: -len(batch)], received[-len(batch) :]
    assert repeat == ids(batch)
    assert first_attempt == ids(batch)[: len(first_attempt)]


async def test_a_stopped_broker_fails_the_batch_and_after_its_restart_nothing_confirmed_is_lost(
    rabbitmq_server: LocalRabbitMQ, publisher: AmqpPublisher, exchange_name: str
) -> None:
    url = rabbitmq_server.amqp_url
    queue = await bind_queue(url, exchange_name, "decision.#")
    before = events(1, 20)
    await publisher.publish(before)  # confirmed, not yet consumed
    rabbitmq_server.stop()
    try:
        with pytest.raises(AmqpUnavailableError):
            await publisher.publish(events(21, 5))
        with pytest.raises(AmqpUnavailableError):  # and again: it keeps trying, never hangs
            await publisher.publish(events(21, 5))
    finally:
        rabbitmq_server.start()
    assert rabbitmq_server.amqp_url == url  # the same broker, same port
    after = events(21, 5)
    await publisher.publish(after)  # the same publisher, reconnected by itself
    assert await received_ids(url, queue) == ids(before) + ids(after)


async def test_a_wrong_exchange_type_is_reported(rabbitmq_server: LocalRabbitMQ, exchange_name: str) -> None:
    async with receiver(rabbitmq_server.amqp_url) as channel:
        await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.FANOUT, auto_delete=True)
        publisher = AmqpPublisher(rabbitmq_server.amqp_url, exchange_name, confirm_timeout_s=5.0)
        with pytest.raises(AmqpUnavailableError, match=exchange_name):
            await publisher.start()
        with pytest.raises(AmqpUnavailableError, match=exchange_name):
            await publisher.publish(events(1, 1))
        await publisher.close()
