"""Account state in a real Redis: admission orders concurrent writers, claims keep refused rows out,
folds never lose an entry; against a single Redis and a Redis Cluster."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator

import numpy as np
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from server_helpers import RedisTarget
from structlog.testing import capture_logs

from sentinel.hotpath import TransactionColumnsBuilder, decode_state
from sentinel.hotpath.rows import ROW_SIZE, columns_of, encode_rows
from sentinel.localservices import LocalRedisCluster
from sentinel.server.redis_cluster import cluster_client
from sentinel.server.state_store import (
    AccountStateStore,
    AccountValue,
    AdmitRow,
    ClaimWrites,
    Fold,
    claim_key,
    decided_claim,
    features_and_states,
    fold,
    journal_rows,
    state_key,
)

_ids = itertools.count()


@pytest.fixture
async def client(any_redis: RedisTarget) -> AsyncIterator[Redis | RedisCluster]:
    """A client of the session's Redis, then of its Redis Cluster (each test runs against both)."""
    connection = any_redis.client()
    yield connection
    await connection.aclose()


def store_for(client: Redis | RedisCluster) -> AccountStateStore:
    return AccountStateStore(client, state_ttl_s=3600, claim_ttl_s=600)


def admit_row(account: str, key: str | None = None, amount: float = 10.0) -> AdmitRow:
    """A request's row as the pipeline builds it (a real hot-path record)."""
    builder = TransactionColumnsBuilder(1)
    builder.append(0, amount, 2, 1_700_000_000.0 + next(_ids), counterparty_id="M1", device_id="d1")
    key = key or f"key-{next(_ids)}"
    fingerprint = hashlib.sha256(f"{key}:{amount}".encode()).digest()
    return AdmitRow(account, key, fingerprint, encode_rows(builder.build()).tobytes())


