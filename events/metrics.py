"""Prometheus metrics of the dispatchers (names ``sentinel_events_*``).

Under ``sentinel serve`` every dispatcher is a child of the supervisor and writes to its multiprocess
directory, so these appear on the server's ``metrics_port`` next to the workers'; a standalone
``sentinel events dispatch`` serves them itself on ``events_metrics_port``. The outbox gauges are read
from Postgres by every dispatcher (``livemax``: all of them see the same table, the largest reading is
the latest); the circuit gauge is 1 while any dispatcher holds the destination's circuit open.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from sentinel.metric_values import read_process_id_once

read_process_id_once()

ATTEMPTS = Counter(
    "sentinel_events_delivery_attempts",
    "Delivery attempts, by destination and kind.",
    ["destination", "kind"],
)
DELIVERED = Counter(
    "sentinel_events_delivered", "Deliveries that succeeded, by destination.", ["destination"]
)
FAILURES = Counter(
    "sentinel_events_delivery_failures",
    "Failed delivery attempts, by destination and cause (timeout, connect, http_5xx, http_4xx, http_other, "
    "broker, invalid_url, missing_entry).",
    ["destination", "cause"],
)
DEAD_LETTERED = Counter(
    "sentinel_events_dead_lettered",
    "Deliveries given up after events_retry_max_age_s (state dead; `sentinel events replay` resends).",
    ["destination"],
)
DELIVERY_SECONDS = Histogram(
    "sentinel_events_delivery_seconds",
    "Time of one round of deliveries to a destination (a webhook batch or one broker publish).",
    ["destination"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
OUTBOX_LAG = Gauge(
    "sentinel_events_outbox_lag_seconds",
    "Age of the oldest undelivered (pending) delivery, by destination; 0 when none is pending.",
    ["destination"],
    multiprocess_mode="livemax",
)
OUTBOX_PENDING = Gauge(
    "sentinel_events_outbox_pending",
    "Deliveries waiting (pending), by destination.",
    ["destination"],
    multiprocess_mode="livemax",
)
DEAD_LETTERS = Gauge(
    "sentinel_events_dead_letters",
    "Deliveries in the dead state, by destination.",
    ["destination"],
    multiprocess_mode="livemax",
)
CIRCUIT_OPEN = Gauge(
    "sentinel_events_circuit_open",
    "1 while a dispatcher's circuit breaker for the destination is open or half-open, else 0.",
    ["destination"],
    multiprocess_mode="livemax",
)
