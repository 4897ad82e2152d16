"""The group-commit writer against a real Postgres: idempotency, balances, chains, ack modes."""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import ledger_settings, make_record, total

from sentinel.ledger import AckStatus, LedgerWriter, commands
from sentinel.ledger.verify import verify_ledger
from sentinel.v1 import decision_pb2


@pytest.fixture
async def writer(database_url: str, tmp_path: Path):
    ledger = LedgerWriter(ledger_settings(database_url, tmp_path), name="test")
    await ledger.start()
    yield ledger
    await ledger.close()


async def test_submit_commits_and_returns_sequences(writer: LedgerWriter, database_url: str) -> None:
    acks = await writer.submit([make_record("tx-1"), make_record("tx-2")])
    assert [ack.status for ack in acks] == [AckStatus.COMMITTED] * 2
    assert not any(ack.existed for ack in acks)
    assert 0 < acks[0].sequence < acks[1].sequence
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT transaction_id, sequence FROM ledger.decisions ORDER BY sequence"
        )
    finally:
        await connection.close()
    assert [(row["transaction_id"], row["sequence"]) for row in rows] == [
        ("tx-1", acks[0].sequence),
        ("tx-2", acks[1].sequence),
    ]


async def test_both_ways_store_the_same_values(writer: LedgerWriter, database_url: str) -> None:
    """All-new keys take the one-statement way; a group with a stored key takes the general way."""
    odd = {"account": 'quote"d back\\slash {brace,comma} ', "counterparty": "", "amount": "0.10"}
    new = [
        make_record("tx-odd-1", **odd),
        *(make_record(f"tx-new-{i}", amount=f"{i + 1}.5") for i in range(3)),
    ]
    retried = [
        make_record("tx-new-0", amount="1.5"),
        make_record("tx-odd-2", **odd),
        *(make_record(f"tx-general-{i}", amount=f"{i + 1}.25") for i in range(3)),
    ]
    assert not any(ack.existed for ack in await writer.submit(new))
    acks = await writer.submit(retried)
    assert acks[0].existed and not acks[0].conflict and not any(ack.existed for ack in acks[1:])
    connection = await asyncpg.connect(database_url)
    try:
        stored = await connection.fetch(
            "SELECT account_id, counterparty_id, amount FROM ledger.decisions "
            "WHERE transaction_id LIKE 'tx-odd-%' ORDER BY transaction_id"
        )
        count = await connection.fetchval("SELECT count(*) FROM ledger.decisions")
    finally:
        await connection.close()
    assert count == len(new) + len(retried) - 1
    assert [tuple(row) for row in stored] == [(odd["account"], "", Decimal("0.10"))] * 2
    report = await verify_ledger(database_url)  # every column agrees with the blobs, both ways
    assert report.ok, report


async def test_duplicate_key_leaves_one_row_and_reports_the_stored_entry(
    writer: LedgerWriter, database_url: str
) -> None:
    original = make_record("tx-dup")
    [first] = await writer.submit([original])
    [retry] = await writer.submit([make_record("tx-dup")])  # honest retry: same transaction
    [reused] = await writer.submit([make_record("tx-dup", amount="999.00")])  # same key, other data
    assert retry.existed and not retry.conflict
    assert retry.sequence == first.sequence
    assert retry.stored_decision == original.decision_bytes
    assert retry.stored_fingerprint == original.fingerprint
    assert reused.existed and reused.conflict and reused.sequence == first.sequence
    stored = decision_pb2.Decision.FromString(reused.stored_decision)
    assert stored.transaction_id == "tx-dup"
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM ledger.decisions") == 1
        assert await connection.fetchval("SELECT count(*) FROM ledger.idempotency_keys") == 1
    finally:
        await connection.close()


async def test_duplicates_inside_one_submission_and_across_concurrent_ones(
    writer: LedgerWriter, database_url: str
) -> None:
    same = [make_record("tx-a"), make_record("tx-a")]
    acks = await writer.submit(same)
    assert not acks[0].existed and acks[1].existed and acks[0].sequence == acks[1].sequence
    results = await asyncio.gather(*(writer.submit([make_record("tx-b")]) for _ in range(20)))
    fresh = [ack for [ack] in results if not ack.existed]
    assert len(fresh) == 1
    assert {ack.sequence for [ack] in results} == {fresh[0].sequence}
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM ledger.decisions") == 2
    finally:
        await connection.close()


async def test_concurrent_submissions_share_transactions(writer: LedgerWriter, database_url: str) -> None:
    submissions = [[make_record(f"tx-{i}-{j}") for j in range(3)] for i in range(200)]
    results = await asyncio.gather(*(writer.submit(records) for records in submissions))
    sequences = [ack.sequence for acks in results for ack in acks]
    assert len(set(sequences)) == 600
    connection = await asyncpg.connect(database_url)
    try:
        transactions = await connection.fetchval("SELECT count(DISTINCT recorded_at) FROM ledger.decisions")
    finally:
        await connection.close()
    assert transactions < 200  # groups, not one transaction per submit() call


