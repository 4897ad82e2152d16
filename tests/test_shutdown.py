"""SIGTERM ends a worker when its in-flight calls end, not at the grace limit (issue 14, finding 6).

A connected health Watch never ends on its own; it must not hold the shutdown for the whole grace.
Dead letters still being appended when the signal arrives are written before the worker exits.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from server_helpers import stubs, transaction

from sentinel.server.deadletter import STREAM_KEY
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import scoring_pb2

pytestmark = pytest.mark.slow

GRACE_S = 30.0
REDIS_PAUSE_MS = 2000  # holds a Score call in flight across the SIGTERM
REJECTS = 20


def test_shutdown_ends_with_the_calls_not_the_grace(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=redis_url,
        database_url=database_url,
        shutdown_grace_s=GRACE_S,
        redis_budget_ms=5000,
    ) as server:
        assert server.process is not None
        channel = grpc.insecure_channel(server.address)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        (stub,) = stubs(server.address, 1)
        with redis.Redis.from_url(redis_url) as client:
            client.execute_command("CLIENT", "PAUSE", REDIS_PAUSE_MS, "ALL")
        request = scoring_pb2.ScoreRequest(transaction=transaction("drain-1"))
        in_flight = stub.Score.future(request, timeout=30)
        time.sleep(0.5)
        assert not in_flight.done()
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        assert in_flight.result().decision.transaction_id == "drain-1"
        assert server.process.wait(timeout=GRACE_S / 3) == 0
        assert time.monotonic() - signalled < GRACE_S / 3
        statuses = [answer.status for answer in watch]  # the watch has ended, with a last word
        assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
        channel.close()


def test_dead_letters_in_flight_at_shutdown_are_written(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=redis_url,
        database_url=database_url,
        shutdown_grace_s=GRACE_S,
        redis_budget_ms=5000,  # Redis socket timeouts of 50 s: the paused appends wait, they do not fail
    ) as server:
        assert server.process is not None
        (stub,) = stubs(server.address, 1)
        with redis.Redis.from_url(redis_url) as client:
            client.execute_command("CLIENT", "PAUSE", REDIS_PAUSE_MS, "WRITE")  # the appends wait in Redis
        for i in range(REJECTS):
            bad = transaction(f"late-reject-{i}", amount="12.345")  # EUR has two decimals
            with pytest.raises(grpc.RpcError) as rejected:
                stub.Score(scoring_pb2.ScoreRequest(transaction=bad), timeout=10)
            assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # answered at once
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=GRACE_S / 3) == 0

    with redis.Redis.from_url(redis_url) as client:
        entries = client.xrange(STREAM_KEY)
    assert sorted(fields[b"transaction_id"].decode() for _, fields in entries) == sorted(
        f"late-reject-{i}" for i in range(REJECTS)
    )
