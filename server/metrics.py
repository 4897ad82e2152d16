"""Prometheus metrics of the scoring pipeline, aggregated across worker processes.

Workers write to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode, see ``metrics_export``); the supervisor serves the sum of all workers on ``/metrics``.
Stage names match the pipeline: queue_wait, state, features, rules, model, shadow (the shadow model's
run, only while one is set: ``sentinel model shadow``), outcome, ledger, settle.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from sentinel.metric_values import read_process_id_once
from sentinel.model_export.metadata import SCORE_BINS

read_process_id_once()

_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

CALLS = Counter("sentinel_calls", "gRPC calls by method and status code.", ["method", "code"])
CALL_SECONDS = Histogram(
    "sentinel_call_seconds", "gRPC call latency by method.", ["method"], buckets=_LATENCY_BUCKETS
)
DECISIONS = Counter("sentinel_decisions", "Decisions by outcome.", ["outcome"])
DEGRADED = Counter("sentinel_degraded_decisions", "Decisions made without some inputs, by cause.", ["cause"])
REPLAYS = Counter("sentinel_replayed_decisions", "Idempotent replays answered from stored decisions.")
INVALID = Counter("sentinel_invalid_transactions", "Transactions rejected by validation.", ["method"])
RULE_HITS = Counter("sentinel_rule_hits", "Rule matches by rule and mode.", ["rule_id", "mode"])
SHADOW_OUTCOMES = Counter(
    "sentinel_shadow_outcomes",
    "Decisions made while a shadow model was set, by their outcome and the one the shadow model would "
    "have given (active != shadow: a disagreement).",
    ["active", "shadow"],
)
BATCH_SIZE = Histogram(
    "sentinel_batch_size",
    "Transactions per micro-batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
STAGE_SECONDS = Histogram(
    "sentinel_stage_seconds", "Time per pipeline stage and batch.", ["stage"], buckets=_LATENCY_BUCKETS
)
# Counted per batch (one increment per bin the batch reached), not per score: a Histogram costs an
# observe() per decision. Bins are the model metadata's SCORE_BINS, which the training distribution uses.
MODEL_SCORES = Counter(
    "sentinel_model_scores",
    "Active model scores by bin (non-cumulative: scores in (previous bound, upper]); compare with the "
    "model's training distribution (metadata.json score_distribution).",
    ["upper"],
)
MODEL_SCORE_BINS = tuple(MODEL_SCORES.labels(f"{bound:g}") for bound in SCORE_BINS)

# The ledger writer of each worker (ledger.writer.LedgerWriter), sampled once a second by the worker.
LEDGER_SPOOLING = Gauge(
    "sentinel_ledger_spooling",
    "Workers whose ledger writer records to the local spool (Postgres unreachable or the spool replaying).",
    multiprocess_mode="livesum",
)
LEDGER_SPOOL_BYTES = Gauge(
    "sentinel_ledger_spool_bytes",
    "Bytes of decisions waiting in the workers' ledger spools for replay into Postgres.",
    multiprocess_mode="livesum",
)

# The ledger read replica (ledger_read_url; server/ledger_replica.py), sampled once a second by each worker.
LEDGER_REPLICA_LAG = Gauge(
    "sentinel_ledger_replica_lag_seconds",
    "How far the ledger read replica's replay is behind: now minus the commit time of the last "
    "transaction it replayed, 0 when it has replayed all it received; NaN when it cannot be asked.",
    multiprocess_mode="livemax",
)
LEDGER_REPLICA_FALLBACKS = Counter(
    "sentinel_ledger_replica_fallbacks",
    "GetDecision calls the read replica could not answer yet (not replayed) that the primary answered.",
)

# Admission (server/admission.py): per-caller rate limits and each worker's in-flight bound. Gauges are
# summed over the live workers ("livesum"); a dead worker's share is dropped by the supervisor.
RATE_LIMITED = Counter(
    "sentinel_rate_limited",
    "Calls (ScoreStream: chunks) refused by a rate limit, by the limit's name (default, role:<role>, "
    "client:<subject>: only configured names, so the labels stay few).",
    ["limit"],
)
RATE_LIMITED_TRANSACTIONS = Counter(
    "sentinel_rate_limited_transactions", "Transactions refused by a rate limit, by limit.", ["limit"]
)
RATE_LIMIT_FAIL_OPEN = Gauge(
    "sentinel_rate_limit_fail_open",
    "Workers whose rate limiter cannot reach Redis and counts with a local bucket per process (fail-open).",
    multiprocess_mode="livesum",
)
RATE_LIMIT_LOCAL_CHECKS = Counter(
    "sentinel_rate_limit_local_checks",
    "Calls a rate limit was checked for against the worker's local bucket (Redis unreachable).",
)
SHED_CALLS = Counter(
    "sentinel_shed_calls",
    "Score and ScoreBatch calls refused at once because the worker held its in-flight bound.",
    ["method"],
)
SHED_TRANSACTIONS = Counter(
    "sentinel_shed_transactions", "Transactions of the calls shed, by method.", ["method"]
)
DELAYED_CHUNKS = Counter(
    "sentinel_delayed_chunks",
    "ScoreStream chunks that waited for room under the worker's in-flight bound (the stream is slowed, "
    "not refused).",
)
IN_FLIGHT_TRANSACTIONS = Gauge(
    "sentinel_in_flight_transactions",
    "Transactions admitted and not yet answered (bound: max_in_flight_transactions per worker).",
    multiprocess_mode="livesum",
)
IN_FLIGHT_BYTES = Gauge(
    "sentinel_in_flight_bytes",
    "Request bytes of the admitted calls not yet answered (bound: max_in_flight_bytes per worker).",
    multiprocess_mode="livesum",
)
