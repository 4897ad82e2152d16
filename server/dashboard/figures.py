"""Figures from snapshots of the aggregated metrics: rates, histogram quantiles, score drift.

A snapshot is every sample of the metrics the dashboard reads, keyed by sample name and labels, at one
time. Counters and histograms only grow, so a rate is the difference of two snapshots over the time
between them, and a quantile comes from the difference of two histograms (what a Prometheus server does
with ``rate`` and ``histogram_quantile``, here over the supervisor's own history). A counter that went
back (a metric file removed) counts as no change rather than a negative rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

Labels = tuple[tuple[str, str], ...]
SampleKey = tuple[str, Labels]

# Shares below this count as this in the drift figure, so that an empty bin on one side does not make
# it infinite (the usual smoothing of the population stability index).
PSI_FLOOR = 1e-4
MIN_SCORES_FOR_DRIFT = 100


@dataclass(frozen=True)
class Snapshot:
    """Every sample of the families read, at ``at`` (``time.monotonic()``)."""

    at: float
    samples: Mapping[SampleKey, float]

    @classmethod
    def of(cls, at: float, families: Iterable[Metric], names: frozenset[str]) -> Snapshot:
        """The samples of the families in ``names`` (summed when several carry the same labels)."""
        samples: dict[SampleKey, float] = defaultdict(float)
        for family in families:
            if family.name not in names:
                continue
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
        return cls(at, dict(samples))

    def series(self, name: str) -> dict[Labels, float]:
        """The samples named ``name`` by labels."""
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}


def increases(now: Snapshot, before: Snapshot, name: str) -> dict[Labels, float]:
    """How much each series of the counter (or bucket) ``name`` grew from ``before`` to ``now``."""
    earlier = before.series(name)
    return {labels: max(0.0, value - earlier.get(labels, 0.0)) for labels, value in now.series(name).items()}


def rates(now: Snapshot, before: Snapshot, name: str, *by: str) -> dict[tuple[str, ...], float]:
    """Per-second increase of counter ``name`` from ``before`` to ``now``, summed by the values of the
    labels ``by`` (no label: one total under ``()``)."""
    seconds = now.at - before.at
    summed: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, grown in increases(now, before, name).items():
        values = dict(labels)
        summed[tuple(values.get(label, "") for label in by)] += grown / seconds if seconds > 0 else 0.0
    return dict(summed)


def histogram_quantiles(
    now: Snapshot, before: Snapshot, name: str, by: str, quantiles: Sequence[float]
) -> dict[str, dict[str, float | None]]:
    """Quantiles of histogram ``name`` over what it observed between the snapshots, per value of label
    ``by`` (None where nothing was observed), and the observations' count as ``count``."""
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for labels, grown in increases(now, before, f"{name}_bucket").items():
        values = dict(labels)
        buckets[values.get(by, "")].append((float(values["le"]), grown))
    figures: dict[str, dict[str, float | None]] = {}
    for key, cumulative in buckets.items():
        cumulative.sort()
        total = cumulative[-1][1] if cumulative else 0.0
        figures[key] = {f"p{round(q * 100)}": quantile(q, cumulative) for q in quantiles} | {"count": total}
    return figures


def quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding rank q, the highest finite bound
    when the rank falls in +Inf. ``cumulative``: (upper bound, cumulative count), ascending."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def shares(counts: Sequence[float]) -> list[float]:
    """``counts`` as fractions of their sum (all 0 for no count)."""
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def population_stability(live: Sequence[float], reference: Sequence[float]) -> float:
    """PSI of ``live`` against ``reference`` (both shares of the same bins): sum (l - r) ln(l / r), each
    share floored at PSI_FLOOR. Read as: under 0.1 no real shift, 0.1 to 0.25 a moderate one, over 0.25
    a major one."""
    total = 0.0
    for observed, expected in zip(live, reference, strict=True):
        observed, expected = max(observed, PSI_FLOOR), max(expected, PSI_FLOOR)
        total += (observed - expected) * math.log(observed / expected)
    return total


def drift_label(psi: float) -> str:
    """The usual reading of a PSI value."""
    if psi < 0.1:
        return "stable"
    return "moderate shift" if psi < 0.25 else "major shift"
