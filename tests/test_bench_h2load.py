"""The h2load driver: its output and request log, percentiles, status checks, and a real short run."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from sentinel.bench.ceiling import CeilingServer
from sentinel.bench.grpc_bench import build_payload, measure, reconcile, settled_counts
from sentinel.bench.h2load import (
    H2loadError,
    h2load_command,
    h2load_result,
    parse_log,
    parse_trailers_only_statuses,
)
from sentinel.bench.measurement import LoadResult, LoadSettings, ServerCounts, percentiles_ms
from sentinel.bench.payloads import TransactionFactory, grpc_frame, load_paysim, split_grpc_frames
from sentinel.bench.report import TABLE_COLUMNS, format_table, server_count_summary
from sentinel.bench.scenarios import SCENARIOS
from sentinel.bench.server_metrics import parse_server_counts
from sentinel.config import Settings
from sentinel.v1 import scoring_pb2

# Recorded from h2load 1.52 (-v) against a server failing 2 of 6 calls with INVALID_ARGUMENT.
H2LOAD_OUTPUT = b"""starting benchmark...
spawning thread #0: 2 total client(s). Timing-based test with 0s of warm-up time and 3s of main duration
Application protocol: h2c
[stream_id=1] :status: 200
[stream_id=1] content-type: application/grpc
[stream_id=1] grpc-accept-encoding: identity, deflate, gzip
[stream_id=3] :status: 200
[stream_id=3] content-type: application/grpc
[stream_id=3] grpc-status: 3
[stream_id=3] grpc-message: transaction.amount: is required
[stream_id=1] :status: 200
[stream_id=1] content-type: application/grpc
[stream_id=1] grpc-status: 3
[stream_id=1] grpc-message: transaction.amount: is required
progress: 50% done

finished in 3.01s, 2.00 req/s, 607.24KB/s
requests: 8 total, 8 started, 6 done, 6 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 6 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 1.78MB (1865441) total, 90.25KB (92418) headers (space savings 96.28%), 1.50KB (1530) data
                     min         max         mean         sd        +/- sd
