"""``sentinel bench pipeline``: CPU per transaction of one worker's scoring path, without gRPC and without
a load generator beside it.

On a 2-core machine ``sentinel bench grpc`` shares the cores between the server, its Redis and
PostgreSQL and the load generator, and a saturated machine charges a worker for the time it waits for a
core. This command isolates the part of a worker that SentinelStream's own code decides: it builds the
scoring pipeline and the ScoringService servicer over a worker's resources exactly as a worker does
(``sentinel.server.app.scoring_path``: Redis state, model, rules, the durable ledger), then awaits the
servicer's ``Score`` or ``ScoreBatch`` handler on pre-built request bytes, ``--in-flight`` calls at
once, as grpc would after receiving them. Every transaction has a new id, so every call takes the full
path (no idempotent replays). The figures: CPU per transaction and per call of this process (the
worker), of Redis and of PostgreSQL (when the command started them), and the throughput of the one
process. What gRPC adds is the do-nothing server's cost in ``sentinel bench grpc``.

Without ``--redis-url``/``--database-url`` it starts a private Redis and PostgreSQL
(sentinel.localservices).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast

import asyncpg
import grpc
import uvloop

from sentinel.bench.cpu import cpu_by_part, process_times
from sentinel.bench.grpcio_driver import request_message
from sentinel.bench.payloads import TransactionFactory, load_paysim
from sentinel.config import Settings
from sentinel.localservices import local_services
from sentinel.logs import configure_logging

METHODS = ("score", "batch")


class _CallContext:
    """The parts of a call's context the servicer reads: no deadline; an abort ends the benchmark."""

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> NoReturn:
        raise RuntimeError(f"the servicer refused a benchmark call: {code.name}: {details}")

    async def abort_with_status(self, status: Any) -> NoReturn:
        raise RuntimeError(f"the servicer refused a benchmark call: {status.details}")


def request_bodies(calls: int, per_call: int, accounts: int, run_id: str) -> list[bytes]:
    """``calls`` request messages (a ScoreRequest when ``per_call`` is 1, else a ScoreBatchRequest) of
    PaySim-like transactions over ``accounts`` accounts, each with a new transaction id and the current
    time, serialized as generated clients do (deterministic field order: the decoder's fast path)."""
    factory = TransactionFactory(load_paysim(), accounts=accounts)
    pool = factory.transactions(min(calls * per_call, 5_000), run_id)
    now = int(time.time()) - 1
    bodies, number = [], 0
    for _ in range(calls):
        transactions = []
        for _ in range(per_call):
            transaction = pool[number % len(pool)]
            transaction.transaction_id = f"{run_id}-{number}"
            transaction.event_time.FromSeconds(now)
            transactions.append(transaction.SerializeToString(deterministic=True))
            number += 1
        bodies.append(request_message(transactions))
    return bodies


async def _drive(
    handler: Callable[[bytes, Any], Awaitable[bytes]], bodies: list[bytes], in_flight: int
) -> float:
    """Await ``handler`` on every body, ``in_flight`` at once; the wall seconds it took."""
    pending = list(reversed(bodies))
    context = _CallContext()

    async def caller() -> None:
        while pending:
            await handler(pending.pop(), context)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    return time.perf_counter() - started


