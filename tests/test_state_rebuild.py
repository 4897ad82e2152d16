"""``sentinel state rebuild`` against a real server, Redis and ledger: after Redis loses everything, the
state recomputed from the ledger is the state the service had; only the accounts asked for are written;
an account with a transaction in flight is left alone and named, a journal row already in the ledger is
not counted twice."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from server_helpers import account_state, stubs

from sentinel.hotpath import AccountState, TransactionColumnsBuilder
from sentinel.hotpath.rows import encode_rows
from sentinel.server.state_store import AccountStateStore, AccountValue, AdmitRow, state_key
from sentinel.server.validate import validate_transaction
from sentinel.server.wire_columns import append_transaction
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc, transaction_pb2

pytestmark = pytest.mark.slow

COUNTRIES = ("DE", "FR", "NL", "PL", "US")
TYPES = transaction_pb2.TransactionType.keys()[1:]  # all but UNSPECIFIED
CHANNELS = transaction_pb2.Channel.keys()
RING_FIELDS = ("counterparties", "devices")  # equal as sets: the slot a value took depends on order
FLOAT_FIELDS = (
    "log_amount_mean",
    "log_amount_m2",
    "last_time",
    "last_geo_time",
    "last_latitude",
    "last_longitude",
    "velocity_count",
    "velocity_amount",
)


def rebuild(redis_url: str, database_url: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Run the command as an operator does; its exit status and JSON summary."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel.cli",
            "state",
            "rebuild",
            "--redis-url",
            redis_url,
            "--database-url",
            database_url,
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def make_transaction(
    rng: random.Random, number: int, account: str, event_ns: int
) -> transaction_pb2.Transaction:
    """A transaction with every input the state keeps: amount, geo, country, counterparty, device, balances.

    At most 6 counterparties and 4 devices per account, so the 8-slot rings never evict (what they hold
    then does not depend on the order), and always a country (the last country is then the latest's)."""
    geo = transaction_pb2.GeoLocation(country=rng.choice(COUNTRIES))
    if rng.random() < 0.7:
        geo.latitude, geo.longitude = rng.uniform(-60, 70), rng.uniform(-170, 170)
    message = transaction_pb2.Transaction(
        transaction_id=f"rb-{number}",
        account_id=account,
        counterparty_id=rng.choice(["", *(f"{account}-m{k}" for k in range(6))]),
        type=rng.choice(TYPES),
        amount=transaction_pb2.Money(amount=f"{rng.uniform(1, 5000):.2f}", currency="EUR"),
        geo=geo,
        channel=rng.choice(CHANNELS),
        device_id=rng.choice(["", *(f"{account}-d{k}" for k in range(4))]),
    )
    if rng.random() < 0.5:
        before = rng.uniform(0, 10_000)
        message.balances.origin_before = f"{before:.2f}"
        message.balances.origin_after = f"{before - 50:.2f}"
    message.event_time.FromNanoseconds(event_ns)
    return message


def load_plan(seed: int) -> tuple[list[transaction_pb2.Transaction], list[transaction_pb2.Transaction]]:
    """~20 accounts, three of them hot: each account's first transaction, then the rest interleaved, with
    event times increasing in that order (7 s apart, fractions of a second included)."""
    rng = random.Random(seed)
    counts = {"H0": 60, "H1": 45, "H2": 30} | {f"A{i:02}": rng.randint(4, 12) for i in range(3, 20)}
    tokens = [account for account, count in counts.items() for _ in range(count - 1)]
    rng.shuffle(tokens)
    start_ns = (int(time.time()) - 7200) * 1_000_000_000
    plan = [
        make_transaction(rng, number, account, start_ns + number * 7_000_000_000 + rng.randrange(10**9))
        for number, account in enumerate([*counts, *tokens])
    ]
    return plan[: len(counts)], plan[len(counts) :]


def score_concurrently(
    clients: list[scoring_pb2_grpc.ScoringServiceStub], transactions: list[transaction_pb2.Transaction]
) -> list[decision_pb2.Decision]:
    """The transactions in chunks of 1 to 8, chunk k sent by thread k % len(clients): through Score one
    by one (every third chunk) or as one ScoreBatch."""
    rng = random.Random(1)
    chunks: list[list[transaction_pb2.Transaction]] = []
    position = 0
    while position < len(transactions):
        size = rng.randint(1, 8)
        chunks.append(transactions[position : position + size])
        position += size

    def send(thread: int) -> list[decision_pb2.Decision]:
        stub = clients[thread]
        decisions: list[decision_pb2.Decision] = []
        for k in range(thread, len(chunks), len(clients)):
            if k % 3 == 0:
                for message in chunks[k]:
                    request = scoring_pb2.ScoreRequest(transaction=message)
                    decisions.append(stub.Score(request, timeout=30).decision)
            else:
                reply = stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=chunks[k]), timeout=30)
                decisions += [result.decision for result in reply.results]
        return decisions

    with ThreadPoolExecutor(len(clients)) as pool:
        return [decision for part in pool.map(send, range(len(clients))) for decision in part]


