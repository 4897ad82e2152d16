"""Acknowledged means recorded, with Postgres out of reach: answers arrive within the caller's deadline
(the spool takes over in time), reused keys are refused before anything is acknowledged, and every
acknowledged decision is in the ledger once Postgres is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest
import redis as redis_client
from server_helpers import ledger_ids, stubs, transaction

from sentinel.ledger.verify import verify_ledger
from sentinel.localservices import LocalPostgres, LocalRedis
from sentinel.server.state_store import claim_key
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import scoring_pb2

pytestmark = pytest.mark.slow


def _cluster_pids(postgres: LocalPostgres) -> list[int]:
    """The postmaster and every process it started (backends, writer, checkpointer ...)."""
    assert postgres.process is not None
    root = postgres.process.pid
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


@contextlib.contextmanager
def frozen(postgres: LocalPostgres) -> Iterator[None]:
    """Postgres stops answering without closing a connection (SIGSTOP): a hung host or a partition."""
    pids = _cluster_pids(postgres)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.fixture
def private_postgres(services_dir: Path) -> Iterator[tuple[LocalPostgres, str]]:
    postgres = LocalPostgres(services_dir / f"ledger-truth-{uuid.uuid4().hex[:8]}").start()

    async def create() -> None:
        admin = await asyncpg.connect(postgres.url)
        try:
            await admin.execute("CREATE DATABASE ledger_truth")
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield postgres, postgres.dsn("ledger_truth")
    finally:
        postgres.stop()


@pytest.fixture
def private_redis(services_dir: Path) -> Iterator[LocalRedis]:
    """A Redis of the test's own, which it may stop."""
    redis = LocalRedis(services_dir / f"ledger-truth-redis-{uuid.uuid4().hex[:8]}").start()
    try:
        yield redis
    finally:
        redis.stop()


def _wait_until_recorded(database_url: str, ids: list[str], timeout_s: float = 90.0) -> list[str]:
    """The ids still missing from the ledger after the spool had ``timeout_s`` to replay."""
    deadline = time.monotonic() + timeout_s
    while True:
        stored = ledger_ids(database_url, ids)
        missing = [i for i in ids if i not in stored]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)


def test_a_hung_postgres_under_load_answers_one_second_deadlines_and_loses_nothing(
    tmp_path: Path, redis_url: str, private_postgres: tuple[LocalPostgres, str]
) -> None:
    postgres, database_url = private_postgres
    acknowledged: list[str] = []
    failures: list[grpc.StatusCode] = []
    stop = threading.Event()
    with ServerProcess(tmp_path / "server", redis_url=redis_url, database_url=database_url) as server:
        clients = stubs(server.address, 4)

        def load(number: int) -> None:
            index = 0
            while not stop.is_set():
                transaction_id = f"hung-{number}-{index}"
                index += 1
                message = transaction(transaction_id, f"H{index % 40}")
                try:
                    clients[number % 4].Score(scoring_pb2.ScoreRequest(transaction=message), timeout=1.0)
                    acknowledged.append(transaction_id)
                except grpc.RpcError as exc:
                    failures.append(exc.code())
                time.sleep(0.005)

        threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)
            with frozen(postgres):
                time.sleep(15)
            time.sleep(2)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        missing = _wait_until_recorded(database_url, acknowledged)
    assert len(acknowledged) > 500
    assert failures.count(grpc.StatusCode.DEADLINE_EXCEEDED) == 0, failures[:10]
    assert failures == [], failures[:10]
    assert missing == []


def test_keys_reused_while_postgres_is_away_are_refused_not_acknowledged(
    tmp_path: Path, redis_url: str, private_postgres: tuple[LocalPostgres, str]
) -> None:
    postgres, database_url = private_postgres
    with ServerProcess(
        tmp_path / "server", redis_url=redis_url, database_url=database_url, ledger_commit_timeout_s=0.5
    ) as server:
        (stub,) = stubs(server.address, 1)
        originals = [transaction(f"used-{i}", "ORIGINAL", idempotency_key=f"used-key-{i}") for i in range(50)]
        reply = stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=originals), timeout=10)
        assert all(result.HasField("decision") for result in reply.results)
        postgres.stop()
        try:
            reused = [
                transaction(f"reused-{i}", f"OTHER-{i}", idempotency_key=f"used-key-{i}") for i in range(50)
            ]
            codes = []
            for message in reused:
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Score(scoring_pb2.ScoreRequest(transaction=message), timeout=5)
                codes.append(caught.value.code())
            assert set(codes) == {grpc.StatusCode.ALREADY_EXISTS}
        finally:
            postgres.start()
        assert _wait_until_recorded(database_url, [m.transaction_id for m in originals]) == []
    assert ledger_ids(database_url, [f"reused-{i}" for i in range(50)]) == {}


