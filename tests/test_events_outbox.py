"""The outbox written by the ledger's own statements, the destinations and their history, replays, and
what the writer role may not do (real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from sentinel.bench.ledger import synthetic_records
from sentinel.config import load_settings
from sentinel.events.dispatcher import run_dispatcher
from sentinel.events.store import (
    AMQP_DESTINATION_ID,
    InvalidSubscription,
    SubscriptionNotFound,
    SubscriptionStore,
)
from sentinel.ledger.lane import LedgerLane
from sentinel.ledger.migrate import migrate
from sentinel.postgres import EVENTS_ROLE, WRITER_ROLE


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SubscriptionStore]:
    await migrate(database_url)
    store = await SubscriptionStore.connect(database_url)
    yield store
    await store.close()


@pytest.fixture
async def lane(database_url: str, store: SubscriptionStore) -> AsyncIterator[LedgerLane]:
    lane = LedgerLane(database_url, name="events-test", connect_timeout_s=5.0, partitions_ahead=1)
    yield lane
    await lane.close()


async def _webhook(store: SubscriptionStore, outcomes: list[str] | None = None) -> str:
    destination, _secret = await store.create_webhook(
        "https://hooks.example.com/x",
        outcomes=outcomes or [],
        event_types=[],
        description="",
        actor="test",
        allow_plain_http_loopback=False,
    )
    return destination.destination_id


async def _deliveries(database_url: str) -> dict[str, list[int]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT destination_id, array_agg(sequence ORDER BY delivery_id) AS sequences "
            "FROM ledger.event_deliveries GROUP BY destination_id"
        )
        return {row["destination_id"]: list(row["sequences"]) for row in rows}
    finally:
        await connection.close()


async def _entries(database_url: str) -> dict[int, str]:
    connection = await asyncpg.connect(database_url)
    try:
        return dict(await connection.fetch("SELECT sequence, outcome FROM ledger.decisions"))
    finally:
        await connection.close()


async def test_each_new_entry_gets_a_delivery_per_matching_active_destination(
    database_url: str, store: SubscriptionStore, lane: LedgerLane
) -> None:
    records = synthetic_records(300, "outbox", seed=7)
    await lane.write(records[:100])  # no destination yet: nothing in the outbox
    assert await _deliveries(database_url) == {}
    before = set(await _entries(database_url))

    every = await _webhook(store)
    declines = await _webhook(store, ["DECLINE", "REVIEW"])
    disabled = await _webhook(store)
    await store.disable(disabled, actor="test")
    await lane.write(records[100:200])  # the normal way (one statement)
    # the general way: a retried key in the group; only its new entries get deliveries
    outcomes = await lane.write([*records[150:160], *records[200:]])
    assert [outcome.existed for outcome in outcomes] == [True] * 10 + [False] * 100

    entries = await _entries(database_url)
    recorded_with_destinations = sorted(set(entries) - before)
    deliveries = await _deliveries(database_url)
    assert set(deliveries) == {every, declines}
    assert deliveries[every] == recorded_with_destinations  # in ledger order
    assert deliveries[declines] == [s for s in recorded_with_destinations if entries[s] != "APPROVE"]
    assert deliveries[declines], "the seeded records hold some REVIEW and DECLINE outcomes"


async def test_the_writer_role_cannot_read_secrets_nor_touch_deliveries(
    database_url: str, store: SubscriptionStore
) -> None:
    await _webhook(store)
    connection = await asyncpg.connect(database_url, server_settings={"role": WRITER_ROLE})
    try:
        assert await connection.fetchval("SELECT count(*) FROM ledger.event_destinations WHERE active") == 1
        for statement in (
            "SELECT secret FROM ledger.event_destinations",
            "SELECT * FROM ledger.event_deliveries",
            "DELETE FROM ledger.event_deliveries",
            "UPDATE ledger.event_destinations SET url = 'https://elsewhere.example.com/'",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute(statement)
    finally:
        await connection.close()


async def test_secrets_rotate_with_a_grace_period_and_every_change_is_in_the_history(
    database_url: str, store: SubscriptionStore
) -> None:
    destination, first = await store.create_webhook(
        "https://hooks.example.com/y",
        outcomes=["DECLINE"],
        event_types=["decision.recorded"],
        description="fraud desk",
        actor="alice",
        allow_plain_http_loopback=False,
    )
    rotated, second = await store.rotate_secret(destination.destination_id, actor="bob", grace_s=3600)
    assert second != first and rotated.previous_secret_until is not None
    assert rotated.previous_secret_until > datetime.now(UTC) + timedelta(minutes=59)
    await store.disable(destination.destination_id, actor="carol")
    assert await store.list() == []
    (listed,) = await store.list(include_inactive=True)
    assert not listed.active and listed.outcomes == ("DECLINE",)
    connection = await asyncpg.connect(database_url, server_settings={"role": EVENTS_ROLE})
    try:
        secrets = await connection.fetchrow("SELECT secret, previous_secret FROM ledger.event_destinations")
        history = await connection.fetch(
            "SELECT change, actor, active FROM ledger.event_destination_history ORDER BY change_id"
        )
    finally:
        await connection.close()
    assert (secrets["secret"], secrets["previous_secret"]) == (second, first)
    assert [tuple(row) for row in history] == [
        ("create", "alice", True),
        ("rotate_secret", "bob", True),
        ("disable", "carol", False),
    ]
    with pytest.raises(SubscriptionNotFound):
        await store.disable("wh_missing", actor="x")
    with pytest.raises(InvalidSubscription):
        await store.create_webhook(
            "https://hooks.example.com/",
            outcomes=["MAYBE"],
            event_types=[],
            description="",
            actor="x",
            allow_plain_http_loopback=False,
        )


async def test_broker_destination_follows_the_setting(database_url: str, store: SubscriptionStore) -> None:
    await store.sync_amqp("amqp://sentinel:pw@127.0.0.1:5672/", actor="serve")
    await store.sync_amqp("amqp://sentinel:pw@127.0.0.1:5672/", actor="serve")  # unchanged: no history
    (broker,) = await store.list()
    assert (broker.destination_id, broker.kind, broker.url) == (
        AMQP_DESTINATION_ID,
        "amqp",
        "amqp://sentinel:***@127.0.0.1:5672/",
    )
    await store.sync_amqp(None, actor="serve")
    assert await store.list() == []
    await store.sync_amqp("amqp://127.0.0.1:5673/", actor="serve")
    assert [d.url for d in await store.list()] == ["amqp://127.0.0.1:5673/"]
    connection = await asyncpg.connect(database_url)
    try:
        changes = [
            row[0]
            for row in await connection.fetch(
                "SELECT change FROM ledger.event_destination_history ORDER BY change_id"
            )
        ]
    finally:
        await connection.close()
    assert changes == ["create", "disable", "enable"]


async def test_replay_schedules_events_again_and_revives_dead_deliveries(
    database_url: str, store: SubscriptionStore, lane: LedgerLane
) -> None:
    hook = await _webhook(store)
    await lane.write(synthetic_records(20, "replay", seed=3))
    connection = await asyncpg.connect(database_url)
    try:
        sequences = [
            row[0] for row in await connection.fetch("SELECT sequence FROM ledger.decisions ORDER BY 1")
        ]
        # delivered (gone) and dead rows, as the dispatcher leaves them
        await connection.execute(
            "DELETE FROM ledger.event_deliveries WHERE sequence = ANY($1)", sequences[:10]
        )
        await connection.execute(
            "UPDATE ledger.event_deliveries SET state = 'dead' WHERE sequence = ANY($1)", sequences[10:15]
        )
        # by id: the delivered one comes back, the pending one is not doubled
        assert await store.replay(sequences=[sequences[0], sequences[19]]) == 1
        # by destination alone: its dead deliveries
        assert await store.replay(destination_id=hook) == 5
        # by time range: every event of the range that is not pending
        assert await store.replay(since=datetime.now(UTC) - timedelta(hours=1)) == 9
        assert await store.replay(since=datetime.now(UTC) + timedelta(hours=1)) == 0
        states = await connection.fetch("SELECT state, count(*) FROM ledger.event_deliveries GROUP BY state")
    finally:
        await connection.close()
    assert [tuple(row) for row in states] == [("pending", 20)]
    with pytest.raises(InvalidSubscription):
        await store.replay()
    with pytest.raises(SubscriptionNotFound):
        await store.replay(destination_id="wh_none", since=datetime.now(UTC))


async def test_a_delivery_failing_past_the_retry_age_is_dead_until_replayed(
    database_url: str, store: SubscriptionStore, lane: LedgerLane
) -> None:
    """In-process dispatcher, a receiver answering 500, then 204: dead letters, the circuit, replay."""
    answers = [500]

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=answers[0])

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    destination, _secret = await store.create_webhook(
        f"http://127.0.0.1:{port}/hook",
        outcomes=[],
        event_types=[],
        description="",
        actor="test",
        allow_plain_http_loopback=True,
    )
    settings = load_settings(
        database_url=database_url,
        events_allow_plain_http_loopback=True,
        events_retry_base_s=0.01,
        events_retry_cap_s=0.05,
        events_retry_max_age_s=0.5,
        events_circuit_failures=1000,
        events_poll_interval_ms=20,
    )
    await lane.write(synthetic_records(5, "dead", seed=5))
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(run_dispatcher(settings, stop))
    connection = await asyncpg.connect(database_url)
    try:
        for _ in range(100):
            if (
                await connection.fetchval("SELECT count(*) FROM ledger.event_deliveries WHERE state = 'dead'")
                == 5
            ):
                break
            await asyncio.sleep(0.1)
        row = await connection.fetchrow("SELECT min(attempts), max(last_error) FROM ledger.event_deliveries")
        assert row[0] > 1 and row[1] == "http_5xx: HTTP 500"
        assert (
            await connection.fetchval("SELECT count(*) FROM ledger.event_deliveries WHERE state = 'dead'")
            == 5
        )
        answers[0] = 204
        assert await store.replay(destination_id=destination.destination_id) == 5
        for _ in range(100):
            if await connection.fetchval("SELECT count(*) FROM ledger.event_deliveries") == 0:
                break
            await asyncio.sleep(0.1)
        assert await connection.fetchval("SELECT count(*) FROM ledger.event_deliveries") == 0
    finally:
        stop.set()
        await dispatcher
        await connection.close()
        await runner.cleanup()
    assert (
        REGISTRY.get_sample_value(
            "sentinel_events_dead_lettered_total", {"destination": destination.destination_id}
        )
        == 5
    )
