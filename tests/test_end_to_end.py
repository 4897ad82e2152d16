"""End to end over a real socket: `sentinel dev serve` as a user starts it, a client that knows
nothing but the server's address (server reflection, no .proto), health checking, bad input."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status
from server_helpers import stubs, transaction
from test_model_registry import copy_default_model

from sentinel.cli import main
from sentinel.model_export.registry import HOT_PATH_SCHEMA, ModelRegistry, default_model_directory
from sentinel.server.app import SCORING_SERVICE as SCORING
from sentinel.server.outcome import OUTCOME_NAMES, Thresholds, outcome_of
from sentinel.server.rules.compiler import compile_rule
from sentinel.server.rules.definitions import Rule
from sentinel.server.rules.rulefiles import default_rule_specs
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc, transaction_pb2


@pytest.fixture(scope="module")
def server_address(services_dir: Path) -> Iterator[str]:
    """`sentinel dev serve`, as `make run` starts it: private Redis and Postgres, two workers."""
    workdir = services_dir / "e2e"  # reachable by the postgres user of the private cluster
    server = ServerProcess(workdir / "server", workers=2, dev=True).start()
    yield server.address
    assert server.stop() == 0


class ReflectionClient:
    """Calls methods using only descriptors fetched through server reflection."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))

    def method(self, service: str, name: str, kind: str = "unary_unary"):  # type: ignore[no-untyped-def]
        descriptor = self.pool.FindServiceByName(service).methods_by_name[name]
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)
        callable_ = getattr(self.channel, kind)(
            f"/{service}/{name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        return request_class, callable_


def transaction_json(transaction_id: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "transactionId": transaction_id,
        "accountId": "C1231006815",
        "counterpartyId": "M1979787155",
        "type": "TRANSACTION_TYPE_PAYMENT",
        "amount": {"amount": "9839.64", "currency": "EUR"},
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1)),
        "geo": {"latitude": 48.1, "longitude": 11.6, "country": "DE"},
        "deviceId": "d-1",
    }
    body.update(changes)
    return body


def test_health_serving(server_address: str) -> None:
    with grpc.insecure_channel(server_address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SCORING):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_score_through_reflection(server_address: str) -> None:
    with grpc.insecure_channel(server_address) as channel:
        request_class, score = ReflectionClient(channel).method(SCORING, "Score")
        request = json_format.ParseDict({"transaction": transaction_json("e2e-1")}, request_class())
        decision = score(request, timeout=10).decision
        assert decision.transaction_id == "e2e-1"
        assert decision.outcome != 0
        assert 0.0 <= decision.risk_score <= 1.0
        assert decision.model_version