def settled_states(redis_url: str, accounts: list[str]) -> dict[str, AccountState]:
    """Every account's state once Redis stopped changing (the last settles run after the answers)."""
    previous = None
    deadline = time.monotonic() + 20
    with redis.Redis.from_url(redis_url) as client:
        while True:
            with client.pipeline() as pipe:
                for account in accounts:
                    pipe.get(state_key(account))
                snapshot = pipe.execute()
            if snapshot == previous or time.monotonic() > deadline:
                break
            previous = snapshot
            time.sleep(0.3)
    states = {account: account_state(redis_url, account) for account in accounts}
    assert None not in states.values()
    return {account: state for account, state in states.items() if state is not None}


def assert_same_state(account: str, rebuilt: AccountState | None, live: AccountState) -> None:
    assert rebuilt is not None, f"{account}: no state after the rebuild"
    for name in (f.name for f in dataclasses.fields(AccountState)):
        got, expected = getattr(rebuilt, name), getattr(live, name)
        if name in RING_FIELDS:
            assert set(got) == set(expected), (account, name)
        elif name in FLOAT_FIELDS:
            assert got == pytest.approx(expected, rel=1e-9), (account, name)
        else:
            assert got == expected, (account, name)


def record_of(message: transaction_pb2.Transaction) -> bytes:
    """The journal record the service appends for ``message``."""
    builder = TransactionColumnsBuilder(1)
    append_transaction(builder, 0, validate_transaction(message, time.time(), 86_400.0))
    return encode_rows(builder.build()).tobytes()


def admit_without_settling(redis_url: str, account: str, key: str, record: bytes) -> None:
    """What a batch does before its ledger write: claim the key and append the row to the journal."""

    async def admit() -> None:
        client = Redis.from_url(redis_url)
        try:
            store = AccountStateStore(client, state_ttl_s=3600, claim_ttl_s=600)
            fingerprint = hashlib.sha256(key.encode()).digest()
            admission = await store.admit([AdmitRow(account, key, fingerprint, record)])
            assert admission.claims == [None]
        finally:
            await client.aclose()

    asyncio.run(admit())


def raw_value(redis_url: str, account: str) -> bytes | None:
    with redis.Redis.from_url(redis_url) as client:
        return client.get(state_key(account))  # type: ignore[return-value]


def journal_of(redis_url: str, account: str) -> bytes:
    """The account's journal: the rows not folded into its base yet."""
    return AccountValue.parse(raw_value(redis_url, account)).journal


