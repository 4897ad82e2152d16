"""The rule language: parse an analyst's expression safely and type-check it against the schema.

A rule is one Python-style expression, e.g. ``amount > 5000 and country != home_country``. It is
parsed with :func:`ast.parse` and only a whitelist of node types is accepted: the text is never
evaluated, executed or compiled into Python bytecode. Type checking resolves every name against the
hot path's schema (``FEATURE_NAMES`` and ``TRANSACTION_FIELDS``), turns string constants into the
numbers the fields hold (``"TRANSFER"`` -> type code, ``"DE"`` -> country code, ids -> id hash) and
produces a small typed tree (:data:`Expr`) that :mod:`sentinel.server.rules.compiler` turns into a
hot-path rule program.

What analysts can write (``sentinel rules names`` lists every name with its meaning):

- names: every feature (``log_amount_zscore``, ``speed_kmh``, ``origin_drained`` ...) and transaction
  field (``amount``, ``type``, ``channel``, ``country``, ``home_country``, ``device`` ...);
- numbers, ``True``/``False``, strings where a coded field is compared (``type == "TRANSFER"``,
  ``country in ["DE", "AT"]``), lists of constants after ``in`` / ``not in``;
- arithmetic ``+ - * /`` (division by zero gives a missing value), unary ``-``, ``abs(x)``;
- comparisons ``== != < <= > >=`` (chains such as ``100 < amount <= 5000`` allowed), ``in``, ``not in``;
- ``and``, ``or``, ``not``; yes/no features (``origin_drained``, ``new_device`` ...) are conditions;
- missing values: ``is_missing(x)`` is true when a field was not given (``is_missing(country)``).

Missing values: fields such as ``country`` or ``origin_before`` may be missing; features never are
(they have documented neutral values and ``*_known`` indicators). Arithmetic on a missing value is
missing, and **every comparison with a missing value is false** — ``!=`` and ``not in`` included, so
``country != home_country`` does not match when the home country is unknown. Test with
``is_missing(x)`` where that matters. Errors name the position (1-based column, and line when the
expression has several) and suggest the closest known name.
"""

from __future__ import annotations

import ast
import difflib
import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from sentinel.hotpath.program import Op, field_value
from sentinel.hotpath.schema import (
    CHANNELS,
    FEATURE_DOCS,
    FEATURE_NAMES,
    TRANSACTION_FIELD_DOCS,
    TRANSACTION_FIELDS,
    TRANSACTION_TYPES,
)

MAX_EXPRESSION_LENGTH = 4_000
MAX_LIST_LENGTH = 1_000


class Kind(enum.Enum):
    """The type of a (sub-)expression."""

    NUMBER = "number"
    CONDITION = "condition"  # true/false
    CODE = "code"  # a coded field: compared with strings of its domain, or a field of the same domain
    STRING = "string"  # a string constant: only next to a coded field


# Features that are 0/1 indicators: analysts use them as conditions (``origin_drained and ...``).
# Listed explicitly (a stored rule's meaning must not follow a reworded doc string); a test checks the
# list against the schema's "1 if ..." features.
CONDITION_FEATURES: frozenset[str] = frozenset(
    {
        "type_payment",
        "type_transfer",
        "type_cash_out",
        "type_cash_in",
        "type_debit",
        "origin_balances_known",
        "origin_drained",
        "amount_exceeds_origin_balance",
        "destination_balances_known",
        "destination_balances_zero",
        "geo_known",
        "state_known",
        "first_transaction",
        "travel_known",
        "away_from_home",
        "country_changed",
        "new_counterparty",
        "new_device",
    }
    & set(FEATURE_NAMES)
)

# Coded transaction fields: domain name (fields of one domain compare with each other) and the
# field whose encoding ``field_value`` applies to string constants of the domain.
CODE_DOMAINS: MappingProxyType[str, str] = MappingProxyType(
    {
        "type": "type",
        "channel": "channel",
        "country": "country",
        "home_country": "country",
        "counterparty": "id",
        "device": "id",
    }
)
_DOMAIN_ENCODER = {"type": "type", "channel": "channel", "country": "country", "id": "device"}
# Fields that are never missing; every other field may be (see TRANSACTION_FIELD_DOCS).
ALWAYS_PRESENT_FIELDS: frozenset[str] = frozenset({"amount", "type", "event_time"})
FUNCTIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "is_missing": "is_missing(x): true when x has no value (field not given, division by zero).",
        "abs": "abs(x): the absolute value of a number.",
    }
)
KNOWN_NAMES: tuple[str, ...] = FEATURE_NAMES + TRANSACTION_FIELDS
if len(set(KNOWN_NAMES)) != len(KNOWN_NAMES):  # pragma: no cover - guards a schema change
    raise RuntimeError("a feature and a transaction field share a name; rules could not tell them apart")


