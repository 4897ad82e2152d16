"""SentinelStream's own count of calls, read from its Prometheus endpoint.

The server counts every call by method and final gRPC status (``sentinel_calls_total``), every
idempotent replay (``sentinel_replayed_decisions_total``), every decision by outcome
(``sentinel_decisions_total``) and every decision made without some inputs, by cause
(``sentinel_degraded_decisions_total``), summed over its workers, and times its pipeline stages per
micro-batch (``sentinel_stage_seconds``). Reading them before and after a load run gives the
server's view of that run: it catches what a load tool cannot see (h2load: gRPC errors in
trailers), shows which path the calls took, whether fast answers were degraded ones (scored
without the account's state) and which stage the time went to.
"""

from __future__ import annotations

import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from sentinel.bench.measurement import ServerCounts

CALLS_SAMPLE = "sentinel_calls_total"
REPLAYS_SAMPLE = "sentinel_replayed_decisions_total"
DECISIONS_SAMPLE = "sentinel_decisions_total"  # label outcome: APPROVE, REVIEW, DECLINE
DEGRADED_SAMPLE = "sentinel_degraded_decisions_total"  # label cause, e.g. state_unavailable
# Histograms whose sum and count say where the time goes: name in ServerCounts -> metric, label.
STAGE_METRIC = "sentinel_stage_seconds"
BATCH_SIZE_METRIC = "sentinel_batch_size"
SCRAPE_TIMEOUT_S = 10.0


def parse_server_counts(exposition: str) -> ServerCounts:
    """Call, replay, decision and degraded-decision counters and stage histograms from a Prometheus
    text exposition (a counter SentinelStream never incremented is absent: zero)."""
    calls: Counter[tuple[str, str]] = Counter()
    replayed: int | None = None
    decisions: Counter[str] = Counter()
    degraded: Counter[str] = Counter()
    sums: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == CALLS_SAMPLE:
                calls[sample.labels.get("method", ""), sample.labels.get("code", "")] += int(sample.value)
            elif sample.name == REPLAYS_SAMPLE:
                replayed = (replayed or 0) + int(sample.value)
            elif sample.name == DECISIONS_SAMPLE:
                decisions[sample.labels.get("outcome", "")] += int(sample.value)
            elif sample.name == DEGRADED_SAMPLE:
                degraded[sample.labels.get("cause", "")] += int(sample.value)
            elif sample.name in (
                f"{STAGE_METRIC}_sum",
                f"{STAGE_METRIC}_count",
                f"{BATCH_SIZE_METRIC}_sum",
                f"{BATCH_SIZE_METRIC}_count",
            ):
                is_stage = sample.name.startswith(STAGE_METRIC)
                name = f"stage:{sample.labels.get('stage', '')}" if is_stage else "batch_size"
                pair = sums.setdefault(name, [0.0, 0.0])
                pair[0 if sample.name.endswith("_sum") else 1] += sample.value
    histograms = {name: (pair[0], pair[1]) for name, pair in sums.items()}
    return ServerCounts(dict(calls), replayed, histograms, dict(decisions), dict(degraded))


def _fetch(metrics_url: str) -> str:
    with urllib.request.urlopen(metrics_url, timeout=SCRAPE_TIMEOUT_S) as response:
        return str(response.read().decode())


def scrape_server_counts(metrics_url: str) -> ServerCounts:
    """Fetch ``metrics_url`` (a loopback /metrics endpoint) and read the counters."""
    return parse_server_counts(_fetch(metrics_url))


def scrape_sample(metrics_url: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` (``..._total`` for a counter) whose labels include
    ``labels``; 0.0 when there is none."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(_fetch(metrics_url))
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
