"""Migrations, roles and append-only enforcement by the database itself (privileges and triggers)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import ledger_settings, make_record

from sentinel.ledger import LedgerWriter
from sentinel.ledger.migrate import MigrationError, latest_version, migrate, shipped_migrations
from sentinel.postgres import OWNER_ROLE, connect_as_writer

LEDGER_TABLES = ("ledger.decisions", "ledger.idempotency_keys", "ledger.chains")


@pytest.fixture
async def filled_ledger(database_url: str, tmp_path: Path) -> str:
    writer = LedgerWriter(ledger_settings(database_url, tmp_path), name="schema")
    await writer.start()
    try:
        await writer.submit([make_record("tx-1"), make_record("tx-2", outcome="DECLINE")])
    finally:
        await writer.close()
    return database_url


async def test_migrate_is_versioned_and_idempotent(database_url: str) -> None:
    shipped = [migration.version for migration in shipped_migrations()]
    assert shipped[0] == 1 and shipped[-1] == latest_version()
    assert await migrate(database_url) == shipped
    assert await migrate(database_url) == []


async def test_migrate_refuses_a_changed_migration(database_url: str) -> None:
    await migrate(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("UPDATE ledger.schema_migrations SET checksum = 'edited'")
    finally:
        await connection.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(database_url)


@pytest.mark.parametrize("table", LEDGER_TABLES)
@pytest.mark.parametrize(
    "statement", ["UPDATE {table} SET recorded_at = now()", "DELETE FROM {table}", "TRUNCATE {table}"]
)
async def test_service_role_cannot_change_ledger_rows(filled_ledger: str, table: str, statement: str) -> None:
    if "recorded_at" in statement and table == "ledger.chains":
        statement = "UPDATE {table} SET writer = 'forged'"
    connection = await connect_as_writer(filled_ledger, connect_timeout_s=5, application_name="test")
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement.format(table=table))
    finally:
        await connection.close()


async def test_service_role_cannot_bypass_triggers_or_touch_balances(filled_ledger: str) -> None:
    connection = await connect_as_writer(filled_ledger, connect_timeout_s=5, application_name="test")
    try:
        assert await connection.fetchval("SELECT current_user") == "sentinel_ledger_writer"
        for statement in (
            "SET session_replication_role = replica",
            "ALTER TABLE ledger.decisions DISABLE TRIGGER ALL",
            "UPDATE ledger.balances SET amount = 1000000",
            "DELETE FROM ledger.balances",
            "INSERT INTO ledger.balances VALUES ('forged', 'EUR', 1000000, 1)",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute(statement)
    finally:
        await connection.close()


async def test_triggers_stop_even_the_owner(filled_ledger: str) -> None:
    connection = await asyncpg.connect(filled_ledger)
    try:
        await connection.execute(f"SET ROLE {OWNER_ROLE}")
        partition = await connection.fetchval(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'ledger.decisions'::regclass ORDER BY 1 LIMIT 1"
        )
        for statement in (
            "UPDATE ledger.decisions SET amount = 1",
            "DELETE FROM ledger.decisions",
            "TRUNCATE ledger.decisions",
            f"TRUNCATE {partition}",
            "UPDATE ledger.idempotency_keys SET transaction_id = ''",
            "TRUNCATE ledger.idempotency_keys",
            "DELETE FROM ledger.chains",
            "DELETE FROM ledger.balances",
            "TRUNCATE ledger.balances",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await connection.execute(statement)
        assert await connection.fetchval("SELECT count(*) FROM ledger.decisions") == 2
    finally:
        await connection.close()


async def test_decisions_are_partitioned_by_month_and_the_service_can_add_months(database_url: str) -> None:
    await migrate(database_url)
    connection = await connect_as_writer(database_url, connect_timeout_s=5, application_name="test")
    try:
        before = await connection.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ledger.decisions'::regclass"
        )
        assert before == 3  # this month and two ahead
        created = await connection.fetchval(
            "SELECT ledger.ensure_partitions($1, 0)", datetime(2031, 6, 15, tzinfo=UTC)
        )
        assert created == 1
        bounds = await connection.fetchval(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
            "WHERE oid = 'ledger.decisions_y2031m06'::regclass"
        )
    finally:
        await connection.close()
    assert "2031-06-01 00:00:00+00" in bounds and "2031-07-01 00:00:00+00" in bounds