async def _run(args: argparse.Namespace, settings: Settings, started_here: set[str]) -> dict[str, Any]:
    """``started_here``: the services (redis, postgres) this command started, whose CPU it can see."""
    # Imported here: every `sentinel` command imports the bench modules to register them.
    from sentinel.server.app import scoring_path
    from sentinel.server.resources import WorkerResources, prepare_database

    await prepare_database(settings)
    resources = await WorkerResources.open(settings, 0)
    pipeline, servicer = scoring_path(settings, resources, dead_letters=None)
    pipeline.start()
    handler = cast(
        Callable[[bytes, Any], Awaitable[bytes]],
        servicer.Score if args.method == "score" else servicer.ScoreBatch,
    )
    per_call = 1 if args.method == "score" else args.batch_size
    in_flight = args.in_flight
    if in_flight is None:
        in_flight = 32 if args.method == "score" else max(1, settings.max_in_flight_transactions // per_call)
    run_id = f"bp{int(time.time())}"
    try:
        warm_up = request_bodies(max(args.calls // 4, in_flight), per_call, args.accounts, f"{run_id}w")
        measured = request_bodies(args.calls, per_call, args.accounts, f"{run_id}m")
        await _drive(handler, warm_up, in_flight)
        gc.collect()
        gc.freeze()  # the pre-built requests are not the worker's garbage to walk
        before = process_times()
        wall_s = await _drive(handler, measured, in_flight)
        after = process_times()
    finally:
        await servicer.close()
        await pipeline.close()
        await resources.close()
    used = cpu_by_part(before, after, server_roots=[os.getpid()])
    connection = await asyncpg.connect(settings.database_url)
    try:  # every measured transaction took the full path: decided and durably recorded
        recorded = await connection.fetchval(
            "SELECT count(*) FROM ledger.decisions WHERE idempotency_key LIKE $1", f"{run_id}m-%"
        )
    finally:
        await connection.close()
    transactions = args.calls * per_call
    return {
        "method": args.method,
        "transactions_per_call": per_call,
        "in_flight": in_flight,
        "calls": args.calls,
        "transactions": transactions,
        "decisions_recorded": recorded,
        "wall_s": round(wall_s, 3),
        "transactions_per_s": round(transactions / wall_s),
        "cpu_us_per_transaction": {
            "worker": round(used["server"] / transactions * 1e6, 1),
            **{
                part: round(used[part] / transactions * 1e6, 1) if part in started_here else None
                for part in ("redis", "postgres")
            },
        },
        "worker_cpu_us_per_call": round(used["server"] / args.calls * 1e6, 1),
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


@functools.cache
def _log_sink() -> TextIO:
    return open(os.devnull, "w")


def _handle(args: argparse.Namespace) -> int:
    # The decision log is rendered as a worker renders it (JSON, info), into /dev/null: stdout carries
    # the result. The sink stays open for the process's life: structlog caches a logger's output file
    # at its first use, so loggers first used here keep writing to it.
    configure_logging("info", "json", _log_sink())
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    os.chmod(work, 0o755)  # the postgres system user must reach the private cluster's directory
    try:
        with local_services(work, redis=args.redis_url is None, postgres=args.database_url is None) as (
            redis,
            postgres,
            _,
        ):
            settings = Settings(
                redis_url=args.redis_url or cast(Any, redis).url,
                database_url=args.database_url or cast(Any, postgres).url,
                data_dir=work / "data",
                log_level="error",
            )
            started_here = {name for name, service in (("redis", redis), ("postgres", postgres)) if service}
            result = uvloop.run(_run(args, settings, started_here))  # the server's event loop too
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        cpu = result["cpu_us_per_transaction"]
        print(
            f"{result['method']}, {result['transactions_per_call']} per call, "
            f"{result['in_flight']} calls in flight: "
            f"worker {cpu['worker']} µs CPU per transaction ({result['worker_cpu_us_per_call']} per call), "
            f"Redis {cpu['redis']}, PostgreSQL {cpu['postgres']}; "
            f"{result['transactions_per_s']:,} transactions/s in one process"
        )
    return 0


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench pipeline``."""
    parser = bench_subparsers.add_parser(
        "pipeline",
        help="CPU per transaction of one worker's scoring path, in process (no gRPC, no load generator)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", choices=METHODS, default="score", help="Score or ScoreBatch (score)")
    parser.add_argument("--batch-size", type=int, default=100, help="transactions per ScoreBatch call (100)")
    parser.add_argument(
        "--in-flight",
        type=int,
        help="calls awaited at once (default: score 32, what one of two workers holds in `sentinel bench "
        "grpc`'s score scenario; batch: as many as the worker's max_in_flight_transactions admits)",
    )
    parser.add_argument(
        "--calls", type=int, default=6_000, help="calls measured, after a quarter as many of warm-up"
    )
    parser.add_argument("--accounts", type=int, default=5_000, help="accounts the transactions spread over")
    parser.add_argument("--redis-url", help="an existing Redis (default: start a private one)")
    parser.add_argument("--database-url", help="an existing database (default: start a private PostgreSQL)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_handle)
