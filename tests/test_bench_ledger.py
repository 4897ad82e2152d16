"""``sentinel bench ledger`` runs end to end on a real database and accounts for every record (small
run; no timing checks)."""

from __future__ import annotations

import json

import pytest

from sentinel.cli import main


def test_bench_ledger_command_reports_every_figure(
    database_url: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    args = [
        "bench",
        "ledger",
        "--json",
        "--database-url",
        database_url,
        "--records",
        "3000",
        "--offered-rate",
        "2000",
        "--latency-seconds",
        "0.5",
        "--batch-max-records",
        "500",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    throughput = result["throughput"]
    assert throughput["records"] == throughput["stored"] > 2900  # synthetic amounts can round to 0.00
    assert throughput["transactions"] >= throughput["stored"] / 500
    assert result["latency_records"] == 1000 and result["achieved_rate_per_s"] > 0
    assert result["rows_per_s"] > 0
    assert 0 < result["commit_wait_p50_ms"] <= result["commit_wait_p99_ms"] <= result["commit_wait_max_ms"]
    assert result["balances_sum_to_zero"] is True
    assert result["spooled_records"] == {"throughput": 0, "latency": 0}
    assert result["cpu_us_per_record"]["writer_process"] > 0
