"""Account state in a real Redis: atomic read-modify-write across concurrent writers, claims, cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sentinel.localservices import LocalRedis, free_port
from sentinel.server.state import AccountStateStore, AccountWrite


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


def store_for(client: Redis | RedisCluster) -> AccountStateStore:
    return AccountStateStore(client, state_ttl_s=3600, claim_ttl_s=600)


async def increment(store: AccountStateStore, account: str, times: int) -> int:
    """Read-modify-write a counter state ``times`` times, retrying lost races; returns the retries."""
    retries = 0
    for _ in range(times):
        while True:
            snapshots, _ = await store.read([account], [])
            snapshot = snapshots[account]
            value = int(snapshot.state or b"0") + 1
            if not await store.commit([AccountWrite(account, snapshot.version, str(value).encode())]):
                break
            retries += 1
    return retries


async def test_no_lost_update_with_concurrent_writers(redis_url: str) -> None:
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    try:
        stores = [store_for(c) for c in clients]
        retries = await asyncio.gather(*(increment(s, "acct-1", 50) for s in stores))
        snapshots, _ = await stores[0].read(["acct-1"], [])
        assert snapshots["acct-1"].state == b"200"
        assert int.from_bytes(snapshots["acct-1"].version, "big") == 200
        assert sum(retries) > 0  # the writers really raced
    finally:
        for c in clients:
            await c.aclose()


async def test_claims_are_exclusive_and_block_the_state_write(client: Redis) -> None:
    store = store_for(client)
    snapshots, existing = await store.read(["a"], [("a", "k1")])
    assert snapshots["a"].state is None and existing == {}
    first = AccountWrite("a", snapshots["a"].version, b"s1", [("k1", b"claim-1")])
    assert await store.commit([first]) == []
    # A second writer that read before the first committed loses on the version ...
    assert await store.commit([AccountWrite("a", b"", b"s2", [("k2", b"x")])]) == ["a"]
    # ... and one with a fresh version still loses when it claims an existing key.
    snapshots, existing = await store.read(["a"], [("a", "k1")])
    assert existing == {("a", "k1"): b"claim-1"}
    assert await store.commit([AccountWrite("a", snapshots["a"].version, b"s3", [("k1", b"y")])]) == ["a"]
    snapshots, _ = await store.read(["a"], [])
    assert snapshots["a"].state == b"s1"
    assert 0 < await client.ttl("sentinel:{a}:s") <= 3600
    assert 0 < await client.ttl("sentinel:{a}:i:k1") <= 600


async def test_one_batch_many_accounts_partial_conflict(client: Redis) -> None:
    store = store_for(client)
    await store.commit([AccountWrite("b", b"", b"old")])
    writes = [AccountWrite(f"n{i}", b"", b"new") for i in range(100)] + [AccountWrite("b", b"", b"stale")]
    assert await store.commit(writes) == ["b"]
    snapshots, _ = await store.read([f"n{i}" for i in range(100)] + ["b"], [])
    assert all(snapshots[f"n{i}"].state == b"new" for i in range(100))
    assert snapshots["b"].state == b"old"


@pytest.fixture
async def cluster(services_dir: Path) -> AsyncIterator[RedisCluster]:
    """A real one-node Redis Cluster: it enforces hash slots (CROSSSLOT) like a big one."""
    bus_port = str(free_port())  # the default, port + 10000, may lie beyond 65535
    cluster_args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    cluster_args += ["--cluster-port", bus_port]
    server = LocalRedis(services_dir / "redis-cluster", extra_args=cluster_args).start()
    async with Redis(host="127.0.0.1", port=server.port) as admin:
        await admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    client = RedisCluster(host="127.0.0.1", port=server.port)
    for _ in range(100):
        try:
            await client.initialize()
            if (await client.cluster_info())["cluster_state"] == "ok":
                break
        except Exception:
            pass
        await asyncio.sleep(0.1)
    yield client
    await client.aclose()
    server.stop()


async def test_works_against_redis_cluster(cluster: RedisCluster) -> None:
    store = store_for(cluster)
    accounts = [f"c{i}" for i in range(50)]
    snapshots, _ = await store.read(accounts, [(a, "k") for a in accounts])
    writes = [AccountWrite(a, snapshots[a].version, b"v1", [("k", b"c")]) for a in accounts]
    assert await store.commit(writes) == []
    snapshots, existing = await store.read(accounts, [(a, "k") for a in accounts])
    assert {s.state for s in snapshots.values()} == {b"v1"}
    assert len(existing) == 50
