"""Prometheus metrics of the scoring pipeline, aggregated across worker processes.

Workers write to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode, see ``metrics_export``); the supervisor serves the sum of all workers on ``/metrics``.
Stage names match the pipeline: queue_wait, state, features, rules, model, shadow (the shadow model's
run, only while one is set: ``sentinel model shadow``), outcome, ledger, settle.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