async def admit_and_settle(store: AccountStateStore, rows: list[AdmitRow]) -> dict[str, int]:
    """One batch as the pipeline runs it; per account, the transaction count its rows saw before them."""
    admission = await store.admit(rows)
    values = admission.accounts
    accounts = list(values)
    slot_of = {account: slot for slot, account in enumerate(accounts)}
    prefix, prefix_slots = journal_rows([value.journal for value in values.values()], accounts)
    admitted = [i for i, claim in enumerate(admission.claims) if claim is None]
    own = np.frombuffer(b"".join(rows[i].record for i in admitted), dtype=prefix.dtype)
    own_slots = np.array([slot_of[rows[i].account_id] for i in admitted], dtype=np.int32)
    states = [values[account].base for account in accounts]
    before = {a: fold(values[a].base, values[a].journal) for a in accounts}
    seen = {a: decode_state(state).count if state else 0 for a, state in before.items()}
    columns = columns_of(np.concatenate((prefix, own)), np.concatenate((prefix_slots, own_slots)))
    _, new_states = features_and_states(columns, states)
    appended = Counter(rows[i].account_id for i in admitted)
    folds = [
        Fold(a, values[a].version, new_states[slot], len(values[a].journal) // ROW_SIZE + appended[a])
        for a, slot in slot_of.items()
        if new_states[slot] is not None
    ]
    await store.settle(ClaimWrites([], []), folds)
    return seen


async def journal_rows_of(client: Redis | RedisCluster, account: str) -> int:
    """How many rows wait in the account's journal (not folded into its base yet)."""
    return len(AccountValue.parse(await client.get(state_key(account))).journal) // ROW_SIZE


async def count_of(store: AccountStateStore, account: str) -> int:
    state = await store.state_of(account)
    return decode_state(state).count if state else 0


async def test_concurrent_writers_are_applied_one_after_another(any_redis: RedisTarget) -> None:
    clients = [any_redis.client() for _ in range(4)]
    try:
        stores = [store_for(c) for c in clients]

        async def writer(store: AccountStateStore) -> list[int]:
            return [(await admit_and_settle(store, [admit_row("hot")]))["hot"] for _ in range(50)]

        seen = await asyncio.gather(*(writer(s) for s in stores))
        # Every admission saw a different predecessor: a total order of 200, no update lost or doubled.
        assert sorted(itertools.chain.from_iterable(seen)) == list(range(200))
        assert await count_of(stores[0], "hot") == 200
        # Folds keep the journal short: whatever is left is folded state plus at most a few rows.
        assert await journal_rows_of(clients[0], "hot") <= 4
    finally:
        for c in clients:
            await c.aclose()


async def test_a_batch_applies_several_rows_of_one_account_in_order(client: Redis | RedisCluster) -> None:
    store = store_for(client)
    assert await admit_and_settle(store, [admit_row("a") for _ in range(5)]) == {"a": 0}
    assert await admit_and_settle(store, [admit_row("a"), admit_row("b")]) == {"a": 5, "b": 0}
    assert await count_of(store, "a") == 6 and await count_of(store, "b") == 1


async def test_an_unfolded_journal_is_still_part_of_the_state(client: Redis | RedisCluster) -> None:
    store = store_for(client)
    await admit_and_settle(store, [admit_row("a")])
    for _ in range(3):  # admitted, never settled (the worker died before the fold)
        await store.admit([admit_row("a")])
    assert await journal_rows_of(client, "a") == 3
    assert await admit_and_settle(store, [admit_row("a")]) == {"a": 4}
    assert await count_of(store, "a") == 5
    assert await journal_rows_of(client, "a") == 0


async def test_a_stale_fold_changes_nothing(client: Redis | RedisCluster) -> None:
    store = store_for(client)
    first = await store.admit([admit_row("a")])
    await admit_and_settle(store, [admit_row("a")])  # folds both rows, version 1
    before = await client.get(state_key("a"))
    # the first batch's fold comes late, against the version it read (none): ignored
    assert (
        await store.settle(ClaimWrites([], []), [Fold("a", first.accounts["a"].version, b"x" * 240, 1)]) == 0
    )
    assert await client.get(state_key("a")) == before
    assert await count_of(store, "a") == 2


async def test_claimed_keys_never_touch_any_state(client: Redis | RedisCluster) -> None:
    store = store_for(client)
    original = admit_row("known", "k1", amount=10.0)
    await admit_and_settle(store, [original])
    snapshot = {key: await client.dump(key) for key in (state_key("known"),)}
    retry = admit_row("known", "k1", amount=10.0)
    reused = admit_row("known", "k1", amount=99.0)
    reused_elsewhere = admit_row("unknown", "k1", amount=99.0)
    admission = await store.admit([retry, reused, reused_elsewhere])
    assert all(claim is not None and claim.decision is None for claim in admission.claims)  # pending
    assert admission.claims[0].fingerprint == original.fingerprint  # type: ignore[union-attr]
    for key, value in snapshot.items():
        assert await client.dump(key) == value  # byte for byte
    assert not await client.exists(state_key("unknown"))
    await store.settle(ClaimWrites.of_pairs([("k1", decided_claim(original.fingerprint, b"decision"))]), [])
    (claim,) = (await store.admit([retry])).claims
    assert claim is not None and claim.decision == b"decision"
    assert 0 < await client.ttl(claim_key("k1")) <= 600
    assert 0 < await client.ttl(state_key("known")) <= 3600


async def test_a_takeover_reads_the_account_without_appending(client: Redis | RedisCluster) -> None:
    store = store_for(client)
    row = admit_row("a", "k")
    await store.admit([row])
    admission = await store.admit([row._replace(claim=False)])
    assert admission.claims == [None] and len(admission.accounts["a"].journal) == ROW_SIZE
    assert await journal_rows_of(client, "a") == 1


async def test_records_round_trip_through_redis(client: Redis | RedisCluster) -> None:
    store = store_for(client)
    rows = [admit_row("a", amount=float(i + 1)) for i in range(3)]
    await store.admit(rows)
    admission = await store.admit([admit_row("a")])
    records, slots = journal_rows([admission.accounts["a"].journal], ["a"])
    assert records.tobytes() == b"".join(r.record for r in rows)
    assert len(rows[0].record) == ROW_SIZE and list(slots) == [0, 0, 0]


def test_unreadable_journals_are_skipped_and_the_others_kept() -> None:
    """Journals are decoded together; one that is not whole records, or holds a record of another
    format (another build's), is left out with its account named in the log, the rest keep their
    rows and slots in order."""
    good = [admit_row("a", amount=float(i + 1)).record for i in range(3)]
    foreign = bytearray(admit_row("c").record)
    foreign[0] = 99  # the format byte
    journals = [good[2], good[2] + bytes(foreign), good[2][:-1], good[0] + good[1]]
    with capture_logs() as logs:
        records, slots = journal_rows(journals, ["d", "c", "b", "a"])
    assert records.tobytes() == good[2] + good[0] + good[1]
    assert slots.tolist() == [0, 3, 3]
    assert sorted(entry["account_id"] for entry in logs if entry["event"] == "journal_unreadable") == [
        "b",
        "c",
    ]


async def test_many_accounts_and_reused_keys_across_slots(client: Redis | RedisCluster) -> None:
    store = store_for(client)
    rows = [admit_row(f"c{i % 50}") for i in range(100)]
    assert all(seen == 0 for seen in (await admit_and_settle(store, rows)).values())
    again = await admit_and_settle(store, [admit_row(f"c{i}") for i in range(50)])
    assert set(again.values()) == {2}
    reused = [admit_row("c0", rows[0].idempotency_key), admit_row("other", rows[1].idempotency_key, 5)]
    admission = await store.admit(reused)
    assert [c is not None for c in admission.claims] == [True, True]
    assert await count_of(store, "c0") == 3 and await count_of(store, "other") == 0


async def test_a_slot_in_migration_is_followed_with_ask_then_moved(
    redis_cluster_url: str, redis_cluster_server: LocalRedisCluster
) -> None:
    """While a slot migrates, a key its old master lacks is served by the new one after ASK (ASKING on
    the connection that sends the command); once moved, MOVED points every client there for good."""
    slot = key_slot(state_key("mig").encode())
    source = redis_cluster_server.master_of(slot)
    target = next(node for node in redis_cluster_server.topology() if node.master and node != source)
    async with Redis(port=source.port) as old, Redis(port=target.port) as new:
        await new.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        await old.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        async with cluster_client(redis_cluster_url) as client:
            store = store_for(client)
            # concurrent batches: the new master's pool holds several connections, as in a busy worker
            seen = await asyncio.gather(*(admit_and_settle(store, [admit_row("mig")]) for _ in range(20)))
            assert sorted(s["mig"] for s in seen) == list(range(20))
            for node in (new, old):
                await node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
            assert await new.exists(state_key("mig")) == 1  # served by the new master all along
            assert await admit_and_settle(store, [admit_row("mig")]) == {"mig": 20}  # after MOVED
            assert await count_of(store, "mig") == 21
    redis_cluster_server.wait_until_healthy()
