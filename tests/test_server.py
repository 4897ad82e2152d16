"""The scoring server end to end with real Redis and PostgreSQL: workers, state, idempotency, failures.

Each test starts ``sentinel serve`` (2 worker processes) against the session's private Redis and a fresh
database, and checks what a payments team relies on: exact per-account state under concurrency, safe
retries, per-item errors, degraded answers when Redis is gone, and no acknowledged decision ever lost.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import redis
from server_helpers import account_state, ledger_ids, stubs, transaction

from sentinel.localservices import LocalRedis
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc

pytestmark = pytest.mark.slow


def test_concurrent_same_account_updates_are_exact(server: ServerProcess, redis_url: str) -> None:
    clients = stubs(server.address, 8)
    count = 200

    def score(index: int) -> decision_pb2.Decision:
        stub = clients[index % len(clients)]
        reply = stub.Score(
            scoring_pb2.ScoreRequest(transaction=transaction(f"same-{index}", "HOT")), timeout=20
        )
        return reply.decision

    with ThreadPoolExecutor(32) as pool:
        decisions = list(pool.map(score, range(count)))
    assert [d.transaction_id for d in decisions if d.degraded or d.ledger_sequence <= 0] == []
    state = account_state(redis_url, "HOT")
    assert state is not None and state.count == count  # no lost update across the two workers


def test_idempotent_replay_and_key_reuse(server: ServerProcess, redis_url: str, database_url: str) -> None:
    (stub,) = stubs(server.address, 1)
    request = scoring_pb2.ScoreRequest(transaction=transaction("idem-1"))  # one event time for every retry
    first = stub.Score(request, timeout=10).decision
    again = stub.Score(request, timeout=10).decision
    assert not first.replayed and again.replayed
    assert again.ledger_sequence == first.ledger_sequence
    assert again.outcome == first.outcome and again.risk_score == first.risk_score
    reused = scoring_pb2.ScoreRequest()
    reused.CopyFrom(request)
    reused.transaction.amount.amount = "999.00"
    with pytest.raises(grpc.RpcError) as caught:
        stub.Score(reused, timeout=10)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "'idem-1'" in caught.value.details()
    # Redis forgets (flush): the ledger's unique key is the final word.
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    third = stub.Score(request, timeout=10).decision
    assert third.replayed and third.ledger_sequence == first.ledger_sequence
    assert ledger_ids(database_url, ["idem-1"]) == {"idem-1": 1}


def test_concurrent_duplicates_resolve_to_one_decision(server: ServerProcess, database_url: str) -> None:
    clients = stubs(server.address, 4)
    request = scoring_pb2.ScoreRequest(transaction=transaction("dup-1", idempotency_key="key-dup-1"))

    def score(index: int) -> decision_pb2.Decision:
        return clients[index % 4].Score(request, timeout=10).decision

    with ThreadPoolExecutor(16) as pool:
        decisions = list(pool.map(score, range(16)))
    assert len({d.ledger_sequence for d in decisions}) == 1
    assert sum(not d.replayed for d in decisions) == 1
    assert ledger_ids(database_url, ["dup-1"]) == {"dup-1": 1}


def test_mixed_batch(server: ServerProcess) -> None:
    (stub,) = stubs(server.address, 1)
    items = [transaction(f"mix-{i}", account=f"A{i}") for i in range(6)]
    items[1].amount.amount = "-1"
    items[4].ClearField("event_time")
    reply = stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=items), timeout=10)
    kinds = [result.WhichOneof("result") for result in reply.results]
    assert kinds == ["decision", "error", "decision", "decision", "error", "decision"]
    assert reply.results[1].error.field_violations[0].field == "transactions[1].amount.amount"
    assert reply.results[4].error.field_violations[0].field == "transactions[4].event_time"
    assert [r.decision.transaction_id for r in reply.results if r.HasField("decision")] == [
        "mix-0",
        "mix-2",
        "mix-3",
        "mix-5",
    ]


def test_stream_answers_every_message(server: ServerProcess) -> None:
    (stub,) = stubs(server.address, 1)
    requests = [
        scoring_pb2.ScoreStreamRequest(transaction=transaction(f"st-{i}", f"S{i % 7}")) for i in range(300)
    ]
    replies = list(stub.ScoreStream(iter(requests), timeout=30))
    assert sorted(r.transaction_id for r in replies) == sorted(f"st-{i}" for i in range(300))
    assert all(r.HasField("decision") and r.decision.ledger_sequence > 0 for r in replies)


def test_deadline_exceeded_leaves_the_server_healthy(server: ServerProcess) -> None:
    (stub,) = stubs(server.address, 1)
    request = scoring_pb2.ScoreRequest(transaction=transaction("late-1"))  # the retry is the same transaction
    with pytest.raises(grpc.RpcError) as caught:
        stub.Score(request, timeout=0.0005)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The late call may still have been decided; a retry with the same key is safe either way.
    decision = stub.Score(request, timeout=10).decision
    assert decision.transaction_id == "late-1"


def test_redis_down_gives_degraded_decisions_then_recovers(
    tmp_path: Path, services_dir: Path, database_url: str
) -> None:
    private = LocalRedis(services_dir / f"redis-outage-{os.getpid()}").start()
    settings = {
        "redis_url": private.url,
        "database_url": database_url,
        "redis_budget_ms": 50,
        "redis_retry_after_s": 0.5,
    }
    with ServerProcess(tmp_path / "server", workers=1, **settings) as server:
        (stub,) = stubs(server.address, 1)
        assert not stub.Score(
            scoring_pb2.ScoreRequest(transaction=transaction("r-1")), timeout=10
        ).decision.degraded
        port = private.port
        private.stop()
        started = time.monotonic()
        decision = stub.Score(scoring_pb2.ScoreRequest(transaction=transaction("r-2")), timeout=10).decision
        assert decision.degraded and decision.ledger_sequence > 0
        assert "DEGRADED" in [reason.code for reason in decision.reasons]
        assert time.monotonic() - started < 2.0  # answered within the budget, no hang
        private = LocalRedis(private.directory, port=port).start()
        try:
            deadline = time.monotonic() + 10
            while True:
                decision = stub.Score(
                    scoring_pb2.ScoreRequest(transaction=transaction(f"r-{time.monotonic_ns()}")), timeout=10
                ).decision
                if not decision.degraded or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert not decision.degraded
        finally:
            private.stop()


def _load(
    stubs_: list[scoring_pb2_grpc.ScoringServiceStub],
    prefix: str,
    stop: threading.Event,
    acknowledged: list[str],
    failures: list[tuple[grpc.StatusCode, str, float]],
) -> None:
    """Score until ``stop``; each failure as (code, details, time.monotonic() when it ended)."""
    index = 0
    while not stop.is_set():
        transaction_id = f"{prefix}-{index}"
        index += 1
        try:
            stub = stubs_[index % len(stubs_)]
            stub.Score(
                scoring_pb2.ScoreRequest(transaction=transaction(transaction_id, f"L{index % 50}")), timeout=5
            )
            acknowledged.append(transaction_id)
        except grpc.RpcError as exc:
            failures.append((exc.code(), exc.details(), time.monotonic()))


def test_killed_worker_is_restarted_and_no_acknowledged_decision_is_lost(
    server: ServerProcess, database_url: str
) -> None:
    clients = stubs(server.address, 8)
    stop = threading.Event()
    acknowledged: list[str] = []
    failures: list[tuple[grpc.StatusCode, str, float]] = []
    threads = [
        threading.Thread(target=_load, args=(clients, f"k{t}", stop, acknowledged, failures))
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    before = server.worker_pids()
    assert len(before) == 2
    os.kill(sorted(before)[0], signal.SIGKILL)
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 15
    while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    after = server.worker_pids()
    assert len(after) == 2 and after != before  # restarted
    counts = ledger_ids(database_url, acknowledged)
    assert len(acknowledged) > 50
    assert all(counts.get(i) == 1 for i in acknowledged), "an acknowledged decision is missing or doubled"
    allowed = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL}
    assert {code for code, _, _ in failures} <= allowed, failures


def test_graceful_shutdown_under_load(tmp_path: Path, redis_url: str, database_url: str) -> None:
    server = ServerProcess(
        tmp_path / "server",
        redis_url=redis_url,
        database_url=database_url,
        shutdown_grace_s=5,
        redis_budget_ms=2000,
        ledger_commit_timeout_s=20,
    ).start()
    clients = stubs(server.address, 4)
    stop = threading.Event()
    acknowledged: list[str] = []
    failures: list[tuple[grpc.StatusCode, str, float]] = []
    threads = [
        threading.Thread(target=_load, args=(clients, f"g{t}", stop, acknowledged, failures))
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    started = time.monotonic()
    assert server.stop(timeout_s=30) == 0
    assert time.monotonic() - started < 5 + 10  # grace, then the supervisor kills stragglers
    stop.set()
    for thread in threads:
        thread.join()
    counts = ledger_ids(database_url, acknowledged)
    assert len(acknowledged) > 50
    assert all(counts.get(i) == 1 for i in acknowledged)
    unexpected = [
        (code.name, details, round(at - started, 3))  # seconds after the SIGTERM
        for code, details, at in failures
        if code not in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    ]
    # What the server said while it drained, for a failure that does not show up on a rerun.
    assert not unexpected, (unexpected, _drain_events(server))


def _drain_events(server: ServerProcess) -> list[dict[str, object]]:
    """The server's log events other than decisions (shutdown steps, warnings, errors)."""
    return [event for event in server.log_events() if event.get("event") != "decision"]


