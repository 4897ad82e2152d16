"""``sentinel bench events``: what the decision events cost the scoring path (issue 18: the Score p99 may
move by at most 10 % with the dispatcher and a receiver running).

One run starts a private Redis and PostgreSQL and alternates rounds on them, without events first:
``without`` (``sentinel serve`` with events off, no active subscription, so no outbox row is written) and
``with`` (a fresh webhook subscription to every decision, a real HTTP receiver, ``sentinel serve`` with
its dispatchers). Every round restarts the server on the same database, warms it up and offers unary Score
a fixed rate below saturation, open loop (ghz ``--rps``, as ``sentinel bench scale`` does), with new
transaction ids (bench/grpc_bench.py's measure: probes, the server's own count, CPU by part). Alternating
A/B/A/B spreads the drift of a growing ledger and of other work on the machine over both arms.

Reported: p50/p99 of each arm over all its calls, the p99 ratio (with/without) against the 1.10 target;
for each with-round the dispatchers' CPU per delivered event, the delivery throughput, the outbox backlog
and lag when the load stopped (kept up: the oldest pending event younger than 2 s), the time to drain it,
and whether every decision's event reached the receiver (distinct event ids it printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import redis

from sentinel.bench import ghz, grpcio_driver
from sentinel.bench.grpc_bench import BenchError, build_payload, measure
from sentinel.bench.measurement import LoadSettings, ServerCounts, percentiles_ms
from sentinel.bench.options import add_output_options, add_payload_options
from sentinel.bench.payloads import load_paysim
from sentinel.bench.report import machine_description, plot_latency, record_summaries, result_fields
from sentinel.bench.scale import SATURATED_BELOW, choose_tool
from sentinel.bench.scenarios import SCENARIOS
from sentinel.bench.server_metrics import scrape_sample, scrape_server_counts
from sentinel.bench.topology import dispatcher_pids
from sentinel.bench.workdir import finish_work_directory, new_work_directory
from sentinel.config import load_settings
from sentinel.events import outbox
from sentinel.events.store import SubscriptionStore
from sentinel.localservices import LocalServiceError, local_services
from sentinel.postgres import EVENTS_ROLE, server_settings
from sentinel.serverprocess import ServerProcess, ServerStartError
from sentinel.system import free_port

P99_TARGET = 1.10  # issue 18: the scoring p99 moves by at most 10 %
DEFAULT_RATE = 300.0  # Score calls/s: about a fifth of this 2-core machine's capacity (bench/RESULTS.md)
KEPT_UP_LAG_S = 2.0  # delivery kept up when the oldest pending event is younger than this at the end
DELIVERED_SAMPLE = "sentinel_events_delivered_total"
DISPATCHER_START_TIMEOUT_S = 15.0
RECEIVER_START_TIMEOUT_S = 15.0
DRAIN_POLL_S = 0.2
SCENARIO = SCENARIOS["score"]
# The receivers: this package's aiohttp one, or the README's stdlib example (slower: one thread).
RECEIVERS = {
    "fast": [sys.executable, "-m", "sentinel.bench.webhook_receiver"],
    "example": [
        sys.executable,
        str(Path(__file__).resolve().parent.parent / "docs/examples/webhook_receiver.py"),
    ],
}


def arm_summary(latencies_ms: Sequence[np.ndarray], round_p99s: Sequence[float | None]) -> dict[str, Any]:
    """One arm's figures: p50/p99 over all its rounds' calls together, and each round's p99."""
    pooled = np.concatenate(list(latencies_ms)) if latencies_ms else np.asarray([], dtype=float)
    percentiles = percentiles_ms(pooled)
    return {
        "calls": int(pooled.size),
        "p50_ms": round(percentiles[50.0], 3) if percentiles else None,
        "p99_ms": round(percentiles[99.0], 3) if percentiles else None,
        "p99_ms_by_round": list(round_p99s),
    }


