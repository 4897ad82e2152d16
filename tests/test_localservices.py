"""The private PostgreSQL that `make run`, `sentinel bench ledger` and the tests start."""

from __future__ import annotations

import asyncpg

from sentinel.localservices import POSTGRES_SETTINGS, LocalPostgres


async def test_private_postgres_runs_with_the_ledger_settings(postgres_server: LocalPostgres) -> None:
    connection = await asyncpg.connect(postgres_server.url)
    try:
        for setting in POSTGRES_SETTINGS:
            name, value = setting.split("=", 1)
            assert await connection.fetchval(f"SHOW {name}") == value, name
    finally:
        await connection.close()
