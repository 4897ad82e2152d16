"""``sentinel bench grpc --scenario overload``: offer several times what the server can take.

1. **capacity**: after the warm-up, the scenario's closed loop (ScoreBatch of 100, 16 calls in flight,
   as ``batch-100``): its accepted calls per second are the capacity, its p99 what callers see from a
   server offered no more than it can take (the reference for the next run).
2. **overload**: ``overload_factor`` (3) times that rate, open loop: the grpcio driver paces the calls, with
   enough callers that the pace never waits for answers. The workers shed what would pass their
   in-flight bound (RESOURCE_EXHAUSTED, counted apart from failures).

Reported beside the usual figures of the overload run: the accepted calls' p99 against the capacity
run's, the calls and transactions shed (the driver's count and the server's), the workers' peak
resident memory after each run (``VmHWM``: bounded memory shows as no growth under overload), and the
ledger check: every transaction of every accepted call is looked up by its id in the ledger (spooled
decisions are waited for), so an accepted decision that was lost shows as ``lost``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from sentinel.bench.grpc_bench import Payload, build_record, measure, server_target
from sentinel.bench.measurement import LoadSettings
from sentinel.bench.report import result_fields
from sentinel.bench.server_metrics import scrape_sample, scrape_server_counts
from sentinel.config import Settings
from sentinel.serverprocess import ServerProcess

SHED_STATUS = "RESOURCE_EXHAUSTED"
LEDGER_WAIT_S = 120.0  # decisions spooled while Postgres lagged are replayed within this
MAX_OVERLOAD_CONCURRENCY = 1024


def overload_concurrency(rate: float, p99_ms: float | None, base: int) -> int:
    """Callers enough for the driver to keep ``rate`` calls per second going even if every call took
    twice the capacity run's p99 (an accepted call takes about that long, a shed one far less)."""
    held_s = 2 * max(p99_ms or 0.0, 50.0) / 1000
    return min(MAX_OVERLOAD_CONCURRENCY, max(base, math.ceil(rate * held_s)))


def worker_rss_peak_mb(pids: set[int]) -> float | None:
    """The largest peak resident set (VmHWM) among the worker processes, in MB (None: none known)."""
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return round(max(peaks), 1) if peaks else None


async def _recorded(database_url: str, ids: list[str]) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        found = await connection.fetchval(
            "SELECT count(DISTINCT transaction_id) FROM ledger.decisions "
            "WHERE transaction_id = ANY($1::text[])",
            ids,
        )
    finally:
        await connection.close()
    return int(found)


def ledger_check(database_url: str | None, accepted_ids: list[str]) -> dict[str, Any]:
    """How many of the accepted transactions the ledger holds (spooled ones waited for, LEDGER_WAIT_S)."""
    if database_url is None:
        return {"accepted_transactions": len(accepted_ids), "recorded": None, "lost": None}
    deadline = time.monotonic() + LEDGER_WAIT_S
    while True:
        recorded = asyncio.run(_recorded(database_url, accepted_ids))
        if recorded == len(accepted_ids) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {
        "accepted_transactions": len(accepted_ids),
        "recorded": recorded,
        "lost": len(accepted_ids) - recorded,
    }


def _private_database_url(server: ServerProcess) -> str | None:
    """The ledger database of a ``sentinel dev serve`` (its private PostgreSQL, as it logged it)."""
    for event in server.log_events():
        if event.get("event") == "private_postgres_started":
            return str(event["url"])
    return None


def _shed(metrics_url: str | None) -> tuple[float, float] | None:
    if metrics_url is None:
        return None
    calls = scrape_sample(metrics_url, "sentinel_shed_calls_total")
    return calls, scrape_sample(metrics_url, "sentinel_shed_transactions_total")


