"""Fuzz target ``rule_parser``: analysts' rule text through the language, the compiler and the evaluator.

An input is a mode byte, the text (UTF-8, up to the first NUL byte) and after the NUL the bytes of one
row (features and transaction fields) to evaluate on. Even mode: the text is one rule expression
(``check_expression`` + ``compile_checked``); odd mode: a TOML rule file (``parse_rule_file``). Asserted:

- the only errors are the documented ones: RuleExpressionError (with a 1-based position inside the
  text) for an expression, RuleFileError for a rule file;
- a rule file's rules pass ``RuleSpec.validate`` and read back unchanged from ``to_toml`` (what
  ``sentinel rules export`` writes), and each compiles (RuleExpressionError only when too complex);
- every compiled program runs on the row without an error, and the compiled evaluator
  (``evaluate_rules``) and its pure-Python reference agree on it.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from importlib import resources

import numpy as np

from sentinel.hotpath import (
    FEATURE_COUNT,
    FEATURE_NAMES,
    RuleProgram,
    RuleSet,
    TransactionColumns,
    evaluate_rules,
    reference_rules,
)
from sentinel.server.rules.compiler import compile_checked, compile_expression
from sentinel.server.rules.definitions import Rule
from sentinel.server.rules.language import MAX_EXPRESSION_LENGTH, RuleExpressionError, check_expression
from sentinel.server.rules.rulefiles import RuleFileError, parse_rule_file, to_toml

MAX_LEN = MAX_EXPRESSION_LENGTH + 1024  # past the longest expression, so the limit can be reached
EXPRESSION, RULE_FILE = 0, 1  # the mode byte's lowest bit
# Tokens of the language and of TOML rule files, and characters that split lines differently.
DICTIONARY = tuple(
    token.encode()
    for token in (
        " and ",
        " or ",
        "not ",
        " in ",
        " not in ",
        "is_missing(",
        "abs(",
        " == ",
        " != ",
        " <= ",
        " > ",
        " / ",
        "[",
        "]",
        "(",
        ")",
        '"TRANSFER"',
        '"ATM"',
        '"DE"',
        "1e308",
        "1e999",
        "True",
        "None",
        "amount",
        "country",
        "home_country",
        "device",
        "origin_before",
        "speed_kmh",
        "origin_drained",
        "\n",
        "\r",
        "\x0c",
        "\u2028",
        "\U0001f600",  # past U+FFFF: two UTF-16 code units
        "#",
        "\\",
        "[[rule]]\n",
        "id = ",
        "expression = ",
        "action = ",
        "priority = ",
        "severity = ",
        "mode = ",
        "description = ",
        "nan",
        "'''",
        '"""',
        "rule = ",
    )
)
_FEATURES = struct.Struct(f"<{FEATURE_COUNT}f")
# One row of TransactionColumns (its columns in this order, packed).
_ROW = (
    "amount",
    "type",
    "event_time",
    "geo_known",
    "latitude",
    "longitude",
    "country",
    "channel",
    "counterparty",
    "device",
    "balances_known",
    "origin_before",
    "origin_after",
    "destination_before",
    "destination_after",
    "home_country",
)
_FIELDS = struct.Struct("<dBdBddHBQQBddddH")
_CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def TestOneInput(data: bytes) -> None:  # the name atheris and libFuzzer use
    """Parse, compile and evaluate the input's text; assert the properties of the module doc."""
    if not data:
        return
    text_bytes, _, row_bytes = data[1:].partition(b"\x00")
    text = text_bytes.decode("utf-8", "replace")  # rule text arrives as UTF-8 (gRPC strings, files)
    programs = _expression_programs(text) if data[0] & 1 == EXPRESSION else _rule_file_programs(text)
    if programs:
        _evaluate(programs, row_bytes)


def _expression_programs(text: str) -> list[RuleProgram]:
    try:
        checked = check_expression(text)
    except RuleExpressionError as exc:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1  # as Python counts them
        assert 1 <= exc.line <= lines and exc.column >= 1, (exc.line, exc.column, str(exc))
        return []
    try:
        return [compile_checked(checked)]
    except RuleExpressionError as exc:
        assert "too complex" in str(exc), str(exc)
        return []


def _rule_file_programs(text: str) -> list[RuleProgram]:
    try:
        specs = parse_rule_file(text)
    except RuleFileError:
        return []
    programs = []
    for spec in specs:
        assert spec.validate() == spec
        exported = to_toml(Rule(spec, 1, "fuzz", _CREATED))
        assert parse_rule_file(exported) == [spec], exported
        try:
            programs.append(compile_expression(spec.expression))
        except RuleExpressionError as exc:
            assert "too complex" in str(exc), str(exc)
    return programs


def _evaluate(programs: list[RuleProgram], row_bytes: bytes) -> None:
    """Run the programs on the row both ways: no error, the same matches."""
    size = _FEATURES.size + _FIELDS.size
    row_bytes = (row_bytes + bytes(size))[:size]
    features = np.array([_FEATURES.unpack_from(row_bytes)], dtype=np.float32)
    columns = TransactionColumns.empty(1)
    for name, value in zip(_ROW, _FIELDS.unpack_from(row_bytes, _FEATURES.size), strict=True):
        getattr(columns, name)[0] = value
    # type, geo_known and balances_known within their codes, as in every row the evaluator gets
    columns.type[0] = columns.type[0] % 5 + 1
    columns.geo_known[0] &= 1
    columns.balances_known[0] &= 0xF
    rules = RuleSet(programs)
    compiled = evaluate_rules(rules, features, columns)
    reference = reference_rules.evaluate_rules(rules, features, columns)
    assert compiled.tobytes() == reference.tobytes(), (compiled, reference)


def seeds() -> list[bytes]:
    """The default rule file and its expressions, and expressions using every kind of syntax."""
    rule_file = resources.files("sentinel.server.rules").joinpath("default_rules.toml").read_text("utf-8")
    expressions = [spec.expression for spec in parse_rule_file(rule_file)] + [
        "amount > 5000 and country != home_country",
        '-5 < amount <= 5000 and channel == "ATM"',
        'country not in ["DE", "AT"] or is_missing(latitude)',
        'device == "gerät" and abs(origin_after - origin_before) / amount >= 0.5',
        "not origin_drained and amount in [1, 2.5, 1e3]\n  and counterparty != device",
        " + ".join(FEATURE_NAMES[:8]) + " > 1",
        "amount >",
    ]
    row = _FEATURES.pack(*([1.0] * FEATURE_COUNT)) + _FIELDS.pack(
        120.0, 1, 1.7e9, 1, 52.5, 13.4, 0x4445, 1, 2**63, 7, 0xF, 10.0, 0.0, 5.0, 125.0, 0x4445
    )
    expression_seeds = [bytes([EXPRESSION]) + text.encode() + b"\x00" + row for text in expressions]
    small_file = "[[rule]]\nid = 'big'\nexpression = \"amount > 1000\"\naction = 'review'\nseverity = 0.25\n"
    return [
        *expression_seeds,
        bytes([RULE_FILE]) + rule_file.encode(),
        bytes([RULE_FILE]) + small_file.encode(),
    ]
