"""Helpers shared by the tests that drive a real server: transactions, channels, what Redis and the
ledger hold afterwards."""

from __future__ import annotations

import asyncio
import filecmp
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import grpc
import pytest
import redis
import redis.asyncio

from sentinel.hotpath import AccountState, decode_state
from sentinel.localservices import LocalPostgres
from sentinel.server.redis_cluster import cluster_client
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


class RedisTarget(NamedTuple):
    """A Redis to run a test against: a single server or a Redis Cluster (any node's URL)."""

    url: str
    cluster: bool

    def client(self) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
        """A new asyncio client of the kind the server would use (``redis_cluster``)."""
        if self.cluster:
            return cluster_client(self.url)
        return redis.asyncio.Redis.from_url(self.url)


def account_state(redis_url: str, account: str, cluster: bool = False) -> AccountState | None:
    """An account's current state as the server sees it: its base with its journal folded in."""
    client_class = redis.RedisCluster if cluster else redis.Redis
    with client_class.from_url(redis_url) as client:
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


ROOT = Path(__file__).resolve().parent.parent


def run_checked(command: list[str], cwd: Path, timeout_s: float, **environment: str) -> str:
    """Run a client's build or program; its stdout, or a failed assertion with both of its outputs."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def assert_same_files(fresh: Path, committed: Path, pattern: str, regenerate: str) -> None:
    """Freshly generated code (``fresh``) is exactly the committed code: the same ``pattern`` files with
    the same bytes. ``regenerate`` is the command that brings the committed code up to date."""
    fresh_files = sorted(str(p.relative_to(fresh)) for p in fresh.rglob(pattern))
    committed_files = sorted(str(p.relative_to(committed)) for p in committed.rglob(pattern))
    assert fresh_files, f"nothing generated into {fresh}"
    assert fresh_files == committed_files, f"generated files differ from {committed}: run `{regenerate}`"
    _, mismatched, errors = filecmp.cmpfiles(fresh, committed, fresh_files, shallow=False)
    assert mismatched == [] and errors == [], f"stale generated code {mismatched}: run `{regenerate}`"


def go_tools() -> Path:
    """The repository's .tools/ with the Go tools the tests use (ghz, the protoc plugins of clients/go),
    installed as `make test` does (nothing to do when they are there); skips the test without go."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed, so deploy/install-go-tools.sh cannot build the Go tools")
    run_checked(["bash", "deploy/install-go-tools.sh", "--tests"], cwd=ROOT, timeout_s=280)
    return ROOT / ".tools"


CANCELLED, INVALID_ARGUMENT, UNAVAILABLE = 1, 3, 14  # gRPC status codes as the clients' reports give them


def assert_retried_after_replaced_answers(report: dict[str, Any], prefix: str) -> None:
    """The server scored and recorded "<prefix>-lost" and "<prefix>-cancelled", their first answers
    were replaced by UNAVAILABLE (lost on the way) and CANCELLED (what a draining server or nginx
    answers), and the client retried each once with the same key: the replayed decision."""
    replaced = (("lostResponse", UNAVAILABLE, "lost"), ("cancelledResponse", CANCELLED, "cancelled"))
    for entry, code, name in replaced:
        answered = report[entry]
        assert answered["retries"] == [{"method": "Score", "attempt": 1, "code": code}], entry
        assert answered["decision"]["transactionId"] == f"{prefix}-{name}", entry
        assert answered["decision"].get("replayed") is True, entry


def assert_client_check_report(report: dict[str, Any], prefix: str) -> None:
    """What a generated client's check program (clients/go/scorecheck, clients/java ScoreCheck) must have
    seen against a live server; its transaction ids start with ``prefix``."""
    first, again = report["score"], report["scoreAgain"]
    assert first["transactionId"] == f"{prefix}-1"
    assert first["idempotencyKey"] == f"{prefix}-1"  # filled in by the client from the transaction id
    assert first["outcome"] in {"OUTCOME_APPROVE", "OUTCOME_REVIEW", "OUTCOME_DECLINE"}
    assert 0.0 <= first.get("riskScore", 0.0) <= 1.0
    assert first["modelVersion"]
    assert "replayed" not in first
    assert again.get("replayed") is True
    assert again["outcome"] == first["outcome"] and again.get("riskScore") == first.get("riskScore")

    assert_retried_after_replaced_answers(report, prefix)
    # A call the caller cancelled itself ends CANCELLED and is not retried.
    caller_cancelled = report["callerCancelled"]
    assert caller_cancelled["rejected"] is True and caller_cancelled["code"] == CANCELLED
    assert caller_cancelled["retries"] == []

    assert report["invalid"]["code"] == INVALID_ARGUMENT
    assert report["invalid"]["fieldViolations"] == ["transaction.amount.amount"]

    batch = report["batch"]
    assert [next(iter(item)) for item in batch] == ["decision", "error", "decision"]
    assert [batch[0]["decision"]["transactionId"], batch[2]["decision"]["transactionId"]] == [
        f"{prefix}-b0",
        f"{prefix}-b2",
    ]
    assert batch[1]["error"]["code"] == INVALID_ARGUMENT
    assert batch[1]["error"]["fieldViolations"][0]["field"] == "transactions[1].amount.currency"

    stream = {item["transactionId"]: item for item in report["stream"]}
    assert sorted(stream) == [f"{prefix}-s-bad", *(f"{prefix}-s{i}" for i in range(5))]
    assert all(stream[f"{prefix}-s{i}"]["decision"]["transactionId"] == f"{prefix}-s{i}" for i in range(5))
    assert stream[f"{prefix}-s-bad"]["error"]["code"] == INVALID_ARGUMENT
    assert stream[f"{prefix}-s-bad"]["error"]["fieldViolations"][0]["field"] == "transaction.type"

    unreachable = report["unreachable"]
    assert unreachable["rejected"] is True and unreachable["code"] == UNAVAILABLE
    assert [(r["method"], r["attempt"], r["code"]) for r in unreachable["retries"]] == [
        ("Score", 1, UNAVAILABLE),
        ("Score", 2, UNAVAILABLE),
    ]
