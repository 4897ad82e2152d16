"""``sentinel bench grpc``: SentinelStream's gRPC throughput and latency, next to the gRPC ceiling.

For each scenario the command builds realistic payloads, starts a do-nothing grpc.aio server with
the same worker setup (the ceiling) and measures it, then starts SentinelStream with its private
Redis and PostgreSQL (or uses ``--target``) and measures it with the same tool and settings:
warm-up, probe with a real gRPC client, measured run, server-side count, probe again, stop. The
figures go to stdout (a table, or one JSON object per scenario with ``--json``), to a latency plot
and to bench/RESULTS.md. How and why: docs/decisions/0008-load-benchmark-method.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from sentinel.bench import ghz, grpcio_driver, h2load
from sentinel.bench.ceiling import CeilingServer
from sentinel.bench.cpu import cpu_by_part, cpu_report, process_times
from sentinel.bench.measurement import LoadResult, LoadSettings, ServerCounts
from sentinel.bench.options import add_output_options, add_payload_options
from sentinel.bench.payloads import (
    TransactionFactory,
    grpc_frames,
    load_paysim,
)
from sentinel.bench.probe import ProbeResult, probe
from sentinel.bench.report import (
    append_results,
    format_table,
    machine_description,
    plot_latency,
    record_summaries,
    result_fields,
)
from sentinel.bench.scenarios import ALL_SCENARIOS, DEFAULT_STREAM_LENGTH, SCENARIOS, Scenario
from sentinel.bench.server_metrics import scrape_server_counts
from sentinel.bench.workdir import finish_work_directory, new_work_directory
from sentinel.config import Settings, load_settings
from sentinel.serverprocess import ServerProcess, ServerStartError, wait_until_serving

# Distinct calls' worth of messages in a ghz data file (used round-robin, ids unique per call).
GHZ_DATA_TRANSACTIONS = 1_000
WARMUP_STREAM_LENGTH = 1_000
PROBE_STREAM_LENGTH = 200
STREAM_RUN_TIMEOUT_S = 600.0
GRPCIO_POOL_TRANSACTIONS = 5_000
REPLAY_NOTE = (
    "h2load sends one fixed request body in every call, so its transactions repeat: after the first "
    "call SentinelStream answers them from its idempotency record (replayed_decisions in "
    "status_check.server_count counts them); the grpcio and ghz tools send new ids in every call"
)


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (tool missing, bad option); the message says why."""


@dataclass(slots=True)
class Payload:
    """The requests of one scenario, in every form the tools and the probe need."""

    scenario: Scenario
    body_file: Path  # gRPC-framed body of one call, for h2load (unary methods)
    stream_bodies: list[Path]  # ScoreStream for h2load: one distinct body per stream in flight
    warmup_stream_bodies: list[Path]  # ... and others for the warm-up
    ghz_data_file: Path  # JSON data for ghz
    ghz_warmup_data_file: Path  # ... with other ids: ghz numbers requests from 0 in every run
    pool: list[bytes]  # transactions without ids, for the grpcio driver
    id_prefix: str
    probe_messages: list[bytes]  # serialized request messages of a probe call (ids of its own)


@dataclass(slots=True)
class Measurement:
    """One target measured: the load result and the checks around it."""

    result: LoadResult
    probe_before: ProbeResult
    probe_after: ProbeResult
    server_count: dict[str, Any] | None
    cpu: dict[str, dict[str, float]]  # see bench/cpu.py
    problems: list[str] = field(default_factory=list)
    expected_statuses: dict[str, int] = field(default_factory=dict)  # calls with a status the run expects


def _serialized(messages: list[Message]) -> list[bytes]:
    return [message.SerializeToString(deterministic=True) for message in messages]


def _write_body(path: Path, messages: list[Message]) -> Path:
    path.write_bytes(grpc_frames(_serialized(messages)))
    return path


