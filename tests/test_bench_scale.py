"""`sentinel bench scale`: the capacity model's arithmetic (from measured µs per transaction to cores and
PostgreSQL primaries), the idle share taken out of the CPU per transaction, the server counts of two
instances added up, and a brief real run through nginx (its figures are only checked for consistency:
a two-second run on a shared machine proves nothing about speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.bench import ghz
from sentinel.bench.capacity import Assumptions, capacity_model, cores_needed, model_table
from sentinel.bench.measurement import ServerCounts
from sentinel.bench.scale import marginal_us
from sentinel.cli import main
from sentinel.localservices import nginx_binary

MEASURED = {
    "workers": 90.0,
    "supervisor": 0.0,  # nothing measured: not sized
    "proxy": 12.0,
    "redis": 18.0,
    "postgres": 30.0,
    "load_generator": 60.0,  # measured, never sized: not the service
    "other": 7.0,
    "server": 0.0,
    "total": 217.0,
}


def test_cores_are_cpu_per_transaction_times_rate_over_utilization() -> None:
    assert cores_needed(100.0, 10_000, 0.5) == pytest.approx(2.0)
    assert cores_needed(30.0, 500_000, 0.6) == pytest.approx(25.0)


def test_the_model_sizes_the_service_components_for_every_target_rate() -> None:
    assumptions = Assumptions(
        utilization=0.6, target_rates=(10_000, 500_000), primary_cores=64, primary_wal_mb_s=500
    )
    model = capacity_model(MEASURED, 2_000.0, assumptions)
    assert model["us_per_transaction"] == {"workers": 90.0, "proxy": 12.0, "redis": 18.0, "postgres": 30.0}
    assert model["cores"]["10000"] == {
        "workers": 1.5,
        "proxy": 0.2,
        "redis": 0.3,
        "postgres": 0.5,
        "total": 2.5,
    }
    assert model["cores"]["500000"]["workers"] == 75.0 and model["cores"]["500000"]["total"] == 125.0
    primary = model["postgres_primary"]
    # CPU: 64 cores x 0.6 / 30 µs = 1,280,000 txn/s; WAL: 500 MB/s x 0.6 / 2,000 bytes = 150,000 txn/s
    assert primary["txn_per_s_by_cpu"] == 1_280_000 and primary["txn_per_s_by_wal"] == 150_000
    assert primary["txn_per_s"] == 150_000 and primary["bound_by"] == "wal"
    assert primary["primaries_needed"] == {"10000": 1, "500000": 4}
    assert model["assumptions"]["target_rates"] == [10_000, 500_000]


def test_without_a_wal_figure_the_primary_is_bound_by_its_cpu() -> None:
    model = capacity_model(MEASURED, None, Assumptions(utilization=0.5, target_rates=(1_000_000,)))
    primary = model["postgres_primary"]
    assert primary["txn_per_s_by_wal"] is None and primary["bound_by"] == "cpu"
    assert primary["txn_per_s"] == round(64 * 0.5 * 1e6 / 30)
    assert primary["primaries_needed"] == {"1000000": 1}


def test_the_table_has_a_row_per_component_the_total_and_the_primaries() -> None:
    assumptions = Assumptions(target_rates=(10_000, 50_000, 500_000))
    table = model_table(capacity_model(MEASURED, 2_000.0, assumptions)).splitlines()
    assert table[0] == (
        "| component | CPU µs/txn above idle | cores at 10,000 txn/s | cores at 50,000 txn/s "
        "| cores at 500,000 txn/s |"
    )
    assert table[2] == "| server workers | 90.0 | 1.5 | 7.5 | 75.0 |"
    assert table[-2] == "| **total** (at 60% utilization) | 150.0 | 2.5 | 12.5 | 125 |"
    assert table[-1] == (
        "| PostgreSQL primaries of 64 cores (one carries 150,000 txn/s, bound by WAL) |  | 1 | 1 | 4 |"
    )


@pytest.mark.parametrize(
    "assumptions",
    [{"utilization": 0.0}, {"utilization": 1.5}, {"target_rates": ()}, {"primary_cores": 0}],
)
def test_impossible_assumptions_are_refused(assumptions: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Assumptions(**assumptions)  # type: ignore[arg-type]


def test_idle_cpu_is_not_counted_per_transaction() -> None:
    # 1,000 transactions in 2 s; workers idle at 0.05 cores = 0.1 s = 100 µs per transaction
    marginal = marginal_us({"workers": 150.0, "redis": 10.0}, {"workers": 0.05, "redis": 0.01}, 2.0, 1_000)
    assert marginal == pytest.approx({"workers": 50.0, "redis": 0.0})  # never below zero
    assert marginal_us({"workers": 150.0}, {"workers": 0.05}, 2.0, 0) == {"workers": 150.0}


def test_two_instances_counts_add_up() -> None:
    one = ServerCounts({("Score", "OK"): 3}, 1, {"stage:ledger": (0.5, 2.0)}, {"APPROVE": 3}, {})
    two = ServerCounts(
        {("Score", "OK"): 4, ("Score", "CANCELLED"): 1}, 0, {"stage:ledger": (0.25, 1.0)}, {}, {}
    )
    both = one + two
    assert both.calls == {("Score", "OK"): 7, ("Score", "CANCELLED"): 1}
    assert both.replayed_decisions == 1 and both.histograms == {"stage:ledger": (0.75, 3.0)}
    assert both.decisions == {"APPROVE": 3} and both.degraded == {}
    assert (one + ServerCounts({})).decisions is None  # a server that makes no decisions (the ceiling)


@pytest.mark.slow
@pytest.mark.skipif(not ghz.ghz_available(), reason="ghz is not installed (make bench-tools)")
@pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (deploy/ensure-system-packages.sh)"
)
def test_a_brief_run_through_nginx_measures_every_component(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    # 40 calls/s: at 5, nginx used 10-20 ms of CPU in the 2 s measured, and /proc counts in 10 ms ticks
    # (three runs of nine measured it as 0)
    arguments = ["bench", "scale", "--proxy", "--scenario", "batch-100", "--batch-rate", "40"]
    arguments += ["--duration", "2", "--warmup", "0.5", "--idle", "0.5", "--json", "--plot-dir", ""]
    arguments += ["--results", str(tmp_path / "RESULTS.md"), "--model-file", str(tmp_path / "model.json")]
    code = main(arguments)
    document = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert json.loads((tmp_path / "model.json").read_text()) == document
    (record,) = document["records"]
    # a loaded machine may fall a little short of the offered rate: reported, and the only problem allowed
    problems = record["status_check"]["problems"]
    assert code == (1 if problems else 0)
    assert all(problem.startswith("saturated: ") for problem in problems), problems
    assert record["tool"] == "ghz" and record["errors"] == 0 and record["calls_ok"] > 0
    assert record["status_check"]["server_count"]["server_ok_calls"] == record["calls_ok"]
    assert "2 instance(s) x 1 worker(s), behind nginx" in record["layout"]
    measured = record["cpu"]["us_per_transaction"]
    assert all(measured[part] > 0 for part in ("workers", "proxy", "redis", "postgres")), measured
    assert record["wal_bytes_per_transaction"] > 0
    model = record["model"]
    assert set(model["cores"]) == {"10000", "50000", "500000"}
    assert model["postgres_primary"]["primaries_needed"]["500000"] >= 1
    results = (tmp_path / "RESULTS.md").read_text()
    assert "`sentinel bench scale`" in results and "| server workers |" in results
