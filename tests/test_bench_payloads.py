"""Benchmark payloads: realistic, valid, deterministic transactions and gRPC framing."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from sentinel.bench.payloads import (
    CITIES,
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
