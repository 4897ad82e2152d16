"""Per-caller rate limits: the token bucket in a real Redis, failing open to a local bucket when Redis is
gone, and the gRPC answer a limited caller gets (RESOURCE_EXHAUSTED, RetryInfo, retry pushback)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY
from redis.asyncio import Redis, RedisCluster
from server_helpers import RedisTarget, ledger_ids, stubs, transaction

from sentinel.bench.server_metrics import scrape_sample
from sentinel.config import RateLimit, Settings
from sentinel.localservices import LocalRedis
from sentinel.server.identity import ANONYMOUS, Caller
from sentinel.server.rate_limit import RateLimiter, bucket_key
from sentinel.server.token_commands import issue_token
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port
from sentinel.v1 import scoring_pb2, scoring_pb2_grpc

ALICE = Caller("alice", frozenset({"scorer"}), "jwt")
BOB = Caller("bob", frozenset({"scorer"}), "jwt")
SLOW = 0.001  # transactions per second: no refill worth a transaction within a test


def limiter(
    redis: Redis | RedisCluster | None, limits: dict[str, RateLimit], retry_after_s: float = 60.0
) -> RateLimiter:
    return RateLimiter(limits, redis, budget_s=2.0, retry_after_s=retry_after_s)


def local_checks_count() -> float:
    return REGISTRY.get_sample_value("sentinel_rate_limit_local_checks_total") or 0.0


def fail_open() -> float | None:
    return REGISTRY.get_sample_value("sentinel_rate_limit_fail_open")


@pytest.fixture
async def client(any_redis: RedisTarget) -> AsyncIterator[Redis | RedisCluster]:
    """A client of the session's Redis, then of its Redis Cluster (each test runs against both)."""
    connection = any_redis.client()
    yield connection
    await connection.aclose()


@pytest.fixture
def private_redis(services_dir: Path) -> Iterator[LocalRedis]:
    """A Redis of the test's own, which it may stop."""
    redis = LocalRedis(services_dir / f"rate-limit-redis-{uuid.uuid4().hex[:8]}").start()
    try:
        yield redis
    finally:
        redis.stop()


def test_a_client_entry_wins_over_roles_and_the_most_generous_role_over_the_default() -> None:
    limits = {
        "default": RateLimit(rate_per_s=1, burst=1),
        "role:scorer": RateLimit(rate_per_s=10, burst=10),
        "role:rules-admin": RateLimit(rate_per_s=50, burst=5),
        "client:alice": RateLimit(rate_per_s=2, burst=3),
    }
    rate_limiter = limiter(None, limits)
    assert rate_limiter.limit_for(ALICE) == ("client:alice", limits["client:alice"])
    assert rate_limiter.limit_for(BOB) == ("role:scorer", limits["role:scorer"])
    both = Caller("carol", frozenset({"scorer", "rules-admin"}), "jwt")
    assert rate_limiter.limit_for(both) == ("role:rules-admin", limits["role:rules-admin"])
    assert rate_limiter.limit_for(ANONYMOUS) == ("default", limits["default"])
    without_default = limiter(None, {"client:alice": limits["client:alice"]})
    assert without_default.limit_for(BOB) is None


def test_limit_keys_are_checked_at_start_up() -> None:
    with pytest.raises(ValueError, match="use `default`, `role:<role>` or `client:<subject>`"):
        Settings(rate_limits={"scorer": RateLimit(rate_per_s=1, burst=1)})
    with pytest.raises(ValueError, match="greater than 0"):
        Settings(rate_limits={"default": {"rate_per_s": 0, "burst": 1}})
    assert Settings().rate_limits == {}


async def test_a_caller_past_its_bucket_is_refused_while_another_caller_is_not(
    client: Redis | RedisCluster,
) -> None:
    rate_limiter = limiter(client, {"role:scorer": RateLimit(rate_per_s=SLOW, burst=10)})
    assert await rate_limiter.charge(ALICE, 6) is None  # a ScoreBatch of 6 costs 6
    refusal = await rate_limiter.charge(ALICE, 5)
    assert refusal is not None and refusal.limit == "role:scorer"
    assert "rate limit role:scorer (0.001 transactions/s, burst 10) exceeded" in refusal.message
    assert refusal.retry_after_s is not None and refusal.retry_after_s > 900  # 1 more at 0.001/s
    assert await rate_limiter.charge(ALICE, 4) is None  # a refused call took nothing
    assert await rate_limiter.charge(ALICE, 1) is not None
    assert await rate_limiter.charge(BOB, 10) is None  # a bucket per caller, not per role
    assert 0 < await client.pttl(bucket_key("alice")) <= 10_000 / SLOW + 1_000


async def test_the_bucket_refills_at_its_rate_on_redis_time(client: Redis | RedisCluster) -> None:
    rate_limiter = limiter(client, {"client:alice": RateLimit(rate_per_s=1_000, burst=5)})
    assert await rate_limiter.charge(ALICE, 5) is None
    refusal = await rate_limiter.charge(ALICE, 5)
    assert refusal is not None and refusal.retry_after_s is not None and refusal.retry_after_s <= 0.005
    await asyncio.sleep(0.01)  # 10 transactions' worth on Redis's clock
    assert await rate_limiter.charge(ALICE, 5) is None


