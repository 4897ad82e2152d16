"""``sentinel bench scale``: CPU per transaction of every component at a fixed offered load, and the
capacity model built from it (cores of each kind for 10k, 50k and 500k txn/s; where one PostgreSQL
primary stops being enough).

It starts one Redis, one PostgreSQL and SentinelStream instances with TLS, with ``--proxy`` two of them
behind Debian's nginx running the deployment's configuration (bench/topology.py), and offers each
scenario (``ScoreBatch`` x 100 and ``Score``) a fixed rate below saturation, open loop (ghz ``--rps``,
or the grpcio driver's pacing), every call with new transaction ids: the full path (state, model,
rules, durable ledger). Around the measured run it reads every process's CPU from /proc (bench/cpu.py:
workers, supervisors, dispatchers, nginx, Redis, PostgreSQL, the load generator, the rest) and
PostgreSQL's WAL position; CPU µs and WAL bytes per transaction feed bench/capacity.py. A run whose
achieved rate falls short of the offered one was saturated, and says so: its CPU per transaction then
includes queueing and is not the figure to plan with. Results: a JSON model file, an entry in
bench/RESULTS.md with a table per scenario, a latency plot per scenario.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.bench import ghz, grpcio_driver
from sentinel.bench.capacity import Assumptions, capacity_model, model_table
from sentinel.bench.cpu import cpu_by_part, process_times
from sentinel.bench.grpc_bench import BenchError, build_payload, measure, run_tool
from sentinel.bench.measurement import LoadSettings
from sentinel.bench.options import add_output_options, add_payload_options, optional_path
from sentinel.bench.payloads import load_paysim
from sentinel.bench.report import machine_description, plot_latency, record_summaries, result_fields
from sentinel.bench.scenarios import SCENARIOS
from sentinel.bench.topology import Deployment, Layout
from sentinel.bench.workdir import finish_work_directory, new_work_directory
from sentinel.config import load_settings
from sentinel.localservices import LocalServiceError, nginx_binary
from sentinel.serverprocess import ServerStartError

# Calls per second offered by default: about a third of what this project's 2-core machine takes with
# the load generator on it (bench/RESULTS.md: ~100 ScoreBatch x 100 and ~1,500 Score calls/s).
DEFAULT_RATES = {"batch-100": 30.0, "score": 300.0}
SCALE_SCENARIOS = tuple(DEFAULT_RATES)
# Below this share of the offered calls the run was saturated (its CPU per transaction includes queueing).
SATURATED_BELOW = 0.95
SETTLE_S = 1.0  # after the warm-up, before the idle reading: the last calls' ledger writes and settles


def _load(args: argparse.Namespace, scenario_name: str, workers: int, ca_file: Path) -> LoadSettings:
    """The scenario's calls in flight (enough to keep the rate), over two connections per worker."""
    scenario = SCENARIOS[scenario_name]
    concurrency = scenario.default_concurrency
    rate = args.batch_rate if scenario_name == "batch-100" else args.score_rate
    return LoadSettings(
        concurrency=concurrency,
        connections=max(1, min(concurrency, 2 * workers)),
        duration_s=args.duration,
        total_calls=None,
        rate=rate,
        warmup_s=args.warmup,
        ca_file=ca_file,
    )


def choose_tool(requested: str) -> str:
    """ghz when asked for or available (``auto``), else the grpcio driver."""
    if requested == "grpcio" or (requested == "auto" and not ghz.ghz_available()):
        return "grpcio"
    if not ghz.ghz_available():
        raise BenchError(
            "ghz is neither in .tools/ nor on PATH: `make bench-tools` installs it; or --tool grpcio"
        )
    return "ghz"


