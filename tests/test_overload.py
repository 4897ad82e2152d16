"""Overload: a worker bounds what it holds in flight and sheds the rest at once (RESOURCE_EXHAUSTED with
retry information), never leaks its count, and every call it accepted is answered and recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from redis.asyncio import Redis
from server_helpers import ledger_ids, stubs, transaction

from sentinel.bench.server_metrics import scrape_sample
from sentinel.config import RateLimit, Settings
from sentinel.localservices import LocalRedis
from sentinel.server.admission import Admission
from sentinel.server.errors import Refusal
from sentinel.server.identity import ANONYMOUS, CALLER
from sentinel.server.overload import InFlight, Ticket
from sentinel.server.rate_limit import RateLimiter
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import scoring_pb2

WAIT_S = 60.0  # bound of the waits for a server-side condition (never a measured time)


def test_a_call_past_the_bound_is_shed_and_an_idle_worker_admits_any_call() -> None:
    in_flight = InFlight(max_transactions=10, max_bytes=1_000)
    big = in_flight.take("ScoreBatch", 50, 5_000)  # over both bounds, but the worker was idle
    assert isinstance(big, Ticket)
    shed = in_flight.take("Score", 1, 10)
    assert isinstance(shed, Refusal) and shed.retry_after_s is not None and shed.limit is None
    assert "server overloaded: this worker holds 50 transactions" in shed.message
    big.release()
    first, second = in_flight.take("Score", 6, 100), in_flight.take("Score", 4, 100)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)  # exactly at the bound
    assert isinstance(in_flight.take("Score", 1, 10), Refusal)
    first.release()
    assert isinstance(in_flight.take("Score", 1, 901), Refusal)  # fits the transactions, not the bytes
    second.release()
    second.release()  # a ticket gives back once
    assert (in_flight.transactions, in_flight.bytes) == (0, 0)


async def test_a_ticket_is_given_back_when_its_call_fails_or_is_cancelled() -> None:
    in_flight = InFlight(max_transactions=10, max_bytes=1_000)
    ticket = in_flight.take("Score", 3, 30)
    assert isinstance(ticket, Ticket)
    with pytest.raises(RuntimeError), ticket:
        raise RuntimeError("the pipeline failed")
    assert (in_flight.transactions, in_flight.bytes) == (0, 0)

    held = asyncio.Event()

    async def call() -> None:
        admitted = in_flight.take("Score", 3, 30)
        assert isinstance(admitted, Ticket)
        with admitted:
            held.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(call())
    await held.wait()
    assert in_flight.transactions == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (in_flight.transactions, in_flight.bytes) == (0, 0)


async def test_stream_chunks_wait_for_room_in_order_instead_of_being_shed() -> None:
    in_flight = InFlight(max_transactions=10, max_bytes=1_000)
    held = in_flight.take("ScoreBatch", 8, 80)
    assert isinstance(held, Ticket)
    first = asyncio.create_task(in_flight.take_when_fits(5, 50))
    second = asyncio.create_task(in_flight.take_when_fits(1, 10))  # would fit, but waits its turn
    cancelled = asyncio.create_task(in_flight.take_when_fits(1, 10))
    await asyncio.sleep(0)
    assert not (first.done() or second.done()) and in_flight.transactions == 8
    cancelled.cancel()
    held.release()  # room for both, handed over in order
    assert (await first, await second) and in_flight.transactions == 6
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    (await first).release()
    (await second).release()
    assert (in_flight.transactions, in_flight.bytes) == (0, 0)


async def test_a_call_cancelled_while_its_rate_limit_is_asked_gives_its_share_back() -> None:
    """Redis that accepts the connection and never answers: admission waits in the rate limiter."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        redis = Redis(port=silent.getsockname()[1])
        limiter = RateLimiter(
            {"default": RateLimit(rate_per_s=10, burst=10)}, redis, budget_s=3600, retry_after_s=1
        )
        in_flight = InFlight(max_transactions=10, max_bytes=1_000)
        admission = Admission(in_flight, limiter)
        CALLER.set(ANONYMOUS)
        task = asyncio.create_task(admission.enter("Score", 2, 20))
        await asyncio.sleep(0)  # the task takes its share, then waits for Redis
        assert in_flight.transactions == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (in_flight.transactions, in_flight.bytes) == (0, 0)
        await redis.aclose()


