"""``sentinel bench rest``: REST ``POST /v1/score`` through the gateway next to gRPC ``Score``, one run.

One ``sentinel dev serve`` with its REST gateway; the same PaySim-based transactions, a new transaction id
in every call on both sides (no idempotent replays), the same number of calls in flight. gRPC is loaded
with ghz (``make bench-tools``), REST with wrk (Debian package wrk; see bench/wrk.py for why not h2load).
Each side gets its warm-up, then its measured run; ``--rounds`` alternates them to even out drift. The
figure is the ratio of REST to gRPC successful calls per second: what the JSON mapping and the extra hop
cost (the issue's target: at least 0.5). The gateway runs on the same cores as the workers, as it does
under ``sentinel serve``; the figures go to stdout only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from sentinel.bench import ghz, wrk
from sentinel.bench.cpu import PARTS, cpu_by_part, cpu_report, process_times
from sentinel.bench.grpc_bench import BenchError, proto_location
from sentinel.bench.measurement import LoadResult, LoadSettings
from sentinel.bench.options import add_payload_options
from sentinel.bench.payloads import TransactionFactory, load_paysim
from sentinel.bench.scenarios import SCENARIOS
from sentinel.config import load_settings
from sentinel.server.rest_gateway import build_gateway
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port
from sentinel.v1 import scoring_pb2

DATA_TRANSACTIONS = 1_000  # distinct transactions each tool cycles through (ids made unique per call)
SCORE = SCENARIOS["score"]
Measured = tuple[LoadResult, dict[str, float]]  # a run's result and the CPU seconds of each part


def score_requests(factory: TransactionFactory, id_prefix: str) -> list[scoring_pb2.ScoreRequest]:
    """DATA_TRANSACTIONS ScoreRequests of the next transactions."""
    return [
        scoring_pb2.ScoreRequest(transaction=t) for t in factory.transactions(DATA_TRANSACTIONS, id_prefix)
    ]


def rest_templates(requests: list[scoring_pb2.ScoreRequest]) -> list[dict[str, Any]]:
    """The requests in proto3 JSON, their transaction ids replaced by wrk's placeholder."""
    bodies = [MessageToDict(request) for request in requests]
    for body in bodies:
        body["transaction"]["transactionId"] = wrk.ID_PLACEHOLDER
    return bodies


def _check_tools() -> None:
    if not ghz.ghz_available():
        raise BenchError("ghz is neither in .tools/ nor on PATH: `make bench-tools` installs it")
    if not wrk.wrk_available():
        raise BenchError("wrk is missing: `make test-system-packages` (or apt-get install wrk) installs it")
    if build_gateway() is None:
        raise BenchError("the REST gateway needs Go 1.26+ to build (deploy/build-gateway.sh)")


def _measure(
    server: ServerProcess, load: LoadSettings, workdir: Path, round_index: int, factory: TransactionFactory
) -> tuple[Measured, Measured]:
    """One round: gRPC (ghz) then REST (wrk), each warmed up first, with the CPU each part used (the
    gateway counts as server: it is the supervisor's child)."""
    prefix = f"bench-rest-{int(time.time())}-{round_index}"
    grpc_dir, rest_dir = workdir / f"grpc-{round_index}", workdir / f"rest-{round_index}"
    grpc_dir.mkdir()
    rest_dir.mkdir()
    data = {kind: grpc_dir / f"ghz-{kind}.json" for kind in ("warmup", "run")}
    for kind, path in data.items():
        path.write_text(json.dumps(ghz.ghz_data(score_requests(factory, f"{prefix}-g{kind}"))))
    templates = wrk.write_templates(rest_dir / "bodies.jsonl", rest_templates(score_requests(factory, "x")))

    proto = proto_location()
    if load.warmup_s > 0:
        ghz.run_ghz(server.address, SCORE.ghz_call, data["warmup"], load, grpc_dir, proto, warmup=True)
    before = process_times()
    grpc_result = ghz.run_ghz(server.address, SCORE.ghz_call, data["run"], load, grpc_dir, proto)
    grpc_cpu = cpu_by_part(before, process_times(), server.pids)
    url = f"{server.rest_url}/v1/score"
    if load.warmup_s > 0:
        wrk.run_wrk(url, templates, f"{prefix}-rw", load, rest_dir, warmup=True)
    before = process_times()
    rest_result = wrk.run_wrk(url, templates, f"{prefix}-r", load, rest_dir)
    rest_cpu = cpu_by_part(before, process_times(), server.pids)
    assert grpc_result is not None and rest_result is not None
    return (grpc_result, grpc_cpu), (rest_result, rest_cpu)


