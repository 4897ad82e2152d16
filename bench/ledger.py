"""``sentinel bench ledger``: group-commit throughput and commit wait of the Postgres ledger.

Two phases against one writer (durable acks, ``synchronous_commit=on``, unique idempotency keys,
balances updated in the same transactions, the hash chain computed):

1. Commit wait at an offered load: submits of ``--latency-submit-size`` records (1: each decision
   alone, as a Score call without micro-batching would; the server's micro-batches are larger) issued
   on a fixed schedule of ``--offered-rate`` records per second for ``--latency-seconds``, open loop (a
   slow commit does not slow the schedule down); the wait runs from a submit's scheduled time to its ack.
2. Throughput: ``--submitters`` concurrent tasks submit pre-built records ``--submit-size`` at a
   time (as ScoreBatch calls would) until ``--records`` are acknowledged; ``rows_per_s`` is records
   over the wall time from the first submit to the last acknowledgement (spooled ones included once
   replayed), and ``cpu_us_per_record`` what the writer process and its Postgres backends spent.

Records are synthetic, seeded and PaySim-like (mostly fresh origin accounts, recurring merchants,
97 % approved), built as real sentinel.v1 Transaction/Decision messages, so the command needs no data
file. Without ``--database-url`` it starts a private PostgreSQL (sentinel.localservices).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import uvloop

from sentinel.bench.cpu import process_times
from sentinel.config import Settings
from sentinel.ledger import LedgerRecord, LedgerWriter, record_from_messages
from sentinel.localservices import LocalPostgres
from sentinel.logs import configure_logging
from sentinel.v1 import decision_pb2, transaction_pb2

_TYPES = (
    transaction_pb2.TRANSACTION_TYPE_PAYMENT,
    transaction_pb2.TRANSACTION_TYPE_TRANSFER,
    transaction_pb2.TRANSACTION_TYPE_CASH_OUT,
    transaction_pb2.TRANSACTION_TYPE_CASH_IN,
)


def synthetic_records(count: int, prefix: str, seed: int) -> list[LedgerRecord]:
    """``count`` seeded PaySim-like records with keys ``<prefix>-<n>``."""
    rng = random.Random(seed)
    merchants = [f"M{rng.randrange(10**9, 10**10)}" for _ in range(20_000)]
    decided_at = datetime.now(UTC)
    records = []
    for number in range(count):
        transaction = transaction_pb2.Transaction(
            transaction_id=f"{prefix}-{number}",
            account_id=f"C{rng.randrange(10**9, 10**10)}",
            counterparty_id=rng.choice(merchants),
            type=rng.choice(_TYPES),
            amount=transaction_pb2.Money(amount=f"{rng.lognormvariate(7, 1.5):.2f}", currency="EUR"),
            channel=transaction_pb2.CHANNEL_MOBILE_APP,
            device_id=f"device-{rng.randrange(10**6)}",
        )
        transaction.event_time.FromDatetime(decided_at)
        draw = rng.random()
        outcome = (
            decision_pb2.OUTCOME_APPROVE
            if draw < 0.97
            else decision_pb2.OUTCOME_REVIEW
            if draw < 0.99
            else decision_pb2.OUTCOME_DECLINE
        )
        decision = decision_pb2.Decision(
            transaction_id=transaction.transaction_id,
            outcome=outcome,
            risk_score=rng.random(),
            model_score=rng.random(),
            model_version="iforest-bench",
            idempotency_key=transaction.transaction_id,
            reasons=[decision_pb2.Reason(code="MODEL_SCORE_LOW", description="model score below 0.5")],
        )
        decision.decided_at.FromDatetime(decided_at)
        if float(transaction.amount.amount) > 0:
            records.append(record_from_messages(transaction, decision))
    return records


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backends_cpu_s(pids: list[int]) -> float | None:
    """CPU seconds of the Postgres backends (from /proc); None when Postgres runs elsewhere."""
    times = process_times()
    found = [times[pid].cpu_s for pid in pids if pid in times]
    return sum(found) if found else None


async def _writer_backends(database_url: str, writer_name: str) -> list[int]:
    """Process ids of the writer's lane connections, when Postgres runs on this host."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1",
            f"sentinel-ledger-{writer_name}-%",
        )
    finally:
        await connection.close()
    return [row[0] for row in rows]


