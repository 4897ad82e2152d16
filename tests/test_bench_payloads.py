"""Benchmark payloads: realistic, valid, deterministic transactions and gRPC framing."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from sentinel.bench.grpc_bench import Payload, build_payload
from sentinel.bench.grpcio_driver import ClientPlan, call_transactions, request_message
from sentinel.bench.payloads import (
    CITIES,
    DEFAULT_SEED,
    TransactionFactory,
    grpc_frame,
    grpc_frames,
    load_paysim,
    split_grpc_frames,
)
from sentinel.bench.scenarios import SCENARIOS
from sentinel.server.validate import validate_transaction
from sentinel.v1 import scoring_pb2, transaction_pb2


@pytest.fixture(scope="module")
def rows():
    return load_paysim()


def _serialized(factory: TransactionFactory, count: int) -> list[bytes]:
    return [t.SerializeToString(deterministic=True) for t in factory.transactions(count, "det")]


def test_same_seed_gives_the_same_bytes(rows) -> None:
    first, second = TransactionFactory(rows, seed=7), TransactionFactory(rows, seed=7)
    assert _serialized(first, 300) == _serialized(second, 300)


def test_another_seed_gives_other_transactions(rows) -> None:
    first, second = TransactionFactory(rows, seed=7), TransactionFactory(rows, seed=8)
    assert _serialized(first, 50) != _serialized(second, 50)


def test_transactions_pass_the_servers_validation(rows) -> None:
    now = time.time()
    for transaction in TransactionFactory(rows).transactions(2_000, "valid"):
        validate_transaction(transaction, now, max_skew_s=86_400)  # raises InvalidTransaction otherwise


def test_transactions_are_spread_and_filled_in(rows) -> None:
    transactions = TransactionFactory(rows, accounts=5_000).transactions(2_000, "spread")
    assert len({t.transaction_id for t in transactions}) == 2_000
    assert len({t.account_id for t in transactions}) > 1_000
    for transaction in transactions:
        geo = transaction.geo
        assert geo.HasField("latitude") and geo.HasField("longitude")
        assert any(
            city.country == geo.country
            and abs(geo.latitude - city.latitude) <= 0.06
            and abs(geo.longitude - city.longitude) <= 0.06
            for city in CITIES
        ), f"{geo} is not near a city of its country"
        assert transaction.device_id.startswith("dev-")
        assert transaction.ip_address.count(".") == 3
        assert Decimal(transaction.amount.amount) > 0
    # Most payments of an account come from a device it used before.
    devices_by_account: dict[str, set[str]] = {}
    for transaction in TransactionFactory(rows, accounts=20).transactions(2_000, "devices"):
        devices_by_account.setdefault(transaction.account_id, set()).add(transaction.device_id)
    assert max(len(devices) for devices in devices_by_account.values()) < 20


def test_amounts_follow_the_currency_minor_unit(rows) -> None:
    for transaction in TransactionFactory(rows).transactions(1_000, "money"):
        if transaction.amount.currency in ("UGX", "RWF"):
            assert "." not in transaction.amount.amount
        else:
            assert len(transaction.amount.amount.split(".")[1]) == 2


def test_grpc_frames_decode_back_to_the_messages(rows) -> None:
    messages = SCENARIOS["stream"].with_stream_length(25).request_messages(TransactionFactory(rows), "frame")
    body = grpc_frames(m.SerializeToString() for m in messages)
    decoded = [scoring_pb2.ScoreStreamRequest.FromString(raw) for raw in split_grpc_frames(body)]
    assert decoded == messages
    single = grpc_frame(b"\x0a\x03abc")
    assert single[:5] == b"\x00\x00\x00\x00\x05"


def test_a_unary_body_is_one_frame(rows) -> None:
    (request,) = SCENARIOS["batch-100"].request_messages(TransactionFactory(rows), "batch")
    frames = list(split_grpc_frames(grpc_frame(request.SerializeToString())))
    assert len(frames) == 1
    assert len(scoring_pb2.ScoreBatchRequest.FromString(frames[0]).transactions) == 100


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\x00\x00\x00", "truncated gRPC frame header"),
        (b"\x00\x00\x00\x00\x09abc", "announces 9 bytes"),
        (b"\x01\x00\x00\x00\x00", "compressed"),
    ],
)
def test_malformed_frames_are_rejected(body: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        list(split_grpc_frames(body))


def test_scenarios_carry_the_advertised_number_of_transactions(rows) -> None:
    factory = TransactionFactory(rows)
    (score,) = SCENARIOS["score"].request_messages(factory, "s")
    assert isinstance(score.transaction, transaction_pb2.Transaction)
    (batch,) = SCENARIOS["batch-1000"].request_messages(factory, "b")
    assert len(batch.transactions) == 1_000
    assert len(SCENARIOS["stream"].with_stream_length(300).request_messages(factory, "t")) == 300


@pytest.fixture(scope="module")
def hot_payload(rows, tmp_path_factory: pytest.TempPathFactory) -> Payload:
    scenario = SCENARIOS["hot-account"]
    factory = scenario.transaction_factory(rows, DEFAULT_SEED, accounts=5_000)  # --accounts is overridden
    return build_payload(scenario, factory, "hot", tmp_path_factory.mktemp("hot"), streams=1)


def test_hot_account_payloads_use_one_account_whatever_accounts_says(rows, hot_payload: Payload) -> None:
    pool = [transaction_pb2.Transaction.FromString(raw) for raw in hot_payload.pool]
    assert len({t.account_id for t in pool}) == 1
    # The driver gives every call its id and its event time; the pool carries neither.
    assert not any(t.transaction_id or t.HasField("event_time") for t in pool)
    (probe,) = [scoring_pb2.ScoreRequest.FromString(raw) for raw in hot_payload.probe_messages]
    assert probe.transaction.account_id == pool[0].account_id
    others = SCENARIOS["score"].transaction_factory(rows, DEFAULT_SEED, accounts=5_000).transactions(200, "o")
    assert len({t.account_id for t in others}) > 100


def test_hot_account_calls_carry_distinct_ids_and_increasing_event_times(hot_payload: Payload) -> None:
    scenario = hot_payload.scenario
    plan = ClientPlan(
        "h:1",
        scenario.method,
        scenario.path,
        scenario.transactions_per_call,
        hot_payload.pool,
        "hot-m0",
        concurrency=200,
        channels=2,
        duration_s=None,
        total_calls=None,
        rate=None,
        live_event_times=scenario.live_event_times,
    )
    start = time.time()
    calls = len(hot_payload.pool) + 50  # past the end of the pool: its transactions are reused, ids are not
    transactions = [
        scoring_pb2.ScoreRequest.FromString(
            request_message(call_transactions(plan, number, start + number * 0.001))
        ).transaction
        for number in range(calls)
    ]
    assert len({t.transaction_id for t in transactions}) == calls
    assert len({t.account_id for t in transactions}) == 1
    times = [t.event_time.ToNanoseconds() for t in transactions]
    assert times == sorted(times) and len(set(times)) == calls
    assert abs(transactions[0].event_time.ToNanoseconds() / 1e9 - start) < 1e-6
    for transaction in transactions[:: len(hot_payload.pool) // 10]:
        validate_transaction(transaction, start + calls, max_skew_s=86_400)
