"""Rule programs: the compiled form of an analyst's rule, a small stack-machine bytecode.

A rule expression such as ``amount > 5000 and country != home_country`` compiles (in the rules
service) to a ``RuleProgram``: a list of instructions over a float64 stack, plus the constants and
constant sets they refer to. The evaluator (compiled ``_rules`` and ``reference_rules``) runs the
programs of a ``RuleSet`` on every row of a batch; it only interprets this bytecode, so a rule can
never execute Python code.

Semantics (both evaluators implement exactly this):

- Every value is a float64. A missing value (field not given, e.g. ``latitude`` without geo) is NaN.
  Strings never reach the stack: ``field_value`` encodes a string constant into the number the field
  holds (type/channel code, country code, top 53 bits of the id hash).
- ``ADD SUB MUL NEG ABS`` follow IEEE 754; ``DIV`` by 0 gives missing (NaN).
- ``LT LE GT GE EQ NE`` push 1.0 or 0.0, and 0.0 whenever an operand is missing (also ``NE``:
  ``country != home_country`` does not match when the home country is unknown).
- A value is *true* when it is neither 0 nor missing. ``AND OR NOT`` push 1.0/0.0 (no short-circuit).
- ``IN_SET s`` replaces the top with 1.0 if it equals a member of constant set ``s``, else 0.0.
- ``IS_MISSING`` replaces the top with 1.0 if it is missing, else 0.0.
- The rule matches when the single value left on the stack is true.

A program is validated (``RuleProgram.validate``) before it can run: known opcodes, operands in
range, no stack underflow, at most MAX_STACK_DEPTH values, exactly one value at the end, finite
constants, feature schema version equal to FEATURE_SCHEMA_VERSION.

Binary form (``to_bytes``/``from_bytes``, little-endian): ``b"SRP"``, u8 format version (1),
u16 feature schema version, u16 number of sets, u32 number of instructions, u32 number of constants,
u32 length of each set, then per instruction u8 opcode, u8 0, u16 operand, then the constants as
f64, then the members of every set as f64 in order.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from sentinel.hotpath import _constants as c
from sentinel.hotpath._constants import FEATURE_COUNT, MAX_STACK_DEPTH, TRANSACTION_FIELD_COUNT
from sentinel.hotpath.errors import InvalidRuleProgram
from sentinel.hotpath.hashing import country_code, id_value, stable_hash
from sentinel.hotpath.schema import (
    CHANNELS,
    FEATURE_INDEX,
    FEATURE_SCHEMA_VERSION,
    TRANSACTION_FIELD_INDEX,
    TRANSACTION_TYPES,
)

MAX_INSTRUCTIONS = 4_096
MAX_OPERAND = 0xFFFF
_MAGIC = b"SRP"
_FORMAT_VERSION = 1
_HEADER = struct.Struct("<3sBHHII")
_INSTRUCTION = struct.Struct("<BxH")
_Scalar = TypeVar("_Scalar", bound=np.generic)


class Op(enum.IntEnum):
    """Opcodes (numbered in _constants.pxd). LOAD_* and IN_SET take an operand; every other opcode
    ignores it (write 0)."""

    LOAD_FEATURE = c.OP_LOAD_FEATURE  # push features[row, operand]
    LOAD_FIELD = c.OP_LOAD_FIELD  # push field number operand (TRANSACTION_FIELDS), NaN if missing
    LOAD_CONST = c.OP_LOAD_CONST  # push constants[operand]
    ADD = c.OP_ADD
    SUB = c.OP_SUB
    MUL = c.OP_MUL
    DIV = c.OP_DIV
    NEG = c.OP_NEG
    ABS = c.OP_ABS
    LT = c.OP_LT
    LE = c.OP_LE
    GT = c.OP_GT
    GE = c.OP_GE
    EQ = c.OP_EQ
    NE = c.OP_NE
    AND = c.OP_AND
    OR = c.OP_OR
    NOT = c.OP_NOT
    IN_SET = c.OP_IN_SET  # top := top in sets[operand]
    IS_MISSING = c.OP_IS_MISSING  # top := top is NaN


_BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE, Op.AND, Op.OR})
_LOADS = frozenset({Op.LOAD_FEATURE, Op.LOAD_FIELD, Op.LOAD_CONST})


def field_value(field_name: str, text: str) -> float:
    """The number a string constant compared with ``field_name`` must be (raises ValueError).

    ``type``: TRANSACTION_TYPES code (``"TRANSFER"``); ``channel``: CHANNELS code (``"WEB"``);
    ``country``/``home_country``: ``country_code`` (``"DE"``); ``counterparty``/``device``:
    ``id_value(stable_hash(text))``.
    """
    if field_name == "type":
        return float(TRANSACTION_TYPES[text])
    if field_name == "channel":
        return float(CHANNELS[text])
    if field_name in ("country", "home_country"):
        return float(country_code(text))
    if field_name in ("counterparty", "device"):
        return id_value(stable_hash(text))
    raise ValueError(f"field {field_name!r} does not hold strings")


@dataclass(frozen=True, slots=True)
class RuleProgram:
    """One compiled rule: ``code`` is a sequence of (opcode, operand) pairs."""

    code: tuple[tuple[int, int], ...]
    constants: tuple[float, ...] = ()
    sets: tuple[tuple[float, ...], ...] = ()
    feature_schema_version: int = FEATURE_SCHEMA_VERSION

    def validate(self) -> RuleProgram:
        """Check the program can run safely; raise InvalidRuleProgram naming the first problem."""
        if self.feature_schema_version != FEATURE_SCHEMA_VERSION:
            raise InvalidRuleProgram(
                f"compiled for feature schema {self.feature_schema_version}, "
                f"this build has {FEATURE_SCHEMA_VERSION}: recompile the rule"
            )
        if not 1 <= len(self.code) <= MAX_INSTRUCTIONS:
            raise InvalidRuleProgram(f"needs 1 to {MAX_INSTRUCTIONS} instructions, has {len(self.code)}")
        if len(self.constants) > MAX_OPERAND + 1 or len(self.sets) > MAX_OPERAND + 1:
            raise InvalidRuleProgram(f"more than {MAX_OPERAND + 1} constants or sets")
        for index, value in enumerate(self.constants):
            if not math.isfinite(value):
                raise InvalidRuleProgram(f"constant {index} is not finite ({value})")
        for index, members in enumerate(self.sets):
            if not all(math.isfinite(member) for member in members):
                raise InvalidRuleProgram(f"set {index} has a non-finite member")
        limits = {
            Op.LOAD_FEATURE: FEATURE_COUNT,
            Op.LOAD_FIELD: TRANSACTION_FIELD_COUNT,
            Op.LOAD_CONST: len(self.constants),
            Op.IN_SET: len(self.sets),
        }
        depth = 0
        for index, (opcode, operand) in enumerate(self.code):
            try:
                op = Op(opcode)
            except ValueError:
                raise InvalidRuleProgram(f"unknown opcode {opcode}", index) from None
            limit = limits.get(op)
            if limit is not None and not 0 <= operand < limit:
                raise InvalidRuleProgram(f"{op.name} operand {operand} out of range 0..{limit - 1}", index)
            if limit is None and operand != 0:
                raise InvalidRuleProgram(f"{op.name} takes no operand (got {operand})", index)
            needed = 2 if op in _BINARY else (0 if op in _LOADS else 1)
            if depth < needed:
                raise InvalidRuleProgram(f"{op.name} needs {needed} values, stack has {depth}", index)
            depth += 1 if op in _LOADS else (-1 if op in _BINARY else 0)
            if depth > MAX_STACK_DEPTH:
                raise InvalidRuleProgram(f"stack deeper than {MAX_STACK_DEPTH}", index)
        if depth != 1:
            raise InvalidRuleProgram(f"program leaves {depth} values on the stack, expected 1")
        return self

    def to_bytes(self) -> bytes:
        """The binary form (see the module docstring)."""
        parts = [
            _HEADER.pack(
                _MAGIC,
                _FORMAT_VERSION,
                self.feature_schema_version,
                len(self.sets),
                len(self.code),
                len(self.constants),
            ),
            struct.pack(f"<{len(self.sets)}I", *(len(members) for members in self.sets)),
            b"".join(_INSTRUCTION.pack(opcode, operand) for opcode, operand in self.code),
            struct.pack(f"<{len(self.constants)}d", *self.constants),
        ]
        parts.extend(struct.pack(f"<{len(members)}d", *members) for members in self.sets)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> RuleProgram:
        """Parse and validate the binary form; InvalidRuleProgram when it is malformed."""
        try:
            magic, version, schema, n_sets, n_code, n_constants = _HEADER.unpack_from(data, 0)
            if magic != _MAGIC or version != _FORMAT_VERSION:
                raise InvalidRuleProgram(f"not a rule program of format {_FORMAT_VERSION}")
            offset = _HEADER.size
            set_lengths = struct.unpack_from(f"<{n_sets}I", data, offset)
            offset += 4 * n_sets
            code = tuple(_INSTRUCTION.unpack_from(data, offset + 4 * i) for i in range(n_code))
            offset += 4 * n_code
            constants = struct.unpack_from(f"<{n_constants}d", data, offset)
            offset += 8 * n_constants
            sets = []
            for length in set_lengths:
                sets.append(struct.unpack_from(f"<{length}d", data, offset))
                offset += 8 * length
        except struct.error as exc:
            raise InvalidRuleProgram(f"truncated rule program: {exc}") from None
        if offset != len(data):
            raise InvalidRuleProgram(f"{len(data) - offset} trailing bytes after the rule program")
        return cls(tuple(code), tuple(constants), tuple(sets), schema).validate()

    @property
    def max_stack_depth(self) -> int:
        """Deepest stack the program reaches (for a validated program)."""
        depth = deepest = 0
        for opcode, _ in self.code:
            depth += 1 if opcode in _LOADS else (-1 if opcode in _BINARY else 0)
            deepest = max(deepest, depth)
        return deepest


@dataclass(slots=True)
class ProgramBuilder:
    """Assemble a RuleProgram in postfix order; constants and sets are deduplicated.

    ``ProgramBuilder().field("amount").const(5000).op(Op.GT).build()`` is ``amount > 5000``.
    """

    _code: list[tuple[int, int]] = field(default_factory=list)
    _constants: dict[float, int] = field(default_factory=dict)
    _sets: dict[tuple[float, ...], int] = field(default_factory=dict)

    def feature(self, name: str) -> ProgramBuilder:
        """Push a feature by name (FEATURE_NAMES); KeyError names an unknown one."""
        return self._emit(Op.LOAD_FEATURE, FEATURE_INDEX[name])

    def field(self, name: str) -> ProgramBuilder:
        """Push a transaction field by name (TRANSACTION_FIELDS)."""
        return self._emit(Op.LOAD_FIELD, TRANSACTION_FIELD_INDEX[name])

    def const(self, value: float) -> ProgramBuilder:
        """Push a number (use ``field_value`` for string constants)."""
        value = float(value)
        return self._emit(Op.LOAD_CONST, self._constants.setdefault(value, len(self._constants)))

    def in_set(self, members: Iterable[float]) -> ProgramBuilder:
        """Replace the top with its membership in ``members`` (numbers; see ``field_value``)."""
        key = tuple(sorted({float(member) for member in members}))
        return self._emit(Op.IN_SET, self._sets.setdefault(key, len(self._sets)))

    def op(self, op: Op) -> ProgramBuilder:
        """Append an operator without operand (ADD ... IS_MISSING)."""
        return self._emit(op, 0)

    def build(self) -> RuleProgram:
        """The validated program."""
        return RuleProgram(tuple(self._code), tuple(self._constants), tuple(self._sets)).validate()

    def _emit(self, op: Op, operand: int) -> ProgramBuilder:
        self._code.append((int(op), operand))
        return self


class RuleSet:
    """Validated programs packed into flat read-only arrays, built once when the rules change.

    Column j of ``evaluate_rules``'s result is ``programs[j]``. Operands of LOAD_CONST and IN_SET
    are rebased onto the shared ``constants`` and ``set_offsets``; set members are sorted so the
    evaluator can binary-search them.
    """

    __slots__ = ("code", "code_offsets", "constants", "programs", "set_members", "set_offsets")

    def __init__(self, programs: Sequence[RuleProgram]) -> None:
        self.programs = tuple(program.validate() for program in programs)
        code: list[tuple[int, int]] = []
        code_offsets = [0]
        constants: list[float] = []
        members: list[float] = []
        set_offsets = [0]
        for program in self.programs:
            constant_base, set_base = len(constants), len(set_offsets) - 1
            for opcode, operand in program.code:
                if opcode == Op.LOAD_CONST:
                    operand += constant_base
                elif opcode == Op.IN_SET:
                    operand += set_base
                code.append((opcode, operand))
            code_offsets.append(len(code))
            constants.extend(program.constants)
            for program_set in program.sets:
                members.extend(sorted(program_set))
                set_offsets.append(len(members))
        self.code: npt.NDArray[np.int32] = _frozen(np.array(code, dtype=np.int32).reshape(-1, 2))
        self.code_offsets: npt.NDArray[np.int64] = _frozen(np.array(code_offsets, dtype=np.int64))
        self.constants: npt.NDArray[np.float64] = _frozen(np.array(constants, dtype=np.float64))
        self.set_members: npt.NDArray[np.float64] = _frozen(np.array(members, dtype=np.float64))
        self.set_offsets: npt.NDArray[np.int64] = _frozen(np.array(set_offsets, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.programs)


def _frozen(array: npt.NDArray[_Scalar]) -> npt.NDArray[_Scalar]:
    array.setflags(write=False)
    return array