def p99_comparison(
    without_p99: float | None, with_p99: float | None, target: float = P99_TARGET
) -> dict[str, Any]:
    """The p99 ratio with/without events against ``target`` (None when an arm has no figure)."""
    if not without_p99 or with_p99 is None:
        return {"p99_ratio": None, "target": target, "within_target": None}
    ratio = with_p99 / without_p99
    return {"p99_ratio": round(ratio, 3), "target": target, "within_target": ratio <= target}


def distinct_event_ids(receiver_output: str) -> set[str]:
    """The event ids a receiver printed (first word of each line: both receivers start lines with it)."""
    return {line.split()[0] for line in receiver_output.splitlines() if line.startswith("evt_")}


@dataclass(slots=True)
class Run:
    """What every round shares."""

    args: argparse.Namespace
    tool: str
    load: LoadSettings
    redis_url: str
    database_url: str
    workdir: Path
    run_id: str
    rows: Any  # the PaySim rows the payloads are drawn from
    max_in_flight: int  # the servers' bound, at least the calls in flight: nothing is shed
    service_pids: set[int]  # Redis and PostgreSQL: named by bench/cpu.py among the server's parts

    def server(self, directory: Path, events: bool) -> ServerProcess:
        """``sentinel serve`` on the shared Redis/PostgreSQL, holding every call in flight (nothing shed)."""
        return ServerProcess(
            directory,
            workers=self.args.workers,
            redis_url=self.redis_url,
            database_url=self.database_url,
            max_in_flight_transactions=self.max_in_flight,
            events_enabled=events,  # off: no dispatcher (events_dispatchers counts only when on)
            events_dispatchers=self.args.dispatchers,
            events_allow_plain_http_loopback=events,
        )


class _CountsAndDeliveries:
    """The server's counts for ``measure`` (read right before and after the measured run), and with them
    the dispatchers' delivered counter, so deliveries are counted over the same window as the CPU."""

    def __init__(self, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.delivered: list[float] = []

    def __call__(self) -> ServerCounts:
        self.delivered.append(scrape_sample(self.metrics_url, DELIVERED_SAMPLE))
        return scrape_server_counts(self.metrics_url)


async def _events_connection(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings=server_settings("sentinel-bench-events", EVENTS_ROLE))


async def _subscribe(dsn: str, url: str) -> tuple[str, str, int]:
    """A webhook subscription to every decision: its id, its secret, and the last ledger sequence before
    it (every later decision must reach the receiver)."""
    store = await SubscriptionStore.connect(dsn)
    try:
        destination, secret = await store.create_webhook(
            url,
            outcomes=[],
            event_types=[],
            description="sentinel bench events",
            actor="bench",
            allow_plain_http_loopback=True,
        )
    finally:
        await store.close()
    connection = await _events_connection(dsn)
    try:
        last = int(await connection.fetchval("SELECT coalesce(max(sequence), 0) FROM ledger.decisions"))
    finally:
        await connection.close()
    return destination.destination_id, secret, last


async def _disable(dsn: str, destination_id: str) -> None:
    store = await SubscriptionStore.connect(dsn)
    try:
        await store.disable(destination_id, actor="bench")
    finally:
        await store.close()


async def _outbox_state(dsn: str, destination_id: str) -> dict[str, float]:
    """Pending and dead deliveries of the destination and the age of its oldest pending one."""
    connection = await _events_connection(dsn)
    try:
        for row in await connection.fetch(outbox.OUTBOX_STATE):
            if row["destination_id"] == destination_id:
                return {"pending": row["pending"], "dead": row["dead"], "lag_s": round(row["lag_s"], 3)}
    finally:
        await connection.close()
    return {"pending": 0, "dead": 0, "lag_s": 0.0}


async def _decisions_after(dsn: str, sequence: int) -> int:
    connection = await _events_connection(dsn)
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM ledger.decisions WHERE sequence > $1", sequence)
        )
    finally:
        await connection.close()