def test_rebuild_after_redis_lost_everything_restores_the_live_state(
    server: ServerProcess, redis_url: str, database_url: str
) -> None:
    firsts, rest = load_plan(seed=11)
    accounts = [message.account_id for message in firsts]
    clients = stubs(server.address, 6)
    # The first transaction of every account before the others: its country is the home country.
    reply = clients[0].ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=firsts), timeout=30)
    decisions = [result.decision for result in reply.results] + score_concurrently(clients, rest)
    assert len(decisions) == len(firsts) + len(rest)
    assert [d.transaction_id for d in decisions if d.degraded or d.ledger_sequence <= 0] == []
    live = settled_states(redis_url, accounts)
    planned = {account: 0 for account in accounts}
    for message in firsts + rest:
        planned[message.account_id] += 1
    assert {account: state.count for account, state in live.items()} == planned

    # On an intact Redis a rebuild changes nothing, and leaves no journal row (rows of a batch whose fold
    # lost to an earlier batch's stay in the journal until the account's next transaction: they are in the
    # ledger, so they are dropped, not counted twice).
    status, summary = rebuild(redis_url, database_url)
    assert (status, summary["accounts_rebuilt"], summary["not_rebuilt"]) == (0, len(accounts), {})
    for account in accounts:
        assert_same_state(account, account_state(redis_url, account), live[account])
        assert journal_of(redis_url, account) == b""

    with redis.Redis.from_url(redis_url) as client:
        client.flushall()  # Redis lost every acknowledged write
    status, summary = rebuild(redis_url, database_url, "--batch-size", "7")  # three batches

    assert status == 0, summary
    assert summary["accounts_rebuilt"] == len(accounts)
    assert summary["transactions_applied"] == len(decisions)
    assert summary["skipped"] == {} and summary["not_rebuilt"] == {}
    for account in accounts:
        assert_same_state(account, account_state(redis_url, account), live[account])

    # The service goes on from the rebuilt state.
    after = make_transaction(random.Random(5), 10_000, "H0", int(time.time() - 60) * 1_000_000_000)
    decision = clients[0].Score(scoring_pb2.ScoreRequest(transaction=after), timeout=30).decision
    assert not decision.degraded
    settled = settled_states(redis_url, ["H0"])["H0"]
    assert settled.count == live["H0"].count + 1


def score_one_by_one(
    server: ServerProcess, rng: random.Random, accounts: list[str]
) -> tuple[list[transaction_pb2.Transaction], int]:
    """Score one transaction per entry of ``accounts``, in that order, a second apart from ten minutes
    ago; the transactions and the first one's event time (ns)."""
    start_ns = (int(time.time()) - 600) * 1_000_000_000
    messages = [
        make_transaction(rng, number, account, start_ns + number * 10**9)
        for number, account in enumerate(accounts)
    ]
    (stub,) = stubs(server.address, 1)
    for message in messages:
        stub.Score(scoring_pb2.ScoreRequest(transaction=message), timeout=30)
    return messages, start_ns


def test_only_the_accounts_asked_for_are_rebuilt(
    server: ServerProcess, redis_url: str, database_url: str
) -> None:
    score_one_by_one(server, random.Random(3), ["X", "Y", "X", "Y", "X"])
    live = settled_states(redis_url, ["X", "Y"])
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()

    status, summary = rebuild(redis_url, database_url, "--account", "X", "--account", "NEVER-SEEN")

    assert status == 0, summary
    assert (summary["accounts_rebuilt"], summary["transactions_applied"]) == (1, 3)
    assert summary["skipped"] == {"NEVER-SEEN": "no transactions in the ledger"}
    assert_same_state("X", account_state(redis_url, "X"), live["X"])
    assert raw_value(redis_url, "Y") is None
    assert raw_value(redis_url, "NEVER-SEEN") is None


def test_an_account_with_a_transaction_in_flight_is_left_alone_and_named(
    server: ServerProcess, redis_url: str, database_url: str
) -> None:
    rng = random.Random(4)
    messages, start_ns = score_one_by_one(server, rng, ["A", "B", "A", "B", "A", "B"])
    settled_states(redis_url, ["A", "B"])
    # A: a transaction admitted whose ledger write never ends (not in the ledger, never folded).
    in_flight = make_transaction(rng, 99, "A", start_ns + 99 * 10**9)
    admit_without_settling(redis_url, "A", "in-flight-key", record_of(in_flight))
    # B: a row already in the ledger left in the journal (its batch's fold lost to an earlier batch's).
    admit_without_settling(redis_url, "B", "lingering-key", record_of(messages[5]))
    assert account_state(redis_url, "B").count == 4  # type: ignore[union-attr]  # the service counts it
    a_before = raw_value(redis_url, "A")

    started = time.monotonic()
    status, summary = rebuild(redis_url, database_url, "--wait", "0.3")

    assert status == 1
    assert list(summary["not_rebuilt"]) == ["A"]
    assert "1 journal row(s) not in the ledger" in summary["not_rebuilt"]["A"]
    assert (summary["accounts_rebuilt"], summary["transactions_applied"]) == (1, 3)
    assert raw_value(redis_url, "A") == a_before  # not overwritten: base and journal as they were
    assert raw_value(redis_url, "B") is not None and journal_of(redis_url, "B") == b""
    assert account_state(redis_url, "B").count == 3  # type: ignore[union-attr]  # the ledger's three
    assert time.monotonic() - started < 10