time for request:      617us      3.75ms      1.23ms      1.01ms    92.14%
"""
H2LOAD_LOG = "1795430543480785\t200\t1010\n1795430543481848\t200\t617\n1795430543481849\t-1\t50\n" + "".join(
    f"17954305434{index:05d}\t200\t{index * 1000}\n" for index in range(1, 5)
)


def test_summary_and_trailers_only_errors() -> None:
    result = h2load_result(H2LOAD_OUTPUT, H2LOAD_LOG)
    assert result.duration_s == pytest.approx(3.01)
    assert result.calls_completed == 6
    assert result.status_codes == {"OK": 4, "INVALID_ARGUMENT": 2}
    assert result.calls_ok == 4
    assert result.errors == {"grpc-status INVALID_ARGUMENT": 2}
    assert result.calls_per_s == pytest.approx(4 / 3.01)
    assert result.calls_abandoned == 2  # 8 started, 6 done when the timed run ended
    assert any("1530" in note for note in result.notes)


def test_transport_failures_count_as_errors() -> None:
    output = H2LOAD_OUTPUT.replace(
        b"requests: 8 total, 8 started, 6 done, 6 succeeded, 0 failed, 0 errored, 0 timeout",
        b"requests: 8 total, 8 started, 8 done, 5 succeeded, 3 failed, 2 errored, 1 timeout",
    )
    result = h2load_result(output, H2LOAD_LOG)
    assert result.errors == {
        "h2load: HTTP status >= 400": 1,
        "h2load: stream or connection error": 1,
        "h2load: timed out": 1,
        "grpc-status INVALID_ARGUMENT": 2,
    }
    assert result.calls_ok == 3


def test_unreadable_output() -> None:
    with pytest.raises(H2loadError):
        h2load_result(b"h2load: no URI given\n", "")


def test_log_parsing_keeps_answered_requests_in_ms() -> None:
    latencies = parse_log(H2LOAD_LOG)
    assert latencies.tolist() == [1.01, 0.617, 1.0, 2.0, 3.0, 4.0]  # the status -1 line is left out
    with pytest.raises(H2loadError, match="line 1"):
        parse_log("1795430543480785 200 1010\n")


def test_percentiles() -> None:
    values = np.arange(1, 101, dtype=float)  # 1 .. 100 ms
    computed = percentiles_ms(values)
    assert computed[50.0] == pytest.approx(50.5)
    assert computed[99.0] == pytest.approx(99.01)
    assert computed[90.0] == pytest.approx(90.1)
    assert percentiles_ms([]) == {}
    assert percentiles_ms([7.0])[99.0] == 7.0


def test_only_first_header_blocks_with_grpc_status_are_counted() -> None:
    counts = parse_trailers_only_statuses(
        b"[stream_id=5] grpc-status: 14\n[stream_id=7] grpc-status: 14\n[stream_id=9] grpc-status: 0\n"
        b"[stream_id=9] grpc-message: grpc-status: 3\n"
    )
    assert counts == {"UNAVAILABLE": 2, "OK": 1}


def test_command_carries_grpc_headers_and_spreads_the_concurrency(tmp_path: Path) -> None:
    load = LoadSettings(64, 3, duration_s=10, total_calls=None, rate=3_000, warmup_s=3)
    command = h2load_command(
        "http://127.0.0.1:1/sentinel.v1.ScoringService/Score", tmp_path / "b", load, tmp_path / "log"
    )
    pairs = list(itertools.pairwise(command))
    assert ("--clients", "3") in pairs and ("--max-concurrent-streams", "22") in pairs
    assert ("--header", "content-type: application/grpc") in pairs and ("--header", "te: trailers") in pairs
    assert ("--duration", "10000ms") in pairs and ("--rps", "1000") in pairs
    assert "--verbose" in command and command[-1].endswith("/Score")
    warmup = h2load_command("u", tmp_path / "b", load, None, duration_s=3)
    assert "--log-file" not in warmup
    assert ("--duration", "3000ms") in list(itertools.pairwise(warmup))


def test_load_settings_need_enough_concurrency_for_the_connections() -> None:
    with pytest.raises(ValueError, match="connections"):
        LoadSettings(concurrency=2, connections=4, duration_s=1, total_calls=None, rate=None, warmup_s=0)
    with pytest.raises(ValueError, match="exactly one"):
        LoadSettings(concurrency=4, connections=4, duration_s=1, total_calls=10, rate=None, warmup_s=0)


def _result(calls_ok: int, abandoned: int = 0) -> LoadResult:
    statuses = {"OK": calls_ok}
    return LoadResult(
        "h2load", 1.0, calls_ok, calls_ok, statuses, {}, {}, np.zeros(0), calls_abandoned=abandoned
    )


def test_server_side_failures_the_tool_did_not_see_are_errors() -> None:
    result = _result(100, abandoned=8)
    check = reconcile(result, {"OK": 90, "UNAVAILABLE": 10, "CANCELLED": 8})
    assert result.errors == {"grpc-status UNAVAILABLE": 10}
    assert result.calls_ok == 90
    assert check["server_ok_calls"] == 90 and check["tool_ok_calls"] == 100
    assert check["ended_with_the_run"] == {"CANCELLED": 8}


def test_the_count_before_a_run_waits_for_the_warm_ups_last_calls() -> None:
    """A warm-up's dropped calls that the server finishes after the probe belong before the run: the
    count is read once it stops moving."""
    finished = iter([3, 5, 6, 6, 6])
    counts = lambda: ServerCounts({("Score", "OK"): next(finished)})  # noqa: E731
    assert settled_counts(counts).calls == {("Score", "OK"): 6}


def test_calls_dropped_at_the_end_are_not_errors_but_missing_oks_are() -> None:
    finished_late = _result(100, abandoned=8)
    reconcile(finished_late, {"OK": 106})
    assert finished_late.errors == {} and finished_late.calls_ok == 100
    cancelled_at_the_end = _result(100, abandoned=8)
    check = reconcile(cancelled_at_the_end, {"OK": 100, "UNKNOWN": 5, "CANCELLED": 3})
    assert cancelled_at_the_end.errors == {} and check["ended_with_the_run"] == {"CANCELLED": 3, "UNKNOWN": 5}
    never_answered = _result(100)
    reconcile(never_answered, {"OK": 97})
    assert never_answered.errors == {"counted OK by the tool, not by the server": 3}
    assert never_answered.calls_ok == 97
    cancelled_mid_run = _result(100, abandoned=4)
    reconcile(cancelled_mid_run, {"OK": 80, "CANCELLED": 20})
    # 20 of the tool's 100 answers were not OK for the server: 16 cancelled beyond the 4 dropped, 4 more.
    assert sum(cancelled_mid_run.errors.values()) == 20 and cancelled_mid_run.calls_ok == 80
    assert cancelled_mid_run.errors["grpc-status CANCELLED"] == 16


def test_prometheus_counters_are_read_and_subtracted() -> None:
    text = """# HELP sentinel_calls_total gRPC calls by method and status code.