async def test_balances_equal_the_sum_of_approved_movements(writer: LedgerWriter, database_url: str) -> None:
    accounts = ["A", "B", "C", "D"]
    plan = []
    for i in range(120):
        origin, target = accounts[i % 4], accounts[(i * 7 + 1) % 4]
        outcome = ["APPROVE", "APPROVE", "REVIEW", "DECLINE"][i % 4 if i % 5 else 0]
        currency = "EUR" if i % 3 else "JPY"
        amount = f"{(i * 37) % 1000 + 1}.{i % 100:02d}" if currency == "EUR" else str(i * 13 + 1)
        plan.append(
            make_record(
                f"tx-{i}",
                account=origin,
                counterparty=target,
                amount=amount,
                currency=currency,
                outcome=outcome,
            )
        )
    plan.append(make_record("tx-cash-out", account="A", counterparty="", amount="0.01", outcome="APPROVE"))
    for start in range(0, len(plan), 25):
        await writer.submit(plan[start : start + 25])
    await writer.submit(plan[:10])  # retries move no money twice
    expected: dict[tuple[str, str], Decimal] = {}
    for record in plan:
        if record.outcome != "APPROVE":
            continue
        expected[(record.account_id, record.currency)] = (
            expected.get((record.account_id, record.currency), Decimal(0)) - record.amount
        )
        if record.counterparty_id:
            key = (record.counterparty_id, record.currency)
            expected[key] = expected.get(key, Decimal(0)) + record.amount
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT account_id, currency, amount FROM ledger.balances")
    finally:
        await connection.close()
    assert {(row["account_id"], row["currency"]): row["amount"] for row in rows} == expected
    assert total([row["amount"] for row in rows if row["currency"] == "EUR"]) == Decimal("-0.01")
    report = await verify_ledger(database_url)
    assert report.ok, report


async def test_verify_names_the_entry_a_superuser_tampered_with(
    writer: LedgerWriter, database_url: str
) -> None:
    acks = await writer.submit([make_record(f"tx-{i}") for i in range(10)])
    report = await verify_ledger(database_url)
    assert report.ok and report.entries == 10
    victim = acks[6].sequence
    connection = await asyncpg.connect(database_url)  # the cluster's superuser
    try:
        await connection.execute("SET session_replication_role = replica")  # skips the triggers
        await connection.execute("UPDATE ledger.decisions SET amount = 0.01 WHERE sequence = $1", victim)
    finally:
        await connection.close()
    report = await verify_ledger(database_url)
    assert not report.ok
    assert report.first_broken is not None and report.first_broken.sequence == victim
    assert report.first_broken.transaction_id == "tx-6"
    assert report.balance_mismatches  # the balances no longer match the entries either


async def test_verify_catches_a_changed_blob(writer: LedgerWriter, database_url: str) -> None:
    acks = await writer.submit([make_record(f"tx-{i}", outcome="DECLINE") for i in range(3)])
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SET session_replication_role = replica")
        await connection.execute(
            "UPDATE ledger.decisions SET decision_bytes = decision_bytes || '\\x00'::bytea "
            "WHERE sequence = $1",
            acks[1].sequence,
        )
    finally:
        await connection.close()
    report = await verify_ledger(database_url)
    assert report.first_broken is not None and report.first_broken.sequence == acks[1].sequence
    assert "stored hash differs" in report.first_broken.reason


async def test_verify_catches_a_deleted_entry(writer: LedgerWriter, database_url: str) -> None:
    acks = await writer.submit([make_record(f"tx-{i}", outcome="DECLINE") for i in range(5)])
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SET session_replication_role = replica")
        await connection.execute("DELETE FROM ledger.decisions WHERE sequence = $1", acks[2].sequence)
    finally:
        await connection.close()
    report = await verify_ledger(database_url)
    assert report.first_broken is not None and report.first_broken.sequence == acks[3].sequence
    assert report.keys_without_entry == [("tx-2", acks[2].sequence)]


async def test_async_ack_returns_before_the_commit_and_close_flushes(
    database_url: str, tmp_path: Path
) -> None:
    ledger = LedgerWriter(ledger_settings(database_url, tmp_path, ledger_ack="async"), name="async")
    await ledger.start()
    acks = await ledger.submit([make_record(f"tx-{i}") for i in range(50)])
    assert {ack.status for ack in acks} == {AckStatus.QUEUED}
    await ledger.close()
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM ledger.decisions") == 50
    finally:
        await connection.close()


async def test_two_writers_cannot_share_a_spool(database_url: str, tmp_path: Path) -> None:
    first = LedgerWriter(ledger_settings(database_url, tmp_path), name="same")
    await first.start()
    try:
        with pytest.raises(RuntimeError, match="in use by another writer"):
            await LedgerWriter(ledger_settings(database_url, tmp_path), name="same").start()
    finally:
        await first.close()


def _sentinel(argv: list[str]) -> int:
    """``sentinel ledger ...`` with only the ledger's commands registered (fast to import)."""
    parser = argparse.ArgumentParser(prog="sentinel")
    parser.add_argument("--config")
    commands.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


async def test_cli_verify_names_the_first_broken_entry(
    writer: LedgerWriter, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    acks = await writer.submit([make_record(f"tx-{i}", outcome="REVIEW") for i in range(4)])
    assert await asyncio.to_thread(_sentinel, ["ledger", "verify", "--url", database_url]) == 0
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SET session_replication_role = replica")
        await connection.execute(
            "UPDATE ledger.decisions SET outcome = 'APPROVE' WHERE sequence = $1", acks[1].sequence
        )
    finally:
        await connection.close()
    capsys.readouterr()
    assert await asyncio.to_thread(_sentinel, ["ledger", "verify", "--url", database_url]) == 1
    assert f"FIRST BROKEN ENTRY: sequence {acks[1].sequence}" in capsys.readouterr().err