def _summary(measured: list[Measured]) -> dict[str, Any]:
    results = [result for result, _ in measured]
    ok = sum(r.calls_ok for r in results)
    seconds = sum(r.duration_s for r in results)
    cpu = {part: sum(used[part] for _, used in measured) for part in PARTS}
    errors: dict[str, int] = {}
    for result in results:
        for name, count in result.errors.items():
            errors[name] = errors.get(name, 0) + count
    return {
        "tool": results[0].tool,
        "calls_ok": ok,
        "seconds": round(seconds, 2),
        "calls_per_s": round(ok / seconds, 1) if seconds else 0.0,
        "p50_ms": [round(r.percentiles_ms.get(50.0, 0.0), 2) for r in results],
        "p99_ms": [round(r.percentiles_ms.get(99.0, 0.0), 2) for r in results],
        "errors": errors,
        **cpu_report(cpu, seconds, ok),
    }


def _run(args: argparse.Namespace) -> int:
    _check_tools()
    settings = load_settings(Path(args.config) if args.config else None)  # the global --config
    workers = args.workers or settings.workers
    load = LoadSettings(
        concurrency=args.concurrency,
        connections=min(args.concurrency, 2 * workers),
        duration_s=args.duration,
        total_calls=None,
        rate=None,
        warmup_s=args.warmup,
    )
    factory = TransactionFactory(load_paysim(args.data), seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-rest-") as temporary:
        workdir = Path(temporary)
        os.chmod(workdir, 0o755)  # SentinelStream's private PostgreSQL (postgres user) lives below
        bound = max(settings.max_in_flight_transactions, args.concurrency)  # measure, do not shed
        with ServerProcess(
            workdir / "server",
            workers=workers,
            dev=True,
            rest_port=free_port(),
            max_in_flight_transactions=bound,
        ) as server:
            rounds = [_measure(server, load, workdir, index, factory) for index in range(args.rounds)]
    grpc_summary = _summary([grpc for grpc, _ in rounds])
    rest_summary = _summary([rest for _, rest in rounds])
    ratio = rest_summary["calls_per_s"] / grpc_summary["calls_per_s"] if grpc_summary["calls_per_s"] else 0.0
    report = {
        "workers": workers,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "grpc": grpc_summary,
        "rest": rest_summary,
        "rest_to_grpc_ratio": round(ratio, 3),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for side in ("grpc", "rest"):
            s = report[side]
            print(
                f"{side:5} {s['tool']:4} {s['calls_per_s']:>9.1f} calls/s  p50 {s['p50_ms']} ms  "
                f"p99 {s['p99_ms']} ms  errors {s['errors'] or 'none'}\n      cores busy {s['cores_busy']}"
            )
        print(f"REST/gRPC throughput ratio: {ratio:.3f} ({workers} workers, {args.concurrency} in flight)")
    failed = grpc_summary["errors"] or rest_summary["errors"]
    return 1 if failed else 0


def run_rest_bench(args: argparse.Namespace) -> int:
    """The command's handler."""
    try:
        return _run(args)
    except (BenchError, wrk.WrkError, ghz.GhzError) as exc:
        print(f"sentinel bench rest: {exc}", file=sys.stderr)
        return 2


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench rest``."""
    parser = bench_subparsers.add_parser(
        "rest",
        help="REST Score through the gateway next to gRPC Score in one run (wrk and ghz), and their ratio",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--workers", type=int, help="server workers (default: the workers setting)")
    parser.add_argument("--concurrency", type=int, default=SCORE.default_concurrency, help="calls in flight")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per side and round")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per side and round")
    parser.add_argument("--rounds", type=int, default=1, help="gRPC-then-REST rounds (default 1)")
    add_payload_options(parser, accounts=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(handler=run_rest_bench)
