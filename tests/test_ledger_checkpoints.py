"""Chain checkpoints: heads only the owner records, against which verify catches forged history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import ledger_settings, make_record
from test_ledger_writer import _sentinel

from sentinel.ledger import LedgerWriter
from sentinel.ledger.chain import entry_hash, epoch_microseconds, genesis_hash
from sentinel.ledger.verify import take_checkpoint, verify_ledger
from sentinel.postgres import connect_as_writer


@pytest.fixture
async def written(database_url: str, tmp_path: Path) -> str:
    """A ledger holding three decisions written the normal way."""
    writer = LedgerWriter(ledger_settings(database_url, tmp_path), name="checkpoints")
    await writer.start()
    try:
        await writer.submit([make_record(f"tx-{i}") for i in range(3)])
    finally:
        await writer.close()
    return database_url


async def _forge_chain(database_url: str, dated: timedelta = timedelta(days=-1)) -> None:
    """As the writer role: a new, self-consistent chain of decisions dated ``dated`` from now."""
    connection = await connect_as_writer(database_url, connect_timeout_s=5, application_name="forger")
    try:
        chain_id = await connection.fetchval(
            "INSERT INTO ledger.chains (writer) VALUES ('forger') RETURNING chain_id"
        )
        recorded_at = datetime.now(UTC) + dated
        previous = genesis_hash(chain_id)
        for i in range(2):
            record = make_record(f"forged-{i}", amount="5000.00")
            sequence = await connection.fetchval("SELECT nextval('ledger.entry_sequence')")
            previous = entry_hash(previous, sequence, chain_id, epoch_microseconds(recorded_at), record)
            await connection.execute(
                "INSERT INTO ledger.idempotency_keys "
                "(idempotency_key, sequence, transaction_id, recorded_at) VALUES ($1, $2, $3, $4)",
                record.idempotency_key,
                sequence,
                record.transaction_id,
                recorded_at,
            )
            await connection.execute(
                "INSERT INTO ledger.decisions (sequence, chain_id, recorded_at, idempotency_key, "
                "transaction_id, fingerprint, account_id, counterparty_id, amount, currency, outcome, "
                "risk_score, transaction_bytes, decision_bytes, entry_hash) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10, $11, $12, $13, $14, $15)",
                sequence,
                chain_id,
                recorded_at,
                record.idempotency_key,
                record.transaction_id,
                record.fingerprint,
                record.account_id,
                record.counterparty_id,
                str(record.amount),
                record.currency,
                record.outcome,
                record.risk_score,
                record.transaction_bytes,
                record.decision_bytes,
                previous,
            )
            await connection.execute(
                "SELECT ledger.apply_balance_movements(ARRAY[ROW($1, '', '', ''::bytea, $2, $3, $4, $5, "
                "'APPROVE', 0, ''::bytea, ''::bytea, ''::bytea)]::ledger.entry_row[])",
                sequence,
                record.account_id,
                record.counterparty_id,
                str(record.amount),
                record.currency,
            )
    finally:
        await connection.close()


async def test_verify_names_the_checkpoint_a_forged_back_dated_chain_contradicts(written: str) -> None:
    checkpoint = await take_checkpoint(written)
    assert len(checkpoint.heads) == 1 and (await verify_ledger(written)).ok
    await _forge_chain(written)
    report = await verify_ledger(written)
    assert not report.broken and not report.balance_mismatches  # self-consistent: the chain alone passes
    assert not report.ok
    first = report.first_checkpoint_mismatch
    assert first is not None and first.checkpoint_id == checkpoint.checkpoint_id
    assert "forged-0" in first.reason and "not in checkpoint" in first.reason


async def test_verify_names_the_checkpoint_that_holds_a_chain_dated_after_it(written: str) -> None:
    await take_checkpoint(written)
    await _forge_chain(written, timedelta(days=1))
    assert (await verify_ledger(written)).ok  # no checkpoint has seen it yet
    holding = await take_checkpoint(written)
    first = (await verify_ledger(written)).first_checkpoint_mismatch
    assert first is not None and first.checkpoint_id == holding.checkpoint_id
    assert "forged-0" in first.reason and "taken before that" in first.reason


async def test_cli_checkpoint_prints_the_heads_and_verify_names_the_checkpoint(
    written: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(_sentinel, ["ledger", "checkpoint", "--url", written]) == 0
    connection = await asyncpg.connect(written)
    try:
        head = await connection.fetchrow(
            "SELECT sequence, entry_hash FROM ledger.decisions ORDER BY sequence DESC LIMIT 1"
        )
    finally:
        await connection.close()
    printed = f"1 {head['sequence']} {head['entry_hash'].hex()} 1"  # chain, sequence, hash, checkpoint
    assert printed in capsys.readouterr().out.splitlines()
    await _forge_chain(written)
    assert await asyncio.to_thread(_sentinel, ["ledger", "verify", "--url", written]) == 1
    assert "TAMPERING: checkpoint 1 (taken at" in capsys.readouterr().err


async def test_verify_names_a_checkpointed_head_the_chain_no_longer_holds(written: str) -> None:
    checkpoint = await take_checkpoint(written)
    [head] = checkpoint.heads
    connection = await asyncpg.connect(written)  # the cluster's superuser rewrites the last entry
    try:
        await connection.execute("SET session_replication_role = replica")
        await connection.execute("DELETE FROM ledger.decisions WHERE sequence = $1", head.sequence)
        await connection.execute("DELETE FROM ledger.idempotency_keys WHERE sequence = $1", head.sequence)
    finally:
        await connection.close()
    report = await verify_ledger(written)
    assert not report.broken  # a chain that lost its last entry is still a valid chain
    first = report.first_checkpoint_mismatch
    assert first is not None and first.checkpoint_id == checkpoint.checkpoint_id
    assert first.chain_id == head.chain_id and first.sequence == head.sequence


async def test_a_later_checkpoint_records_only_the_heads_that_moved(written: str, tmp_path: Path) -> None:
    first = await take_checkpoint(written)
    assert [head.checkpoint_id for head in (await take_checkpoint(written)).heads] == [first.checkpoint_id]
    writer = LedgerWriter(ledger_settings(written, tmp_path), name="later")
    await writer.start()
    try:
        await writer.submit([make_record("tx-later")])
    finally:
        await writer.close()
    third = await take_checkpoint(written)
    assert [head.checkpoint_id for head in third.heads] == [first.checkpoint_id, third.checkpoint_id]
    assert (await verify_ledger(written)).ok


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO ledger.checkpoints DEFAULT VALUES",
        "INSERT INTO ledger.checkpoint_heads VALUES (1, 1, 1, '\\x00')",
        "UPDATE ledger.checkpoint_heads SET entry_hash = '\\x00'",
        "DELETE FROM ledger.checkpoints",
        "SELECT ledger.take_checkpoint(interval '5 minutes')",
    ],
)
async def test_the_writer_role_cannot_write_checkpoints(written: str, statement: str) -> None:
    await take_checkpoint(written)
    connection = await connect_as_writer(written, connect_timeout_s=5, application_name="test")
    try:
        assert await connection.fetchval("SELECT count(*) FROM ledger.checkpoint_heads") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
    finally:
        await connection.close()