# ----------------------------------------------------------------------------------- a live worker
@pytest.fixture
def private_redis(services_dir: Path) -> Iterator[LocalRedis]:
    """A Redis of the test's own, which it pauses."""
    redis = LocalRedis(services_dir / f"overload-redis-{uuid.uuid4().hex[:8]}").start()
    try:
        yield redis
    finally:
        assert redis.process is not None
        os.kill(redis.process.pid, signal.SIGCONT)
        redis.stop()


def wait_for_metric(metrics_url: str, name: str, predicate: Callable[[float], bool]) -> float:
    """The metric's value once ``predicate`` holds for it (or after WAIT_S, for the assertion to show)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = scrape_sample(metrics_url, name)
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_past_the_bound_calls_are_shed_at_once_while_the_accepted_one_is_answered_and_recorded(
    tmp_path: Path, private_redis: LocalRedis, database_url: str
) -> None:
    """One worker that holds one call at a time: a ScoreBatch is held in the state stage (its Redis is
    paused), every unary call meanwhile is shed and a stream waits; once Redis resumes, the held call and
    then the stream are answered and recorded, the shed calls never are, and the in-flight gauges are
    back at 0."""
    assert private_redis.process is not None
    redis_pid = private_redis.process.pid
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=private_redis.url,
        database_url=database_url,
        redis_budget_ms=5000,  # the held call waits for Redis this long at most
        ledger_commit_timeout_s=20,
        max_in_flight_transactions=1,
    ) as server:
        held_stub, stub = stubs(server.address, 2)
        threads = ThreadPoolExecutor(1)
        held_stub.Score(scoring_pb2.ScoreRequest(transaction=transaction("warm-up")), timeout=20)
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            held_ids = [f"held-{i}" for i in range(3)]
            request = scoring_pb2.ScoreBatchRequest(transactions=[transaction(i) for i in held_ids])
            held = held_stub.ScoreBatch.future(request, timeout=60)
            assert wait_for_metric(server.metrics_url, "sentinel_in_flight_transactions", bool) == 3

            shed_ids = [f"shed-{i}" for i in range(4)]
            for transaction_id in shed_ids:
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Score(scoring_pb2.ScoreRequest(transaction=transaction(transaction_id)), timeout=20)
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "max_in_flight_transactions 1" in refused.value.details()
                status = rpc_status.from_call(refused.value)
                assert status is not None
                retry = error_details_pb2.RetryInfo()
                assert status.details[0].Unpack(retry) and retry.retry_delay.ToNanoseconds() > 0
                trailers = dict(refused.value.trailing_metadata())
                assert int(trailers["grpc-retry-pushback-ms"]) >= 1
            assert not held.done()  # every refusal came back while the accepted call was still held

            stream_ids = ["stream-0", "stream-1"]
            messages = [scoring_pb2.ScoreStreamRequest(transaction=transaction(i)) for i in stream_ids]
            streaming = threads.submit(lambda: list(stub.ScoreStream(iter(messages), timeout=60)))
            assert wait_for_metric(server.metrics_url, "sentinel_delayed_chunks_total", bool) >= 1
            assert not streaming.done() and not held.done()  # the stream waits behind the held call
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        assert [r.decision.transaction_id for r in held.result().results] == held_ids
        assert [a.decision.transaction_id for a in streaming.result()] == stream_ids
        threads.shutdown()

        assert wait_for_metric(server.metrics_url, "sentinel_in_flight_transactions", lambda v: v == 0) == 0
        assert scrape_sample(server.metrics_url, "sentinel_in_flight_bytes") == 0
        shed = "sentinel_shed_transactions_total"
        assert scrape_sample(server.metrics_url, shed, method="Score") == 4
        assert scrape_sample(server.metrics_url, shed, method="ScoreStream") == 0
        assert scrape_sample(server.metrics_url, "sentinel_calls_total", code="RESOURCE_EXHAUSTED") == 4
        stub.Score(scoring_pb2.ScoreRequest(transaction=transaction("after")), timeout=20)  # idle: admitted
        logged = [event for event in server.log_events() if event["event"] == "calls_shed"]
        assert logged and logged[0]["calls"] == 1  # the first shed is logged, the next ones summed later
    assert ledger_ids(database_url, held_ids + shed_ids + stream_ids + ["after"]) == {
        i: 1 for i in [*held_ids, *stream_ids, "after"]
    }


def test_the_default_bounds_keep_the_pipeline_busy_and_admit_the_largest_message() -> None:
    settings = Settings()
    assert settings.max_in_flight_transactions >= settings.batch_max_in_flight * settings.batch_max_size
    assert settings.max_in_flight_bytes >= settings.max_message_bytes
    with pytest.raises(ValueError, match="max_in_flight_transactions"):
        Settings(max_in_flight_transactions=0)
