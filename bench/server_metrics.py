"""SentinelStream's own count of calls, read from its Prometheus endpoint.

The server counts every call by method and final gRPC status (``sentinel_calls_total``) and every
idempotent replay (``sentinel_replayed_decisions_total``), summed over its workers. Reading them
before and after a load run gives the server's view of that run, which catches what a load tool
cannot see (h2load: gRPC errors in trailers) and shows which path the calls took.
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from sentinel.bench.measurement import ServerCounts

CALLS_SAMPLE = "sentinel_calls_total"
REPLAYS_SAMPLE = "sentinel_replayed_decisions_total"
SCRAPE_TIMEOUT_S = 10.0


def parse_server_counts(exposition: str) -> ServerCounts:
    """Call and replay counters from a Prometheus text exposition."""
    calls: dict[tuple[str, str], int] = {}
    replayed: int | None = None
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == CALLS_SAMPLE:
                key = (sample.labels.get("method", ""), sample.labels.get("code", ""))
                calls[key] = calls.get(key, 0) + int(sample.value)
            elif sample.name == REPLAYS_SAMPLE:
                replayed = (replayed or 0) + int(sample.value)
    return ServerCounts(calls, replayed)


def scrape_server_counts(metrics_url: str) -> ServerCounts:
    """Fetch ``metrics_url`` (a loopback /metrics endpoint) and read the counters."""
    with urllib.request.urlopen(metrics_url, timeout=SCRAPE_TIMEOUT_S) as response:
        return parse_server_counts(response.read().decode())
