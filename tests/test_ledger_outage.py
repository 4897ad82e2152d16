"""Failures: the writer's process killed mid-batch, Postgres restarted under load, the spool full.

Each test checks the ledger's promise: every acknowledged decision ends up in Postgres exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import ledger_settings, make_record

from sentinel.ledger import AckStatus, LedgerUnavailableError, LedgerWriter
from sentinel.ledger.verify import verify_ledger
from sentinel.localservices import LocalPostgres
from sentinel.system import free_port

TESTS_DIR = Path(__file__).parent

# Runs a writer under load and prints every idempotency key as soon as its ack came back.
WRITER_PROCESS = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from ledger_helpers import ledger_settings, make_record
from sentinel.ledger import LedgerWriter

async def main():
    writer = LedgerWriter(ledger_settings(sys.argv[1], Path(sys.argv[2])), name="killed")
    await writer.start()

    async def producer(number):
        for batch in range(10**9):
            records = [make_record(f"p{number}-b{batch}-r{i}") for i in range(4)]
            acks = await writer.submit(records)
            sys.stdout.write("".join("ACK " + ack.idempotency_key + "\\n" for ack in acks))
            sys.stdout.flush()

    await asyncio.gather(*(producer(n) for n in range(16)))

asyncio.run(main())
"""


