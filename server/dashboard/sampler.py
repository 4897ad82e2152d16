"""The dashboard's figures, recomputed from the aggregated metrics every ``dashboard_update_ms``.

The supervisor samples the workers' metric files (the same aggregation /metrics serves) into snapshots
and keeps a short history: rates come from the snapshot RATE_WINDOW_S ago, stage quantiles from the one
QUANTILE_WINDOW_S ago, the live score distribution from the score counts ``dashboard_score_window_s``
ago (kept once every SCORE_HISTORY_STEP_S, so a long window stays small). While no page watches the
feed it samples only every IDLE_INTERVAL_S, which keeps the score history without spending the
supervisor's time on figures nobody reads. Redis and Postgres are probed (PING, ``SELECT 1``) at most
once per PROBE_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from sentinel.config import Settings
from sentinel.model_export.metadata import SCORE_BINS, ModelMetadata
from sentinel.model_export.registry import ModelRegistry
from sentinel.server.dashboard.figures import (
    MIN_SCORES_FOR_DRIFT,
    Snapshot,
    drift_label,
    histogram_quantiles,
    population_stability,
    rates,
    shares,
)
from sentinel.server.dashboard.lookup import PROBE_TIMEOUT_S, LedgerReads
from sentinel.server.resources import redis_client

log = structlog.get_logger("sentinel.dashboard")

RATE_WINDOW_S = 5.0
QUANTILE_WINDOW_S = 10.0
IDLE_INTERVAL_S = 5.0
SCORE_HISTORY_STEP_S = 5.0
PROBE_INTERVAL_S = 1.0
OUTBOX_LAG = "sentinel_events_outbox_lag_seconds"  # exported once decision events exist
FAMILIES = frozenset(
    {
        "sentinel_calls",
        "sentinel_decisions",
        "sentinel_degraded_decisions",
        "sentinel_rule_hits",
        "sentinel_stage_seconds",
        "sentinel_call_seconds",
        "sentinel_model_scores",
        "sentinel_ledger_spooling",
        "sentinel_ledger_spool_bytes",
        "sentinel_in_flight_transactions",
        "sentinel_shed_transactions",
        OUTBOX_LAG,
    }
)
QUANTILES = (0.5, 0.99)


class Sampler:
    """Samples the metrics, keeps the history, publishes the latest figures to whoever waits."""

    def __init__(self, settings: Settings, registry: CollectorRegistry, ledger: LedgerReads) -> None:
        self._settings = settings
        self._registry = registry
        self._ledger = ledger
        self._redis = redis_client(settings) if settings.redis_url else None
        self._models = ModelRegistry.from_settings(settings)
        self._model: tuple[str, ModelMetadata | None] | None = None
        self._recent: deque[Snapshot] = deque()
        self._scores: deque[tuple[float, list[float]]] = deque()
        self._health: dict[str, dict[str, Any]] = {}
        self._probed_at = 0.0
        self._watchers = 0
        self._watched = asyncio.Event()
        self._updated = asyncio.Event()
        self.latest: dict[str, Any] | None = None

    # --- watchers ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def watching(self) -> Any:
        """While inside, the figures are recomputed every ``dashboard_update_ms``."""
        self._watchers += 1
        self._watched.set()
        try:
            yield
        finally:
            self._watchers -= 1
            if not self._watchers:
                self._watched.clear()

    async def next_figures(self, timeout_s: float) -> dict[str, Any] | None:
        """The next figures published (None when none came within ``timeout_s``)."""
        updated = self._updated
        try:
            async with asyncio.timeout(timeout_s):
                await updated.wait()
        except TimeoutError:
            return None
        return self.latest

    # --- the loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            try:
                await self.sample()
            except Exception:  # a bad sample must not end the dashboard
                log.exception("dashboard_sample_failed")
            interval = self._settings.dashboard_update_ms / 1000 if self._watchers else IDLE_INTERVAL_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    if self._watchers:
                        await asyncio.sleep(interval)
                    else:
                        await self._watched.wait()  # a page arriving wakes the loop at once

    async def sample(self) -> None:
        """Take a snapshot, update the history and the probes, publish the figures."""
        now = Snapshot.of(time.monotonic(), self._registry.collect(), FAMILIES)
        self._remember(now)
        if now.at - self._probed_at >= PROBE_INTERVAL_S:
            self._probed_at = now.at
            self._health = {
                "redis": await self._probe(self._ping_redis),
                "postgres": await self._probe(self._ledger.ping),
            }
        self.latest = self.figures(now)
        updated, self._updated = self._updated, asyncio.Event()
        updated.set()

    def _remember(self, now: Snapshot) -> None:
        self._recent.append(now)
        while len(self._recent) > 2 and self._recent[1].at <= now.at - QUANTILE_WINDOW_S:
            self._recent.popleft()
        counts = [value for _labels, value in sorted(_score_counts(now).items())]
        if not self._scores or now.at - self._scores[-1][0] >= SCORE_HISTORY_STEP_S:
            self._scores.append((now.at, counts))
        window = self._settings.dashboard_score_window_s
        while len(self._scores) > 2 and self._scores[1][0] <= now.at - window:
            self._scores.popleft()

    def _since(self, now: Snapshot, seconds: float) -> Snapshot:
        """The oldest snapshot no older than ``seconds`` before ``now`` (the oldest kept, if all are)."""
        for snapshot in self._recent:
            if snapshot.at >= now.at - seconds - 1e-6 and snapshot is not now:
                return snapshot
        return self._recent[0]

    async def _probe(self, ping: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await ping()
        except Exception as exc:
            return {"up": False, "ms": None, "error": type(exc).__name__}
        return {"up": True, "ms": round((time.perf_counter() - started) * 1000, 2), "error": None}

    async def _ping_redis(self) -> None:
        if self._redis is None:
            raise RuntimeError("redis_url is not set")
        await self._redis.ping()

    # --- figures -------------------------------------------------------------------------------------

    def figures(self, now: Snapshot) -> dict[str, Any]:
        """Everything the page shows, JSON-ready."""
        rated = self._since(now, RATE_WINDOW_S)
        quantiled = self._since(now, QUANTILE_WINDOW_S)
        calls = rates(now, rated, "sentinel_calls_total", "method", "code")
        decisions = rates(now, rated, "sentinel_decisions_total", "outcome")
        stages = histogram_quantiles(now, quantiled, "sentinel_stage_seconds", "stage", QUANTILES)
        lag = now.series(OUTBOX_LAG)
        return {
            "time": time.time(),
            "rate_window_s": round(now.at - rated.at, 3),
            "quantile_window_s": round(now.at - quantiled.at, 3),
            "transactions_per_s": sum(decisions.values()),
            "decisions_per_s": {outcome: rate for (outcome,), rate in decisions.items()},
            "decisions_total": sum(
                value for _labels, value in now.series("sentinel_decisions_total").items()
            ),
            "calls_per_s": _nested(calls),
            "codes_per_s": _summed(calls, 1),
            "call_latency": histogram_quantiles(now, quantiled, "sentinel_call_seconds", "method", QUANTILES),
            "stages": stages,
            "ledger_commit": stages.get("ledger"),
            "degraded_per_s": {
                cause: rate
                for (cause,), rate in rates(now, rated, "sentinel_degraded_decisions_total", "cause").items()
            },
            "spool": {
                "spooling_workers": _total(now, "sentinel_ledger_spooling"),
                "bytes": _total(now, "sentinel_ledger_spool_bytes"),
            },
            "in_flight": _total(now, "sentinel_in_flight_transactions"),
            "shed_per_s": sum(rates(now, rated, "sentinel_shed_transactions_total").values()),
            "health": self._health,
            "rules": _nested(
                {
                    (mode, rule): rate
                    for (rule, mode), rate in rates(
                        now, rated, "sentinel_rule_hits_total", "rule_id", "mode"
                    ).items()
                }
            ),
            "scores": self._score_figures(now),
            "outbox_lag_s": max(lag.values()) if lag else None,
        }

    def _score_figures(self, now: Snapshot) -> dict[str, Any]:
        """The live score distribution over the score window against the active model's training one."""
        since, before = self._scores[0]
        latest = [value for _labels, value in sorted(_score_counts(now).items())]
        live = [max(0.0, value - earlier) for value, earlier in zip(latest, before, strict=True)]
        version, metadata = self._active_model()
        training = metadata.score_distribution if metadata is not None else None
        reference = (
            shares(training.counts) if training is not None and tuple(training.bins) == SCORE_BINS else None
        )
        count = sum(live)
        psi = None
        if reference is not None and count >= MIN_SCORES_FOR_DRIFT:
            psi = population_stability(shares(live), reference)
        return {
            "bins": list(SCORE_BINS),
            "live": shares(live),
            "live_count": count,
            "window_s": round(now.at - since, 1),
            "training": reference,
            "training_rows": None if training is None else training.rows,
            "model_version": version,
            "psi": psi,
            "drift": None if psi is None else drift_label(psi),
        }

    def _active_model(self) -> tuple[str, ModelMetadata | None]:
        """The serving model's version and metadata (read again only when the version changes)."""
        version = self._models.serving_version()
        if self._model is None or self._model[0] != version:
            try:
                metadata: ModelMetadata | None = ModelMetadata.read(self._models.directory(version))
            except Exception as exc:  # an unreadable model is the workers' problem; show what we can
                log.warning("dashboard_model_unreadable", version=version, error=repr(exc))
                metadata = None
            self._model = (version, metadata)
        return self._model


def _score_counts(snapshot: Snapshot) -> dict[float, float]:
    """The score counter's value per bin (0 for bins not seen yet), keyed by upper bound."""
    counts = dict.fromkeys(SCORE_BINS, 0.0)
    for labels, value in snapshot.series("sentinel_model_scores_total").items():
        bound = float(dict(labels)["upper"])
        counts[min(SCORE_BINS, key=lambda b: abs(b - bound))] += value
    return counts


def _total(snapshot: Snapshot, name: str) -> float:
    return sum(snapshot.series(name).values())


def _nested(flat: dict[tuple[str, ...], float]) -> dict[str, dict[str, float]]:
    """{(a, b): x} -> {a: {b: x}}."""
    nested: dict[str, dict[str, float]] = {}
    for (outer, inner), value in flat.items():
        nested.setdefault(outer, {})[inner] = value
    return nested


def _summed(flat: dict[tuple[str, ...], float], position: int) -> dict[str, float]:
    """{(a, b): x} summed by the label at ``position``."""
    summed: dict[str, float] = {}
    for key, value in flat.items():
        summed[key[position]] = summed.get(key[position], 0.0) + value
    return summed