def _write_ghz_data(path: Path, scenario: Scenario, factory: TransactionFactory, id_prefix: str) -> Path:
    """ghz data: one stream's messages, or the messages of many calls (ghz uses them round-robin)."""
    calls = 1 if scenario.streaming else max(1, GHZ_DATA_TRANSACTIONS // scenario.transactions_per_call)
    per_call = [scenario.request_messages(factory, f"{id_prefix}-c{index}") for index in range(calls)]
    messages = per_call[0] if scenario.streaming else [call[0] for call in per_call]
    path.write_text(json.dumps(ghz.ghz_data(messages)))
    return path


def build_payload(
    scenario: Scenario, factory: TransactionFactory, id_prefix: str, workdir: Path, streams: int
) -> Payload:
    """Build the scenario's requests; write the h2load bodies and the ghz data files."""
    name = scenario.name
    body_file = _write_body(workdir / f"{name}-body.grpc", scenario.request_messages(factory, id_prefix))
    ghz_data_file = _write_ghz_data(workdir / f"{name}-ghz-data.json", scenario, factory, f"{id_prefix}-g")
    ghz_warmup_data_file = _write_ghz_data(
        workdir / f"{name}-ghz-warmup.json", scenario, factory, f"{id_prefix}-gw"
    )
    stream_bodies: list[Path] = []
    warmup_stream_bodies: list[Path] = []
    probe_scenario = scenario
    if scenario.streaming:
        stream_bodies = [
            _write_body(
                workdir / f"{name}-stream-{index}.grpc",
                scenario.request_messages(factory, f"{id_prefix}-s{index}"),
            )
            for index in range(streams)
        ]
        warmup = scenario.with_stream_length(min(scenario.transactions_per_call, WARMUP_STREAM_LENGTH))
        warmup_stream_bodies = [
            _write_body(
                workdir / f"{name}-warmup-{index}.grpc",
                warmup.request_messages(factory, f"{id_prefix}-w{index}"),
            )
            for index in range(streams)
        ]
        probe_scenario = scenario.with_stream_length(min(scenario.transactions_per_call, PROBE_STREAM_LENGTH))
    probe_messages = _serialized(probe_scenario.request_messages(factory, f"{id_prefix}-probe"))
    pool = grpcio_driver.transaction_pool(
        factory.transactions(GRPCIO_POOL_TRANSACTIONS, "pool"), live_event_times=scenario.live_event_times
    )
    return Payload(
        scenario,
        body_file,
        stream_bodies,
        warmup_stream_bodies,
        ghz_data_file,
        ghz_warmup_data_file,
        pool,
        id_prefix,
        probe_messages,
    )


# Why a tool replaying fixed request data cannot run a scenario with live event times.
CANNOT_STAMP_EVENT_TIMES = {
    "h2load": "h2load sends one fixed body, so every call after the first would be an idempotent replay",
    "ghz": f"ghz cycles through {GHZ_DATA_TRANSACTIONS:,} fixed transactions, so the account's event "
    "times would repeat instead of moving forward",
}


def choose_tool(requested: str, scenarios: list[Scenario]) -> str:
    """ghz when asked for or when available (``auto``), else h2load; BenchError if missing.

    Scenarios with live event times (hot-account) run with grpcio, the one tool that builds every
    call, and so does overload, whose ledger check needs the ids of the accepted calls, which only
    grpcio reports: ``auto`` picks it, ghz and h2load are refused with the reason.
    """
    live = [scenario.name for scenario in scenarios if scenario.live_event_times]
    if live and requested in CANNOT_STAMP_EVENT_TIMES:
        raise BenchError(
            f"--scenario {live[0]} needs --tool grpcio (or auto): {CANNOT_STAMP_EVENT_TIMES[requested]}"
        )
    overload = [scenario.name for scenario in scenarios if scenario.overload_factor]
    if overload and requested in CANNOT_STAMP_EVENT_TIMES:
        raise BenchError(
            f"--scenario {overload[0]} needs --tool grpcio (or auto): its ledger check looks up every "
            "accepted transaction by the ids that only the grpcio driver reports"
        )
    if requested == "grpcio" or live or overload:
        return "grpcio"
    if requested in ("ghz", "auto") and ghz.ghz_available():
        return "ghz"
    if requested == "ghz":
        raise BenchError(
            "ghz is neither in .tools/ nor on PATH: `make bench-tools` installs it "
            "(go install); or use --tool h2load"
        )
    if not h2load.h2load_available():
        raise BenchError(
            "neither ghz nor h2load is installed: `make bench-tools` installs ghz into .tools/, "
            "`apt-get install nghttp2-client` h2load"
        )
    return "h2load"


def proto_location() -> tuple[Path, Path]:
    """The shipped scoring.proto and the directory its imports are relative to."""
    from sentinel.v1 import scoring_pb2

    package_dir = Path(scoring_pb2.__file__).resolve().parent
    return package_dir / "scoring.proto", package_dir.parent.parent


def run_tool(
    tool: str,
    address: str,
    payload: Payload,
    load: LoadSettings,
    workdir: Path,
    use_proto: bool,
    *,
    warmup: bool = False,
) -> LoadResult | None:
    """One run of the chosen tool (a warm-up returns None)."""
    scenario = payload.scenario
    if tool == "grpcio":
        id_prefix = f"{payload.id_prefix}-{workdir.name}"  # the ceiling's and the server's runs differ
        return grpcio_driver.run_grpcio(address, scenario, payload.pool, id_prefix, load, warmup=warmup)
    if tool == "ghz":
        data_file = payload.ghz_warmup_data_file if warmup else payload.ghz_data_file
        return ghz.run_ghz(
            address,
            scenario.ghz_call,
            data_file,
            load,
            workdir,
            proto_location() if use_proto else None,
            warmup=warmup,
        )
    if scenario.streaming:
        bodies = payload.warmup_stream_bodies if warmup else payload.stream_bodies
        result = h2load.run_h2load_streams(
            address, scenario.path, bodies, workdir, "warmup" if warmup else "h2load", STREAM_RUN_TIMEOUT_S
        )
        return None if warmup else result
    return h2load.run_h2load(address, scenario.path, payload.body_file, load, workdir, warmup=warmup)


def measure(
    tool: str,
    address: str,
    payload: Payload,
    load: LoadSettings,
    workdir: Path,
    use_proto: bool,
    counts: Callable[[], ServerCounts] | None,
    server_pids: set[int],
    expected_statuses: tuple[str, ...] = (),
    roles: Mapping[int, str] | None = None,
) -> Measurement:
    """Warm up, probe, measure (with the server's own count when it has one and the CPU every part of
    the machine used), probe again. ``server_pids``: the roots of the server's process tree;
    ``expected_statuses``: gRPC status names that are part of the run (overload: RESOURCE_EXHAUSTED),
    counted apart instead of as errors; ``roles``: finer parts of the server's tree (bench/cpu.py)."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = payload.scenario
    if load.warmup_s > 0:
        run_tool(tool, address, payload, load, workdir, use_proto, warmup=True)
    before = probe(address, scenario, payload.probe_messages, ca_file=load.ca_file)
    counted_before = settled_counts(counts) if counts else None
    times_before, started = process_times(), time.perf_counter()
    result = run_tool(tool, address, payload, load, workdir, use_proto)
    assert result is not None
    wall_s = time.perf_counter() - started
    cpu_used = cpu_by_part(times_before, process_times(), server_pids, roles=roles)
    counted_after = counts() if counts else None
    after = probe(address, scenario, payload.probe_messages, ca_file=load.ca_file)
    problems = [
        f"probe {when}: {p.first_error or p.summary()}"
        for when, p in (("before", before), ("after", after))
        if not p.ok
    ]
    server_count = None
    if counted_before is not None and counted_after is not None:
        counted = counted_after - counted_before
        server_count = reconcile(result, counted.by_status(scenario.method))
        if counted.replayed_decisions is not None:
            server_count["replayed_decisions"] = counted.replayed_decisions
        if counted.decisions is not None:
            server_count["decisions_by_outcome"] = counted.decisions
        if counted.degraded is not None:
            server_count["degraded_decisions"] = sum(counted.degraded.values())
            server_count["degraded_by_cause"] = counted.degraded
        if counted.histograms:
            server_count["stages"] = counted.stages(result.duration_s)
            size_total, batches = counted.histograms.get("batch_size", (0.0, 0.0))
            server_count["mean_micro_batch_size"] = round(size_total / batches, 1) if batches else None
    expected = {
        code: result.errors.pop(f"grpc-status {code}")
        for code in expected_statuses
        if f"grpc-status {code}" in result.errors
    }
    if result.error_count:
        problems.append(f"{result.error_count} failed calls: {result.errors}")
    cpu = cpu_report(cpu_used, wall_s, result.calls_ok * scenario.transactions_per_call)
    return Measurement(result, before, after, server_count, cpu, problems, expected)


# A timed warm-up ends by dropping its calls in flight, which the server may still finish after the probe:
# the count before the run is read once two reads this far apart agree on the calls (at most the limit).
COUNT_QUIET_S = 0.05
COUNT_SETTLE_LIMIT_S = 2.0


def settled_counts(counts: Callable[[], ServerCounts]) -> ServerCounts:
    """The server's count once the calls of earlier runs have stopped arriving (or after the limit)."""
    latest = counts()
    give_up = time.monotonic() + COUNT_SETTLE_LIMIT_S
    while time.monotonic() < give_up:
        time.sleep(COUNT_QUIET_S)
        previous, latest = latest, counts()
        if latest.calls == previous.calls:
            break
    return latest


# Statuses a server may give a call whose client went away (grpc.aio handlers see a cancellation).
CLIENT_GONE_STATUSES = ("CANCELLED", "UNKNOWN")


def reconcile(result: LoadResult, server_statuses: dict[str, int]) -> dict[str, Any]:
    """Fold the server's count of the run into ``result``: its failures, and OKs it never gave.

    A timed h2load run ends by dropping the calls in flight (``calls_abandoned``); the server may
    still finish them (more OK than the tool saw) or see them cancelled, which it may label
    CANCELLED or UNKNOWN. Up to ``calls_abandoned`` such calls are the run's end, not errors. Any
    other failure the server counted is an error even if the tool saw HTTP 200; an OK the tool
    counted but the server did not give is one too.
    """
    server_ok = server_statuses.get("OK", 0)
    tool_ok = result.calls_ok
    allowance = result.calls_abandoned
    excused: dict[str, int] = {}
    for code in CLIENT_GONE_STATUSES:
        excused[code] = min(allowance, server_statuses.get(code, 0))
        allowance -= excused[code]
    for code, calls in server_statuses.items():
        failed = calls - excused.get(code, 0)
        if code == "OK" or failed <= 0:
            continue
        description = f"grpc-status {code}"
        seen = result.errors.get(description, 0)
        if failed > seen:  # the tool saw only part of them (or none, e.g. errors in trailers)
            result.errors[description] = failed
            result.calls_ok = max(0, result.calls_ok - (failed - seen))
    missing = max(0, result.calls_ok - server_ok)
    if missing:
        result.errors["counted OK by the tool, not by the server"] = missing
        result.calls_ok -= missing
    return {
        "server_statuses": server_statuses,
        "tool_ok_calls": tool_ok,
        "server_ok_calls": server_ok,
        "dropped_by_the_tool_at_the_end": result.calls_abandoned,
        "ended_with_the_run": {code: calls for code, calls in excused.items() if calls},
    }


def _status_check(measurement: Measurement) -> dict[str, Any]:
    return {
        "problems": measurement.problems,
        "probes": {"before": measurement.probe_before.summary(), "after": measurement.probe_after.summary()},
        "server_count": measurement.server_count
        or "not available: no metrics endpoint of the server (give --metrics-url)",
    }


def build_record(
    scenario: Scenario,
    tool: str,
    load: LoadSettings,
    workers: int,
    server_label: str,
    server: Measurement | None,
    ceiling: Measurement | None,
) -> dict[str, Any]:
    """One scenario's JSON record: SentinelStream's figures at top level, the ceiling's nested."""
    if server is not None:
        figures = {
            **result_fields(server.result, scenario.transactions_per_call),
            "cpu": server.cpu,
            "status_check": _status_check(server),
        }
    else:  # --ceiling-only
        figures = {
            key: None
            for key in (
                "calls",
                "calls_ok",
                "calls_per_s",
                "tps",
                "p50_ms",
                "p90_ms",
                "p95_ms",
                "p99_ms",
                "errors",
            )
        }
        figures["status_check"] = {"problems": []}
    record: dict[str, Any] = {
        "tool": tool,
        "scenario": scenario.name,
        "description": scenario.description,
        "method": scenario.method,
        "transactions_per_call": scenario.transactions_per_call,
        "server": server_label,
        "workers": workers,
        "concurrency": load.streams_per_connection * load.connections,
        "connections": load.connections,
        "rate_limit_calls_per_s": load.rate,
        **figures,
        "ceiling_tps": None,
        "ratio_to_ceiling": None,
    }
    if tool == "h2load" and not scenario.streaming and server is not None:
        record["payload_note"] = REPLAY_NOTE
    if ceiling is not None:
        ceiling_fields = result_fields(ceiling.result, scenario.transactions_per_call)
        ceiling_fields["cpu"] = ceiling.cpu
        ceiling_fields["status_check"] = _status_check(ceiling)
        record["ceiling"] = ceiling_fields
        record["ceiling_tps"] = ceiling_fields["tps"]
        if record["tps"] is not None and ceiling_fields["tps"]:
            record["ratio_to_ceiling"] = round(record["tps"] / ceiling_fields["tps"], 3)
    return record


def _load_settings(args: argparse.Namespace, scenario: Scenario, workers: int) -> LoadSettings:
    concurrency = args.concurrency or scenario.default_concurrency
    connections = args.connections or max(workers, min(concurrency, 2 * workers))
    if scenario.streaming:
        connections = concurrency  # one connection per stream (h2load: one process per stream)
    if connections < workers:
        raise BenchError(
            f"--connections {connections} is below the {workers} workers: the kernel spreads "
            "connections, not calls, over SO_REUSEPORT workers, so some workers would idle"
        )
    if concurrency < connections:
        raise BenchError(f"--concurrency {concurrency} is below the {connections} connections")
    return LoadSettings(
        concurrency=concurrency,
        connections=connections,
        duration_s=None if args.total else args.duration,
        total_calls=args.total,
        rate=args.rate,
        warmup_s=args.warmup,
    )


def server_target(
    args: argparse.Namespace,
    scenario: Scenario,
    workers: int,
    workdir: Path,
    load: LoadSettings,
    settings: Settings,
) -> tuple[AbstractContextManager[Any], str, str | None, str]:
    """What to measure: ``--target`` (a no-op context), else a fresh ``sentinel dev serve`` to enter;
    with its address, metrics URL and a label for the record.

    A scenario other than overload measures a fixed concurrency, so the server it starts holds all of
    it in flight (``max_in_flight_transactions`` at least the scenario's calls in flight times their
    transactions, even if every connection lands on one worker): its figures stay comparable with the
    runs before the bound existed. The overload scenario runs with the configured bound."""
    if args.target:
        wait_until_serving(args.target, 10.0)
        return nullcontext(), args.target, args.metrics_url, f"--target {args.target}"
    bound = settings.max_in_flight_transactions
    label = f"sentinel dev serve --workers {workers} (private Redis/PostgreSQL)"
    if scenario.overload_factor is None:
        bound = max(bound, load.concurrency * scenario.transactions_per_call)
        label += f", max_in_flight_transactions {bound}"
    process = ServerProcess(
        workdir / scenario.name, workers=workers, dev=True, max_in_flight_transactions=bound
    )
    return process, process.address, process.metrics_url, label


def run_grpc_bench(args: argparse.Namespace) -> int:
    """The command's handler."""
    try:
        return _run(args)
    except BenchError as exc:
        print(f"sentinel bench grpc: {exc}", file=sys.stderr)
        return 2
    except (ServerStartError, h2load.H2loadError, ghz.GhzError, grpcio_driver.ClientError) as exc:
        print(f"sentinel bench grpc: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    machine = machine_description()  # before the run: its load average is the machine's other work
    settings = load_settings(Path(args.config) if args.config else None)
    workers = args.workers or settings.workers
    names = ALL_SCENARIOS if args.scenario == "all" else (args.scenario,)
    scenarios = [SCENARIOS[name].with_stream_length(args.stream_length) for name in names]
    tool = choose_tool(args.tool, scenarios)
    rows = load_paysim(args.data)
    run_id = time.strftime("bench%Y%m%dT%H%M%S")
    workdir = new_work_directory("sentinel-bench-")
    records = []
    series_by_scenario = {}
    for scenario in scenarios:
        load = _load_settings(args, scenario, workers)
        factory = scenario.transaction_factory(rows, args.seed, args.accounts)
        payload = build_payload(scenario, factory, f"{run_id}-{scenario.name}", workdir, load.concurrency)
        if scenario.overload_factor is not None:
            from sentinel.bench.overload import run_overload  # it builds on this module

            record, series_by_scenario[scenario.name] = run_overload(
                args, payload, load, workers, workdir, settings
            )
            records.append(record)
            continue
        ceiling = None
        if not args.no_ceiling:
            with CeilingServer(settings, workers) as server:
                ceiling = measure(
                    tool,
                    server.address,
                    payload,
                    load,
                    workdir / f"{scenario.name}-ceiling",
                    args.proto,
                    server.counts,
                    server.pids,
                )
        measured = None
        label = "none (--ceiling-only)"
        if not args.ceiling_only:
            target, address, metrics_url, label = server_target(
                args, scenario, workers, workdir, load, settings
            )
            counts = partial(scrape_server_counts, metrics_url) if metrics_url else None
            with target:
                server_pids = target.pids if isinstance(target, ServerProcess) else set()
                measured = measure(
                    tool,
                    address,
                    payload,
                    load,
                    workdir / f"{scenario.name}-sentinel",
                    args.proto,
                    counts,
                    server_pids,
                )
        record = build_record(scenario, tool, load, workers, label, measured, ceiling)
        series = {}
        if measured is not None:
            series["SentinelStream"] = measured.result.latencies_ms
        if ceiling is not None:
            series["gRPC ceiling"] = ceiling.result.latencies_ms
        series_by_scenario[scenario.name] = series
        records.append(record)
    for record in records:
        if args.plot_dir:
            title = f"{record['description']}: {record['concurrency']} in flight, {tool}, {workers} workers"
            path = args.plot_dir / f"grpc-{record['scenario']}-{tool}-{run_id.removeprefix('bench')}.png"
            record["plot"] = str(plot_latency(path, title, series_by_scenario[record["scenario"]]))
    command = "sentinel " + shlex.join(sys.argv[1:])
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        append_results(args.results, command, machine, records)
    if args.json:
        for record in records:
            print(json.dumps({**record, "machine": machine, "command": command}))
    else:
        print(format_table(records))
        for record in records:
            for summary in record_summaries(record):
                print(f"{record['scenario']}: {summary}")
            for problem in record["status_check"]["problems"]:
                print(f"{record['scenario']}: PROBLEM: {problem}")
    failed = any(
        r["status_check"]["problems"] or r.get("ceiling", {}).get("status_check", {}).get("problems")
        for r in records
    )
    where = finish_work_directory(workdir, keep=args.keep_work or failed)
    if not args.json:
        print(where)
    return 1 if failed else 0


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench grpc``."""
    parser = bench_subparsers.add_parser(
        "grpc",
        help="load SentinelStream over gRPC (ghz, else h2load) and compare with the gRPC ceiling",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--scenario",
        choices=[*SCENARIOS, "all"],
        default="score",
        help="what to call (default: score); all: every scenario but hot-account and overload "
        "in turn (those two run with --tool grpcio only; overload measures the capacity, then offers "
        "3 times it)",
    )
    parser.add_argument(
        "--tool",
        choices=["auto", "ghz", "h2load", "grpcio"],
        default="auto",
        help="load generator (default auto: ghz when in .tools/, where make bench-tools "
        "puts it, or on PATH, else h2load, and grpcio for hot-account; grpcio: Python "
        "clients sending new transaction ids in every call)",
    )
    parser.add_argument(
        "--target", metavar="HOST:PORT", help="measure this running SentinelStream instead of starting one"
    )
    parser.add_argument(
        "--metrics-url",
        metavar="URL",
        help="with --target: its Prometheus /metrics, to check statuses server-side",
    )
    parser.add_argument("--workers", type=int, help="server workers (default: the workers setting)")
    parser.add_argument(
        "--concurrency",
        type=int,
        help="calls (ScoreStream: streams) in flight (default: the scenario's, 64 for score)",
    )
    parser.add_argument(
        "--connections", type=int, help="HTTP/2 connections, at least the workers (default: 2 per worker)"
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds measured (default 10); ScoreStream over h2load sends one stream "
        "per connection instead, as long as --stream-length makes it",
    )
    amount.add_argument("--total", type=int, help="measure this many calls instead of a duration")
    parser.add_argument("--rate", type=float, help="calls per second in total (default: unlimited)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load (default 3)")
    parser.add_argument(
        "--stream-length",
        type=int,
        default=DEFAULT_STREAM_LENGTH,
        help=f"messages per ScoreStream call (default {DEFAULT_STREAM_LENGTH:,})",
    )
    add_payload_options(parser, accounts="accounts the transactions are spread over (hot-account: one)")
    parser.add_argument(
        "--proto",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ghz: read the method from the shipped .proto (default); --no-proto: by "
        "server reflection, which grpcio's reflection cannot answer for a method name (ghz "
        "then fails with 'Symbol not found')",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-ceiling", action="store_true", help="skip the do-nothing server")
    which.add_argument(
        "--ceiling-only",
        action="store_true",
        help="measure only the do-nothing server (the gRPC ceiling of this machine)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per scenario")
    add_output_options(parser)
    parser.set_defaults(handler=run_grpc_bench)
