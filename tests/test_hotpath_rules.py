"""Rule programs: validation, binary form, evaluator semantics and parity with the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hotpath_strategies import COUNTRIES, IDS, batches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.hotpath import (
    FEATURE_COUNT,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    MAX_STACK_DEPTH,
    TRANSACTION_FIELDS,
    InvalidRuleProgram,
    Op,
    ProgramBuilder,
    RuleProgram,
    RuleSet,
    TransactionColumns,
    TransactionColumnsBuilder,
    build_features,
    country_code,
    evaluate_rules,
    field_value,
    id_value,
    stable_hash,
)
from sentinel.hotpath import reference_rules as reference

T0 = 1_700_000_000.0


def rule() -> ProgramBuilder:
    return ProgramBuilder()


def scored(*rows: dict[str, object]) -> tuple[np.ndarray, TransactionColumns]:
    builder = TransactionColumnsBuilder()
    for row in rows:
        builder.append(**{"account_slot": 0, "amount": 100.0, "type_code": 2, "event_time": T0, **row})
    columns = builder.build()
    features, _ = build_features(columns, [None])
    return features, columns


def matches(programs: list[RuleProgram], *rows: dict[str, object]) -> list[list[int]]:
    features, columns = scored(*rows)
    rules = RuleSet(programs)
    result = evaluate_rules(rules, features, columns)
    assert np.array_equal(result, reference.evaluate_rules(rules, features, columns))
    return result.T.tolist()


def test_comparisons_logic_and_sets() -> None:
    amount_over = rule().field("amount").const(500).op(Op.GT).build()
    transfer_or_cash_out = (
        rule()
        .field("type")
        .in_set([field_value("type", "TRANSFER"), field_value("type", "CASH_OUT")])
        .build()
    )
    big_transfer = (
        rule().field("amount").const(500).op(Op.GT).field("type").const(2).op(Op.EQ).op(Op.AND).build()
    )
    not_payment = rule().field("type").const(1).op(Op.EQ).op(Op.NOT).build()
    either = rule().field("amount").const(1_000).op(Op.GE).feature("first_transaction").op(Op.OR).build()
    assert matches(
        [amount_over, transfer_or_cash_out, big_transfer, not_payment, either],
        {"amount": 100.0, "type_code": 1},
        {"amount": 1_000.0, "type_code": 2, "event_time": T0 + 1},
        {"amount": 600.0, "type_code": 3, "event_time": T0 + 2},
    ) == [[0, 1, 1], [0, 1, 1], [0, 1, 0], [0, 1, 1], [1, 1, 0]]


def test_missing_values_never_compare() -> None:
    away = rule().field("country").field("home_country").op(Op.NE).build()
    no_geo = rule().field("latitude").op(Op.IS_MISSING).build()
    lat_low = rule().field("latitude").const(100).op(Op.LT).build()
    no_channel = rule().field("channel").op(Op.IS_MISSING).build()
    sum_missing = rule().field("origin_before").const(1).op(Op.ADD).op(Op.IS_MISSING).build()
    assert matches(
        [away, no_geo, lat_low, no_channel, sum_missing],
        {"country": "DE"},  # home unknown before the first transaction
        {"country": "FR", "latitude": 1.0, "longitude": 2.0, "channel": 2, "origin_before": 5.0},
        {"country": "DE"},
    ) == [[0, 1, 0], [1, 0, 1], [0, 1, 0], [1, 0, 1], [1, 0, 1]]


def test_arithmetic_and_division_by_zero() -> None:
    ratio = rule().field("amount").field("origin_before").op(Op.DIV).const(2).op(Op.GT).build()
    negated = rule().field("amount").op(Op.NEG).op(Op.ABS).const(100).op(Op.EQ).build()
    product = rule().field("amount").const(3).op(Op.MUL).const(50).op(Op.SUB).const(250).op(Op.EQ).build()
    assert matches(
        [ratio, negated, product],
        {"origin_before": 0.0},
        {"origin_before": 10.0},
        {"origin_before": 100.0},
    ) == [[0, 1, 0], [1, 1, 1], [1, 1, 1]]


def test_strings_are_encoded_like_the_columns() -> None:
    by_country = rule().field("country").in_set([country_code("FR"), field_value("country", "NL")]).build()
    by_device = rule().field("device").const(field_value("device", "phone-1")).op(Op.EQ).build()
    by_counterparty = rule().field("counterparty").in_set([field_value("counterparty", "M1")]).build()
    by_channel = rule().field("channel").const(field_value("channel", "ATM")).op(Op.EQ).build()
    assert matches(
        [by_country, by_device, by_counterparty, by_channel],
        {"country": "FR", "device_id": "phone-1", "counterparty_id": "M2", "channel": 4},
        {"country": "DE", "device_id": "phone-2", "counterparty_id": "M1"},
    ) == [[1, 0], [1, 0], [0, 1], [1, 0]]
    assert id_value(stable_hash("phone-1")) == field_value("device", "phone-1")
    with pytest.raises(ValueError):
        field_value("amount", "12")


def test_no_rules_and_no_rows() -> None:
    features, columns = scored({})
    assert evaluate_rules(RuleSet([]), features, columns).shape == (1, 0)
    empty = TransactionColumns.empty(0)
    one = RuleSet([rule().field("amount").const(1).op(Op.GT).build()])
    assert evaluate_rules(one, np.zeros((0, FEATURE_COUNT), np.float32), empty).shape == (0, 1)


def test_evaluator_refuses_mismatched_inputs() -> None:
    features, columns = scored({}, {"event_time": T0 + 1})
    rules = RuleSet([rule().field("amount").const(1).op(Op.GT).build()])
    with pytest.raises(ValueError, match="rows"):
        evaluate_rules(rules, features[:1], columns)
    with pytest.raises(ValueError, match="columns"):
        evaluate_rules(rules, np.zeros((2, 3), np.float32), columns)
    with pytest.raises(TypeError):
        evaluate_rules([rules.programs[0]], features, columns)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (RuleProgram(()), "1 to"),
        (RuleProgram(((99, 0),)), "unknown opcode 99"),
        (RuleProgram(((Op.LOAD_FEATURE, FEATURE_COUNT),)), "out of range"),
        (RuleProgram(((Op.LOAD_FIELD, len(TRANSACTION_FIELDS)),)), "out of range"),
        (RuleProgram(((Op.LOAD_CONST, 0),)), "out of range"),
        (RuleProgram(((Op.LOAD_CONST, 0), (Op.IN_SET, 1)), (1.0,), ((1.0,),)), "out of range"),
        (RuleProgram(((Op.LOAD_CONST, 0), (Op.ADD, 0)), (1.0,)), "needs 2 values"),
        (RuleProgram(((Op.NOT, 0),)), "needs 1 values"),
        (RuleProgram(((Op.LOAD_CONST, 0), (Op.LOAD_CONST, 0)), (1.0,)), "leaves 2 values"),
        (RuleProgram(((Op.LOAD_CONST, 0), (Op.NOT, 3)), (1.0,)), "takes no operand"),
        (RuleProgram(((Op.LOAD_CONST, 0),), (math.nan,)), "not finite"),
        (RuleProgram(((Op.LOAD_CONST, 0), (Op.IN_SET, 0)), (1.0,), ((math.inf,),)), "non-finite"),
        (RuleProgram(((Op.LOAD_CONST, 0),), (1.0,), (), FEATURE_SCHEMA_VERSION + 1), "recompile"),
        (RuleProgram(((Op.LOAD_CONST, 0),) * (MAX_STACK_DEPTH + 1), (1.0,)), "deeper than"),
    ],
)
def test_validation_names_the_problem(program: RuleProgram, message: str) -> None:
    with pytest.raises(InvalidRuleProgram, match=message):
        program.validate()
    with pytest.raises(InvalidRuleProgram):
        RuleSet([program])


def test_binary_form_round_trips_and_refuses_damage() -> None:
    program = (
        rule()
        .field("country")
        .in_set([country_code("DE"), country_code("FR")])
        .feature("new_device")
        .op(Op.AND)
        .field("amount")
        .const(2.5)
        .op(Op.GT)
        .op(Op.OR)
        .build()
    )
    blob = program.to_bytes()
    assert RuleProgram.from_bytes(blob) == program
    assert program.max_stack_depth == 3
    damages = [
        (blob[:-3], "truncated"),
        (blob + b"\0", "trailing"),
        (b"XYZ" + blob[3:], "format"),
        (b"", "truncated"),
    ]
    for damaged, message in damages:
        with pytest.raises(InvalidRuleProgram, match=message):
            RuleProgram.from_bytes(damaged)


def test_rule_set_arrays_are_read_only() -> None:
    rules = RuleSet([rule().field("amount").const(1).op(Op.GT).build()])
    with pytest.raises(ValueError):
        rules.code[0, 0] = 99


# Random valid programs: expression trees over features, fields, constants and sets, in postfix.
CONSTANTS = [
    0.0,
    1.0,
    -1.0,
    0.5,
    60.0,
    1_000.0,
    1e18,
    -1e300,
    1e300,
    *COUNTRIES[1:],
    *(id_value(value) for value in IDS[1:4]),
    2.0,
    3.0,
]
UNARY = [Op.NEG, Op.ABS, Op.NOT, Op.IS_MISSING]
BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE, Op.AND, Op.OR]
Step = tuple[str, object]
leaves = st.one_of(
    st.integers(0, FEATURE_COUNT - 1).map(lambda index: [("feature", index)]),
    st.integers(0, len(TRANSACTION_FIELDS) - 1).map(lambda index: [("field", index)]),
    st.sampled_from(CONSTANTS).map(lambda value: [("const", value)]),
)


def _extend(children: st.SearchStrategy[list[Step]]) -> st.SearchStrategy[list[Step]]:
    return st.one_of(
        st.tuples(children, st.sampled_from(UNARY)).map(lambda t: [*t[0], ("op", t[1])]),
        st.tuples(children, children, st.sampled_from(BINARY)).map(lambda t: [*t[0], *t[1], ("op", t[2])]),
        st.tuples(children, st.lists(st.sampled_from(CONSTANTS), max_size=6)).map(
            lambda t: [*t[0], ("set", t[1])]
        ),
    )


programs = st.recursive(leaves, _extend, max_leaves=10)


def _build(steps: list[Step]) -> RuleProgram:
    builder = ProgramBuilder()
    for kind, value in steps:
        if kind == "feature":
            builder.feature(FEATURE_NAMES[value])
        elif kind == "field":
            builder.field(TRANSACTION_FIELDS[value])
        elif kind == "const":
            builder.const(value)
        elif kind == "set":
            builder.in_set(value)
        else:
            builder.op(value)
    return builder.build()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(max_rows=10), st.lists(programs, min_size=1, max_size=6))
def test_evaluator_matches_the_reference(
    batch: tuple[TransactionColumns, list[bytes | None]], trees: list[list[Step]]
) -> None:
    columns, states = batch
    features, _ = build_features(columns, states)
    rules = RuleSet([_build(tree) for tree in trees])
    with np.errstate(all="ignore"):
        expected = reference.evaluate_rules(rules, features, columns)
    assert np.array_equal(evaluate_rules(rules, features, columns), expected)
    reloaded = RuleSet([RuleProgram.from_bytes(program.to_bytes()) for program in rules.programs])
    assert reloaded.code.tolist() == rules.code.tolist()