def measure_scenario(
    args: argparse.Namespace, deployment: Deployment, scenario_name: str, tool: str, workdir: Path
) -> dict[str, Any]:
    """Warm up, then one measured run at the offered rate; the scenario's record with its model."""
    scenario = SCENARIOS[scenario_name]
    layout = deployment.layout
    load = _load(args, scenario_name, layout.instances * layout.workers, deployment.ca_file)
    factory = scenario.transaction_factory(load_paysim(args.data), args.seed, args.accounts)
    run_id = time.strftime("scale%Y%m%dT%H%M%S")
    payload = build_payload(scenario, factory, f"{run_id}-{scenario_name}", workdir, load.concurrency)
    if load.warmup_s > 0:
        run_tool(
            tool, deployment.address, payload, load, workdir / f"{scenario_name}-warmup", True, warmup=True
        )
    time.sleep(SETTLE_S)
    idle = idle_cores(deployment, args.idle)
    wal_before = deployment.wal_position()
    measured = measure(
        tool,
        deployment.address,
        payload,
        replace(load, warmup_s=0.0),
        workdir / f"{scenario_name}-measured",
        True,
        deployment.counts,
        deployment.server_pids(),
        roles=deployment.roles(),
    )
    wal_bytes = deployment.wal_position() - wal_before
    result = measured.result
    # The probes around the run decide a few transactions of their own (replays write no decision).
    probed = sum(p.decisions - p.replayed for p in (measured.probe_before, measured.probe_after))
    decided = result.calls_ok * scenario.transactions_per_call + probed
    figures = result_fields(result, scenario.transactions_per_call)
    offered_tps = (load.rate or 0.0) * scenario.transactions_per_call
    problems = list(measured.problems)
    offered_calls = (load.rate or 0.0) * (load.duration_s or 0.0)
    saturated = result.calls_ok < SATURATED_BELOW * offered_calls - 1  # a call short: the run's edges
    if saturated:
        problems.append(
            f"saturated: {figures['tps']:,.0f} of {offered_tps:,.0f} txn/s offered; lower the rate "
            "(--batch-rate/--score-rate): CPU per transaction under saturation includes queueing"
        )
    wal_per_transaction = round(wal_bytes / decided, 1) if decided else None
    assumptions = Assumptions(
        utilization=args.utilization,
        target_rates=tuple(args.target_rates),
        primary_cores=args.primary_cores,
        primary_wal_mb_s=args.primary_wal_mb_s,
    )
    marginal = marginal_us(measured.cpu["us_per_transaction"], idle, result.duration_s, decided - probed)
    model = capacity_model(marginal, wal_per_transaction, assumptions)
    return {
        "tool": tool,
        "scenario": scenario_name,
        "description": scenario.description,
        "method": scenario.method,
        "transactions_per_call": scenario.transactions_per_call,
        "layout": layout.describe(),
        "workers": layout.instances * layout.workers,
        "concurrency": load.concurrency,
        "connections": load.connections,
        "offered_calls_per_s": load.rate,
        "offered_tps": offered_tps,
        **figures,
        "saturated": saturated,
        "cpu": measured.cpu,
        "idle_cores": {part: round(cores, 3) for part, cores in idle.items()},
        "marginal_us_per_transaction": {part: round(us, 1) for part, us in marginal.items()},
        "wal_bytes_per_transaction": wal_per_transaction,
        "status_check": {
            "problems": problems,
            "probes": {"before": measured.probe_before.summary(), "after": measured.probe_after.summary()},
            "server_count": measured.server_count,
        },
        "model": model,
        "latencies_ms": result.latencies_ms,
    }


def idle_cores(deployment: Deployment, seconds: float) -> dict[str, float]:
    """Cores each part keeps busy with no load (event loops, timers, metrics, PostgreSQL's background
    work): spent whatever the rate, so not a cost per transaction."""
    if seconds <= 0:
        return {}
    before = process_times()
    time.sleep(seconds)
    used = cpu_by_part(before, process_times(), deployment.server_pids(), roles=deployment.roles())
    return {part: spent / seconds for part, spent in used.items()}


def marginal_us(
    us_per_transaction: dict[str, float], idle: dict[str, float], wall_s: float, transactions: int
) -> dict[str, float]:
    """CPU µs per transaction of each part without its idle share (never below 0)."""
    if not transactions:
        return dict(us_per_transaction)
    return {
        part: max(0.0, us - idle.get(part, 0.0) * wall_s / transactions * 1e6)
        for part, us in us_per_transaction.items()
    }