def test_ledger_and_rules_services_are_served(server: ServerProcess) -> None:
    from sentinel.v1 import ledger_pb2, ledger_pb2_grpc, rules_pb2, rules_pb2_grpc

    channel = grpc.insecure_channel(server.address)
    decision = (
        scoring_pb2_grpc.ScoringServiceStub(channel)
        .Score(scoring_pb2.ScoreRequest(transaction=transaction("svc-1", "SVC")), timeout=10)
        .decision
    )
    entry = (
        ledger_pb2_grpc.LedgerServiceStub(channel)
        .GetDecision(ledger_pb2.GetDecisionRequest(transaction_id="svc-1"), timeout=10)
        .entry
    )
    assert entry.sequence == decision.ledger_sequence
    assert entry.decision.outcome == decision.outcome
    rules = rules_pb2_grpc.RulesServiceStub(channel).ListRules(rules_pb2.ListRulesRequest(), timeout=10).rules
    assert {"drained-account-transfer", "impossible-travel", "velocity-burst"} <= {r.rule_id for r in rules}
    channel.close()


def test_rejected_input_lands_in_the_dead_letter_stream(server: ServerProcess, redis_url: str) -> None:
    import json
    import subprocess
    import sys

    (stub,) = stubs(server.address, 1)
    bad = transaction("dlq-1", account="C-secret-account", amount="12.345")
    bad.device_id = "device-secret"
    bad.attributes["card_last4"] = "4242"
    with pytest.raises(grpc.RpcError):
        stub.Score(scoring_pb2.ScoreRequest(transaction=bad), timeout=10)
    environment = {**os.environ, "SENTINEL_REDIS_URL": redis_url}
    for _ in range(50):
        listed = subprocess.run(
            [sys.executable, "-m", "sentinel.cli", "dlq", "list", "--json"],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        entries = json.loads(listed.stdout)
        if entries:
            break
        time.sleep(0.1)
    (entry,) = entries
    assert entry["method"] == "Score" and entry["transaction_id"] == "dlq-1"
    assert entry["violations"][0]["field"] == "transaction.amount.amount"
    assert "secret" not in json.dumps(entry["transaction"])
    assert "4242" not in json.dumps(entry)
    assert entry["transaction"]["attributes"] == ["card_last4"]


def _score_until(
    stop: threading.Event,
    clients: list[scoring_pb2_grpc.ScoringServiceStub],
    prefix: str,
    seen: list[tuple[float, int, decision_pb2.Decision]],
    failures: list[str],
) -> None:
    """Score continuously on every connection, recording (time, connection, decision)."""
    index = 0
    while not stop.is_set():
        for number, stub in enumerate(clients):
            index += 1
            try:
                request = scoring_pb2.ScoreRequest(
                    transaction=transaction(f"{prefix}-{index}", f"H{index % 20}")
                )
                seen.append((time.monotonic(), number, stub.Score(request, timeout=5).decision))
            except grpc.RpcError as exc:
                failures.append(f"{exc.code()}: {exc.details()}")


def test_model_swap_under_load(server: ServerProcess) -> None:
    import subprocess
    import sys

    from sentinel.model_export.metadata import MODEL_FILE, ModelMetadata
    from sentinel.model_export.registry import default_model_directory, publish_model

    shipped = default_model_directory()
    metadata = ModelMetadata.read(shipped)
    new_version = "20991231T000000Z-swaptest"
    publish_model(
        Path(server.environment["SENTINEL_DATA_DIR"]) / "models",
        (shipped / MODEL_FILE).read_bytes(),
        metadata.model_copy(update={"version": new_version}),
    )
    clients = stubs(server.address, 6)
    stop = threading.Event()
    seen: list[tuple[float, int, decision_pb2.Decision]] = []
    failures: list[str] = []
    loader = threading.Thread(target=_score_until, args=(stop, clients, "swap", seen, failures))
    loader.start()
    try:
        time.sleep(0.5)
        requested = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "sentinel.cli", "model", "activate", new_version],
            env=server.environment,
            check=True,
            capture_output=True,
        )
        activated = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        loader.join()
    assert failures == []
    assert {d.model_version for t, _, d in seen if t < requested} == {metadata.version}
    late = [(n, d.model_version) for t, n, d in seen if t > activated + 2.0]
    assert late and {version for _, version in late} == {new_version}
    assert {n for n, _ in late} == set(range(6))  # every connection, so both workers, swapped