async def _throughput(
    writer: LedgerWriter, records: list[LedgerRecord], submit_size: int, submitters: int
) -> float:
    chunks = iter([records[i : i + submit_size] for i in range(0, len(records), submit_size)])

    async def submitter() -> None:
        for chunk in chunks:
            await writer.submit(chunk)

    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(submitters)))
    await writer.wait_until_replayed()  # anything Postgres was too slow for counts once it is in
    return time.perf_counter() - start


async def _commit_wait(
    writer: LedgerWriter, records: list[LedgerRecord], rate: float, submit_size: int
) -> tuple[np.ndarray, float]:
    """Open-loop submits of ``submit_size`` records, ``rate`` records/s in all; returns each submit's
    wait (ms, from its scheduled time to its ack) and the achieved rate. perf_counter, not the loop's
    clock: uvloop's has millisecond resolution. Only the submits in flight are kept (as a server keeps
    only its requests in flight): holding every finished task would make the cyclic GC walk tens of
    thousands of them, and a final gather over all of them would stall the loop the last acks wait on."""
    submits = len(records) // submit_size
    submit_rate = rate / submit_size
    waits = np.zeros(submits)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(index: int, scheduled: float) -> None:
        await writer.submit(records[index * submit_size : (index + 1) * submit_size])
        waits[index] = (time.perf_counter() - scheduled) * 1000

    start = time.perf_counter()
    issued = 0
    while issued < submits:
        due = min(submits, int((time.perf_counter() - start) * submit_rate) + 1)
        while issued < due:
            task = asyncio.create_task(one(issued, start + issued / submit_rate))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            issued += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*in_flight)
    return waits, submits * submit_size / (time.perf_counter() - start)


async def _run(args: argparse.Namespace, database_url: str, data_dir: Path) -> dict[str, Any]:
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        log_level="warning",
        ledger_writer_connections=args.connections,
        ledger_batch_max_records=args.batch_max_records,
        ledger_batch_max_wait_ms=args.batch_max_wait_ms,
    )
    run_id = f"bench{int(time.time())}"
    throughput_records = synthetic_records(args.records, f"{run_id}-t", seed=1)
    latency_records = synthetic_records(int(args.offered_rate * args.latency_seconds), f"{run_id}-l", seed=2)
    # Hundreds of thousands of pre-built records would make every full collection of the cyclic GC
    # walk them (pauses of 100+ ms that a server, holding only in-flight requests, does not have).
    gc.collect()
    gc.freeze()
    writer_name = f"bench-{os.getpid()}"
    writer = LedgerWriter(settings, name=writer_name)
    await writer.start()
    try:
        warm_up = synthetic_records(4 * args.batch_max_records, f"{run_id}-w", seed=3)
        await asyncio.gather(*(writer.submit(warm_up[i : i + 100]) for i in range(0, len(warm_up), 100)))
        # Latency first: after the throughput burst, autovacuum and a checkpoint would still be busy
        # with its rows, which is that burst's cost, not the offered load's.
        waits, achieved = await _commit_wait(
            writer, latency_records, args.offered_rate, args.latency_submit_size
        )
        spooled_in_latency = writer.records_spooled
        backends = await _writer_backends(database_url, writer_name)
        cpu_before = _process_cpu_s(), _backends_cpu_s(backends)
        elapsed = await _throughput(writer, throughput_records, args.submit_size, args.submitters)
        cpu_after = _process_cpu_s(), _backends_cpu_s(backends)
        spooled_in_throughput = writer.records_spooled - spooled_in_latency
    finally:
        await writer.close()
    connection = await asyncpg.connect(database_url)
    try:
        stored = await connection.fetchval(
            "SELECT count(*) FROM ledger.decisions WHERE idempotency_key LIKE $1", f"{run_id}-t-%"
        )
        groups = await connection.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT chain_id, recorded_at FROM ledger.decisions "
            "WHERE idempotency_key LIKE $1) AS g",
            f"{run_id}-t-%",
        )
        balance_total = await connection.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger.balances")
        version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    return {
        "rows_per_s": round(len(throughput_records) / elapsed),
        "commit_wait_p50_ms": round(float(np.percentile(waits, 50)), 3),
        "commit_wait_p99_ms": round(float(np.percentile(waits, 99)), 3),
        "commit_wait_max_ms": round(float(waits.max()), 3),
        "offered_rate_per_s": args.offered_rate,
        "latency_submit_size": args.latency_submit_size,
        "achieved_rate_per_s": round(achieved),
        "throughput": {
            "records": len(throughput_records),
            "seconds": round(elapsed, 3),
            "stored": stored,
            "transactions": groups,
            "mean_records_per_transaction": round(stored / max(groups, 1), 1),
            "submit_size": args.submit_size,
            "submitters": args.submitters,
        },
        "cpu_us_per_record": {
            "writer_process": round((cpu_after[0] - cpu_before[0]) / len(throughput_records) * 1e6, 1),
            "postgres_backends": None
            if cpu_before[1] is None or cpu_after[1] is None
            else round((cpu_after[1] - cpu_before[1]) / len(throughput_records) * 1e6, 1),
        },
        "latency_records": len(latency_records),
        "spooled_records": {"throughput": spooled_in_throughput, "latency": spooled_in_latency},
        "balances_sum_to_zero": balance_total == 0,
        "ack": "durable",
        "synchronous_commit": "on",
        "writer": {
            "connections": args.connections,
            "batch_max_records": args.batch_max_records,
            "batch_max_wait_ms": args.batch_max_wait_ms,
        },
        "postgres": version,
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other processes share these cores
    }