async def test_a_call_larger_than_the_burst_is_refused_for_good_without_asking_redis() -> None:
    dead = Redis(port=free_port())  # nothing listens: a Redis call would fail open and count locally
    rate_limiter = limiter(dead, {"default": RateLimit(rate_per_s=100, burst=10)})
    local_checks = local_checks_count()
    refusal = await rate_limiter.charge(ANONYMOUS, 11)
    assert refusal is not None and refusal.retry_after_s is None
    assert "11 transactions in one call exceed the burst" in refusal.message
    assert local_checks_count() == local_checks
    await dead.aclose()


async def test_callers_without_a_limit_cost_no_redis_call() -> None:
    dead = Redis(port=free_port())
    local_checks = local_checks_count()
    unconfigured = limiter(dead, {})
    assert not unconfigured.enabled
    assert await unconfigured.charge(ALICE, 100) is None
    only_alice = limiter(dead, {"client:alice": RateLimit(rate_per_s=1, burst=1)})
    assert await only_alice.charge(BOB, 100) is None
    assert local_checks_count() == local_checks
    await dead.aclose()


async def test_without_redis_the_limit_holds_per_process_and_the_metric_says_so(
    private_redis: LocalRedis,
) -> None:
    client = Redis.from_url(private_redis.url)
    rate_limiter = limiter(client, {"default": RateLimit(rate_per_s=SLOW, burst=3)}, retry_after_s=0.05)
    try:
        assert await rate_limiter.charge(ANONYMOUS, 2) is None  # Redis: 1 left
        private_redis.stop()
        local_checks = local_checks_count()
        assert await rate_limiter.charge(ANONYMOUS, 3) is None  # a fresh local bucket of 3
        assert fail_open() == 1
        assert await rate_limiter.charge(ANONYMOUS, 1) is not None  # ... which holds the limit
        assert local_checks_count() == local_checks + 2
        private_redis.start()  # same port, empty: a full bucket
        for _ in range(1_000):  # Redis is asked again after retry_after_s
            await rate_limiter.charge(BOB, 1)
            if fail_open() == 0:
                break
            await asyncio.sleep(0.01)
        assert fail_open() == 0
        assert await rate_limiter.charge(ANONYMOUS, 3) is None
        assert await rate_limiter.charge(ANONYMOUS, 1) is not None
    finally:
        await client.aclose()


# ----------------------------------------------------------------------------------- over gRPC
ISSUER, AUDIENCE = "https://issuer.test", "sentinel-test"
LIMITS = {
    "client:alice": {"rate_per_s": SLOW, "burst": 10},
    "role:scorer": {"rate_per_s": 10_000, "burst": 10_000},
}


@pytest.fixture
def secret(tmp_path: Path) -> bytes:
    return uuid.uuid4().hex.encode() * 2  # 64 bytes


@pytest.fixture
def authenticated_server(
    tmp_path: Path, redis_url: str, database_url: str, secret: bytes
) -> Iterator[ServerProcess]:
    """Two workers with JWT authentication (HS256) and rate limits: alice has a client entry of 10
    transactions and (almost) no refill, every other scorer a generous role entry."""
    secret_file = tmp_path / "hs256.secret"
    secret_file.write_bytes(secret)
    secret_file.chmod(0o600)
    with ServerProcess(
        tmp_path / "server",
        redis_url=redis_url,
        database_url=database_url,
        redis_budget_ms=2000,
        ledger_commit_timeout_s=20,
        auth_mode="jwt",
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_algorithms='["HS256"]',
        auth_hs256_secret_file=secret_file,
        rate_limits=json.dumps(LIMITS),
    ) as process:
        yield process


def bearer(secret: bytes, subject: str) -> tuple[tuple[str, str]]:
    token = issue_token(
        subject=subject,
        roles=["scorer"],
        ttl_s=600,
        issuer=ISSUER,
        audience=AUDIENCE,
        key=secret,
        algorithm="HS256",
        kid=None,
    )
    return (("authorization", f"Bearer {token}"),)


def score(
    stub: scoring_pb2_grpc.ScoringServiceStub, transaction_id: str, metadata: tuple[tuple[str, str], ...] = ()
) -> scoring_pb2.ScoreResponse:
    request = scoring_pb2.ScoreRequest(transaction=transaction(transaction_id))
    return stub.Score(request, metadata=metadata, timeout=20)


def batch(prefix: str, count: int) -> scoring_pb2.ScoreBatchRequest:
    return scoring_pb2.ScoreBatchRequest(
        transactions=[transaction(f"{prefix}-{i}", f"A-{prefix}-{i}") for i in range(count)]
    )


def exhausted(call: grpc.RpcError) -> tuple[status_pb2.Status, dict[str, str | bytes]]:
    """The rich status and the trailing metadata of a RESOURCE_EXHAUSTED call."""
    assert call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, call
    status = rpc_status.from_call(call)
    assert status is not None
    return status, dict(call.trailing_metadata())


