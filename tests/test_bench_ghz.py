"""The ghz wrapper: reading a real ghz JSON report, the command line, the call data and the pinned ghz
that deploy/install-go-tools.sh (`make bench-tools`, `make test`) builds into the repository's .tools/."""

from __future__ import annotations

import copy
import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest
from server_helpers import go_tools

from sentinel.bench import ghz
from sentinel.bench.ceiling import CeilingServer
from sentinel.bench.ghz import GhzError, ghz_command, ghz_data, ghz_executable, parse_ghz_report
from sentinel.bench.grpc_bench import build_payload, choose_tool, measure
from sentinel.bench.measurement import LoadSettings
from sentinel.bench.payloads import TransactionFactory, load_paysim
from sentinel.bench.scenarios import SCENARIOS
from sentinel.config import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
INSTALL_SCRIPT = ROOT / "deploy" / "install-go-tools.sh"


@pytest.fixture(scope="module")
def ghz_report() -> dict:
    return json.loads((FIXTURES / "ghz-report-unary.json").read_text())


def test_real_report_counts_and_rate(ghz_report: dict) -> None:
    result = parse_ghz_report(ghz_report)
    assert result.tool == "ghz"
    assert result.calls_completed == 2_000
    assert result.calls_ok == 2_000
    assert result.error_count == 0
    assert result.status_codes == {"OK": 2_000}
    assert result.duration_s == pytest.approx(0.562767482)  # "total" is in nanoseconds
    assert result.calls_per_s == pytest.approx(ghz_report["rps"], rel=1e-9)


def test_real_report_latencies_are_converted_from_nanoseconds(ghz_report: dict) -> None:
    result = parse_ghz_report(ghz_report)
    assert result.percentiles_ms[50.0] == pytest.approx(4.768328)
    assert result.percentiles_ms[99.0] == pytest.approx(11.175585)
    assert set(result.percentiles_ms) == {50.0, 90.0, 95.0, 99.0}
    assert result.latencies_ms.size == 2_000
    assert result.latencies_ms.min() == pytest.approx(ghz_report["fastest"] / 1e6)
    assert result.latencies_ms.max() == pytest.approx(ghz_report["slowest"] / 1e6)


def test_failed_calls_count_as_errors(ghz_report: dict) -> None:
    report = copy.deepcopy(ghz_report)
    report["statusCodeDistribution"] = {"OK": 1_990, "Unavailable": 10}
    report["errorDistribution"] = {"rpc error: code = Unavailable desc = ledger down": 10}
    for detail in report["details"][:10]:
        detail["status"], detail["error"] = "Unavailable", "ledger down"
    result = parse_ghz_report(report)
    assert result.calls_ok == 1_990
    assert result.errors == {"rpc error: code = Unavailable desc = ledger down": 10}
    assert result.latencies_ms.size == 1_990  # only successful calls, as ghz's own percentiles


def test_report_without_latencies_when_everything_failed(ghz_report: dict) -> None:
    report = copy.deepcopy(ghz_report)
    report.update(
        statusCodeDistribution={"Unimplemented": 2_000},
        errorDistribution={},
        latencyDistribution=None,
        details=[],
    )
    result = parse_ghz_report(report)
    assert result.calls_ok == 0
    assert result.errors == {"grpc-status Unimplemented": 2_000}
    assert result.percentiles_ms == {}


def test_not_a_report() -> None:
    with pytest.raises(GhzError):
        parse_ghz_report({"hello": "world"})


def test_command_uses_reflection_unless_given_the_proto(tmp_path: Path) -> None:
    load = LoadSettings(64, 4, duration_s=10, total_calls=None, rate=5_000, warmup_s=3)
    command = ghz_command(
        "127.0.0.1:50051", "sentinel.v1.ScoringService.Score", tmp_path / "d.json", load, tmp_path / "r.json"
    )
    assert command[0] == (ghz_executable() or "ghz") and command[-1] == "127.0.0.1:50051"
    assert "--proto" not in command
    pairs = dict(itertools.pairwise(command[1:-1]))
    assert pairs["--call"] == "sentinel.v1.ScoringService.Score"
    assert pairs["--concurrency"] == "64" and pairs["--connections"] == "4"
    assert pairs["--duration"] == "10000ms" and pairs["--rps"] == "5000"
    assert pairs["--duration-stop"] == "wait" and pairs["--format"] == "json"
    with_proto = ghz_command(
        "h:1",
        "c",
        tmp_path / "d.json",
        LoadSettings(8, 2, None, 5_000, None, 0),
        None,
        (Path("s.proto"), Path("root")),
    )
    assert "--total" in with_proto and "5000" in with_proto
    assert with_proto[with_proto.index("--proto") + 1] == "s.proto"
    assert with_proto[with_proto.index("--import-paths") + 1] == "root"


def test_call_data_makes_every_transaction_id_unique_per_call() -> None:
    factory = TransactionFactory(load_paysim())
    (batch,) = SCENARIOS["batch-100"].request_messages(factory, "g")
    (data,) = ghz_data([batch])
    ids = [t["transaction_id"] for t in data["transactions"]]
    assert len(set(ids)) == 100
    assert all(i.endswith("-r{{.RequestNumber}}") for i in ids)
    assert data["transactions"][0]["amount"]["currency"]


def pinned_ghz_version() -> str:
    """The ghz version deploy/install-go-tools.sh pins (the one place it is written)."""
    (version,) = re.findall(r"github\.com/bojand/ghz (v\S+) ", INSTALL_SCRIPT.read_text())
    return version


@pytest.fixture(scope="module")
def pinned_ghz() -> Path:
    """The pinned ghz in .tools/, installed as `make test` does (nothing to do when it is there)."""
    return go_tools() / "ghz"


def test_the_installed_pinned_ghz_is_the_one_used(pinned_ghz: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = subprocess.run(
        ["go", "version", "-m", str(pinned_ghz)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(rf"^\s*mod\s+github\.com/bojand/ghz\s+{re.escape(pinned_ghz_version())}\s", built, re.M)
    monkeypatch.setenv("PATH", "")  # found in .tools/, not on PATH
    assert ghz_executable() == str(pinned_ghz)
    assert ghz.ghz_available()
    assert choose_tool("auto", [SCENARIOS["score"]]) == "ghz"
    load = LoadSettings(8, 2, duration_s=None, total_calls=10, rate=None, warmup_s=0)
    assert ghz_command("h:1", "c", Path("d.json"), load, None)[0] == str(pinned_ghz)


@pytest.mark.slow
def test_short_real_run_against_the_ceiling(pinned_ghz: Path, tmp_path: Path) -> None:
    """The pinned ghz with the shipped .proto, measured as `sentinel bench grpc` does: every call OK, also
    as the server counts them."""
    scenario = SCENARIOS["score"]
    payload = build_payload(scenario, TransactionFactory(load_paysim()), "ghzrun", tmp_path, streams=2)
    load = LoadSettings(4, 2, duration_s=None, total_calls=200, rate=None, warmup_s=0.5)
    with CeilingServer(Settings(), workers=2) as ceiling:
        measured = measure(
            "ghz", ceiling.address, payload, load, tmp_path / "run", True, ceiling.counts, ceiling.pids
        )
    result = measured.result
    assert measured.problems == []
    assert result.tool == "ghz"
    assert result.calls_completed == 200 and result.calls_ok == 200 and result.error_count == 0
    assert measured.server_count is not None and measured.server_count["server_ok_calls"] == 200
    assert result.latencies_ms.size == 200 and result.percentiles_ms[99.0] > 0
