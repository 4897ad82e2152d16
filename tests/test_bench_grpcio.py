"""The grpcio driver: fresh ids (and live event times) by prefixing a field, and short real runs
against the ceiling."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.bench.ceiling import CeilingServer
from sentinel.bench.grpc_bench import build_payload, measure
from sentinel.bench.grpcio_driver import request_message, transaction_pool, with_event_time, with_id
from sentinel.bench.measurement import LoadSettings
from sentinel.bench.payloads import DEFAULT_ACCOUNTS, DEFAULT_SEED, TransactionFactory, load_paysim
from sentinel.bench.scenarios import SCENARIOS
from sentinel.config import Settings
from sentinel.v1 import scoring_pb2


def test_prefixed_id_gives_the_same_transaction_with_a_new_id() -> None:
    transactions = TransactionFactory(load_paysim()).transactions(50, "orig")
    pool = transaction_pool(transactions)
    for original, anonymous in zip(transactions, pool, strict=True):
        request = scoring_pb2.ScoreRequest.FromString(request_message([with_id(anonymous, "fresh-1")]))
        assert request.transaction.transaction_id == "fresh-1"
        request.transaction.transaction_id = original.transaction_id
        assert request.transaction == original


@pytest.mark.parametrize(("seconds", "nanos"), [(1_796_600_000.25, 250_000_000), (1_796_600_000.0, 0)])
def test_live_event_time_replaces_the_pools(seconds: float, nanos: int) -> None:
    transactions = TransactionFactory(load_paysim()).transactions(5, "orig")
    pool = transaction_pool(transactions, live_event_times=True)
    for original, anonymous in zip(transactions, pool, strict=True):
        stamped = with_event_time(with_id(anonymous, "fresh-2"), seconds)
        request = scoring_pb2.ScoreRequest.FromString(request_message([stamped]))
        event_time = request.transaction.event_time
        assert (event_time.seconds, event_time.nanos) == (int(seconds), nanos)
        request.transaction.transaction_id = original.transaction_id
        request.transaction.event_time.CopyFrom(original.event_time)
        assert request.transaction == original


def test_batch_message_carries_every_transaction_in_order() -> None:
    pool = transaction_pool(TransactionFactory(load_paysim()).transactions(3, "b"))
    message = request_message([with_id(raw, f"id-{n}") for n, raw in enumerate(pool * 100)])
    batch = scoring_pb2.ScoreBatchRequest.FromString(message)
    assert [t.transaction_id for t in batch.transactions] == [f"id-{n}" for n in range(300)]
    long_id = "x" * 128  # a length that needs a two-byte varint
    request = scoring_pb2.ScoreRequest.FromString(request_message([with_id(pool[0], long_id)]))
    assert request.transaction.transaction_id == long_id


@pytest.mark.slow
@pytest.mark.parametrize("name", ["score", "stream", "hot-account"])
def test_short_real_run_against_the_ceiling(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[name].with_stream_length(100)
    factory = scenario.transaction_factory(load_paysim(), DEFAULT_SEED, DEFAULT_ACCOUNTS)
    payload = build_payload(scenario, factory, "grpcio", tmp_path, streams=2)
    # Enough unary calls for the ceiling's workers to use more than one clock tick (10 ms) of CPU, the
    # resolution of /proc: 40 calls of about 0.2 ms sometimes read as none at all.
    calls = 40 if scenario.streaming else 400
    load = LoadSettings(4, 2, duration_s=None, total_calls=calls, rate=None, warmup_s=0)
    with CeilingServer(Settings(), workers=2) as ceiling:
        measured = measure(
            "grpcio", ceiling.address, payload, load, tmp_path / "run", False, ceiling.counts, ceiling.pids
        )
    assert measured.problems == []
    assert measured.result.calls_ok == calls and measured.result.status_codes == {"OK": calls}
    assert measured.server_count is not None and measured.server_count["server_ok_calls"] == calls
    assert measured.result.latencies_ms.size == calls
    busy = measured.cpu["cores_busy"]  # the ceiling's workers served, the driver's clients called
    assert busy["server"] > 0 and busy["load_generator"] > 0 and busy["redis"] == busy["postgres"] == 0
