"""Present benchmark results: a table, JSON, a latency plot and an entry in bench/RESULTS.md.

A published figure is only worth something with what produced it, so every RESULTS.md entry
carries the exact command, the machine (cores, CPU model) and the date next to the numbers.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.bench.measurement import LoadResult

TABLE_COLUMNS = (
    ("target", "target", "{}"),
    ("scenario", "scenario", "{}"),
    ("tps", "txn/s", "{:,.0f}"),
    ("calls_per_s", "calls/s", "{:,.1f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("errors", "errors", "{}"),
    ("degraded_decisions", "degraded", "{:,}"),  # SentinelStream's count, see server_count_summary
    ("ratio_to_ceiling", "vs ceiling", "{:.2f}"),
)


def machine_description() -> dict[str, Any]:
    """Cores, CPU model, OS, Python and how busy the machine already is."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "load_average_1m_before": round(os.getloadavg()[0], 2),  # other work sharing the cores
        "cores": os.cpu_count(),
        "cpu_model": model,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def result_fields(result: LoadResult, transactions_per_call: int) -> dict[str, Any]:
    """The figures of one measured run."""
    percentiles = result.percentiles_ms
    return {
        "calls": result.calls_completed,
        "calls_ok": result.calls_ok,
        "calls_per_s": round(result.calls_per_s, 2),
        "tps": round(result.calls_per_s * transactions_per_call, 1),
        "p50_ms": _rounded(percentiles.get(50.0)),
        "p90_ms": _rounded(percentiles.get(90.0)),
        "p95_ms": _rounded(percentiles.get(95.0)),
        "p99_ms": _rounded(percentiles.get(99.0)),
        "errors": result.error_count,
        "error_kinds": result.errors,
        "status_codes": result.status_codes,
        "measured_s": round(result.duration_s, 3),
        "notes": result.notes,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def format_table(records: list[dict[str, Any]]) -> str:
    """Fixed-width table of the server and ceiling figures of every record."""
    rows = [[title for _, title, _ in TABLE_COLUMNS]]
    for record in records:
        for target_name, figures in (("sentinelstream", record), ("ceiling", record.get("ceiling"))):
            if figures is None or figures.get("tps") is None:
                continue
            server_count = figures.get("status_check", {}).get("server_count")
            degraded = server_count.get("degraded_decisions") if isinstance(server_count, dict) else None
            values = {
                **figures,
                "scenario": record["scenario"],
                "target": target_name,
                "degraded_decisions": degraded,
            }
            if target_name == "ceiling":
                values["ratio_to_ceiling"] = 1.0
            rows.append(
                [
                    "-" if values.get(key) is None else pattern.format(values[key])
                    for key, _, pattern in TABLE_COLUMNS
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )


def server_count_summary(record: dict[str, Any]) -> str | None:
    """What SentinelStream itself counted in the measured window: statuses, replays, decisions by
    outcome (with the share flagged: hot-account's velocity rule should flag nearly all) and the
    decisions made degraded, without the account's state (fast answers that scored less)."""
    server_count = record.get("status_check", {}).get("server_count")
    if not isinstance(server_count, dict):
        return None
    text = f"server counted {record['method']} calls by status: {server_count['server_statuses']}"
    if server_count.get("replayed_decisions") is not None:
        text += f"; idempotent replays: {server_count['replayed_decisions']:,} decisions"
    outcomes = server_count.get("decisions_by_outcome")
    if outcomes:
        flagged = 1 - outcomes.get("APPROVE", 0) / sum(outcomes.values())
        text += f"; decisions by outcome: {outcomes} ({flagged:.1%} REVIEW or DECLINE)"
    degraded = server_count.get("degraded_decisions")
    if degraded is not None:
        text += f"; degraded decisions: {degraded:,}"
        if degraded:
            text += f" by cause {server_count['degraded_by_cause']}"
    return text


def overload_summary(record: dict[str, Any]) -> str | None:
    """One line for the overload scenario: capacity, offered rate, accepted p99 against the capacity
    run's, shed calls, the workers' peak memory and the ledger check."""
    if "overload_factor" not in record:
        return None
    capacity, ledger, rss = record["capacity"], record["ledger_check"], record["worker_rss_peak_mb"]
    parts = [
        f"capacity {capacity['calls_per_s']:,.1f} calls/s "
        f"(p50 {capacity['p50_ms']} ms, p99 {capacity['p99_ms']} ms)",
        f"offered {record['offered_calls_per_s']:,.1f} calls/s ({record['overload_factor']:g}x)",
        f"accepted {record['calls_per_s']:,.1f} calls/s, p50 {record['p50_ms']} ms, "
        f"p99 {record['accepted_p99_ms']} ms "
        f"({record['accepted_p99_over_capacity_p99']}x the capacity run's)",
        f"shed {record['shed_calls']:,} calls (server: {record['shed_by_server']})",
        f"worker peak RSS {rss['after_capacity_run']} MB after the capacity run, "
        f"{rss['after_overload_run']} MB after overload",
        f"ledger: {ledger['recorded']} of {ledger['accepted_transactions']:,} accepted transactions "
        f"recorded, {ledger['lost']} lost",
    ]
    return "; ".join(parts)


def stage_summary(record: dict[str, Any]) -> str | None:
    """One line naming where SentinelStream spent its time per micro-batch, busiest stage first."""
    server_count = record.get("status_check", {}).get("server_count")
    stages = server_count.get("stages") if isinstance(server_count, dict) else None
    if not stages:
        return None
    ordered = sorted(stages.items(), key=lambda item: item[1]["busy_s_per_s"], reverse=True)
    parts = [
        f"{name} {figures['mean_ms']:.2f} ms ({figures['busy_s_per_s']:.2f} s/s)" for name, figures in ordered
    ]
    size = server_count.get("mean_micro_batch_size")
    return f"server stages, mean per micro-batch of {size} (busy seconds per second): " + ", ".join(parts)


def record_summaries(record: dict[str, Any]) -> list[str]:
    """The summary lines a run has (overload, server counts, stages, CPU), for the table and RESULTS.md."""
    summaries = (overload_summary, server_count_summary, stage_summary, cpu_summary, ceiling_cpu_summary)
    return [line for summarize in summaries if (line := summarize(record)) is not None]


def cpu_summary(record: dict[str, Any]) -> str | None:
    """One line saying which part of the machine used the CPU during the run, busiest first."""
    cpu = record.get("cpu")
    if not cpu:
        return None
    busy, per_transaction = cpu["cores_busy"], cpu["us_per_transaction"]
    parts = sorted((part for part in busy if part != "total"), key=busy.__getitem__, reverse=True)
    figures = ", ".join(f"{part} {busy[part]:.2f} ({per_transaction[part]:.0f} µs)" for part in parts)
    return (
        f"CPU, cores busy on average (µs per transaction): {figures}; "
        f"total {busy['total']:.2f} ({per_transaction['total']:.0f} µs)"
    )


def ceiling_cpu_summary(record: dict[str, Any]) -> str | None:
    """The do-nothing server's CPU in the same run, and SentinelStream's server against it (issue 15 sets
    its unary target as that multiple)."""
    cpu, ceiling_cpu = record.get("cpu"), (record.get("ceiling") or {}).get("cpu")
    if not cpu or not ceiling_cpu or not ceiling_cpu["us_per_transaction"].get("server"):
        return None
    server, ceiling = cpu["us_per_transaction"]["server"], ceiling_cpu["us_per_transaction"]["server"]
    return (
        f"do-nothing server in the same run: {ceiling:.0f} µs of server CPU per transaction; "
        f"SentinelStream's server {server / ceiling:.1f} times that"
    )


def plot_latency(path: Path, title: str, series: dict[str, np.ndarray]) -> Path:
    """Latency by percentile (log scale) of each named series, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    percentiles = np.linspace(0, 100, 201)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for label, latencies in series.items():
        if latencies.size:
            label_text = f"{label} (n={latencies.size:,})"
            axes.plot(percentiles, np.percentile(latencies, percentiles), label=label_text)
    axes.set_yscale("log")
    axes.set_xlabel("percentile of calls")
    axes.set_ylabel("latency per call (ms)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def append_results(path: Path, command: str, machine: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Append one dated entry (command, machine, table, per-scenario details) to RESULTS.md."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = []
    if not path.exists():
        lines += [
            "# Benchmark results",
            "",
            "Appended by `sentinel bench ...` runs; newest last. Figures are only comparable on the same"
            " machine. See docs/decisions/0008-load-benchmark-method.md for how they are measured.",
            "",
        ]
    lines += [
        f"## {date}: `sentinel bench grpc`",
        "",
        f"- command: `{command}`",
        f"- machine: {machine['cores']} cores, {machine['cpu_model']}, {machine['os']}, "
        f"Python {machine['python']}; 1-minute load average before the run: "
        f"{machine['load_average_1m_before']}",
    ]
    for record in records:
        lines.append(
            f"- {record['scenario']}: tool {record['tool']}, {record['workers']} workers, "
            f"{record['concurrency']} in flight over {record['connections']} connections, "
            f"{record['transactions_per_call']} txn/call, server {record['server']}"
        )
        if record.get("plot"):
            lines.append(f"  - latency plot: `{record['plot']}`")
        for check in record.get("status_check", {}).get("problems", []):
            lines.append(f"  - status check problem: {check}")
        if record.get("payload_note"):
            lines.append(f"  - payloads: {record['payload_note']}")
        lines += [f"  - {summary}" for summary in record_summaries(record)]
    lines += ["", "```", format_table(records), "```", ""]
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")
