"""Compile checked rule expressions into hot-path rule programs, and rule versions into a rule set.

The hot path owns the program format and the evaluator (``sentinel.hotpath.program``); this module
only lowers the typed tree of :mod:`sentinel.server.rules.language` into postfix instructions with the
hot path's ``ProgramBuilder``. There is no second evaluator: the server, ``TestRule`` and the backtest
all run what ``compile_rule_set`` returns through ``sentinel.hotpath.evaluate_rules``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sentinel.hotpath.errors import InvalidRuleProgram
from sentinel.hotpath.program import ProgramBuilder, RuleProgram, RuleSet
from sentinel.server.rules.definitions import Rule, RuleAction, RuleMode
from sentinel.server.rules.language import (
    Apply,
    CheckedRule,
    Constant,
    Expr,
    Feature,
    Field,
    InSet,
    RuleExpressionError,
    check_expression,
)


def _emit(builder: ProgramBuilder, expr: Expr) -> None:
    """Append ``expr`` in postfix order (operands first, then the operator)."""
    match expr:
        case Feature(name):
            builder.feature(name)
        case Field(name):
            builder.field(name)
        case Constant(value):
            builder.const(value)
        case InSet(operand, members):
            _emit(builder, operand)
            builder.in_set(members)
        case Apply(op, operands):
            for operand in operands:
                _emit(builder, operand)
            builder.op(op)


def compile_checked(checked: CheckedRule) -> RuleProgram:
    """The validated hot-path program of a checked expression.

    A program beyond the hot path's limits (instructions, stack depth) is reported as a
    RuleExpressionError, like any other problem of the expression.
    """
    builder = ProgramBuilder()
    _emit(builder, checked.tree)
    try:
        return builder.build()
    except InvalidRuleProgram as exc:
        raise RuleExpressionError(f"the expression is too complex to run ({exc})", 1, 1, False) from None


def compile_expression(expression: str) -> RuleProgram:
    """Parse, type-check and compile; RuleExpressionError names the position of any problem."""
    return compile_checked(check_expression(expression))


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule version ready to evaluate: what the decision needs, and its program."""

    rule_id: str
    version: int
    action: RuleAction
    priority: int
    severity: float
    mode: RuleMode
    program: RuleProgram

    @property
    def shadow(self) -> bool:
        """Shadow rules are reported and counted, never acted on."""
        return self.mode is RuleMode.SHADOW


@dataclass(frozen=True, slots=True)
class CompiledRuleSet:
    """The evaluable rules of one generation of the rule store, immutable once built.

    ``rules[j]`` is column j of ``sentinel.hotpath.evaluate_rules(program_set, features, columns)``.
    Only active and shadow rules are in it (disabled and deleted ones are not evaluated), ordered by
    descending priority, then id, so a decision can take the first matching active rule per row.
    ``shadow_mask[j]`` is True for shadow rules: a hit in such a column must be logged and counted,
    never change the outcome. ``generation`` is the store's change counter the set was loaded at.
    """

    generation: int
    rules: tuple[CompiledRule, ...]
    program_set: RuleSet
    shadow_mask: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def active_mask(self) -> npt.NDArray[np.bool_]:
        """True for rules whose hits act on the decision."""
        return ~self.shadow_mask


class RuleSource(Protocol):
    """Where scoring reads the current compiled rules from (swapped by the hot-reload watcher)."""

    @property
    def current(self) -> CompiledRuleSet:
        """The rule set to evaluate now."""
        ...


def compile_rule(rule: Rule) -> CompiledRule:
    """Compile one stored version (RuleExpressionError if its expression no longer type-checks)."""
    spec = rule.spec
    return CompiledRule(
        rule_id=spec.rule_id,
        version=rule.version,
        action=spec.action,
        priority=spec.priority,
        severity=spec.severity,
        mode=spec.mode,
        program=compile_expression(spec.expression),
    )


def build_rule_set(
    compiled: Iterable[CompiledRule], generation: int, *, include_disabled: bool = False
) -> CompiledRuleSet:
    """Order the evaluable rules and pack their programs for the evaluator.

    ``include_disabled`` keeps disabled rules (as non-shadow columns): for backtests only.
    """
    rules = tuple(
        sorted(
            (rule for rule in compiled if include_disabled or rule.mode is not RuleMode.DISABLED),
            key=lambda rule: (-rule.priority, rule.rule_id),
        )
    )
    shadow = np.array([rule.shadow for rule in rules], dtype=np.bool_)
    shadow.setflags(write=False)
    return CompiledRuleSet(generation, rules, RuleSet([rule.program for rule in rules]), shadow)