def test_invalid_input_names_field_and_worker_survives(server_address: str) -> None:
    with grpc.insecure_channel(server_address) as channel:
        request_class, score = ReflectionClient(channel).method(SCORING, "Score")
        bad = transaction_json("e2e-bad", amount={"amount": "-3", "currency": "EUR"})
        for _ in range(4):  # reach both workers (connections are spread, calls may share one)
            with pytest.raises(grpc.RpcError) as caught:
                score(json_format.ParseDict({"transaction": bad}, request_class()), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "transaction.amount.amount" in caught.value.details()
            status = rpc_status.from_call(caught.value)
            assert status is not None
            bad_request = error_details_pb2.BadRequest()
            assert status.details[0].Unpack(bad_request)
            assert bad_request.field_violations[0].field == "transaction.amount.amount"
        good = json_format.ParseDict({"transaction": transaction_json("e2e-after-bad")}, request_class())
        assert score(good, timeout=10).decision.transaction_id == "e2e-after-bad"


def test_batch_keeps_order_and_reports_item_errors(server_address: str) -> None:
    with grpc.insecure_channel(server_address) as channel:
        request_class, score_batch = ReflectionClient(channel).method(SCORING, "ScoreBatch")
        items = [transaction_json(f"b-{i}") for i in range(5)]
        items[2] = transaction_json("b-2", amount={"amount": "12", "currency": "XYZ"})
        reply = score_batch(json_format.ParseDict({"transactions": items}, request_class()), timeout=10)
        assert [r.WhichOneof("result") for r in reply.results] == ["decision"] * 2 + ["error"] + [
            "decision"
        ] * 2
        assert [r.decision.transaction_id for r in reply.results if r.HasField("decision")] == [
            "b-0",
            "b-1",
            "b-3",
            "b-4",
        ]
        error = reply.results[2].error
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert error.field_violations[0].field == "transactions[2].amount.currency"


def test_stream_answers_each_message(server_address: str) -> None:
    with grpc.insecure_channel(server_address) as channel:
        request_class, stream = ReflectionClient(channel).method(SCORING, "ScoreStream", "stream_stream")
        ids = [f"s-{i}" for i in range(20)]
        requests = [json_format.ParseDict({"transaction": transaction_json(i)}, request_class()) for i in ids]
        requests.append(
            json_format.ParseDict(
                {"transaction": transaction_json("s-bad", type="TRANSACTION_TYPE_UNSPECIFIED")},
                request_class(),
            )
        )
        replies = list(stream(iter(requests), timeout=20))
        by_id = {reply.transaction_id: reply for reply in replies}
        assert set(by_id) == {*ids, "s-bad"}
        assert all(by_id[i].HasField("decision") for i in ids)
        assert by_id["s-bad"].error.field_violations[0].field == "transaction.type"


def test_python_client(server_address: str) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from sentinel.clients import SentinelClient, make_transaction

    transaction = make_transaction(
        transaction_id="client-1",
        account_id="C42",
        amount=Decimal("250.00"),
        currency="EUR",
        event_time=datetime.now(UTC) - timedelta(seconds=1),
        type="TRANSFER",
        counterparty_id="C43",
        latitude=52.5,
        longitude=13.4,
        country="DE",
    )
    with SentinelClient(server_address, timeout_s=5) as client:
        assert client.score(transaction).transaction_id == "client-1"
        results = client.score_batch([transaction])
        assert results[0].decision.transaction_id == "client-1"
        assert [r.transaction_id for r in client.score_stream([transaction])] == ["client-1"]


def test_shadow_model_is_recorded_with_each_decision_and_never_acted_on(
    tmp_path: Path,
    redis_url: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ACTIVE: the packaged default model; SHADOW: the same ONNX file under another version with other
    thresholds. Every Decision carries the shadow's opinion (same policy, same rules, its thresholds)
    while its own outcome follows the active model; `sentinel model shadow --off` ends it."""
    started = dt.datetime.now(dt.UTC)
    models = tmp_path / "models"
    registry = ModelRegistry(models, HOT_PATH_SCHEMA)
    active = registry.activate(default_model_directory().name)
    copy_default_model(models, "challenger-e2e", review=0.0, decline=0.5)
    registry.set_shadow("challenger-e2e")
    active_thresholds = Thresholds(active.metadata.thresholds.review, active.metadata.thresholds.decline)
    shadow_thresholds = Thresholds(0.0, 0.5)
    created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rules = {  # the rules an empty rule database is seeded with
        spec.rule_id: compile_rule(Rule(spec, version=1, author="t", created_at=created))
        for spec in default_rule_specs()
    }

    sent: dict[str, list[transaction_pb2.Transaction]] = {}

    def score_batch(stub: scoring_pb2_grpc.ScoringServiceStub, prefix: str) -> list[decision_pb2.Decision]:
        """Eight transactions and one that drains its account, scored as one batch (sent again as they
        were when ``prefix`` is used again)."""
        if prefix in sent:
            reply = stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=sent[prefix]), timeout=20)
            return [result.decision for result in reply.results]
        items = [
            transaction(f"{prefix}-{i}", account=f"{prefix}-acct-{i % 3}", amount=f"{40 + 700 * i}.00")
            for i in range(8)
        ]
        drained = transaction(f"{prefix}-drained", account=f"{prefix}-drain", amount="900.00")
        drained.balances.CopyFrom(
            transaction_pb2.BalanceSnapshot(origin_before="900.00", origin_after="0.00")
        )
        items.append(drained)
        sent[prefix] = items
        reply = stub.ScoreBatch(scoring_pb2.ScoreBatchRequest(transactions=items), timeout=20)
        assert all(result.HasField("decision") for result in reply.results)
        return [result.decision for result in reply.results]

    with ServerProcess(
        tmp_path / "server",
        redis_url=redis_url,
        database_url=database_url,
        redis_budget_ms=2000,
        ledger_commit_timeout_s=20,
        model_dir=models,
        model_poll_interval_ms=50,
    ) as server:
        connections = stubs(server.address, 4)  # SO_REUSEPORT spreads connections over both workers
        decisions = [d for n, stub in enumerate(connections) for d in score_batch(stub, f"shadow-{n}")]
        disagreements = 0
        for decision in decisions:
            assert decision.model_version == active.version
            assert decision.HasField("shadow")
            shadow = decision.shadow
            assert shadow.model_version == "challenger-e2e"
            assert shadow.model_score == decision.model_score  # the same ONNX file
            matched = [rules[hit.rule_id] for hit in decision.rules_fired]
            expected = {
                "active": outcome_of(
                    decision.model_score,
                    matched,
                    active_thresholds,
                    degraded=decision.degraded,
                    fail_closed=False,
                ),
                "shadow": outcome_of(
                    shadow.model_score,
                    matched,
                    shadow_thresholds,
                    degraded=decision.degraded,
                    fail_closed=False,
                ),
            }
            assert (decision.outcome, decision.risk_score) == (
                expected["active"].outcome,
                expected["active"].risk_score,
            )
            assert (shadow.outcome, shadow.risk_score) == (
                expected["shadow"].outcome,
                expected["shadow"].risk_score,
            )
            assert [r.code for r in decision.reasons] == [r.code for r in expected["active"].reasons]
            disagreements += shadow.outcome != decision.outcome
        assert disagreements  # review from 0.0: the shadow never approves, the active model mostly does
        assert any(d.rules_fired for d in decisions)  # the drained-account transfers

        # The outcome pairs are counted, and the decision log names the shadow's opinion.
        with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
            metrics = response.read().decode()
        pairs = {
            (match[1], match[2]): float(match[3])
            for match in re.finditer(
                r'^sentinel_shadow_outcomes_total\{active="(\w+)",shadow="(\w+)"\} (\S+)$', metrics, re.M
            )
        }
        assert sum(pairs.values()) == len(decisions)
        assert sum(count for (a, b), count in pairs.items() if a != b) == disagreements
        by_id = {d.transaction_id: d for d in decisions}
        for transaction_id, event in logged_decisions(server, set(by_id)).items():
            assert event["outcome"] == OUTCOME_NAMES[by_id[transaction_id].outcome]
            assert event["shadow"] == {
                "model_version": "challenger-e2e",
                "model_score": round(by_id[transaction_id].shadow.model_score, 4),
                "risk_score": round(by_id[transaction_id].shadow.risk_score, 4),
                "outcome": OUTCOME_NAMES[by_id[transaction_id].shadow.outcome],
            }, json.dumps(event)

        # A retry is answered with the stored decision, its shadow opinion included.
        replays = score_batch(connections[1], "shadow-0")
        assert all(d.replayed for d in replays)
        assert [d.shadow for d in replays] == [by_id[d.transaction_id].shadow for d in replays]

        monkeypatch.setenv("SENTINEL_MODEL_DIR", str(models))
        monkeypatch.delenv("SENTINEL_CONFIG", raising=False)

        # `sentinel model compare --since`: the shadow period as the ledger recorded it.
        monkeypatch.setenv("SENTINEL_DATABASE_URL", database_url)
        assert main(["model", "compare", "--since", started.isoformat(), "--json"]) == 0
        (pair,) = [
            pair
            for pair in json.loads(capsys.readouterr().out)["shadow_period"]["pairs"]
            if pair["shadow_version"] == "challenger-e2e"
        ]
        assert pair["active_version"] == active.version and pair["decisions"] == len(decisions)
        agreed = sum(pair["agreement"][name][name] for name in ("APPROVE", "REVIEW", "DECLINE"))
        assert agreed == len(decisions) - disagreements

        # `sentinel model shadow --off`: within model_poll_interval_ms every worker stops.
        assert main(["model", "shadow", "--off"]) == 0
        deadline = time.monotonic() + 30
        rounds = 0
        while True:
            rounds += 1
            after = [d for n, stub in enumerate(connections) for d in score_batch(stub, f"off-{rounds}-{n}")]
            if not any(d.HasField("shadow") for d in after):
                break
            assert time.monotonic() < deadline, "a worker still scores with the shadow model"
            time.sleep(0.1)
        assert all(d.model_version == active.version for d in after)
        logged = logged_decisions(server, {d.transaction_id for d in after})
        assert not any("shadow" in event for event in logged.values())


def logged_decisions(server: ServerProcess, ids: set[str]) -> dict[str, dict[str, object]]:
    """The `decision` log events of ``ids`` (all of them: written once per call, waited for)."""
    logged: dict[str, dict[str, object]] = {}
    for _ in range(100):
        logged = {
            str(e["transaction_id"]): e
            for e in server.log_events()
            if e.get("event") == "decision" and e.get("transaction_id") in ids
        }
        if len(logged) == len(ids):
            break
        time.sleep(0.05)
    assert len(logged) == len(ids)
    return logged
