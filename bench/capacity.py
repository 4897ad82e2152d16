"""The capacity model of ``sentinel bench scale``: from the CPU each component spent per transaction
to the cores of each kind a target rate needs, and the rate where one PostgreSQL primary stops being
enough.

Plain arithmetic, so every figure can be checked by hand: cores = µs per transaction x rate ÷ 10⁶ ÷
the target utilization (cores run at most that busy on average, leaving room for bursts, a lost node and
garbage collection). The model is linear: it assumes a component's CPU per transaction stays what it
was at the measured load, which holds for the parts that scale out by adding processes or nodes
(instances, Redis Cluster masters, nginx), not for the ledger's primary, which is one box. That box's
limit is the lower of two: its CPU (PostgreSQL's measured µs per decision against ``primary_cores``
at the same target utilization) and its WAL (the measured bytes per decision against the sustained
``primary_wal_mb_s`` one WAL stream and its streaming standby can take). What happens past it:
docs/decisions/0022-capacity-model-and-ledger-scale-out.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# The components the model sizes, in table order; bench/cpu.py's parts of the same names. The load
# generator and the machine's other work are measured but not sized (they are not the service).
COMPONENTS = ("workers", "supervisor", "dispatcher", "proxy", "redis", "postgres")
COMPONENT_NAMES = {
    "workers": "server workers",
    "supervisor": "supervisors (metrics endpoint, restarts)",
    "dispatcher": "event dispatchers",
    "proxy": "nginx (TLS both ways)",
    "redis": "Redis",
    "postgres": "PostgreSQL primary",
}


@dataclass(frozen=True, slots=True)
class Assumptions:
    """What the model assumes beyond what was measured."""

    utilization: float = 0.6  # of every core, on average at the target rate
    target_rates: tuple[int, ...] = (10_000, 50_000, 500_000)  # transactions per second
    primary_cores: int = 64  # one large PostgreSQL box
    primary_wal_mb_s: float = 500.0  # sustained WAL (write + fsync + streaming to the standby), MB/s

    def __post_init__(self) -> None:
        if not 0.0 < self.utilization <= 1.0:
            raise ValueError(f"utilization must lie in (0, 1], not {self.utilization}")
        if not self.target_rates or min(self.target_rates) <= 0:
            raise ValueError("give at least one positive target rate")
        if self.primary_cores <= 0 or self.primary_wal_mb_s <= 0:
            raise ValueError("the primary's cores and WAL bandwidth must be positive")


def cores_needed(us_per_transaction: float, rate: float, utilization: float) -> float:
    """Cores a component needs to carry ``rate`` transactions per second at ``utilization``."""
    return us_per_transaction * rate / 1e6 / utilization


def primary_limit(
    postgres_us: float, wal_bytes_per_transaction: float | None, assumptions: Assumptions
) -> dict[str, Any]:
    """Transactions per second one PostgreSQL primary carries at the target utilization: by CPU, by WAL
    (None without a WAL figure) and the lower of the two, with which one bounds it."""
    by_cpu = assumptions.primary_cores * assumptions.utilization * 1e6 / postgres_us if postgres_us else None
    by_wal = (
        assumptions.primary_wal_mb_s * 1e6 * assumptions.utilization / wal_bytes_per_transaction
        if wal_bytes_per_transaction
        else None
    )
    limits = {name: value for name, value in (("cpu", by_cpu), ("wal", by_wal)) if value is not None}
    bound = min(limits, key=limits.__getitem__) if limits else None
    return {
        "txn_per_s_by_cpu": None if by_cpu is None else round(by_cpu),
        "txn_per_s_by_wal": None if by_wal is None else round(by_wal),
        "txn_per_s": None if bound is None else round(limits[bound]),
        "bound_by": bound,
    }


def capacity_model(
    us_per_transaction: Mapping[str, float],
    wal_bytes_per_transaction: float | None,
    assumptions: Assumptions,
) -> dict[str, Any]:
    """The model of one measured scenario: cores of each component (and in total) for every target
    rate, one primary's limit and the primaries each rate would need."""
    components = {part: us_per_transaction[part] for part in COMPONENTS if us_per_transaction.get(part)}
    cores: dict[str, dict[str, float]] = {}
    for rate in assumptions.target_rates:
        needed = {part: cores_needed(us, rate, assumptions.utilization) for part, us in components.items()}
        cores[str(rate)] = {
            **{part: round(value, 2) for part, value in needed.items()},
            "total": round(sum(needed.values()), 2),
        }
    limit = primary_limit(components.get("postgres", 0.0), wal_bytes_per_transaction, assumptions)
    primaries = (
        {str(rate): math.ceil(rate / limit["txn_per_s"]) for rate in assumptions.target_rates}
        if limit["txn_per_s"]
        else None
    )
    return {
        "assumptions": {**asdict(assumptions), "target_rates": list(assumptions.target_rates)},
        "us_per_transaction": dict(components),
        "wal_bytes_per_transaction": wal_bytes_per_transaction,
        "cores": cores,
        "postgres_primary": {**limit, "primaries_needed": primaries},
    }


def _cores(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def model_table(model: dict[str, Any]) -> str:
    """The model as a Markdown table: a row per component, the total, and the primaries needed."""
    rates = model["assumptions"]["target_rates"]
    utilization = model["assumptions"]["utilization"]
    header = ["component", "CPU µs/txn above idle", *(f"cores at {rate:,} txn/s" for rate in rates)]
    rows = [header, ["---"] * len(header)]
    for part, us in model["us_per_transaction"].items():
        rows.append(
            [COMPONENT_NAMES[part], f"{us:,.1f}", *(_cores(model["cores"][str(r)][part]) for r in rates)]
        )
    total_us = sum(model["us_per_transaction"].values())
    rows.append(
        [
            f"**total** (at {utilization:.0%} utilization)",
            f"{total_us:,.1f}",
            *(_cores(model["cores"][str(r)]["total"]) for r in rates),
        ]
    )
    primary = model["postgres_primary"]
    if primary["primaries_needed"]:
        rows.append(
            [
                f"PostgreSQL primaries of {model['assumptions']['primary_cores']} cores "
                f"(one carries {primary['txn_per_s']:,} txn/s, bound by {primary['bound_by'].upper()})",
                "",
                *(str(primary["primaries_needed"][str(r)]) for r in rates),
            ]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