async def _stored_keys(database_url: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        return [row[0] for row in await connection.fetch("SELECT idempotency_key FROM ledger.decisions")]
    finally:
        await connection.close()


async def _wait_until_replayed(writer: LedgerWriter, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        await writer.wait_until_replayed()


@pytest.mark.slow
async def test_kill_9_mid_batch_loses_no_acknowledged_decision(database_url: str, tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER_PROCESS,
        database_url,
        str(tmp_path),
        str(TESTS_DIR),
        stdout=asyncio.subprocess.PIPE,
    )
    acknowledged: list[str] = []
    try:
        assert process.stdout is not None
        while len(acknowledged) < 3_000:
            line = (await process.stdout.readline()).decode()
            assert line, f"writer process ended early with {await process.wait()}"
            if line.startswith("ACK "):  # other lines are the process's log
                acknowledged.append(line.removeprefix("ACK ").strip())
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
    # A new writer with the same name replays whatever the killed one had spooled.
    writer = LedgerWriter(ledger_settings(database_url, tmp_path), name="killed")
    await writer.start()
    await _wait_until_replayed(writer)
    await writer.close()
    stored = await _stored_keys(database_url)
    assert len(stored) == len(set(stored))
    assert set(acknowledged) <= set(stored)
    report = await verify_ledger(database_url)
    assert report.ok, report


@pytest.mark.slow
async def test_postgres_restart_during_writes_spools_and_replays(services_dir: Path, tmp_path: Path) -> None:
    postgres = LocalPostgres(services_dir / f"ledger-restart-{uuid.uuid4().hex[:8]}").start()
    try:
        admin = await asyncpg.connect(postgres.url)
        await admin.execute("CREATE DATABASE ledger_restart")
        await admin.close()
        database_url = postgres.dsn("ledger_restart")
        settings = ledger_settings(database_url, tmp_path, ledger_commit_timeout_s=1.0)
        writer = LedgerWriter(settings, name="restart")
        await writer.start()
        acknowledged: list[str] = []
        statuses: set[AckStatus] = set()
        refused = 0
        stop = asyncio.Event()

        async def producer(number: int) -> None:
            nonlocal refused
            batch = 0
            while not stop.is_set():
                records = [make_record(f"p{number}-b{batch}-r{i}", outcome="APPROVE") for i in range(3)]
                batch += 1
                try:
                    acks = await writer.submit(records)
                except LedgerUnavailableError:
                    refused += 1
                    await asyncio.sleep(0.01)
                    continue
                acknowledged.extend(ack.idempotency_key for ack in acks)
                statuses.update(ack.status for ack in acks)
                await asyncio.sleep(0.002)

        producers = [asyncio.create_task(producer(n)) for n in range(8)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres.stop, "immediate")  # a crash, in-flight commits included
        await asyncio.sleep(1.0)
        assert writer.spooling
        await asyncio.to_thread(postgres.start)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*producers)
        await _wait_until_replayed(writer)
        await writer.close()

        assert AckStatus.SPOOLED in statuses and AckStatus.COMMITTED in statuses
        assert refused == 0
        stored = await _stored_keys(database_url)
        assert len(stored) == len(set(stored))
        assert set(acknowledged) <= set(stored)
        assert not list((tmp_path / "ledger-spool" / "restart").glob("segment-*"))
        report = await verify_ledger(database_url)
        assert report.ok, report
    finally:
        postgres.stop()


async def test_slow_postgres_sends_groups_to_the_spool_until_it_recovers(
    database_url: str, tmp_path: Path
) -> None:
    writer = LedgerWriter(ledger_settings(database_url, tmp_path, ledger_commit_timeout_s=0.5), name="slow")
    await writer.start()
    blocker = await asyncpg.connect(database_url)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("LOCK TABLE ledger.idempotency_keys IN ACCESS EXCLUSIVE MODE")  # a stall
    try:
        [stalled] = await writer.submit([make_record("tx-stalled")])
        [queued_behind] = await writer.submit([make_record("tx-behind")])
    finally:
        await transaction.rollback()
        await blocker.close()
    assert stalled.status is AckStatus.SPOOLED and queued_behind.status is AckStatus.SPOOLED
    await _wait_until_replayed(writer)
    [after] = await writer.submit([make_record("tx-after")])
    await writer.close()
    assert after.status is AckStatus.COMMITTED
    assert sorted(await _stored_keys(database_url)) == ["tx-after", "tx-behind", "tx-stalled"]
    report = await verify_ledger(database_url)
    assert report.ok, report


async def test_full_spool_refuses_and_a_later_writer_replays_it(database_url: str, tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/none"  # nothing listens there
    settings = ledger_settings(nowhere, tmp_path, ledger_spool_max_bytes=20_000)
    writer = LedgerWriter(settings, name="outage")
    await writer.start()
    spooled: list[str] = []
    with pytest.raises(LedgerUnavailableError, match="ledger_spool_max_bytes"):
        for i in range(1_000):
            [ack] = await writer.submit([make_record(f"tx-{i}")])
            assert ack.status is AckStatus.SPOOLED and ack.sequence == 0
            spooled.append(ack.idempotency_key)
    assert 0 < len(spooled) < 1_000
    await writer.close()

    # Another name: the spool of a writer that no longer runs is adopted, not forgotten.
    recovered = LedgerWriter(ledger_settings(database_url, tmp_path), name="successor")
    await recovered.start()
    await _wait_until_replayed(recovered)
    [retry] = await recovered.submit([make_record("tx-0")])  # a client retry after the outage
    await recovered.close()
    assert retry.existed and not retry.conflict
    stored = await _stored_keys(database_url)
    assert sorted(stored) == sorted(spooled)


async def test_spool_ignores_a_torn_final_frame(tmp_path: Path) -> None:
    from sentinel.ledger.spool import Spool

    spool = Spool(tmp_path / "spool", max_bytes=10**6)
    spool.append([make_record("tx-1"), make_record("tx-2")])
    [segment] = spool.seal()
    with segment.open("ab") as file:  # a crash in the middle of the next append
        file.write(b"\x00\x00\x01\x00garbage")
    assert [record.transaction_id for record in spool.read(segment)] == ["tx-1", "tx-2"]
    with contextlib.suppress(FileNotFoundError):
        spool.remove(segment)
    assert spool.is_empty()


async def test_the_spool_bound_holds_for_all_workers_together(tmp_path: Path) -> None:
    """Each worker has its own spool directory; the bound is on their sum, not on each."""
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/none"  # nothing listens there
    settings = ledger_settings(nowhere, tmp_path, ledger_spool_max_bytes=20_000)
    first, second = LedgerWriter(settings, name="worker-0"), LedgerWriter(settings, name="worker-1")
    await first.start()
    await second.start()
    try:
        with pytest.raises(LedgerUnavailableError, match="ledger_spool_max_bytes"):
            for i in range(1_000):
                await first.submit([make_record(f"first-{i}")])
        with pytest.raises(LedgerUnavailableError, match="ledger_spool_max_bytes"):
            await second.submit([make_record("second-0")])
        spooled = sum(path.stat().st_size for path in (tmp_path / "ledger-spool").rglob("segment-*"))
        assert spooled <= 20_000
    finally:
        await first.close()
        await second.close()