# --- the typed tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feature:
    """Load a feature column."""

    name: str


@dataclass(frozen=True, slots=True)
class Field:
    """Load a transaction field (missing values are NaN)."""

    name: str


@dataclass(frozen=True, slots=True)
class Constant:
    """A number (strings are already encoded into the number their field holds)."""

    value: float


@dataclass(frozen=True, slots=True)
class Apply:
    """An operator of the hot-path program (ADD ... IS_MISSING) applied to its operands, in order."""

    op: Op
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class InSet:
    """True when the operand equals one of ``members`` (false when it is missing)."""

    operand: Expr
    members: tuple[float, ...]


Expr = Feature | Field | Constant | Apply | InSet


@dataclass(frozen=True, slots=True)
class CheckedRule:
    """A type-checked expression: the tree the compiler lowers, and the names it reads."""

    expression: str
    tree: Expr
    features: tuple[str, ...]
    fields: tuple[str, ...]


class RuleExpressionError(ValueError):
    """A rule expression is not valid; ``line``/``column`` (1-based) locate the problem.

    ``str()`` is one sentence for humans: "unknown name 'ammount' at column 1 — did you mean
    'amount'?". ``problem`` is that sentence without the position.
    """

    def __init__(self, problem: str, line: int, column: int, multiline: bool, hint: str = "") -> None:
        self.problem = problem
        self.line = line
        self.column = column
        self.hint = hint
        where = f"line {line}, column {column}" if multiline else f"column {column}"
        super().__init__(f"{problem} at {where}{hint}")


# --- checking ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Typed:
    expr: Expr | None  # None for a bare string constant (it only exists next to a coded field)
    kind: Kind
    domain: str = ""  # CODE: the domain; STRING: unused
    text: str = ""  # STRING: the constant
    may_be_missing: bool = False
    node: ast.AST | None = None


_COMPARISONS: MappingProxyType[type[ast.cmpop], Op] = MappingProxyType(
    {ast.Lt: Op.LT, ast.LtE: Op.LE, ast.Gt: Op.GT, ast.GtE: Op.GE, ast.Eq: Op.EQ, ast.NotEq: Op.NE}
)
_ARITHMETIC: MappingProxyType[type[ast.operator], Op] = MappingProxyType(
    {ast.Add: Op.ADD, ast.Sub: Op.SUB, ast.Mult: Op.MUL, ast.Div: Op.DIV}
)
_OPERATOR_TEXT: MappingProxyType[type[ast.AST], str] = MappingProxyType(
    {
        ast.Lt: "<",
        ast.LtE: "<=",
        ast.Gt: ">",
        ast.GtE: ">=",
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.In: "in",
        ast.NotIn: "not in",
        ast.Is: "is",
        ast.IsNot: "is not",
        ast.Add: "+",
        ast.Sub: "-",
        ast.Mult: "*",
        ast.Div: "/",
        ast.Mod: "%",
        ast.Pow: "**",
        ast.FloorDiv: "//",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.MatMult: "@",
        ast.Invert: "~",
    }
)
_SYNTAX_NAMES: MappingProxyType[type[ast.AST], str] = MappingProxyType(
    {
        ast.Attribute: "attribute access (a.b)",
        ast.Subscript: "indexing (a[b])",
        ast.Lambda: "lambda",
        ast.IfExp: "if/else expressions",
        ast.Dict: "dictionaries",
        ast.NamedExpr: "assignment (:=)",
        ast.JoinedStr: "f-strings",
        ast.ListComp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.GeneratorExp: "comprehensions",
        ast.Starred: "unpacking (*)",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.Slice: "slices",
        ast.Tuple: "a tuple (a, b) outside 'in'",
        ast.List: "a list outside 'in'",
        ast.Set: "a set outside 'in'",
    }
)


