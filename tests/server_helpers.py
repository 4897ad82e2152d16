"""Helpers shared by the tests that drive a real server: transactions, channels, what Redis and the
ledger hold afterwards."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc
import redis

from sentinel.hotpath import AccountState, decode_state
from sentinel.localservices import LocalPostgres
from sentinel.server.state_store import AccountValue, fold, state_key
from sentinel.v1 import scoring_pb2_grpc, transaction_pb2


def transaction(transaction_id: str, account: str = "C1", amount: str = "100.00", **extra: object):  # type: ignore[no-untyped-def]
    message = transaction_pb2.Transaction(
        transaction_id=transaction_id,
        account_id=account,
        counterparty_id="M1",
        type=transaction_pb2.TRANSACTION_TYPE_TRANSFER,
        amount=transaction_pb2.Money(amount=amount, currency="EUR"),
        geo=transaction_pb2.GeoLocation(latitude=52.52, longitude=13.40, country="DE"),
        device_id="dev-1",
        **extra,
    )
    message.event_time.FromSeconds(int(time.time()) - 10)
    return message


open_channels: list[grpc.Channel] = []  # closed after each test (tests/conftest.py)


def stubs(address: str, connections: int) -> list[scoring_pb2_grpc.ScoringServiceStub]:
    """Stubs on separate connections (SO_REUSEPORT spreads connections, not calls, over workers)."""
    channels = [
        grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(connections)
    ]
    open_channels.extend(channels)
    return [scoring_pb2_grpc.ScoringServiceStub(channel) for channel in channels]


def account_state(redis_url: str, account: str) -> AccountState | None:
    """An account's current state as the server sees it: its base with its journal folded in."""
    with redis.Redis.from_url(redis_url) as client:
        value = AccountValue.parse(client.get(state_key(account)))  # type: ignore[arg-type]
    state = fold(value.base, value.journal)
    return decode_state(state) if state else None


def ledger_ids(database_url: str, ids: list[str]) -> dict[str, int]:
    """How many ledger rows each transaction id has."""

    async def query() -> dict[str, int]:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT transaction_id, count(*) AS n FROM ledger.decisions "
                "WHERE transaction_id = ANY($1::text[]) GROUP BY transaction_id",
                ids,
            )
        finally:
            await connection.close()
        return {row["transaction_id"]: row["n"] for row in rows}

    return asyncio.run(query())


def new_database(postgres_server: LocalPostgres, name: str) -> str:
    """Create an empty database ``name`` in the session's cluster; its DSN (for sync and async code)."""

    async def create() -> None:
        connection = await asyncpg.connect(postgres_server.url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return postgres_server.dsn(name)
