"""Account state under contention, the way fraud bursts and retrying clients arrive: hundreds of
concurrent transactions on one account through every method, duplicates racing their originals across
workers, refused requests mixed in. Every accepted transaction is counted exactly once, refused ones
never, and nothing is scored degraded while Redis is up: the server runs with the default Redis budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import redis
from redis.asyncio import Redis
from server_helpers import account_state, ledger_ids, stubs, transaction

from sentinel.hotpath import TransactionColumnsBuilder
from sentinel.hotpath.rows import encode_rows
from sentinel.ledger.records import transaction_fingerprint
from sentinel.server.state_store import AccountStateStore, AccountValue, AdmitRow, claim_key, state_key
from sentinel.server.validate import validate_transaction
from sentinel.server.wire_columns import append_transaction
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import decision_pb2, scoring_pb2

pytestmark = pytest.mark.slow

VELOCITY_RULE = "velocity-burst"  # velocity_count_1m > 5 (server/rules/default_rules.toml)


@pytest.fixture
def server(tmp_path: Path, redis_url: str, database_url: str):  # type: ignore[no-untyped-def]
    # The default Redis budget: contention and load on this 2-core machine must never read as an outage.
    # A generous ledger timeout keeps slow commits out of the spool, and a generous in-flight bound keeps
    # 32 callers of 100-transaction batches from being shed on a busy machine (neither is what these tests
    # are about: tests/test_ledger_outage.py and tests/test_overload.py are).
    with ServerProcess(
        tmp_path / "server",
        redis_url=redis_url,
        database_url=database_url,
        ledger_commit_timeout_s=20,
        max_in_flight_transactions=10_000,
    ) as process:
        yield process


Answer = scoring_pb2.ScoreBatchResult | scoring_pb2.ScoreStreamResponse


def _decisions_of(answers: list[Answer]) -> list[decision_pb2.Decision]:
    assert all(answer.HasField("decision") for answer in answers), [a.error for a in answers]
    return [answer.decision for answer in answers]


def test_a_burst_on_one_account_through_every_method_is_counted_exactly(
    server: ServerProcess, redis_url: str, database_url: str
) -> None:
    clients = stubs(server.address, 8)
    event_time = int(time.time()) - 10  # one instant: the velocity count of the k-th transaction is exactly k
    transactions = [transaction(f"burst-{i}", "BURST") for i in range(1_000)]
    for message in transactions:
        message.event_time.FromSeconds(event_time)
    unary, batched, streamed = transactions[:400], transactions[400:800], transactions[800:]

    def score(index: int) -> list[decision_pb2.Decision]:
        request = scoring_pb2.ScoreRequest(transaction=unary[index])
        return [clients[index % 8].Score(request, timeout=30).decision]

    def score_batch(index: int) -> list[decision_pb2.Decision]:
        request = scoring_pb2.ScoreBatchRequest(transactions=batched[index * 20 : (index + 1) * 20])
        return _decisions_of(list(clients[index % 8].ScoreBatch(request, timeout=30).results))

    def score_stream(index: int) -> list[decision_pb2.Decision]:
        chunk = streamed[index * 50 : (index + 1) * 50]
        requests = (scoring_pb2.ScoreStreamRequest(transaction=t) for t in chunk)
        return _decisions_of(list(clients[index % 8].ScoreStream(requests, timeout=30)))

    calls = [(score, i) for i in range(400)] + [(score_batch, i) for i in range(20)]
    calls += [(score_stream, i) for i in range(4)]
    random.Random(7).shuffle(calls)
    with ThreadPoolExecutor(100) as pool:
        answers = [d for ds in pool.map(lambda call: call[0](call[1]), calls) for d in ds]

    assert sorted(d.transaction_id for d in answers) == sorted(t.transaction_id for t in transactions)
    assert [d.transaction_id for d in answers if d.degraded] == []
    assert all(d.ledger_sequence > 0 and not d.replayed for d in answers)
    state = account_state(redis_url, "BURST")
    assert state is not None and state.count == 1_000
    # Each transaction saw every one admitted before it: all but the first five are over the limit.
    assert sum(VELOCITY_RULE in {hit.rule_id for hit in d.rules_fired} for d in answers) == 995
    assert sum(ledger_ids(database_url, [t.transaction_id for t in transactions]).values()) == 1_000


def test_many_accounts_each_transaction_sent_five_times_at_once(
    server: ServerProcess, redis_url: str, database_url: str
) -> None:
    clients = stubs(server.address, 8)
    transactions = [transaction(f"five-{i}", f"F{i % 500}") for i in range(5_000)]
    copies = [(t, copy) for t in transactions for copy in range(5)]
    random.Random(11).shuffle(copies)
    batched = [t for t, copy in copies if copy < 4]  # four copies through ScoreBatch, one through Score
    unary = [t for t, copy in copies if copy == 4]

    def score_batch(index: int) -> list[decision_pb2.Decision]:
        request = scoring_pb2.ScoreBatchRequest(transactions=batched[index * 100 : (index + 1) * 100])
        return _decisions_of(list(clients[index % 8].ScoreBatch(request, timeout=60).results))

    def score(index: int) -> list[decision_pb2.Decision]:
        request = scoring_pb2.ScoreRequest(transaction=unary[index])
        return [clients[index % 8].Score(request, timeout=60).decision]

    calls = [(score_batch, i) for i in range(len(batched) // 100)] + [(score, i) for i in range(len(unary))]
    random.Random(13).shuffle(calls)
    with ThreadPoolExecutor(32) as pool:
        answers = [d for ds in pool.map(lambda call: call[0](call[1]), calls) for d in ds]

    assert len(answers) == 25_000
    assert [d.transaction_id for d in answers if d.degraded] == []
    by_id: dict[str, set[int]] = {}
    for d in answers:
        by_id.setdefault(d.transaction_id, set()).add(d.ledger_sequence)
    # one decision per transaction, durable
    assert all(len(sequences) == 1 and 0 not in sequences for sequences in by_id.values())
    assert Counter(not d.replayed for d in answers)[True] == 5_000  # one original, four replays
    counts = [account_state(redis_url, f"F{a}") for a in range(500)]
    assert sum(state.count for state in counts if state is not None) == 5_000
    assert all(state is not None and state.count == 10 for state in counts)
    assert ledger_ids(database_url, [t.transaction_id for t in transactions]) == {
        t.transaction_id: 1 for t in transactions
    }


def _settled(client: redis.Redis, account: str, key: str) -> None:
    """Wait until the background settle folded the account's journal and decided the key's claim."""
    deadline = time.monotonic() + 10
    while (
        AccountValue.parse(client.get(state_key(account))).journal  # type: ignore[arg-type]
        or client.get(claim_key(key))[32:33] != b"D"  # type: ignore[index]
    ):
        assert time.monotonic() < deadline, "the batch never settled"
        time.sleep(0.01)


def test_refused_and_replayed_transactions_leave_state_byte_for_byte_unchanged(
    server: ServerProcess, redis_url: str
) -> None:
    (stub,) = stubs(server.address, 1)
    original = transaction("refuse-1", "KNOWN", idempotency_key="refuse-key")
    assert not stub.Score(scoring_pb2.ScoreRequest(transaction=original), timeout=10).decision.replayed
    with redis.Redis.from_url(redis_url) as client:
        _settled(client, "KNOWN", "refuse-key")
        keys = [state_key("KNOWN")]
        before = [client.dump(key) for key in keys]

        changed_amount = transaction("refuse-1", "KNOWN", amount="999.00", idempotency_key="refuse-key")
        other_account = transaction("refuse-2", "UNKNOWN", idempotency_key="refuse-key")
        invalid = transaction("refuse-3", "UNKNOWN", amount="-5")
        for message in (changed_amount, other_account):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Score(scoring_pb2.ScoreRequest(transaction=message), timeout=10)
            assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as caught:
            stub.Score(scoring_pb2.ScoreRequest(transaction=invalid), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        mixed = stub.ScoreBatch(
            scoring_pb2.ScoreBatchRequest(transactions=[original, changed_amount, other_account, invalid]),
            timeout=10,
        ).results
        assert [r.decision.replayed if r.HasField("decision") else r.error.code for r in mixed] == [
            True,
            6,  # ALREADY_EXISTS
            6,
            3,  # INVALID_ARGUMENT
        ]
        assert stub.Score(scoring_pb2.ScoreRequest(transaction=original), timeout=10).decision.replayed

        assert [client.dump(key) for key in keys] == before  # byte for byte, version included
        assert client.keys("sentinel:{UNKNOWN}*") == []


def test_a_request_whose_worker_died_after_admitting_it_is_taken_over_and_counted_once(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    """A worker admitted a transaction (claim pending, row in the journal) and died before deciding it.
    Its client's retries, racing each other on two workers, wait for the claim, then decide it once,
    without applying it to the account's state a second time."""
    message = transaction("orphan-1", "ORPHAN", idempotency_key="orphan-key")
    validated = validate_transaction(message, time.time(), 300)
    builder = TransactionColumnsBuilder(1)
    append_transaction(builder, 0, validated)
    fingerprint = transaction_fingerprint(message.SerializeToString(deterministic=True))
    row = AdmitRow("ORPHAN", "orphan-key", fingerprint, encode_rows(builder.build()).tobytes())

    async def admit_as_the_dead_worker() -> None:
        async with Redis.from_url(redis_url) as client:
            await AccountStateStore(client, state_ttl_s=3600, claim_ttl_s=600).admit([row])

    settings = {"redis_url": redis_url, "database_url": database_url, "claim_takeover_s": 1}
    with ServerProcess(tmp_path / "server", ledger_commit_timeout_s=20, **settings) as server:
        clients = stubs(server.address, 4)
        asyncio.run(admit_as_the_dead_worker())
        started = time.monotonic()
        request = scoring_pb2.ScoreRequest(transaction=message)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda stub: stub.Score(request, timeout=20).decision, clients))
        assert time.monotonic() - started >= 0.9  # they waited for the first worker before taking over
    assert len({d.ledger_sequence for d in answers}) == 1 and answers[0].ledger_sequence > 0
    assert not any(d.degraded for d in answers)
    state = account_state(redis_url, "ORPHAN")
    assert state is not None and state.count == 1
    assert ledger_ids(database_url, ["orphan-1"]) == {"orphan-1": 1}