class _Checker:
    """One pass over the ast: whitelist, resolve names, infer kinds, build the typed tree."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.lines = _lines(expression)
        self.multiline = len(self.lines) > 1
        self.features: dict[str, None] = {}
        self.fields: dict[str, None] = {}

    # positions -----------------------------------------------------------------------------------
    def error(self, node: ast.AST | None, problem: str, hint: str = "") -> RuleExpressionError:
        line, column = 1, 1
        if isinstance(node, ast.expr | ast.stmt):
            line = node.lineno
            text = self.lines[line - 1] if line <= len(self.lines) else ""
            # ast offsets count UTF-8 bytes; analysts count characters.
            column = len(text.encode()[: node.col_offset].decode(errors="ignore")) + 1
        return RuleExpressionError(problem, line, column, self.multiline, hint)

    # entry -----------------------------------------------------------------------------------------
    def check(self, tree: ast.Expression) -> CheckedRule:
        typed = self.visit(tree.body)
        if typed.kind is not Kind.CONDITION:
            raise self.error(
                tree.body,
                f"a rule must be a condition (true or false), but this is {_a(self.describe(typed))}",
                " — compare it, e.g. amount > 1000",
            )
        assert typed.expr is not None
        return CheckedRule(self.expression, typed.expr, tuple(self.features), tuple(self.fields))

    def visit(self, node: ast.AST) -> _Typed:
        handler: Callable[[ast.AST], _Typed] | None = getattr(self, f"visit_{type(node).__name__}", None)
        if handler is None:
            raise self.unsupported(node)
        return handler(node)

    def unsupported(self, node: ast.AST) -> RuleExpressionError:
        what = _SYNTAX_NAMES.get(type(node))
        if what is None:
            what = f"'{_OPERATOR_TEXT[type(node)]}'" if type(node) in _OPERATOR_TEXT else type(node).__name__
        return self.error(
            node,
            f"{what} is not supported in rules",
            " — use names, numbers, strings, lists, + - * /, comparisons, in, and/or/not, "
            "abs() and is_missing()",
        )

    def describe(self, typed: _Typed) -> str:
        if typed.kind is Kind.CODE:
            return f"{typed.domain} code"
        return typed.kind.value

    # leaves ----------------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> _Typed:
        name = node.id
        if name in CONDITION_FEATURES:
            self.features[name] = None
            return _Typed(Feature(name), Kind.CONDITION, node=node)
        if name in FEATURE_DOCS:
            self.features[name] = None
            return _Typed(Feature(name), Kind.NUMBER, node=node)
        if name in TRANSACTION_FIELD_DOCS:
            self.fields[name] = None
            missing = name not in ALWAYS_PRESENT_FIELDS
            if name in CODE_DOMAINS:
                return _Typed(Field(name), Kind.CODE, CODE_DOMAINS[name], may_be_missing=missing, node=node)
            return _Typed(Field(name), Kind.NUMBER, may_be_missing=missing, node=node)
        if name in FUNCTIONS:
            raise self.error(node, f"'{name}' is a function", f" — call it, e.g. {name}(country)")
        if name in ("true", "false", "null", "none", "None", "NULL"):
            raise self.error(
                node,
                f"unknown name '{name}'",
                " — write True or False, and is_missing(x) to test for a missing value",
            )
        hint = _suggest(name, KNOWN_NAMES) or " — `sentinel rules names` lists the names rules can use"
        raise self.error(node, f"unknown name '{name}'", hint)

    def visit_Constant(self, node: ast.Constant) -> _Typed:
        value = node.value
        if isinstance(value, bool):
            return _Typed(Constant(1.0 if value else 0.0), Kind.CONDITION, node=node)
        if isinstance(value, int | float):
            number = float(value)
            if not math.isfinite(number):
                raise self.error(node, f"the number {value!r} is too large")
            return _Typed(Constant(number), Kind.NUMBER, node=node)
        if isinstance(value, str):
            return _Typed(None, Kind.STRING, text=value, node=node)
        if value is None:
            raise self.error(node, "None is not a value in rules", " — test with is_missing(x)")
        raise self.error(node, f"constants of type {type(value).__name__} are not supported")

    # operators -------------------------------------------------------------------------------------
    def visit_UnaryOp(self, node: ast.UnaryOp) -> _Typed:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self.need(operand, Kind.CONDITION, "not")
            return _Typed(Apply(Op.NOT, (operand.expr,)), Kind.CONDITION, node=node)  # type: ignore[arg-type]
        if isinstance(node.op, ast.USub | ast.UAdd):
            self.need(operand, Kind.NUMBER, "unary " + ("-" if isinstance(node.op, ast.USub) else "+"))
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(operand.expr, Constant):
                return _Typed(Constant(-operand.expr.value), Kind.NUMBER, node=node)
            return _Typed(Apply(Op.NEG, (operand.expr,)), Kind.NUMBER, operand.may_be_missing, node=node)  # type: ignore[arg-type]
        raise self.error(node, "the operator '~' is not supported", " — use not for conditions")

    def visit_BinOp(self, node: ast.BinOp) -> _Typed:
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            text = _OPERATOR_TEXT.get(type(node.op), type(node.op).__name__)
            raise self.error(node, f"the operator '{text}' is not supported", " — use + - * /")
        symbol = _OPERATOR_TEXT[type(node.op)]
        left, right = self.visit(node.left), self.visit(node.right)
        self.need(left, Kind.NUMBER, f"'{symbol}'")
        self.need(right, Kind.NUMBER, f"'{symbol}'")
        return _Typed(
            Apply(op, (left.expr, right.expr)),  # type: ignore[arg-type]
            Kind.NUMBER,
            # division by zero is missing too
            may_be_missing=left.may_be_missing or right.may_be_missing or op is Op.DIV,
            node=node,
        )

    def visit_BoolOp(self, node: ast.BoolOp) -> _Typed:
        word = "and" if isinstance(node.op, ast.And) else "or"
        operands = [self.visit(value) for value in node.values]
        for operand in operands:
            self.need(operand, Kind.CONDITION, f"'{word}'")
        op = Op.AND if word == "and" else Op.OR
        expr: Expr = operands[0].expr  # type: ignore[assignment]
        for operand in operands[1:]:
            expr = Apply(op, (expr, operand.expr))  # type: ignore[arg-type]
        return _Typed(expr, Kind.CONDITION, node=node)

    def visit_Compare(self, node: ast.Compare) -> _Typed:
        operands = [node.left, *node.comparators]
        parts: list[Expr] = []
        left = self.visit(operands[0])
        for index, cmpop in enumerate(node.ops):
            right_node = operands[index + 1]
            if isinstance(cmpop, ast.In | ast.NotIn):
                if index + 1 < len(node.ops):
                    raise self.error(
                        right_node, "a list cannot be compared further", " — split the chain with and"
                    )
                parts.append(self.membership(left, right_node, negated=isinstance(cmpop, ast.NotIn)))
                continue
            right = self.visit(right_node)
            parts.append(self.comparison(left, cmpop, right, node))
            left = right
        expr = parts[0]
        for part in parts[1:]:
            expr = Apply(Op.AND, (expr, part))
        return _Typed(expr, Kind.CONDITION, node=node)

    def comparison(self, left: _Typed, cmpop: ast.cmpop, right: _Typed, node: ast.Compare) -> Expr:
        if isinstance(cmpop, ast.Is | ast.IsNot):
            raise self.error(
                node, f"'{_OPERATOR_TEXT[type(cmpop)]}' is not supported", " — use is_missing(x) or =="
            )
        op = _COMPARISONS[type(cmpop)]
        symbol = _OPERATOR_TEXT[type(cmpop)]
        ordering = op not in (Op.EQ, Op.NE)
        kinds = {left.kind, right.kind}
        if Kind.CODE in kinds or Kind.STRING in kinds:
            coded = left if left.kind is Kind.CODE else right if right.kind is Kind.CODE else None
            if coded is None:
                culprit = left if left.kind is Kind.STRING else right
                raise self.error(
                    culprit.node,
                    f"the string {culprit.text!r} can only be compared with a coded field "
                    "(type, channel, country, home_country, counterparty, device)",
                )
            other = right if coded is left else left
            if ordering:
                raise self.error(
                    node, f"'{symbol}' does not apply to {coded.domain} codes", " — use ==, !=, in or not in"
                )
            if other.kind is Kind.STRING:
                value = self.encode(coded.domain, other.text, other.node)
                other_expr: Expr = Constant(value)
            elif other.kind is Kind.CODE and other.domain == coded.domain:
                other_expr = other.expr  # type: ignore[assignment]
            else:
                raise self.error(
                    other.node,
                    f"{_a(coded.domain)} code cannot be compared with {_a(self.describe(other))}",
                    _domain_example(coded.domain),
                )
            operands = (coded.expr, other_expr) if coded is left else (other_expr, coded.expr)
            return Apply(op, operands)  # type: ignore[arg-type]
        if left.kind is Kind.CONDITION or right.kind is Kind.CONDITION:
            # yes/no values compare with each other or with 0/1 (``origin_drained == 1``)
            if ordering:
                raise self.error(node, f"'{symbol}' does not apply to conditions", " — use == or !=")
            for side in (left, right):
                if side.kind is Kind.NUMBER and not (
                    isinstance(side.expr, Constant) and side.expr.value in (0.0, 1.0)
                ):
                    raise self.error(side.node, "a condition can only be compared with True, False, 0 or 1")
            return Apply(op, (left.expr, right.expr))  # type: ignore[arg-type]
        return Apply(op, (left.expr, right.expr))  # type: ignore[arg-type]

    def membership(self, left: _Typed, right_node: ast.expr, negated: bool) -> Expr:
        word = "not in" if negated else "in"
        if not isinstance(right_node, ast.List | ast.Tuple | ast.Set):
            raise self.error(
                right_node, f"'{word}' needs a list of constants", ' such as ["TRANSFER", "CASH_OUT"]'
            )
        if not right_node.elts:
            raise self.error(right_node, f"the list after '{word}' is empty")
        if len(right_node.elts) > MAX_LIST_LENGTH:
            raise self.error(right_node, f"the list after '{word}' has more than {MAX_LIST_LENGTH} items")
        if left.kind not in (Kind.CODE, Kind.NUMBER):
            raise self.error(
                left.node,
                f"'{word}' needs a number or a coded field on its left, not {_a(self.describe(left))}",
            )
        members: list[float] = []
        for element in right_node.elts:
            if left.kind is Kind.CODE:
                if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
                    raise self.error(
                        element, f"the list must hold {left.domain} strings", _domain_example(left.domain)
                    )
                members.append(self.encode(left.domain, element.value, element))
            else:
                member = self.visit(element)
                if not isinstance(member.expr, Constant) or member.kind is not Kind.NUMBER:
                    raise self.error(element, "the list must hold number constants")
                members.append(member.expr.value)
        test: Expr = InSet(left.expr, tuple(members))  # type: ignore[arg-type]
        if not negated:
            return test
        negation: Expr = Apply(Op.NOT, (test,))
        if not left.may_be_missing:
            return negation
        # A missing value is in no list, but "not in" must not match it either: comparisons with a
        # missing value are false.
        present = Apply(Op.NOT, (Apply(Op.IS_MISSING, (left.expr,)),))  # type: ignore[arg-type]
        return Apply(Op.AND, (present, negation))

    def encode(self, domain: str, text: str, node: ast.AST | None) -> float:
        try:
            return field_value(_DOMAIN_ENCODER[domain], text)
        except (KeyError, ValueError):
            pass
        choices = {"type": TYPE_NAMES, "channel": CHANNEL_NAMES}.get(domain, ())
        hint = _suggest(text, choices) if choices else _domain_example(domain)
        raise self.error(node, f"{text!r} is not a valid {domain}", hint)

    def visit_Call(self, node: ast.Call) -> _Typed:
        if not isinstance(node.func, ast.Name):
            raise self.error(node, "only is_missing(x) and abs(x) can be called")
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.error(node, f"unknown function '{name}'", _suggest(name, tuple(FUNCTIONS)))
        if node.keywords or len(node.args) != 1:
            raise self.error(node, f"{name}() takes exactly one argument")
        argument = self.visit(node.args[0])
        if name == "abs":
            self.need(argument, Kind.NUMBER, "abs()")
            return _Typed(Apply(Op.ABS, (argument.expr,)), Kind.NUMBER, argument.may_be_missing, node=node)  # type: ignore[arg-type]
        if argument.kind not in (Kind.NUMBER, Kind.CODE):
            raise self.error(
                node.args[0], f"is_missing() needs a field or a number, not {_a(self.describe(argument))}"
            )
        if not argument.may_be_missing:
            reason = (
                "features are never missing (they have neutral values and *_known indicators)"
                if isinstance(argument.expr, Feature)
                else "it always has a value"
            )
            raise self.error(node.args[0], f"is_missing() is always false here: {reason}")
        return _Typed(Apply(Op.IS_MISSING, (argument.expr,)), Kind.CONDITION, node=node)  # type: ignore[arg-type]

    def need(self, typed: _Typed, kind: Kind, where: str) -> None:
        if typed.kind is kind:
            return
        if kind is Kind.CONDITION:
            raise self.error(
                typed.node,
                f"{where} needs conditions, but this is {_a(self.describe(typed))}",
                " — compare it, e.g. amount > 1000",
            )
        raise self.error(typed.node, f"{where} needs numbers, but this is {_a(self.describe(typed))}")


TYPE_NAMES: tuple[str, ...] = tuple(TRANSACTION_TYPES)
CHANNEL_NAMES: tuple[str, ...] = tuple(CHANNELS)


# Where Python's tokenizer ends a line. str.splitlines also ends one at a form feed, \x85, \u2028 ...,
# which Python reads as whitespace or inside a string: positions would then name lines Python never saw.
_LINE_END = re.compile(r"\r\n|\r|\n")


def _lines(expression: str) -> list[str]:
    """The lines of ``expression`` as Python numbers them (a final line break starts no line)."""
    lines = _LINE_END.split(expression)
    if len(lines) > 1 and not lines[-1]:
        lines.pop()
    return lines


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _domain_example(domain: str) -> str:
    return {
        "type": ' — e.g. type == "TRANSFER"',
        "channel": ' — e.g. channel == "ATM"',
        "country": ' — e.g. country == "DE" (ISO 3166-1 alpha-2, upper case)',
        "id": ' — e.g. device == "device-123"',
    }[domain]


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
        close = [c for c in choices if c.lower() in close][:1]
    return f" — did you mean '{close[0]}'?" if close else ""


def check_expression(expression: str) -> CheckedRule:
    """Parse and type-check ``expression``; raise RuleExpressionError naming the position and problem."""
    if not expression.strip():
        raise RuleExpressionError("the expression is empty", 1, 1, False)
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise RuleExpressionError(
            f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters", 1, 1, False
        )
    checker = _Checker(expression)
    # Leading whitespace and line breaks between tokens are fine for analysts: wrap in parentheses.
    try:
        tree = ast.parse(f"(\n{expression}\n)", mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, expression, checker) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise RuleExpressionError(f"cannot parse the expression: {exc}", 1, 1, False) from None
    _shift_lines(tree)
    if tree.body.lineno < 1:  # only the wrapping parentheses: the text held nothing but comments
        raise RuleExpressionError("the expression is empty", 1, 1, False)
    try:
        return checker.check(tree)
    except RecursionError:
        raise RuleExpressionError("the expression is nested too deeply", 1, 1, False) from None


def _syntax_error(exc: SyntaxError, expression: str, checker: _Checker) -> RuleExpressionError:
    """Locate a syntax error of the wrapped text in the analyst's own lines."""
    message = exc.msg or "invalid syntax"
    lines = checker.lines
    lineno = exc.lineno or 0
    if 2 <= lineno <= len(lines) + 1:
        return RuleExpressionError(f"syntax error: {message}", lineno - 1, exc.offset or 1, checker.multiline)
    # The parser noticed the problem at the wrapping parentheses: an extra ')' or a missing operand
    # at the end. Parsing the text alone locates an extra ')'.
    try:
        ast.parse(expression, mode="eval")
    except SyntaxError as bare:
        if "unmatched" in (bare.msg or "") and bare.lineno:
            return RuleExpressionError(
                f"syntax error: {bare.msg}", bare.lineno, bare.offset or 1, checker.multiline
            )
    except (ValueError, RecursionError, MemoryError):
        pass
    return RuleExpressionError(
        f"syntax error: the expression ends too early ({message})",
        len(lines),
        len(lines[-1]) + 1,
        checker.multiline,
    )


def _shift_lines(tree: ast.AST) -> None:
    """Undo the line added by the wrapping parenthesis so positions refer to the analyst's text."""
    for node in ast.walk(tree):
        if hasattr(node, "lineno"):
            node.lineno -= 1