def detail(status: status_pb2.Status, kind: type[Message]) -> Message | None:
    for packed in status.details:
        if packed.Is(kind.DESCRIPTOR):
            found = kind()
            packed.Unpack(found)
            return found
    return None


def test_a_limited_client_gets_resource_exhausted_with_retry_info_while_another_is_unaffected(
    authenticated_server: ServerProcess, secret: bytes, database_url: str
) -> None:
    server = authenticated_server
    stub_a, stub_b = stubs(server.address, 2)
    alice, bob = bearer(secret, "alice"), bearer(secret, "bob")

    assert len(stub_a.ScoreBatch(batch("alice-1", 6), metadata=alice, timeout=20).results) == 6
    with pytest.raises(grpc.RpcError) as refused:  # a ScoreBatch of 5 costs 5: 4 are left
        stub_b.ScoreBatch(batch("alice-2", 5), metadata=alice, timeout=20)
    status, trailers = exhausted(refused.value)
    assert "rate limit client:alice (0.001 transactions/s, burst 10) exceeded" in status.message
    retry = detail(status, error_details_pb2.RetryInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo) and retry.retry_delay.ToMilliseconds() > 900_000
    quota = detail(status, error_details_pb2.QuotaFailure)
    assert isinstance(quota, error_details_pb2.QuotaFailure)
    assert quota.violations[0].subject == "client:alice"
    assert int(trailers["grpc-retry-pushback-ms"]) == retry.retry_delay.ToMilliseconds()

    # bob (role:scorer) is not touched by alice's limit, on either connection
    assert len(stub_a.ScoreBatch(batch("bob-1", 50), metadata=bob, timeout=20).results) == 50
    for i in range(3):
        score(stub_b, f"bob-s{i}", bob)

    for i in range(4):  # alice's last 4, one by one
        score(stub_a, f"alice-s{i}", alice)
    with pytest.raises(grpc.RpcError) as refused:
        score(stub_b, "alice-s4", alice)
    exhausted(refused.value)

    with pytest.raises(grpc.RpcError) as refused:  # more than the burst: retrying never helps
        stub_a.ScoreBatch(batch("alice-3", 11), metadata=alice, timeout=20)
    status, trailers = exhausted(refused.value)
    assert "11 transactions in one call exceed the burst" in status.message
    assert detail(status, error_details_pb2.RetryInfo) is None and trailers["grpc-retry-pushback-ms"] == "-1"

    # a stream's chunks are charged too: each message is refused in its place, the stream ends OK
    messages = [scoring_pb2.ScoreStreamRequest(transaction=transaction(f"alice-m{i}")) for i in range(3)]
    answers = list(stub_b.ScoreStream(iter(messages), metadata=alice, timeout=20))
    assert [a.error.code for a in answers] == [grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]] * 3
    assert "rate limit client:alice" in answers[0].error.message

    accepted = [f"alice-1-{i}" for i in range(6)] + [f"alice-s{i}" for i in range(4)]
    refused_ids = [f"alice-2-{i}" for i in range(5)] + ["alice-s4"] + [f"alice-m{i}" for i in range(3)]
    assert ledger_ids(database_url, accepted + refused_ids) == {i: 1 for i in accepted}
    refused_transactions = scrape_sample(
        server.metrics_url, "sentinel_rate_limited_transactions_total", limit="client:alice"
    )
    assert refused_transactions == 5 + 1 + 11 + 3
    assert scrape_sample(server.metrics_url, "sentinel_rate_limited_total", limit="role:scorer") == 0


def test_without_redis_a_server_limits_per_worker_and_says_so(
    tmp_path: Path, private_redis: LocalRedis, database_url: str
) -> None:
    """No authentication: every caller is anonymous, limited by the default entry (3 transactions)."""
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=private_redis.url,
        database_url=database_url,
        ledger_commit_timeout_s=20,
        redis_retry_after_s=60,
        rate_limits=json.dumps({"default": {"rate_per_s": SLOW, "burst": 3}}),
    ) as server:
        (stub,) = stubs(server.address, 1)
        score(stub, "anon-0")  # Redis: 2 left
        assert scrape_sample(server.metrics_url, "sentinel_rate_limit_fail_open") == 0
        private_redis.stop()
        for i in range(1, 4):  # the worker's own bucket of 3 (and degraded decisions: no state either)
            assert score(stub, f"anon-{i}").decision.degraded
        with pytest.raises(grpc.RpcError) as refused:
            score(stub, "anon-4")
        status, _ = exhausted(refused.value)
        assert "rate limit default" in status.message
        assert scrape_sample(server.metrics_url, "sentinel_rate_limit_fail_open") == 1
        assert scrape_sample(server.metrics_url, "sentinel_rate_limit_local_checks_total") == 4
        events = [e["event"] for e in server.log_events() if str(e["event"]).startswith("rate_limit")]
        assert events == ["rate_limit_fail_open"]