def test_rule_change_applies_everywhere_within_a_second_under_load(server: ServerProcess) -> None:
    from sentinel.v1 import rules_pb2, rules_pb2_grpc

    clients = stubs(server.address, 6)
    stop = threading.Event()
    seen: list[tuple[float, int, decision_pb2.Decision]] = []
    failures: list[str] = []
    loader = threading.Thread(target=_score_until, args=(stop, clients, "rule", seen, failures))
    loader.start()
    try:
        time.sleep(0.5)
        rule = rules_pb2.Rule(
            rule_id="tag-everything",
            expression="amount > 0",
            action=decision_pb2.RULE_ACTION_TAG,
            priority=1,
            severity=0.0,
            mode=rules_pb2.RULE_MODE_ACTIVE,
            description="test: tags every transaction",
        )
        with grpc.insecure_channel(server.address) as channel:
            stored = (
                rules_pb2_grpc.RulesServiceStub(channel)
                .PutRule(
                    rules_pb2.PutRuleRequest(rule=rule, author="test", comment="hot reload under load"),
                    timeout=10,
                )
                .rule
            )
        changed = time.monotonic()
        time.sleep(2.0)
    finally:
        stop.set()
        loader.join()
    assert failures == []

    def tagged(decision: decision_pb2.Decision) -> bool:
        return any(
            h.rule_id == "tag-everything" and h.rule_version == stored.version for h in decision.rules_fired
        )

    after = [(t, n, d) for t, n, d in seen if t > changed + 1.0]
    assert after and all(tagged(d) for _, _, d in after), (
        "a decision made > 1 s after the change missed the rule"
    )
    assert {n for _, n, _ in after} == set(range(6))
