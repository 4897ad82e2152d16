"""Which scenarios `sentinel bench grpc` runs and with which tool: hot-account needs grpcio."""

from __future__ import annotations

import pytest

from sentinel.bench import grpc_bench
from sentinel.bench.grpc_bench import BenchError, choose_tool
from sentinel.bench.scenarios import ALL_SCENARIOS, SCENARIOS
from sentinel.cli import main

HOT = [SCENARIOS["hot-account"]]
ORIGINAL = [SCENARIOS[name] for name in ALL_SCENARIOS]


@pytest.fixture
def both_tools_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_bench.ghz, "ghz_available", lambda: True)
    monkeypatch.setattr(grpc_bench.h2load, "h2load_available", lambda: True)


def test_all_keeps_the_original_four_scenarios() -> None:
    assert ALL_SCENARIOS == ("score", "batch-100", "batch-1000", "stream")
    assert set(SCENARIOS) == {*ALL_SCENARIOS, "hot-account"}
    hot = SCENARIOS["hot-account"]
    assert (hot.method, hot.transactions_per_call, hot.default_concurrency) == ("Score", 1, 64)
    assert hot.accounts == 1 and hot.live_event_times
    assert not any(scenario.live_event_times or scenario.accounts for scenario in ORIGINAL)


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
