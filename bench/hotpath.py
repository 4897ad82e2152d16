"""``sentinel bench hotpath``: CPU cost of the hot path per transaction, compiled vs reference.

One measured unit is what the server does per micro-batch after fetching the states: decode every
account's state, compute the feature matrix, update and encode the states (``build_features``) and
evaluate 20 typical rules (``evaluate_rules``). The batch (default 256 transactions over 128
accounts, warmed-up states, 70 % located, PaySim-like balances) is synthetic and seeded, so the
command needs no data file. Both implementations run on the same batch in the same process; each is
repeated and the figures are the best repeat (the machine is shared, and the best repeat is the
least disturbed), with the median alongside; ``features_ns_per_txn`` is the same run without the
rules and ``rules_ns_per_txn`` the difference. ``append_ns_per_txn`` (not part of ``ns_per_txn``) is
the cost of filling the batch with ``TransactionColumnsBuilder.append`` and ``build``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sentinel.hotpath import (
    CHANNELS,
    Op,
    ProgramBuilder,
    RuleSet,
    TransactionColumns,
    TransactionColumnsBuilder,
    build_features,
    country_code,
    evaluate_rules,
    field_value,
    reference_features,
    reference_rules,
)

_COUNTRIES = ("DE", "FR", "NL", "US", "GB", "")


def synthetic_rows(batch: int, accounts: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """Seeded ``TransactionColumnsBuilder.append`` arguments of ``batch`` transactions."""
    rng = np.random.default_rng(seed)
    start = 1_750_000_000.0
    rows = []
    for row in range(batch):
        amount = float(np.round(rng.lognormal(7.0, 1.5), 2))
        before = float(np.round(rng.uniform(0, 50_000), 2))
        located = rng.random() < 0.7
        rows.append(
            (
                int(rng.integers(0, accounts)),
                amount,
                int(rng.integers(1, 6)),
                start + row * 2.0,
                float(rng.uniform(35, 60)) if located else None,
                float(rng.uniform(-10, 30)) if located else None,
                _COUNTRIES[int(rng.integers(0, len(_COUNTRIES)))],
                int(rng.integers(0, len(CHANNELS))),
                f"C{int(rng.integers(0, 5_000))}",
                f"device-{int(rng.integers(0, 300))}" if rng.random() < 0.8 else "",
                before,
                max(before - amount, 0.0),
                0.0 if rng.random() < 0.3 else float(np.round(rng.uniform(0, 1e5), 2)),
                None if rng.random() < 0.2 else float(np.round(rng.uniform(0, 1e5), 2)),
            )
        )
    return rows


def synthetic_batch(batch: int, accounts: int, seed: int = 7) -> TransactionColumns:
    """A seeded batch of ``batch`` transactions spread over ``accounts`` account slots."""
    builder = TransactionColumnsBuilder(batch)
    for row in synthetic_rows(batch, accounts, seed):
        builder.append(*row)
    return builder.build()


def _append_ns_per_txn(rows: list[tuple[Any, ...]], rounds: int, repeats: int) -> list[float]:
    """What the server pays to turn validated values into a batch: append every row, then build."""
    builder = TransactionColumnsBuilder(len(rows))
    results = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(rounds):
            builder.clear()
            for row in rows:
                builder.append(*row)
            builder.build()
        results.append((time.perf_counter_ns() - started) / (rounds * len(rows)))
    return results


def benchmark_rules() -> RuleSet:
    """Twenty rules of the kind analysts write, over features, fields, sets and missing values."""

    def rule() -> ProgramBuilder:
        return ProgramBuilder()

    transfer_like = [field_value("type", "TRANSFER"), field_value("type", "CASH_OUT")]
    sanctioned = [country_code(code) for code in ("KP", "IR", "SY", "CU", "RU", "BY")]
    devices = [field_value("device", f"device-{n}") for n in range(0, 300, 6)]
    mules = [field_value("counterparty", f"C{n}") for n in range(0, 5_000, 50)]
    programs = [
        rule()
        .field("amount")
        .const(10_000)
        .op(Op.GT)
        .field("country")
        .field("home_country")
        .op(Op.NE)
        .op(Op.AND),
        rule().feature("velocity_count_1h").const(10).op(Op.GT),
        rule().feature("speed_kmh").const(1_000).op(Op.GT).feature("travel_known").op(Op.AND),
        rule().feature("origin_drained").field("type").in_set(transfer_like).op(Op.AND),
        rule().feature("destination_balances_zero").field("amount").const(1_000).op(Op.GT).op(Op.AND),
        rule()
        .feature("new_device")
        .feature("new_counterparty")
        .op(Op.AND)
        .field("amount")
        .const(500)
        .op(Op.GT)
        .op(Op.AND),
        rule().feature("log_amount_zscore").const(3).op(Op.GT),
        rule()
        .feature("seconds_since_last")
        .const(5)
        .op(Op.LT)
        .feature("first_transaction")
        .op(Op.NOT)
        .op(Op.AND),
        rule().field("country").in_set(sanctioned),
        rule()
        .field("channel")
        .const(field_value("channel", "ATM"))
        .op(Op.EQ)
        .field("amount")
        .const(2_000)
        .op(Op.GT)
        .op(Op.AND),
        rule()
        .feature("origin_balance_error")
        .op(Op.ABS)
        .const(0.01)
        .op(Op.GT)
        .feature("origin_balances_known")
        .op(Op.AND),
        rule().feature("velocity_amount_24h").const(50_000).op(Op.GT),
        rule().field("latitude").op(Op.IS_MISSING).field("amount").const(5_000).op(Op.GT).op(Op.AND),
        rule()
        .feature("hour_of_day")
        .const(1)
        .op(Op.GE)
        .feature("hour_of_day")
        .const(5)
        .op(Op.LE)
        .op(Op.AND)
        .field("amount")
        .const(1_000)
        .op(Op.GT)
        .op(Op.AND),
        rule()
        .feature("amount_over_origin_balance")
        .const(0.9)
        .op(Op.GT)
        .field("type")
        .const(field_value("type", "TRANSFER"))
        .op(Op.EQ)
        .op(Op.AND),
        rule().field("device").in_set(devices),
        rule().field("counterparty").in_set(mules),
        rule().feature("velocity_amount_1h").feature("velocity_count_1h").op(Op.DIV).const(3_000).op(Op.GT),
        rule().feature("away_from_home").feature("new_device").op(Op.AND),
        rule()
        .field("amount")
        .const(2)
        .op(Op.MUL)
        .field("origin_before")
        .field("destination_before")
        .op(Op.ADD)
        .op(Op.GT),
    ]
    return RuleSet([program.build() for program in programs])


def _run(
    build: Callable[..., Any],
    evaluate: Callable[..., Any],
    columns: TransactionColumns,
    states: list[bytes | None],
    rules: RuleSet,
) -> None:
    features, _ = build(columns, states)
    evaluate(rules, features, columns)


def _no_rules(rules: RuleSet, features: Any, columns: TransactionColumns) -> None:
    """Stand-in evaluator for the features-only figure."""


def _ns_per_txn(
    build: Callable[..., Any],
    evaluate: Callable[..., Any],
    columns: TransactionColumns,
    states: list[bytes | None],
    rules: RuleSet,
    rounds: int,
    repeats: int,
) -> list[float]:
    """Mean ns per transaction of each repeat of ``rounds`` batches."""
    results = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(rounds):
            _run(build, evaluate, columns, states, rules)
        results.append((time.perf_counter_ns() - started) / (rounds * len(columns)))
    return results


def measure(batch: int, accounts: int, rounds: int, repeats: int, reference_rounds: int) -> dict[str, Any]:
    """Run both implementations on one batch; the result is what ``--json`` prints."""
    columns = synthetic_batch(batch, accounts)
    rules = benchmark_rules()
    # Warm states: every account has history, as in steady state.
    _, states = build_features(synthetic_batch(batch * 4, accounts, seed=8), [None] * accounts)
    _run(build_features, evaluate_rules, columns, states, rules)
    compiled = _ns_per_txn(build_features, evaluate_rules, columns, states, rules, rounds, repeats)
    features_only = _ns_per_txn(build_features, _no_rules, columns, states, rules, rounds, repeats)
    append = _append_ns_per_txn(synthetic_rows(batch, accounts), max(rounds // 4, 1), repeats)
    reference = _ns_per_txn(
        reference_features.build_features,
        reference_rules.evaluate_rules,
        columns,
        states,
        rules,
        reference_rounds,
        repeats,
    )
    return {
        "batch": batch,
        "accounts": accounts,
        "rules": len(rules),
        "repeats": repeats,
        "statistic": "best repeat (median alongside)",
        "ns_per_txn": round(min(compiled), 1),
        "ns_per_txn_median": round(statistics.median(compiled), 1),
        "features_ns_per_txn": round(min(features_only), 1),
        "rules_ns_per_txn": round(min(compiled) - min(features_only), 1),
        "append_ns_per_txn": round(min(append), 1),
        "reference_ns_per_txn": round(min(reference), 1),
        "reference_ns_per_txn_median": round(statistics.median(reference), 1),
        "speedup": round(min(reference) / min(compiled), 1),
    }


def _handle(args: argparse.Namespace) -> int:
    result = measure(args.batch, args.accounts, args.rounds, args.repeats, args.reference_rounds)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 0


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench hotpath``."""
    parser = bench_subparsers.add_parser(
        "hotpath",
        help="ns per transaction of state+features+20 rules, compiled vs pure-Python reference",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--batch", type=int, default=256, help="transactions per batch (default 256)")
    parser.add_argument(
        "--accounts", type=int, default=128, help="account slots the batch is spread over (default 128)"
    )
    parser.add_argument("--rounds", type=int, default=200, help="batches per compiled repeat (default 200)")
    parser.add_argument(
        "--reference-rounds", type=int, default=3, help="batches per reference repeat (default 3)"
    )
    parser.add_argument("--repeats", type=int, default=9, help="repeats of each measurement (default 9)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_handle)