def _wait_drained(dsn: str, destination_id: str, timeout_s: float) -> float | None:
    """Seconds until the destination had nothing pending; None when it still had after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if asyncio.run(_outbox_state(dsn, destination_id))["pending"] == 0:
            return round(time.monotonic() - started, 2)
        time.sleep(DRAIN_POLL_S)
    return None


def _start_receiver(kind: str, port: int, secret: str, directory: Path) -> subprocess.Popen[bytes]:
    """The receiver as its own process on ``port``, once it accepts connections; its stdout in a file."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "receiver.out").open("wb") as out, (directory / "receiver.err").open("wb") as err:
        process = subprocess.Popen(
            [*RECEIVERS[kind], str(port)],
            env={**os.environ, "SENTINEL_WEBHOOK_SECRET": secret},
            stdout=out,
            stderr=err,
        )
    deadline = time.monotonic() + RECEIVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the {kind} receiver exited: {(directory / 'receiver.err').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise BenchError(
        f"the {kind} receiver did not listen on port {port} within {RECEIVER_START_TIMEOUT_S:g} s"
    )


def _roles(server: ServerProcess, dispatchers: int, receiver_pid: int | None) -> dict[int, str]:
    """CPU parts (bench/cpu.py), once ``dispatchers`` event dispatchers have started."""
    roles = dict.fromkeys(server.pids, "supervisor")
    roles.update(dict.fromkeys(server.worker_pids(), "workers"))
    deadline = time.monotonic() + DISPATCHER_START_TIMEOUT_S
    while len(started := dispatcher_pids(server)) < dispatchers:
        if time.monotonic() > deadline:
            raise BenchError("the event dispatchers did not start (see the server log)")
        time.sleep(0.1)
    roles.update(dict.fromkeys(started, "dispatcher"))
    if receiver_pid is not None:
        roles[receiver_pid] = "receiver"
    return roles


def run_round(run: Run, number: int, events: bool) -> tuple[dict[str, Any], np.ndarray]:
    """One round (a fresh server on the shared database; with ``events`` a fresh subscription, receiver
    and dispatchers): its record and its calls' latencies."""
    arm = "with" if events else "without"
    directory = run.workdir / f"round-{number}-{arm}"
    directory.mkdir(parents=True)
    # Every round starts from empty account state: the same accounts come back in every round, and with
    # the state of the rounds before them their velocity rules would fire more often round after round
    # (seen: 18 % of decisions REVIEW or DECLINE in the first round, 91 % in the later ones), so the two
    # arms would score different workloads.
    with redis.Redis.from_url(run.redis_url) as client:
        client.flushall()
    factory = SCENARIO.transaction_factory(run.rows, run.args.seed, run.args.accounts)
    # New ids every round: ghz numbers its calls from 0 in every run, and a repeated id is a replay.
    payload = build_payload(SCENARIO, factory, f"{run.run_id}-r{number}", directory, run.load.concurrency)
    receiver = None
    subscription: tuple[str, str, int] | None = None
    events_figures: dict[str, Any] | None = None
    try:
        if events:
            port = free_port()
            subscription = asyncio.run(_subscribe(run.database_url, f"http://127.0.0.1:{port}/hook"))
            receiver = _start_receiver(run.args.receiver, port, subscription[1], directory)
        with run.server(directory / "server", events) as server:
            receiver_pid = receiver.pid if receiver is not None else None
            roles = _roles(server, run.args.dispatchers if events else 0, receiver_pid)
            counts = _CountsAndDeliveries(server.metrics_url)
            measured = measure(
                run.tool,
                server.address,
                payload,
                run.load,
                directory / "load",
                True,
                counts,
                server.pids | run.service_pids | ({receiver_pid} if receiver_pid else set()),
                roles=roles,
            )
            if subscription is not None:
                at_end = asyncio.run(_outbox_state(run.database_url, subscription[0]))
                drained_s = _wait_drained(run.database_url, subscription[0], run.args.drain_timeout)
                events_figures = _delivery_figures(
                    run, measured.result, measured.cpu, counts, at_end, drained_s
                )
        if receiver is not None:  # every event it printed is flushed: count them once it is gone
            receiver.terminate()
            receiver.wait(10)
        if subscription is not None and events_figures is not None:
            decided = asyncio.run(_decisions_after(run.database_url, subscription[2]))
            received = len(distinct_event_ids((directory / "receiver.out").read_text()))
            events_figures |= {
                "decisions_recorded": decided,
                "events_received": received,
                "all_delivered": received >= decided and _emptied(events_figures),
            }
    finally:
        if receiver is not None and receiver.poll() is None:
            receiver.kill()
            receiver.wait()
        if subscription is not None:
            asyncio.run(_disable(run.database_url, subscription[0]))
    result = measured.result
    record: dict[str, Any] = {
        "round": number,
        "arm": arm,
        **result_fields(result, 1),
        "offered_calls_per_s": run.load.rate,
        "cpu": measured.cpu,
        "status_check": {
            "problems": list(measured.problems),
            "probes": {"before": measured.probe_before.summary(), "after": measured.probe_after.summary()},
            "server_count": measured.server_count,
        },
        "method": SCENARIO.method,
    }
    offered_calls = (run.load.rate or 0.0) * (run.load.duration_s or 0.0)
    if result.calls_ok < SATURATED_BELOW * offered_calls - 1:
        record["status_check"]["problems"].append(
            f"saturated: {record['calls_per_s']:,.0f} of {run.load.rate:,.0f} calls/s offered; lower --rate"
        )
    if events_figures is not None:
        record["events"] = events_figures
        if not events_figures["all_delivered"]:
            record["status_check"]["problems"].append(
                f"{events_figures['events_received']:,} of {events_figures['decisions_recorded']:,} "
                "decisions' events reached the receiver"
            )
    return record, result.latencies_ms


def _emptied(figures: dict[str, Any]) -> bool:
    """The outbox of the round's subscription was emptied (nothing pending, nothing dead)."""
    return figures["drained_after_s"] is not None and figures["at_end"]["dead"] == 0


def _delivery_figures(
    run: Run,
    result: Any,
    cpu: dict[str, dict[str, float]],
    counts: _CountsAndDeliveries,
    at_end: dict[str, float],
    drained_s: float | None,
) -> dict[str, Any]:
    """Deliveries in the measured window, their rate and dispatcher CPU each, the backlog at the end."""
    delivered = int(counts.delivered[-1] - counts.delivered[0]) if len(counts.delivered) >= 2 else 0
    dispatcher_s = cpu["us_per_transaction"].get("dispatcher", 0.0) * result.calls_ok / 1e6
    receiver_s = cpu["us_per_transaction"].get("receiver", 0.0) * result.calls_ok / 1e6
    return {
        "receiver": run.args.receiver,
        "dispatchers": run.args.dispatchers,
        "delivered_in_window": delivered,
        "deliveries_per_s": round(delivered / result.duration_s, 1) if result.duration_s else 0.0,
        "decisions_per_s": round(result.calls_per_s, 1),
        "dispatcher_us_per_event": round(dispatcher_s / delivered * 1e6, 1) if delivered else None,
        "receiver_us_per_event": round(receiver_s / delivered * 1e6, 1) if delivered else None,
        "at_end": at_end,
        "kept_up": at_end["lag_s"] < KEPT_UP_LAG_S,
        "drained_after_s": drained_s,
    }


def summarize(records: list[dict[str, Any]], latencies: list[np.ndarray]) -> dict[str, Any]:
    """Both arms' summaries, the p99 comparison and the delivery figures of the with-rounds."""
    arms = {}
    for arm in ("without", "with"):
        chosen = [i for i, record in enumerate(records) if record["arm"] == arm]
        arms[arm] = arm_summary([latencies[i] for i in chosen], [records[i]["p99_ms"] for i in chosen])
        # Cores busy outside the benchmark's processes: other work on the machine, the noise to judge by.
        arms[arm]["other_cores_by_round"] = [records[i]["cpu"]["cores_busy"].get("other") for i in chosen]
    with_events = [record["events"] for record in records if "events" in record]
    per_event = [
        e["dispatcher_us_per_event"] for e in with_events if e["dispatcher_us_per_event"] is not None
    ]
    return {
        **arms,
        **p99_comparison(arms["without"]["p99_ms"], arms["with"]["p99_ms"]),
        "dispatcher_us_per_event": round(float(np.mean(per_event)), 1) if per_event else None,
        "deliveries_per_s_by_round": [e["deliveries_per_s"] for e in with_events],
        "kept_up": bool(with_events) and all(e["kept_up"] for e in with_events),
        "all_delivered": bool(with_events) and all(e.get("all_delivered") for e in with_events),
    }


def summary_lines(document: dict[str, Any]) -> list[str]:
    """The run in a few lines, for stdout and RESULTS.md."""
    summary = document["summary"]
    without, with_ = summary["without"], summary["with"]
    verdict = {True: "within", False: "OUTSIDE", None: "no figure for"}[summary["within_target"]]
    lines = [
        *(
            f"{name} events: p50 {arm['p50_ms']} ms, p99 {arm['p99_ms']} ms over {arm['calls']:,} calls "
            f"(p99 by round {arm['p99_ms_by_round']}; other work on the machine, cores busy by round "
            f"{arm['other_cores_by_round']})"
            for name, arm in (("without", without), ("with", with_))
        ),
        f"p99 ratio with/without: {summary['p99_ratio']} ({verdict} the {summary['target']} target)",
        f"dispatcher CPU per event: {summary['dispatcher_us_per_event']} µs; delivery kept up: "
        f"{summary['kept_up']}; every event delivered: {summary['all_delivered']}",
    ]
    for record in document["rounds"]:
        events = record.get("events")
        if events:
            lines.append(
                f"round {record['round']} (with): {events['delivered_in_window']:,} events delivered in the "
                f"window, {events['deliveries_per_s']:,.1f}/s for {events['decisions_per_s']:,.1f} "
                "decisions/s; "
                f"at the end {events['at_end']['pending']:,} pending, oldest {events['at_end']['lag_s']} s; "
                f"drained after {events['drained_after_s']} s; {events['events_received']:,} of "
                f"{events['decisions_recorded']:,} decisions' events received"
            )
        lines += [f"round {record['round']} ({record['arm']}): {line}" for line in record_summaries(record)]
        lines += [f"round {record['round']}: PROBLEM: {p}" for p in record["status_check"]["problems"]]
    return lines


def append_events_results(path: Path, document: dict[str, Any]) -> None:
    """One dated entry in RESULTS.md: command, machine, settings, the summary."""
    machine, settings = document["machine"], document["settings"]
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {date}: `sentinel bench events`",
        "",
        f"- command: `{document['command']}`",
        f"- machine: {machine['cores']} cores, {machine['cpu_model']}, {machine['os']}, "
        f"Python {machine['python']}; 1-minute load average before the run: "
        f"{machine['load_average_1m_before']}",
        f"- Score at {settings['rate']:g} calls/s offered ({settings['tool']}, "
        f"{settings['concurrency']} in flight), {settings['workers']} worker(s), {settings['rounds']} rounds "
        f"per arm of {settings['duration_s']:g} s alternating without/with; with: "
        f"{settings['dispatchers']} dispatcher(s), {settings['receiver']} receiver",
    ]
    if document.get("plot"):
        lines.append(f"- latency plot: `{document['plot']}`")
    lines += [f"- {line}" for line in summary_lines(document)]
    with path.open("a") as handle:
        handle.write("\n".join([*lines, ""]) + "\n")