def _handle(args: argparse.Namespace) -> int:
    configure_logging("error", "json")  # stdout carries the result; spooling shows in it too
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    os.chmod(work, 0o755)  # the postgres system user must reach the private cluster's directory
    postgres = None
    try:
        database_url = args.database_url
        if database_url is None:
            postgres = LocalPostgres(work / "postgres").start()
            database_url = postgres.dsn("postgres")
        result = uvloop.run(_run(args, database_url, work / "data"))  # the server's event loop too
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        throughput = result["throughput"]
        print(
            f"rows_per_s {result['rows_per_s']:,} (durable group commit, {throughput['records']:,} "
            f"records, {throughput['mean_records_per_transaction']} per transaction)"
        )
        print(
            f"commit wait at {args.offered_rate:,.0f}/s offered: p50 {result['commit_wait_p50_ms']} ms, "
            f"p99 {result['commit_wait_p99_ms']} ms, max {result['commit_wait_max_ms']} ms"
        )
    return 0


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench ledger``."""
    parser = bench_subparsers.add_parser(
        "ledger",
        help="rows/s of durable group commit and commit wait at an offered load",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", help="an existing database (default: start a private PostgreSQL)")
    parser.add_argument("--records", type=int, default=300_000, help="throughput phase records (300,000)")
    parser.add_argument("--submit-size", type=int, default=100, help="records per submit() (100)")
    parser.add_argument("--submitters", type=int, default=64, help="concurrent submitting tasks (64)")
    parser.add_argument("--offered-rate", type=float, default=10_000, help="latency phase rate/s (10,000)")
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="latency phase length (5 s)")
    parser.add_argument(
        "--latency-submit-size",
        type=int,
        default=1,
        help="records per submit in the latency phase: 1 = one Score call each (default); "
        "more = the server's micro-batches",
    )
    defaults = Settings.model_fields  # the writer's own defaults, so the bench measures what ships
    parser.add_argument(
        "--connections",
        type=int,
        default=defaults["ledger_writer_connections"].default,
        help="writer connections (ledger_writer_connections)",
    )
    parser.add_argument(
        "--batch-max-records",
        type=int,
        default=defaults["ledger_batch_max_records"].default,
        help="group size bound (ledger_batch_max_records)",
    )
    parser.add_argument(
        "--batch-max-wait-ms",
        type=float,
        default=defaults["ledger_batch_max_wait_ms"].default,
        help="group time bound (ledger_batch_max_wait_ms)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_handle)
