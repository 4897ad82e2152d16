"""The rule language: errors with positions and suggestions, and what expressions are accepted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.hotpath import CHANNELS, FEATURE_DOCS, FEATURE_NAMES, TRANSACTION_TYPES, Op, country_code
from sentinel.server.rules.compiler import compile_expression
from sentinel.server.rules.language import (
    CONDITION_FEATURES,
    Apply,
    Constant,
    Feature,
    Field,
    InSet,
    RuleExpressionError,
    check_expression,
)


def error_of(expression: str) -> RuleExpressionError:
    with pytest.raises(RuleExpressionError) as caught:
        check_expression(expression)
    return caught.value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("ammount > 5", "unknown name 'ammount' at column 1 — did you mean 'amount'?"),
        ("amount > 5 and spead_kmh > 3", "unknown name 'spead_kmh' at column 16 — did you mean 'speed_kmh'?"),
        ('type == "TRANSFR"', "'TRANSFR' is not a valid type at column 9 — did you mean 'TRANSFER'?"),
        ('channel in ["ATM", "WEBB"]', "'WEBB' is not a valid channel at column 20 — did you mean 'WEB'?"),
        ("amount >", "syntax error: the expression ends too early (invalid syntax) at column 9"),
        ("amount > 5)", "syntax error: unmatched ')' at column 11"),
        ("amount", "a rule must be a condition (true or false), but this is a number at column 1"),
        ('country < "DE"', "'<' does not apply to country codes at column 1"),
        ('country == "de"', "'de' is not a valid country at column 12"),
        ("is_missing(speed_kmh)", "is_missing() is always false here: features are never missing"),
        ("is_missing(amount)", "is_missing() is always false here: it always has a value at column 12"),
        ("amount ** 2 > 3", "the operator '**' is not supported at column 1"),
        ("attributes.mcc == 1", "attribute access (a.b) is not supported in rules at column 1"),
        ('attributes["mcc"] == 1', "indexing (a[b]) is not supported in rules at column 1"),
        ("amount is None", "None is not a value in rules at column 11 — test with is_missing(x)"),
        ("max(amount, 1) > 2", "unknown function 'max' at column 1"),
        ('amount + "x" > 1', "'+' needs numbers, but this is a string at column 10"),
        ("amount > 1 and 5", "'and' needs conditions, but this is a number at column 16"),
        ("origin_drained > 0", "'>' does not apply to conditions at column 1"),
        ('amount in [1, "a"]', "the list must hold number constants at column 15"),
        ("type in []", "the list after 'in' is empty at column 9"),
        ("country == amount", "a country code cannot be compared with a number at column 12"),
        ("country == device", "a country code cannot be compared with an id code at column 12"),
        ("amount > 1e999", "the number inf is too large at column 10"),
        ("", "the expression is empty at column 1"),
        ("__import__('os').system('x') == 0", "only is_missing(x) and abs(x) can be called at column 1"),
        ("amount in [1] < 3", "a list cannot be compared further at column 11"),
        ("(lambda: 1)() == 1", "only is_missing(x) and abs(x) can be called at column 1"),
    ],
)
def test_errors_name_position_and_problem(expression: str, message: str) -> None:
    assert str(error_of(expression)).startswith(message)


def test_error_positions_on_later_lines_and_after_non_ascii() -> None:
    error = error_of('type == "TRANSFER"\n  and ammount > 5')
    assert (error.line, error.column) == (2, 7)
    assert str(error) == "unknown name 'ammount' at line 2, column 7 — did you mean 'amount'?"
    # columns count characters, not UTF-8 bytes
    error = error_of('device == "gerät" and ammount > 1')
    assert error.column == 23


def test_valid_expressions_give_the_expected_tree() -> None:
    checked = check_expression("amount > 5000 and country != home_country")
    assert checked.tree == Apply(
        Op.AND,
        (
            Apply(Op.GT, (Field("amount"), Constant(5000.0))),
            Apply(Op.NE, (Field("country"), Field("home_country"))),
        ),
    )
    assert checked.fields == ("amount", "country", "home_country")
    checked = check_expression('type in ["TRANSFER", "CASH_OUT"] and origin_drained')
    assert checked.tree == Apply(
        Op.AND,
        (
            InSet(
                Field("type"), (float(TRANSACTION_TYPES["TRANSFER"]), float(TRANSACTION_TYPES["CASH_OUT"]))
            ),
            Feature("origin_drained"),
        ),
    )
    assert checked.features == ("origin_drained",)
    # chained comparisons, unary minus folded, strings of each coded field
    assert check_expression("-5 < amount <= 5000").tree == Apply(
        Op.AND,
        (Apply(Op.LT, (Constant(-5.0), Field("amount"))), Apply(Op.LE, (Field("amount"), Constant(5000.0)))),
    )
    assert check_expression('channel == "ATM"').tree == Apply(
        Op.EQ, (Field("channel"), Constant(float(CHANNELS["ATM"])))
    )
    assert check_expression('"DE" == country').tree == Apply(
        Op.EQ, (Constant(float(country_code("DE"))), Field("country"))
    )


def test_not_in_does_not_match_a_missing_value() -> None:
    """Every comparison with a missing value is false: `not in` gets an explicit presence test."""
    tree = check_expression('country not in ["DE", "AT"]').tree
    assert tree == Apply(
        Op.AND,
        (
            Apply(Op.NOT, (Apply(Op.IS_MISSING, (Field("country"),)),)),
            Apply(Op.NOT, (InSet(Field("country"), (float(country_code("DE")), float(country_code("AT")))),)),
        ),
    )
    # a field that is never missing needs no presence test
    assert check_expression('type not in ["PAYMENT"]').tree == Apply(
        Op.NOT, (InSet(Field("type"), (float(TRANSACTION_TYPES["PAYMENT"]),)),)
    )


def test_condition_features_are_the_indicators() -> None:
    assert {name for name in FEATURE_NAMES if FEATURE_DOCS[name].startswith("1 if")} == CONDITION_FEATURES
    assert {
        "origin_drained",
        "new_device",
        "away_from_home",
        "type_transfer",
        "state_known",
    } <= CONDITION_FEATURES
    assert "speed_kmh" not in CONDITION_FEATURES and "hour_of_day" not in CONDITION_FEATURES


def test_too_complex_expressions_are_refused_with_a_message() -> None:
    deep = " + ".join(["amount"] * 70) + " > 1"
    program = compile_expression(deep)  # left-deep sums need a shallow stack
    assert program.max_stack_depth <= 3
    nested = "amount" + " + (amount" * 70 + ")" * 70 + " > 1"
    with pytest.raises(RuleExpressionError, match="too complex"):
        compile_expression(nested)
    with pytest.raises(RuleExpressionError, match="longer than"):
        check_expression("amount > 1 or " * 400 + "amount > 1")


TOKENS = [
    "amount",
    "country",
    "home_country",
    "type",
    "speed_kmh",
    "origin_drained",
    "is_missing",
    "abs",
    "(",
    ")",
    "[",
    "]",
    ",",
    "and",
    "or",
    "not",
    "in",
    "+",
    "-",
    "*",
    "/",
    "<",
    "==",
    "!=",
    ">=",
    "1",
    "0",
    "2.5",
    '"DE"',
    '"TRANSFER"',
    "True",
    "None",
    ".",
    "x",
    "**",
    "lambda",
    ":",
    "\n",
    "é",
    "'",
    "#",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14) | st.text(max_size=40).map(lambda t: [t]))
def test_any_input_either_compiles_or_gets_a_positioned_error(tokens: list[str]) -> None:
    expression = " ".join(tokens)
    try:
        program = compile_expression(expression)
    except RuleExpressionError as exc:
        assert exc.line >= 1 and exc.column >= 1 and str(exc)
    else:
        assert program.validate() is program