def run_overload(
    args: argparse.Namespace,
    payload: Payload,
    load: LoadSettings,
    workers: int,
    workdir: Path,
    settings: Settings,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Both runs against a fresh ``sentinel dev serve`` (or ``--target``); the record and latency series."""
    scenario = payload.scenario
    assert scenario.overload_factor is not None
    database_url = settings.database_url
    target, address, metrics_url, label = server_target(args, scenario, workers, workdir, load, settings)
    counts = partial(scrape_server_counts, metrics_url) if metrics_url else None
    with target:
        server_pids = target.pids if isinstance(target, ServerProcess) else set()
        worker_pids = target.worker_pids() if isinstance(target, ServerProcess) else set()
        if isinstance(target, ServerProcess):
            database_url = _private_database_url(target)
        run = partial(
            measure, "grpcio", address, payload, use_proto=False, counts=counts, server_pids=server_pids
        )
        capacity = run(load, workdir / f"{scenario.name}-capacity", expected_statuses=(SHED_STATUS,))
        rss_after_capacity = worker_rss_peak_mb(worker_pids)
        capacity_rate = capacity.result.calls_per_s
        offered = replace(
            load,
            concurrency=overload_concurrency(
                scenario.overload_factor * capacity_rate,
                capacity.result.percentiles_ms.get(99.0),
                load.concurrency,
            ),
            rate=round(scenario.overload_factor * capacity_rate, 1),
            warmup_s=0.0,
            total_calls=None
            if load.total_calls is None
            else math.ceil(load.total_calls * scenario.overload_factor),
        )
        shed_before = _shed(metrics_url)
        overloaded = run(offered, workdir / f"{scenario.name}-offered", expected_statuses=(SHED_STATUS,))
        shed_after = _shed(metrics_url)
        rss_after = worker_rss_peak_mb(worker_pids)
        ledger = ledger_check(database_url, overloaded.result.accepted_ids)
    record = build_record(scenario, "grpcio", offered, workers, label, overloaded, None)
    capacity_fields = result_fields(capacity.result, scenario.transactions_per_call)
    shed = overloaded.expected_statuses.get(SHED_STATUS, 0)
    # calls sent per second of sending (the run's result also counts the answers still due at its end)
    sending_s = offered.duration_s or overloaded.result.duration_s
    offered_rate = round(overloaded.result.calls_completed / sending_s, 1)
    record.update(
        {
            "overload_factor": scenario.overload_factor,
            "capacity": {
                **{key: capacity_fields[key] for key in ("calls_per_s", "tps", "p50_ms", "p99_ms")},
                "shed_calls": capacity.expected_statuses.get(SHED_STATUS, 0),
            },
            "offered_calls_per_s": offered_rate,
            "offered_over_capacity": _ratio(offered_rate, capacity_fields["calls_per_s"]),
            "accepted_p99_ms": record["p99_ms"],
            "capacity_p99_ms": capacity_fields["p99_ms"],
            "accepted_p99_over_capacity_p99": _ratio(record["p99_ms"], capacity_fields["p99_ms"]),
            "shed_calls": shed,
            "shed_share": _ratio(shed, overloaded.result.calls_completed),
            "shed_by_server": _difference(shed_before, shed_after),
            "worker_rss_peak_mb": {"after_capacity_run": rss_after_capacity, "after_overload_run": rss_after},
            "ledger_check": ledger,
            # the bench's settings: the server's own when the bench started it (same environment)
            "max_in_flight_transactions": settings.max_in_flight_transactions,
            "max_in_flight_bytes": settings.max_in_flight_bytes,
        }
    )
    if ledger["lost"]:
        record["status_check"]["problems"].append(
            f"{ledger['lost']} accepted decisions are not in the ledger"
        )
    series = {
        "capacity run": capacity.result.latencies_ms,
        "accepted under overload": overloaded.result.latencies_ms,
    }
    return record, series


def _ratio(part: float | None, whole: float | None) -> float | None:
    return round(part / whole, 3) if part is not None and whole else None


def _difference(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> dict[str, int] | None:
    """The server's count of shed calls and transactions between two readings."""
    if before is None or after is None:
        return None
    return {"calls": int(after[0] - before[0]), "transactions": int(after[1] - before[1])}