def append_scale_results(
    path: Path, command: str, machine: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    """One dated entry in RESULTS.md: command, machine, layout, per scenario its run and model table."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {date}: `sentinel bench scale`",
        "",
        f"- command: `{command}`",
        f"- machine: {machine['cores']} cores, {machine['cpu_model']}, {machine['os']}, "
        f"Python {machine['python']}; 1-minute load average before the run: "
        f"{machine['load_average_1m_before']}",
        f"- layout: {records[0]['layout']}" if records else "- no scenario ran",
    ]
    for record in records:
        assumptions = record["model"]["assumptions"]
        lines += [
            f"- {record['scenario']}: tool {record['tool']}, offered {record['offered_calls_per_s']:,.0f} "
            f"calls/s ({record['offered_tps']:,.0f} txn/s), achieved {record['tps']:,.0f} txn/s, "
            f"p50 {record['p50_ms']} ms, p99 {record['p99_ms']} ms, {record['errors']} errors; "
            f"WAL {record['wal_bytes_per_transaction']} bytes per decision",
        ]
        if record.get("plot"):
            lines.append(f"  - latency plot: `{record['plot']}`")
        lines += [f"  - status check problem: {problem}" for problem in record["status_check"]["problems"]]
        lines += [f"  - {summary}" for summary in record_summaries(record)]
        idle = ", ".join(
            f"{part} {cores:.3f}" for part, cores in record["idle_cores"].items() if cores >= 0.001
        )
        lines.append(f"  - idle before the run, cores busy (not counted per transaction): {idle or 'none'}")
        lines += [
            "",
            f"Capacity model from the {record['scenario']} run ({assumptions['utilization']:.0%} target "
            f"utilization; one PostgreSQL primary: {assumptions['primary_cores']} cores, "
            f"{assumptions['primary_wal_mb_s']:,.0f} MB/s of WAL; bench/capacity.py):",
            "",
            model_table(record["model"]),
            "",
        ]
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def run_scale_bench(args: argparse.Namespace) -> int:
    """The command's handler."""
    try:
        return _run(args)
    except (BenchError, ValueError) as exc:
        print(f"sentinel bench scale: {exc}", file=sys.stderr)
        return 2
    except (ServerStartError, LocalServiceError, ghz.GhzError, grpcio_driver.ClientError) as exc:
        print(f"sentinel bench scale: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    machine = machine_description()
    if args.proxy and nginx_binary() is None:
        raise BenchError(
            "--proxy needs nginx: `apt-get install nginx-light` (deploy/ensure-system-packages.sh)"
        )
    tool = choose_tool(args.tool)
    settings = load_settings(Path(args.config) if args.config else None)
    instances = args.instances or (2 if args.proxy else 1)
    names = SCALE_SCENARIOS if args.scenario == "all" else (args.scenario,)
    # Every call in flight fits the in-flight bound even if all land on one worker: nothing is shed.
    bound = max(
        settings.max_in_flight_transactions,
        max(SCENARIOS[n].default_concurrency * SCENARIOS[n].transactions_per_call for n in names),
    )
    layout = Layout(
        instances, args.workers, args.proxy, args.events, (("max_in_flight_transactions", bound),)
    )
    workdir = new_work_directory("sentinel-scale-")
    records = []
    with Deployment(workdir, layout) as deployment:
        for name in names:
            records.append(measure_scenario(args, deployment, name, tool, workdir))
    run_stamp = time.strftime("%Y%m%dT%H%M%S")
    for record in records:
        latencies = record.pop("latencies_ms")
        if args.plot_dir:
            title = (
                f"{record['description']}: {record['offered_calls_per_s']:,.0f} calls/s offered, "
                f"{tool}, {'via nginx' if args.proxy else 'direct'}"
            )
            path = args.plot_dir / f"scale-{record['scenario']}-{tool}-{run_stamp}.png"
            record["plot"] = str(plot_latency(path, title, {"SentinelStream": latencies}))
    command = "sentinel " + shlex.join(sys.argv[1:])
    document = {"command": command, "machine": machine, "records": records}
    if args.model_file:
        args.model_file.parent.mkdir(parents=True, exist_ok=True)
        args.model_file.write_text(json.dumps(document, indent=2) + "\n")
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        append_scale_results(args.results, command, machine, records)
    if args.json:
        print(json.dumps(document))
    else:
        for record in records:
            print(
                f"{record['scenario']}: {record['tps']:,.0f} of {record['offered_tps']:,.0f} txn/s offered, "
                f"p99 {record['p99_ms']} ms"
            )
            for summary in record_summaries(record):
                print(f"  {summary}")
            for problem in record["status_check"]["problems"]:
                print(f"  PROBLEM: {problem}")
            print(model_table(record["model"]))
    failed = any(r["status_check"]["problems"] for r in records)
    where = finish_work_directory(workdir, keep=args.keep_work or failed)
    if not args.json:
        print(where)
    return 1 if failed else 0


def _rates(text: str) -> list[int]:
    try:
        rates = [int(part.replace("_", "")) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("target rates must be positive")
    return rates


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench scale``."""
    parser = bench_subparsers.add_parser(
        "scale",
        help="CPU per transaction of each component at a fixed load, and the capacity model built from it",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--scenario",
        choices=[*SCALE_SCENARIOS, "all"],
        default="all",
        help="what to offer (default all: ScoreBatch x 100, then Score)",
    )
    parser.add_argument(
        "--proxy",
        action="store_true",
        help="put the instances behind nginx running deploy/nginx/sentinel.conf (its CPU is measured too)",
    )
    parser.add_argument(
        "--instances", type=int, help="SentinelStream instances (default: 2 with --proxy, else 1)"
    )
    parser.add_argument("--workers", type=int, default=1, help="workers per instance (default 1)")
    parser.add_argument("--events", action="store_true", help="run the event dispatchers (events_enabled)")
    parser.add_argument(
        "--tool",
        choices=["auto", "ghz", "grpcio"],
        default="auto",
        help="load generator (default auto: ghz when in .tools/ or on PATH, else grpcio)",
    )
    parser.add_argument(
        "--batch-rate",
        type=float,
        default=DEFAULT_RATES["batch-100"],
        help=f"ScoreBatch x 100 calls per second offered (default {DEFAULT_RATES['batch-100']:g})",
    )
    parser.add_argument(
        "--score-rate",
        type=float,
        default=DEFAULT_RATES["score"],
        help=f"Score calls per second offered (default {DEFAULT_RATES['score']:g})",
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds measured per scenario (default 20)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load (default 3)")
    parser.add_argument(
        "--idle",
        type=float,
        default=3.0,
        help="seconds without load measured before each run, CPU not counted per transaction (default 3)",
    )
    parser.add_argument(
        "--utilization", type=float, default=0.6, help="target utilization of every core (default 0.6)"
    )
    parser.add_argument(
        "--target-rates",
        type=_rates,
        default=[10_000, 50_000, 500_000],
        help="transactions per second to size for (default 10000,50000,500000)",
    )
    parser.add_argument(
        "--primary-cores", type=int, default=64, help="cores of one PostgreSQL primary (default 64)"
    )
    parser.add_argument(
        "--primary-wal-mb-s",
        type=float,
        default=500.0,
        help="sustained WAL one primary writes, fsyncs and streams to its standby, MB/s (default 500)",
    )
    add_payload_options(parser)
    parser.add_argument("--json", action="store_true", help="print the model document as JSON")
    parser.add_argument(
        "--model-file",
        type=optional_path,
        default=Path("bench/capacity_model.json"),
        help="where the JSON model goes (default bench/capacity_model.json; '' for nowhere)",
    )
    add_output_options(parser)
    parser.set_defaults(handler=run_scale_bench)
