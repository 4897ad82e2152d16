"""Which scenarios `sentinel bench grpc` runs and with which tool: hot-account and overload need grpcio;
a brief real run of overload produces consistent figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.bench import grpc_bench
from sentinel.bench.grpc_bench import BenchError, choose_tool
from sentinel.bench.scenarios import ALL_SCENARIOS, SCENARIOS
from sentinel.cli import main

HOT = [SCENARIOS["hot-account"]]
OVERLOAD = [SCENARIOS["overload"]]
ORIGINAL = [SCENARIOS[name] for name in ALL_SCENARIOS]


@pytest.fixture
def both_tools_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_bench.ghz, "ghz_available", lambda: True)
    monkeypatch.setattr(grpc_bench.h2load, "h2load_available", lambda: True)


def test_all_keeps_the_original_four_scenarios() -> None:
    assert ALL_SCENARIOS == ("score", "batch-100", "batch-1000", "stream")
    assert set(SCENARIOS) == {*ALL_SCENARIOS, "hot-account", "overload"}
    hot = SCENARIOS["hot-account"]
    assert (hot.method, hot.transactions_per_call, hot.default_concurrency) == ("Score", 1, 64)
    assert hot.accounts == 1 and hot.live_event_times
    assert not any(scenario.live_event_times or scenario.accounts for scenario in ORIGINAL)
    assert not any(scenario.overload_factor for scenario in ORIGINAL)
    overload = SCENARIOS["overload"]
    assert (overload.method, overload.transactions_per_call) == ("ScoreBatch", 100)
    assert overload.overload_factor == 3


@pytest.mark.usefixtures("both_tools_on_path")
def test_auto_runs_hot_account_with_grpcio_and_the_others_with_ghz() -> None:
    assert choose_tool("auto", HOT) == "grpcio"
    assert choose_tool("grpcio", HOT) == "grpcio"
    assert choose_tool("auto", ORIGINAL) == "ghz"
    assert choose_tool("h2load", ORIGINAL) == "h2load"


def test_hot_account_needs_no_other_tool_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_bench.ghz, "ghz_available", lambda: False)
    monkeypatch.setattr(grpc_bench.h2load, "h2load_available", lambda: False)
    assert choose_tool("auto", HOT) == "grpcio"
    with pytest.raises(BenchError, match="neither ghz nor h2load"):
        choose_tool("auto", ORIGINAL)


@pytest.mark.usefixtures("both_tools_on_path")
@pytest.mark.parametrize(("tool", "reason"), [("h2load", "idempotent replay"), ("ghz", "would repeat")])
def test_tools_replaying_fixed_data_are_refused_for_hot_account(tool: str, reason: str) -> None:
    with pytest.raises(BenchError, match=f"hot-account needs --tool grpcio .*{reason}"):
        choose_tool(tool, HOT)


def test_the_command_refuses_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "grpc", "--scenario", "hot-account", "--tool", "h2load"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("sentinel bench grpc: --scenario hot-account needs --tool grpcio")


@pytest.mark.usefixtures("both_tools_on_path")
def test_overload_runs_with_grpcio_only() -> None:
    assert choose_tool("auto", OVERLOAD) == "grpcio"
    for tool in ("ghz", "h2load"):
        with pytest.raises(BenchError, match=r"overload needs --tool grpcio .*ids that only the grpcio"):
            choose_tool(tool, OVERLOAD)


@pytest.mark.slow
def test_a_brief_overload_run_reports_consistent_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """Capacity, then 3 times it offered: every call is accepted or shed, the driver's and the server's
    counts agree, every accepted transaction is in the ledger, and the workers' memory is reported (no
    timing is asserted: a one-second run on a shared machine proves nothing about speed)."""
    arguments = ["bench", "grpc", "--scenario", "overload", "--duration", "1", "--warmup", "0.5", "--json"]
    arguments += ["--results", str(tmp_path / "RESULTS.md"), "--plot-dir", str(tmp_path)]
    assert main(arguments) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert record["scenario"] == "overload" and record["tool"] == "grpcio"
    capacity = record["capacity"]
    assert capacity["calls_per_s"] > 0 and capacity["p99_ms"] > 0
    assert record["rate_limit_calls_per_s"] == pytest.approx(3 * capacity["calls_per_s"], abs=0.1)
    assert record["calls"] == record["calls_ok"] + record["shed_calls"] and record["errors"] == 0
    assert record["status_codes"].get("RESOURCE_EXHAUSTED", 0) == record["shed_calls"]
    assert record["shed_by_server"]["calls"] == record["shed_calls"]
    assert record["shed_by_server"]["transactions"] == 100 * record["shed_calls"]
    assert record["accepted_p99_ms"] == record["p99_ms"] and record["capacity_p99_ms"] == capacity["p99_ms"]
    ledger = record["ledger_check"]
    assert ledger == {
        "accepted_transactions": 100 * record["calls_ok"],
        "recorded": 100 * record["calls_ok"],
        "lost": 0,
    }
    rss = record["worker_rss_peak_mb"]
    assert 0 < rss["after_capacity_run"] <= rss["after_overload_run"]
    assert record["status_check"]["problems"] == []
    assert "  - capacity " in (tmp_path / "RESULTS.md").read_text()
