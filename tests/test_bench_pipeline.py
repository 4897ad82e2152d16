"""``sentinel bench pipeline`` drives a worker's real scoring path (Redis state, model, rules, durable
ledger) and accounts for every transaction (small runs; no timing checks). The command runs in its own
process, as it does for its users: it configures logging for that process's life."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("method", "calls", "per_call"), [("score", 300, 1), ("batch", 12, 50)])
def test_bench_pipeline_records_every_transaction_and_reports_its_cpu(
    method: str, calls: int, per_call: int, redis_url: str, database_url: str
) -> None:
    args = ["bench", "pipeline", "--json", "--method", method, "--calls", str(calls)]
    args += ["--batch-size", str(per_call), "--redis-url", redis_url, "--database-url", database_url]
    command = [sys.executable, "-m", "sentinel.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["transactions"] == result["decisions_recorded"] == calls * per_call
    assert result["transactions_per_call"] == per_call and result["calls"] == calls
    assert result["in_flight"] == (32 if method == "score" else 512 // per_call)  # the defaults
    cpu = result["cpu_us_per_transaction"]
    assert cpu["worker"] > 0 and result["worker_cpu_us_per_call"] > 0
    assert cpu["redis"] is None and cpu["postgres"] is None  # services it did not start: not measured
    assert result["transactions_per_s"] > 0