def run_events_bench(args: argparse.Namespace) -> int:
    """The command's handler."""
    try:
        return _run(args)
    except (BenchError, ValueError) as exc:
        print(f"sentinel bench events: {exc}", file=sys.stderr)
        return 2
    except (ServerStartError, LocalServiceError, ghz.GhzError, grpcio_driver.ClientError) as exc:
        print(f"sentinel bench events: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    machine = machine_description()
    tool = choose_tool(args.tool)
    concurrency = SCENARIO.default_concurrency
    load = LoadSettings(
        concurrency=concurrency,
        connections=max(1, min(concurrency, 2 * args.workers)),
        duration_s=args.duration,
        total_calls=None,
        rate=args.rate,
        warmup_s=args.warmup,
    )
    workdir = new_work_directory("sentinel-bench-events-")
    run_id = time.strftime("events%Y%m%dT%H%M%S")
    records, latencies = [], []
    with local_services(workdir / "services") as (redis, postgres, _):
        assert redis is not None and postgres is not None
        bound = max(
            load_settings(Path(args.config) if args.config else None).max_in_flight_transactions, concurrency
        )
        services = {s.process.pid for s in (redis, postgres) if s.process is not None}
        rows = load_paysim(args.data)
        run = Run(args, tool, load, redis.url, postgres.url, workdir, run_id, rows, bound, services)
        # Odd rounds without, even ones with: the first server migrates the ledger before any subscription.
        for number in range(1, 2 * args.rounds + 1):
            record, round_latencies = run_round(run, number, events=number % 2 == 0)
            records.append(record)
            latencies.append(round_latencies)
    command = "sentinel " + shlex.join(sys.argv[1:])
    document: dict[str, Any] = {
        "command": command,
        "machine": machine,
        "settings": {
            "tool": tool,
            "rate": args.rate,
            "concurrency": concurrency,
            "workers": args.workers,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "dispatchers": args.dispatchers,
            "receiver": args.receiver,
        },
        "summary": summarize(records, latencies),
        "rounds": records,
    }
    if args.plot_dir:
        pooled = {
            f"{arm} events": np.concatenate(
                [lat for r, lat in zip(records, latencies, strict=True) if r["arm"] == arm]
            )
            for arm in ("without", "with")
        }
        title = f"Score at {args.rate:g} calls/s, {tool}: without vs with decision events"
        path = args.plot_dir / f"events-score-{tool}-{run_id.removeprefix('events')}.png"
        document["plot"] = str(plot_latency(path, title, pooled))
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        append_events_results(args.results, document)
    if args.json:
        print(json.dumps(document))
    else:
        print("\n".join(summary_lines(document)))
    failed = any(record["status_check"]["problems"] for record in records)
    where = finish_work_directory(workdir, keep=args.keep_work or failed)
    if not args.json:
        print(where)
    return 1 if failed else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench events``."""
    parser = bench_subparsers.add_parser(
        "events",
        help="Score latency without and with the decision events (dispatchers + a webhook receiver), A/B",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"Score calls per second offered (default {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds measured per round (default 20)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per round (default 3)")
    parser.add_argument("--rounds", type=_positive, default=2, help="rounds per arm, alternating (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="server workers (default 1)")
    parser.add_argument(
        "--dispatchers", type=int, default=1, help="event dispatchers with events (default 1)"
    )
    parser.add_argument(
        "--receiver",
        choices=sorted(RECEIVERS),
        default="fast",
        help="fast: bench/webhook_receiver.py (aiohttp); example: docs/examples/webhook_receiver.py (stdlib)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds a with-round waits for the outbox to empty after the load (default 60)",
    )
    parser.add_argument(
        "--tool",
        choices=["auto", "ghz", "grpcio"],
        default="auto",
        help="load generator (default auto: ghz when in .tools/ or on PATH, else grpcio)",
    )
    add_payload_options(parser)
    parser.add_argument("--json", action="store_true", help="print the run as one JSON document")
    add_output_options(parser)
    parser.set_defaults(handler=run_events_bench)
