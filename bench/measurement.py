"""What one load-tool run is asked to do and what it measured, whichever tool ran it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

REPORTED_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_Key = TypeVar("_Key")


@dataclass(frozen=True, slots=True)
class LoadSettings:
    """How hard and how long to load the server; the same for SentinelStream and the ceiling."""

    concurrency: int  # calls (for ScoreStream: streams) in flight
    connections: int  # HTTP/2 connections; at least the number of server workers
    duration_s: float | None  # measure for this long ...
    total_calls: int | None  # ... or until this many calls are done
    rate: float | None  # calls per second over all connections; None: as fast as possible
    warmup_s: float
    ca_file: Path | None = None  # the CA of a TLS target (its certificate names 127.0.0.1); None: plaintext

    def __post_init__(self) -> None:
        if (self.duration_s is None) == (self.total_calls is None):
            raise ValueError("give exactly one of a duration and a total number of calls")
        if not 1 <= self.connections <= self.concurrency:
            raise ValueError(
                f"connections ({self.connections}) must lie between 1 and "
                f"the concurrency ({self.concurrency})"
            )

    @property
    def streams_per_connection(self) -> int:
        """Calls in flight on each connection (concurrency rounded up to a multiple of connections)."""
        return math.ceil(self.concurrency / self.connections)


@dataclass(slots=True)
class LoadResult:
    """The outcome of one measured run, in SentinelStream's terms."""

    tool: str
    duration_s: float  # the measured wall time
    calls_completed: int  # calls that ended with a response, whatever their gRPC status
    calls_ok: int  # calls known to have ended with grpc-status OK
    status_codes: dict[str, int]  # gRPC status name -> calls
    errors: dict[str, int]  # error description -> calls (transport errors, failed statuses)
    percentiles_ms: dict[float, float]  # per-call latency percentiles
    latencies_ms: np.ndarray = field(repr=False)  # per-call latencies, for the plot
    notes: list[str] = field(default_factory=list)
    calls_abandoned: int = 0  # calls in flight the tool dropped when a timed run ended
    # The transaction ids of the calls that ended OK (only the grpcio driver knows them; for a batch or a
    # stream, an OK call may still answer some items with an ItemError, counted in ``errors``).
    accepted_ids: list[str] = field(default_factory=list, repr=False)

    @property
    def error_count(self) -> int:
        """Calls that did not succeed."""
        return sum(self.errors.values())

    @property
    def calls_per_s(self) -> float:
        """Successful calls per second of measured time."""
        return self.calls_ok / self.duration_s if self.duration_s > 0 else 0.0


def percentiles_ms(latencies_ms: Sequence[float] | np.ndarray) -> dict[float, float]:
    """The reported percentiles (linear interpolation between closest ranks); empty input: {}."""
    values = np.asarray(latencies_ms, dtype=float)
    if values.size == 0:
        return {}
    computed = np.percentile(values, REPORTED_PERCENTILES)
    return {p: float(v) for p, v in zip(REPORTED_PERCENTILES, computed, strict=True)}


def _increase(later: Mapping[_Key, int], earlier: Mapping[_Key, int]) -> dict[_Key, int]:
    """Counter by counter, how much ``later`` grew since ``earlier`` (a counter absent there is 0)."""
    return {key: later.get(key, 0) - earlier.get(key, 0) for key in set(later) | set(earlier)}


def _sum(one: Mapping[_Key, int], other: Mapping[_Key, int]) -> dict[_Key, int]:
    """Counter by counter, the two together."""
    return {key: one.get(key, 0) + other.get(key, 0) for key in set(one) | set(other)}


def _sorted_increase(later: dict[str, int] | None, earlier: dict[str, int] | None) -> dict[str, int] | None:
    """The counters that grew, by name; None unless both readings have them."""
    if later is None or earlier is None:
        return None
    return {name: grown for name, grown in sorted(_increase(later, earlier).items()) if grown}


@dataclass(frozen=True, slots=True)
class ServerCounts:
    """What a server says it did: calls by (method, gRPC status name), replays, and histogram sums.

    ``histograms`` maps a name (``stage:<stage>``, ``batch_size``) to (sum, count) of observations.
    ``decisions`` (by outcome) and ``degraded`` (decisions made without some inputs, by cause) are
    None for a server that makes no decisions (the ceiling).
    """

    calls: dict[tuple[str, str], int]
    replayed_decisions: int | None = None
    histograms: dict[str, tuple[float, float]] = field(default_factory=dict)
    decisions: dict[str, int] | None = None
    degraded: dict[str, int] | None = None

    def __sub__(self, earlier: ServerCounts) -> ServerCounts:
        replayed = None
        if self.replayed_decisions is not None and earlier.replayed_decisions is not None:
            replayed = self.replayed_decisions - earlier.replayed_decisions
        histograms = {}
        for name, (total, count) in self.histograms.items():
            before_total, before_count = earlier.histograms.get(name, (0.0, 0.0))
            histograms[name] = (total - before_total, count - before_count)
        return ServerCounts(
            _increase(self.calls, earlier.calls),
            replayed,
            histograms,
            _sorted_increase(self.decisions, earlier.decisions),
            _sorted_increase(self.degraded, earlier.degraded),
        )

    def __add__(self, other: ServerCounts) -> ServerCounts:
        """Two servers' counts together (instances behind one proxy); a count one lacks is None."""
        histograms = {}
        for name in set(self.histograms) | set(other.histograms):
            (one_sum, one_count), (other_sum, other_count) = (
                self.histograms.get(name, (0.0, 0.0)),
                other.histograms.get(name, (0.0, 0.0)),
            )
            histograms[name] = (one_sum + other_sum, one_count + other_count)
        replayed = None
        if self.replayed_decisions is not None and other.replayed_decisions is not None:
            replayed = self.replayed_decisions + other.replayed_decisions
        return ServerCounts(
            _sum(self.calls, other.calls),
            replayed,
            histograms,
            None
            if self.decisions is None or other.decisions is None
            else _sum(self.decisions, other.decisions),
            None if self.degraded is None or other.degraded is None else _sum(self.degraded, other.degraded),
        )

    def by_status(self, method: str) -> dict[str, int]:
        """Calls of one method by status name, statuses with no call left out."""
        return {code: calls for (m, code), calls in sorted(self.calls.items()) if m == method and calls}

    def stages(self, duration_s: float) -> dict[str, dict[str, float]]:
        """Per pipeline stage: batches, mean ms per batch, and seconds spent per second of run."""
        report = {}
        for name, (total, count) in sorted(self.histograms.items()):
            if name.startswith("stage:") and count > 0:
                report[name.removeprefix("stage:")] = {
                    "batches": int(count),
                    "mean_ms": round(total / count * 1000, 3),
                    "busy_s_per_s": round(total / duration_s, 3) if duration_s > 0 else 0.0,
                }
        return report