def test_with_redis_and_postgres_both_away_nothing_is_acknowledged(
    tmp_path: Path, private_redis: LocalRedis, private_postgres: tuple[LocalPostgres, str]
) -> None:
    """No Redis claim and no Postgres: nothing can tell a reused key from a new one, so the spool must not
    acknowledge (its replay would have to drop what it answered): every call is UNAVAILABLE, retryable."""
    postgres, database_url = private_postgres
    with ServerProcess(
        tmp_path / "server",
        redis_url=private_redis.url,
        database_url=database_url,
        ledger_commit_timeout_s=0.5,
    ) as server:
        (stub,) = stubs(server.address, 1)
        originals = [transaction(f"both-{i}", "ORIGINAL", idempotency_key=f"both-key-{i}") for i in range(50)]
        reply = stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=originals), timeout=10)
        assert all(result.HasField("decision") for result in reply.results)
        private_redis.stop()
        postgres.stop()
        try:
            reused = [
                transaction(f"both-reused-{i}", f"OTHER-{i}", idempotency_key=f"both-key-{i}")
                for i in range(50)
            ]
            fresh = [transaction(f"both-new-{i}", "NEW") for i in range(20)]
            codes = []
            for message in reused + fresh:
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Score(scoring_pb2.ScoreRequest(transaction=message), timeout=5)
                codes.append(caught.value.code())
            assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
        finally:
            postgres.start()
    assert ledger_ids(database_url, [f"both-reused-{i}" for i in range(50)]) == {}
    assert len(ledger_ids(database_url, [m.transaction_id for m in originals])) == 50


def test_a_key_reused_after_its_claim_expired_during_an_outage_is_kept_as_answered(
    tmp_path: Path, private_redis: LocalRedis, private_postgres: tuple[LocalPostgres, str]
) -> None:
    """The one case the spool cannot tell: a key whose Redis claim expired (idempotency_ttl_s) reused while
    Postgres is away. It is acknowledged; the replay finds the key taken and keeps the decision exactly
    as answered in ledger.replay_conflicts (never drops it), and verify names it."""
    postgres, database_url = private_postgres
    with ServerProcess(
        tmp_path / "server",
        redis_url=private_redis.url,
        database_url=database_url,
        ledger_commit_timeout_s=0.5,
    ) as server:
        (stub,) = stubs(server.address, 1)
        originals = [transaction(f"aged-{i}", "ORIGINAL", idempotency_key=f"aged-key-{i}") for i in range(30)]
        stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=originals), timeout=10)
        assert _wait_until_recorded(database_url, [m.transaction_id for m in originals]) == []
        client = redis_client.Redis.from_url(private_redis.url)
        time.sleep(0.5)  # the claims' settle runs after the answer
        assert client.delete(*[claim_key(f"aged-key-{i}") for i in range(30)]) == 30  # as if expired
        client.close()
        postgres.stop()
        answered: dict[str, bytes] = {}
        try:
            for i in range(30):
                message = transaction(f"aged-reused-{i}", f"OTHER-{i}", idempotency_key=f"aged-key-{i}")
                reply = stub.Score(scoring_pb2.ScoreRequest(transaction=message), timeout=5)
                answered[message.transaction_id] = reply.decision.SerializeToString(deterministic=True)
        finally:
            postgres.start()
        kept = _wait_for_replay_conflicts(database_url, len(answered))
    assert kept == answered
    assert ledger_ids(database_url, list(answered)) == {}
    report = asyncio.run(verify_ledger(database_url))
    assert report.ok
    assert sorted(transaction_id for _, transaction_id, _ in report.replay_conflicts) == sorted(answered)


def _wait_for_replay_conflicts(database_url: str, expected: int, timeout_s: float = 60.0) -> dict[str, bytes]:
    """transaction id -> decision bytes kept in ledger.replay_conflicts, once ``expected`` are there."""

    async def read() -> dict[str, bytes]:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT transaction_id, decision_bytes FROM ledger.replay_conflicts"
            )
        finally:
            await connection.close()
        return {row["transaction_id"]: bytes(row["decision_bytes"]) for row in rows}

    deadline = time.monotonic() + timeout_s
    while True:
        kept = asyncio.run(read())
        if len(kept) >= expected or time.monotonic() > deadline:
            return kept
        time.sleep(0.5)
