"""Pure-Python reference of the rule evaluator: the specification of ``_rules`` (semantics in
``program``'s docstring)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sentinel.hotpath import _constants as c
from sentinel.hotpath.columns import TransactionColumns
from sentinel.hotpath.hashing import id_value
from sentinel.hotpath.program import Op, RuleSet

NAN = math.nan


def field_values(columns: TransactionColumns, row: int) -> list[float]:
    """The transaction fields of ``row`` by field number (TRANSACTION_FIELDS order), NaN where missing."""
    geo = bool(columns.geo_known[row])
    known = int(columns.balances_known[row])
    counterparty, device = int(columns.counterparty[row]), int(columns.device[row])
    channel, country = int(columns.channel[row]), int(columns.country[row])
    home = int(columns.home_country[row])
    fields = [NAN] * c.TRANSACTION_FIELD_COUNT
    fields[c.FIELD_AMOUNT] = float(columns.amount[row])
    fields[c.FIELD_TYPE] = float(columns.type[row])
    fields[c.FIELD_CHANNEL] = float(channel) if channel else NAN
    fields[c.FIELD_EVENT_TIME] = float(columns.event_time[row])
    fields[c.FIELD_LATITUDE] = float(columns.latitude[row]) if geo else NAN
    fields[c.FIELD_LONGITUDE] = float(columns.longitude[row]) if geo else NAN
    fields[c.FIELD_COUNTRY] = float(country) if country else NAN
    fields[c.FIELD_HOME_COUNTRY] = float(home) if home else NAN
    fields[c.FIELD_COUNTERPARTY] = id_value(counterparty) if counterparty else NAN
    fields[c.FIELD_DEVICE] = id_value(device) if device else NAN
    fields[c.FIELD_ORIGIN_BEFORE] = (
        float(columns.origin_before[row]) if known & c.ORIGIN_BEFORE_KNOWN else NAN
    )
    fields[c.FIELD_ORIGIN_AFTER] = float(columns.origin_after[row]) if known & c.ORIGIN_AFTER_KNOWN else NAN
    fields[c.FIELD_DESTINATION_BEFORE] = (
        float(columns.destination_before[row]) if known & c.DESTINATION_BEFORE_KNOWN else NAN
    )
    fields[c.FIELD_DESTINATION_AFTER] = (
        float(columns.destination_after[row]) if known & c.DESTINATION_AFTER_KNOWN else NAN
    )
    return fields


def _true(value: float) -> bool:
    return value != 0.0 and not math.isnan(value)


def _compare(op: int, a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return 0.0
    result = {Op.LT: a < b, Op.LE: a <= b, Op.GT: a > b, Op.GE: a >= b, Op.EQ: a == b, Op.NE: a != b}[Op(op)]
    return 1.0 if result else 0.0


def run_program(rules: RuleSet, rule: int, feature_row: list[float], fields: list[float]) -> bool:
    """Whether rule number ``rule`` of ``rules`` matches one row."""
    stack: list[float] = []
    start, end = int(rules.code_offsets[rule]), int(rules.code_offsets[rule + 1])
    for opcode, operand in rules.code[start:end].tolist():
        if opcode == Op.LOAD_FEATURE:
            stack.append(feature_row[operand])
        elif opcode == Op.LOAD_FIELD:
            stack.append(fields[operand])
        elif opcode == Op.LOAD_CONST:
            stack.append(float(rules.constants[operand]))
        elif opcode in (Op.NEG, Op.ABS, Op.NOT, Op.IS_MISSING, Op.IN_SET):
            value = stack.pop()
            if opcode == Op.NEG:
                stack.append(-value)
            elif opcode == Op.ABS:
                stack.append(abs(value))
            elif opcode == Op.NOT:
                stack.append(0.0 if _true(value) else 1.0)
            elif opcode == Op.IS_MISSING:
                stack.append(1.0 if math.isnan(value) else 0.0)
            else:
                lo, hi = int(rules.set_offsets[operand]), int(rules.set_offsets[operand + 1])
                stack.append(1.0 if value in rules.set_members[lo:hi].tolist() else 0.0)
        else:
            b = stack.pop()
            a = stack.pop()
            if opcode == Op.ADD:
                stack.append(a + b)
            elif opcode == Op.SUB:
                stack.append(a - b)
            elif opcode == Op.MUL:
                stack.append(a * b)
            elif opcode == Op.DIV:
                stack.append(NAN if b == 0.0 else a / b)
            elif opcode == Op.AND:
                stack.append(1.0 if _true(a) and _true(b) else 0.0)
            elif opcode == Op.OR:
                stack.append(1.0 if _true(a) or _true(b) else 0.0)
            else:
                stack.append(_compare(opcode, a, b))
    return _true(stack[-1])


def evaluate_rules(
    rules: RuleSet, features: npt.NDArray[np.float32], columns: TransactionColumns
) -> npt.NDArray[np.uint8]:
    """Reference of ``sentinel.hotpath.evaluate_rules``: matches[row, rule] in {0, 1}."""
    matches = np.zeros((len(columns), len(rules)), dtype=np.uint8)
    for row in range(len(columns)):
        feature_row = [float(value) for value in features[row]]
        fields = field_values(columns, row)
        for rule in range(len(rules)):
            matches[row, rule] = run_program(rules, rule, feature_row, fields)
    return matches