# TYPE sentinel_calls_total counter
sentinel_calls_total{code="OK",method="Score"} 120.0
sentinel_calls_total{code="UNAVAILABLE",method="Score"} 2.0
sentinel_calls_total{code="OK",method="ScoreBatch"} 7.0
# HELP sentinel_replayed_decisions_total Idempotent replays answered from stored decisions.
# TYPE sentinel_replayed_decisions_total counter
sentinel_replayed_decisions_total 30.0
# HELP sentinel_stage_seconds Time per pipeline stage and batch.
# TYPE sentinel_stage_seconds histogram
sentinel_stage_seconds_bucket{le="0.001",stage="model"} 3.0
sentinel_stage_seconds_bucket{le="+Inf",stage="model"} 4.0
sentinel_stage_seconds_count{stage="model"} 4.0
sentinel_stage_seconds_sum{stage="model"} 0.02
# HELP sentinel_batch_size Transactions per micro-batch.
# TYPE sentinel_batch_size histogram
sentinel_batch_size_bucket{le="+Inf"} 4.0
sentinel_batch_size_count 4.0
sentinel_batch_size_sum 122.0
"""
    later = parse_server_counts(text)
    earlier = ServerCounts({("Score", "OK"): 20}, replayed_decisions=10)
    difference = later - earlier
    assert difference.by_status("Score") == {"OK": 100, "UNAVAILABLE": 2}
    assert difference.by_status("ScoreBatch") == {"OK": 7}
    assert difference.replayed_decisions == 20
    assert difference.histograms["batch_size"] == (122.0, 4.0)
    model_stage = {"batches": 4, "mean_ms": 5.0, "busy_s_per_s": 0.01}
    assert difference.stages(duration_s=2.0) == {"model": model_stage}


DECISIONS_BEFORE = """# HELP sentinel_decisions_total Decisions by outcome.
# TYPE sentinel_decisions_total counter
sentinel_decisions_total{outcome="APPROVE"} 50.0
sentinel_decisions_total{outcome="REVIEW"} 5.0
"""
# Two workers' files summed by the supervisor show up as one sample per label set; a worker that has not
# degraded yet has no sample at all, and a counter never incremented is absent (zero).
DECISIONS_AFTER = """# HELP sentinel_decisions_total Decisions by outcome.
# TYPE sentinel_decisions_total counter
sentinel_decisions_total{outcome="APPROVE"} 53.0
sentinel_decisions_total{outcome="REVIEW"} 1005.0
sentinel_decisions_total{outcome="DECLINE"} 2.0
# HELP sentinel_degraded_decisions_total Decisions made without some inputs, by cause.
# TYPE sentinel_degraded_decisions_total counter
sentinel_degraded_decisions_total{cause="state_unavailable"} 40.0
sentinel_degraded_decisions_total{cause="state_refused"} 2.0
"""


def test_decisions_by_outcome_and_degraded_decisions_are_read_and_subtracted() -> None:
    before, after = parse_server_counts(DECISIONS_BEFORE), parse_server_counts(DECISIONS_AFTER)
    assert before.degraded == {} and after.degraded == {"state_unavailable": 40, "state_refused": 2}
    difference = after - before
    assert difference.decisions == {"APPROVE": 3, "DECLINE": 2, "REVIEW": 1_000}
    assert difference.degraded == {"state_refused": 2, "state_unavailable": 40}
    # The ceiling decides nothing: no decision figures rather than zeros.
    ceiling_count = ServerCounts({("Score", "OK"): 9}) - ServerCounts({("Score", "OK"): 1})
    assert ceiling_count.decisions is None and ceiling_count.degraded is None


def test_degraded_decisions_are_in_the_table_and_the_summary() -> None:
    server_count = {
        "server_statuses": {"OK": 1_005},
        "replayed_decisions": 0,
        "decisions_by_outcome": {"APPROVE": 3, "DECLINE": 2, "REVIEW": 1_000},
        "degraded_decisions": 42,
        "degraded_by_cause": {"state_unavailable": 42},
    }
    figures = {"tps": 100.0, "calls_per_s": 100.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0}
    record = {
        "scenario": "hot-account",
        "method": "Score",
        **figures,
        "ratio_to_ceiling": 0.5,
        "status_check": {"problems": [], "server_count": server_count},
        "ceiling": {**figures, "tps": 200.0, "status_check": {"server_count": {"server_statuses": {}}}},
    }
    _, server_row, ceiling_row = (line.split() for line in format_table([record]).splitlines())
    column = [key for key, _, _ in TABLE_COLUMNS].index("degraded_decisions")
    assert server_row[column] == "42" and ceiling_row[column] == "-"
    summary = server_count_summary(record)
    assert summary is not None
    assert "degraded decisions: 42 by cause {'state_unavailable': 42}" in summary
    assert "(99.7% REVIEW or DECLINE)" in summary


@pytest.fixture(scope="module")
def ceiling() -> CeilingServer:
    if shutil.which("h2load") is None:
        pytest.skip("h2load is not installed (Debian/Ubuntu package nghttp2-client)")
    with CeilingServer(Settings(), workers=2) as server:
        yield server


@pytest.mark.slow
def test_short_real_run_against_the_ceiling(ceiling: CeilingServer, tmp_path: Path) -> None:
    scenario = SCENARIOS["batch-100"]
    payload = build_payload(scenario, TransactionFactory(load_paysim()), "realrun", tmp_path, streams=4)
    load = LoadSettings(4, 2, duration_s=None, total_calls=200, rate=None, warmup_s=0.5)
    measured = measure(
        "h2load", ceiling.address, payload, load, tmp_path / "run", False, ceiling.counts, ceiling.pids
    )
    result = measured.result
    assert measured.problems == []
    assert result.calls_completed == 200 and result.calls_ok == 200
    assert measured.server_count is not None and measured.server_count["server_ok_calls"] == 200
    assert result.latencies_ms.size == 200 and result.percentiles_ms[99.0] > 0
    assert measured.probe_before.ok and measured.probe_after.ok
    assert measured.probe_after.decisions == 300  # 3 probe calls x 100 items


@pytest.mark.slow
def test_a_grpc_error_behind_http_200_is_caught(ceiling: CeilingServer, tmp_path: Path) -> None:
    """A body the server cannot parse fails every call with a gRPC status while HTTP says 200."""
    scenario = SCENARIOS["score"]
    payload = build_payload(scenario, TransactionFactory(load_paysim()), "broken", tmp_path, streams=2)
    payload.body_file.write_bytes(grpc_frame(b"\x0a\xff\xff\xff"))  # truncated length-delimited field
    payload.probe_messages = [b"\x0a\xff\xff\xff"]
    load = LoadSettings(concurrency=2, connections=2, duration_s=None, total_calls=20, rate=None, warmup_s=0)
    measured = measure(
        "h2load", ceiling.address, payload, load, tmp_path / "run", False, ceiling.counts, ceiling.pids
    )
    assert measured.result.calls_completed == 20
    assert measured.result.calls_ok == 0
    # h2load saw HTTP 200 for every call; the grpc-status of the trailers-only answers says otherwise.
    grpc_errors = {k: v for k, v in measured.result.errors.items() if k.startswith("grpc-status ")}
    assert sum(grpc_errors.values()) == 20
    assert not measured.probe_before.ok and measured.problems


@pytest.mark.slow
def test_streams_run_side_by_side_with_distinct_transactions(ceiling: CeilingServer, tmp_path: Path) -> None:
    scenario = SCENARIOS["stream"].with_stream_length(300)
    payload = build_payload(scenario, TransactionFactory(load_paysim()), "streams", tmp_path, streams=2)
    bodies = [b.read_bytes() for b in payload.stream_bodies]
    ids = [
        scoring_pb2.ScoreStreamRequest.FromString(raw).transaction.transaction_id
        for body in bodies
        for raw in split_grpc_frames(body)
    ]
    assert len(ids) == 600 and len(set(ids)) == 600
    load = LoadSettings(2, 2, duration_s=None, total_calls=2, rate=None, warmup_s=0.5)
    measured = measure(
        "h2load", ceiling.address, payload, load, tmp_path / "run", False, ceiling.counts, ceiling.pids
    )
    assert measured.problems == []
    assert measured.result.calls_ok == 2
    assert measured.server_count is not None and measured.server_count["server_ok_calls"] == 2
