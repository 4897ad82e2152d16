"""Compiled rules evaluate as their expressions say, in the hot path's compiled and reference evaluators."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from sentinel.hotpath import (
    FEATURE_INDEX,
    TransactionColumns,
    build_features,
    country_code,
    evaluate_rules,
    id_value,
    stable_hash,
)
from sentinel.hotpath.reference_rules import evaluate_rules as reference_evaluate_rules
from sentinel.hotpath.reference_rules import field_values
from sentinel.hotpath.schema import TRANSACTION_FIELD_INDEX
from sentinel.server.rules.compiler import CompiledRule, build_rule_set, compile_expression
from sentinel.server.rules.definitions import RuleAction, RuleMode

NAN = math.nan
Row = tuple[list[float], list[float]]  # (features, fields)


def f(row: Row, name: str) -> float:
    features, fields = row
    if name in FEATURE_INDEX:
        return features[FEATURE_INDEX[name]]
    return fields[TRANSACTION_FIELD_INDEX[name]]


def known(*values: float) -> bool:
    return not any(math.isnan(value) for value in values)


def cmp(a: float, b: float, test: Callable[[float, float], bool]) -> bool:
    """The language's comparison: false whenever a value is missing."""
    return known(a, b) and test(a, b)


DE, FR = float(country_code("DE")), float(country_code("FR"))
DEVICE_A = id_value(stable_hash("device-a"))

# expression -> its meaning written independently in Python
CASES: dict[str, Callable[[Row], bool]] = {
    "amount > 5000 and country != home_country": lambda r: (
        f(r, "amount") > 5000 and cmp(f(r, "country"), f(r, "home_country"), lambda a, b: a != b)
    ),
    'type in ["TRANSFER", "CASH_OUT"] and origin_drained': lambda r: (
        f(r, "type") in (2.0, 3.0) and f(r, "origin_drained") != 0
    ),
    'country not in ["DE", "FR"]': lambda r: known(f(r, "country")) and f(r, "country") not in (DE, FR),
    'country in ["DE"] or is_missing(country)': lambda r: f(r, "country") == DE or not known(f(r, "country")),
    "not (amount > 100)": lambda r: not f(r, "amount") > 100,
    "origin_before - amount < 0": lambda r: cmp(
        f(r, "origin_before") - f(r, "amount"), 0, lambda a, b: a < b
    ),
    "amount / origin_before > 0.9": lambda r: (
        known(f(r, "origin_before"))
        and f(r, "origin_before") != 0
        and f(r, "amount") / f(r, "origin_before") > 0.9
    ),
    "is_missing(amount / origin_before)": lambda r: (
        not known(f(r, "origin_before")) or f(r, "origin_before") == 0
    ),
    "abs(origin_balance_error) > 1 and origin_balances_known": lambda r: (
        abs(f(r, "origin_balance_error")) > 1 and f(r, "origin_balances_known") != 0
    ),
    "100 < amount * 2 <= 20000": lambda r: 100 < f(r, "amount") * 2 <= 20000,
    "-amount + 10 >= -5": lambda r: -f(r, "amount") + 10 >= -5,
    'device == "device-a" or new_device': lambda r: f(r, "device") == DEVICE_A or f(r, "new_device") != 0,
    "hour_of_day in [0, 1, 2, 3] and velocity_count_1h > 1.5": lambda r: (
        f(r, "hour_of_day") in (0, 1, 2, 3) and f(r, "velocity_count_1h") > 1.5
    ),
    "away_from_home == True or first_transaction == 0": lambda r: (
        f(r, "away_from_home") == 1 or f(r, "first_transaction") == 0
    ),
    'channel != "ATM" and latitude > 0': lambda r: (
        cmp(f(r, "channel"), 4.0, lambda a, b: a != b) and cmp(f(r, "latitude"), 0, lambda a, b: a > b)
    ),
    "True": lambda r: True,
}


def random_batch(seed: int, n: int = 400) -> tuple[TransactionColumns, list[bytes | None]]:
    """Transactions of a few accounts with every optional input sometimes missing."""
    rng = np.random.default_rng(seed)
    geo = rng.integers(0, 2, n)
    countries = np.array([0, country_code("DE"), country_code("FR"), country_code("US")], dtype=np.uint16)
    devices = np.array([0, stable_hash("device-a"), stable_hash("device-b")], dtype=np.uint64)
    columns = TransactionColumns(
        account_slot=rng.integers(0, 12, n),
        amount=np.round(rng.choice([0.01, 50.0, 99.5, 100.0, 5000.0, 5000.01, 9999.0, 20000.0], n), 2),
        type=rng.integers(1, 6, n),
        event_time=np.sort(1.7e9 + rng.integers(0, 7200, n).astype(np.float64)),
        geo_known=geo,
        latitude=np.where(geo == 1, rng.uniform(-60, 60, n), 0.0),
        longitude=np.where(geo == 1, rng.uniform(-170, 170, n), 0.0),
        country=rng.choice(countries, n),
        channel=rng.integers(0, 7, n),
        counterparty=rng.choice(devices, n),
        device=rng.choice(devices, n),
        balances_known=rng.integers(0, 16, n),
        origin_before=rng.choice([0.0, 100.0, 5000.0, 10000.0], n),
        origin_after=rng.choice([0.0, 50.0, 5000.0], n),
        destination_before=rng.choice([0.0, 100.0], n),
        destination_after=rng.choice([0.0, 100.0], n),
    )
    return columns, [None] * 12


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_rules_match_their_meaning_in_both_evaluators(seed: int) -> None:
    expressions = list(CASES)
    rule_set = build_rule_set(
        [
            CompiledRule(f"r{i:02d}", 1, RuleAction.TAG, 500, 0.1, RuleMode.ACTIVE, compile_expression(e))
            for i, e in enumerate(expressions)
        ],
        generation=1,
    )
    assert [rule.rule_id for rule in rule_set.rules] == [f"r{i:02d}" for i in range(len(expressions))]
    columns, states = random_batch(seed)
    features, _ = build_features(columns, states)
    compiled = evaluate_rules(rule_set.program_set, features, columns)
    reference = reference_evaluate_rules(rule_set.program_set, features, columns)
    np.testing.assert_array_equal(compiled, reference)
    for row in range(len(columns)):
        values: Row = ([float(v) for v in features[row]], field_values(columns, row))
        for j, expression in enumerate(expressions):
            assert bool(compiled[row, j]) == CASES[expression](values), (expression, row)
    # the cases are not vacuous: every one both matches and fails somewhere (except the constant)
    for j, expression in enumerate(expressions[:-1]):
        assert 0 < compiled[:, j].sum() < len(columns), expression


def test_rule_set_orders_by_priority_and_leaves_out_disabled_rules() -> None:
    def rule(rule_id: str, priority: int, mode: RuleMode) -> CompiledRule:
        return CompiledRule(
            rule_id, 3, RuleAction.REVIEW, priority, 0.5, mode, compile_expression("amount > 1")
        )

    rule_set = build_rule_set(
        [
            rule("b", 10, RuleMode.ACTIVE),
            rule("a", 10, RuleMode.SHADOW),
            rule("c", 99, RuleMode.DISABLED),
            rule("d", 50, RuleMode.ACTIVE),
        ],
        generation=7,
    )
    assert [r.rule_id for r in rule_set.rules] == ["d", "a", "b"]
    assert rule_set.shadow_mask.tolist() == [False, True, False]
    assert rule_set.active_mask.tolist() == [True, False, True]
    assert len(rule_set.program_set) == 3 and rule_set.generation == 7
