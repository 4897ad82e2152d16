"""The ledger's read replica (``ledger_read_url``): a real streaming-replication standby of the session's
PostgreSQL serves the LedgerService's reads; GetDecision of a decision it has not replayed is answered
by the primary; its lag is a metric. Replay is paused to put the replica behind on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from server_helpers import open_channels, stubs, transaction

from sentinel.bench.server_metrics import scrape_sample
from sentinel.localservices import LocalPostgres
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import ledger_pb2, ledger_pb2_grpc, scoring_pb2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replica(postgres_server: LocalPostgres, services_dir: Path) -> Iterator[LocalPostgres]:
    """A standby of the session's PostgreSQL (it replicates every database the tests create)."""
    standby = postgres_server.replica(services_dir / "postgres-replica")
    yield standby
    standby.stop()


def on_replica(replica: LocalPostgres, database: str, query: str) -> object:
    async def run() -> object:
        connection = await asyncpg.connect(replica.dsn(database))
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()

    return asyncio.run(run())


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_reads_come_from_the_replica_and_a_decision_it_lacks_from_the_primary(
    tmp_path: Path, redis_url: str, database_url: str, replica: LocalPostgres
) -> None:
    database = database_url.rsplit("/", 1)[1]
    settings = {
        "redis_url": redis_url,
        "database_url": database_url,
        "ledger_read_url": replica.dsn(database),
    }
    with ServerProcess(tmp_path / "server", ledger_commit_timeout_s=20, **settings) as server:
        (scoring,) = stubs(server.address, 1)
        channel = grpc.insecure_channel(server.address)
        open_channels.append(channel)
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)

        def history() -> list[str]:
            entries = ledger.ListHistory(ledger_pb2.ListHistoryRequest(account_id="RR"), timeout=10).entries
            return [entry.decision.transaction_id for entry in entries]

        def lag() -> float:
            return scrape_sample(server.metrics_url, "sentinel_ledger_replica_lag_seconds")

        first = scoring.Score(scoring_pb2.ScoreRequest(transaction=transaction("rr-1", "RR")), timeout=10)
        eventually(lambda: history() == ["rr-1"], "the replica never replayed the first decision")
        readers = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sentinel-ledger-replica-%'"
        )
        assert on_replica(replica, database, readers) == 2  # one pool per worker, on the standby

        on_replica(replica, database, "SELECT pg_wal_replay_pause()")
        try:
            second = scoring.Score(
                scoring_pb2.ScoreRequest(transaction=transaction("rr-2", "RR")), timeout=10
            )
            assert (
                second.decision.ledger_sequence > first.decision.ledger_sequence > 0
            )  # durable on the primary
            assert history() == ["rr-1"]  # the replica's view: replay is paused
            balance = ledger.GetBalance(ledger_pb2.GetBalanceRequest(account_id="RR"), timeout=10)
            assert balance.as_of_sequence == first.decision.ledger_sequence
            found = ledger.GetDecision(ledger_pb2.GetDecisionRequest(transaction_id="rr-2"), timeout=10)
            assert found.entry.decision.ledger_sequence == second.decision.ledger_sequence  # from the primary
            assert scrape_sample(server.metrics_url, "sentinel_ledger_replica_fallbacks_total") == 1
            eventually(lambda: lag() > 0, "the replica's lag never showed")
        finally:
            on_replica(replica, database, "SELECT pg_wal_replay_resume()")
        eventually(lambda: history() == ["rr-2", "rr-1"], "the replica never caught up")
        eventually(lambda: lag() == 0, "the lag never went back to 0")
        ledger.GetDecision(ledger_pb2.GetDecisionRequest(transaction_id="rr-1"), timeout=10)
        assert scrape_sample(server.metrics_url, "sentinel_ledger_replica_fallbacks_total") == 1
