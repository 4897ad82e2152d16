"""End to end over a real socket: `sentinel dev serve` as a user starts it, a client that knows
nothing but the server's address (server reflection, no .proto), health checking, bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

from sentinel.server.app import SCORING_SERVICE as SCORING
from sentinel.serverprocess import ServerProcess


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
