"""What a rule is: its fields, their allowed values, and the conversion to and from the wire.

A stored rule version is immutable; a change is a new version (see ``storage``). ``RuleSpec`` is the
content an analyst writes (file, RPC or CLI), ``Rule`` a stored version of it with the server-set
fields (version, author, time, comment, deleted).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from sentinel.v1 import decision_pb2, rules_pb2

RULE_ID_PATTERN = re.compile(r"[a-z0-9-]{1,64}")
MIN_PRIORITY, MAX_PRIORITY = 0, 1_000
MAX_DESCRIPTION_LENGTH = 2_000
MAX_AUTHOR_LENGTH = 128
MAX_COMMENT_LENGTH = 2_000


class RuleAction(enum.Enum):
    """What a matching rule does (sentinel.v1.RuleAction without the prefix)."""

    DECLINE = "DECLINE"
    REVIEW = "REVIEW"
    ALLOW = "ALLOW"  # allow-list override
    TAG = "TAG"  # only labels the decision

    @property
    def proto(self) -> int:
        return int(decision_pb2.RuleAction.Value(f"RULE_ACTION_{self.value}"))

    @classmethod
    def from_proto(cls, value: int) -> RuleAction:
        """The action of a wire value; ValueError for UNSPECIFIED or an unknown number."""
        if value not in decision_pb2.RuleAction.values() or value == 0:
            raise ValueError("action must be DECLINE, REVIEW, ALLOW or TAG")
        return cls(decision_pb2.RuleAction.Name(value).removeprefix("RULE_ACTION_"))


class RuleMode(enum.Enum):
    """Whether a rule takes part in decisions (sentinel.v1.RuleMode, lower case)."""

    ACTIVE = "active"  # evaluated and acted on
    SHADOW = "shadow"  # evaluated, logged and counted, never acted on
    DISABLED = "disabled"  # kept, not evaluated

    @property
    def proto(self) -> int:
        return int(rules_pb2.RuleMode.Value(f"RULE_MODE_{self.name}"))

    @classmethod
    def from_proto(cls, value: int) -> RuleMode:
        """The mode of a wire value; ValueError for UNSPECIFIED or an unknown number."""
        if value not in rules_pb2.RuleMode.values() or value == 0:
            raise ValueError("mode must be active, shadow or disabled")
        return cls[rules_pb2.RuleMode.Name(value).removeprefix("RULE_MODE_")]


class InvalidRule(ValueError):
    """A rule's content breaks a limit; ``field`` names the field (``rule.priority`` ...)."""

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description
        super().__init__(f"{field}: {description}")


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """The content of a rule as an analyst writes it."""

    rule_id: str
    expression: str
    action: RuleAction
    priority: int = 100
    severity: float = 0.5
    mode: RuleMode = RuleMode.ACTIVE
    description: str = ""

    def validate(self) -> RuleSpec:
        """Check every field but the expression (the language checks that); raise InvalidRule."""
        if not RULE_ID_PATTERN.fullmatch(self.rule_id):
            raise InvalidRule("rule_id", "must be 1 to 64 characters of [a-z0-9-]")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise InvalidRule("priority", f"must be {MIN_PRIORITY} to {MAX_PRIORITY}, got {self.priority}")
        if not (math.isfinite(self.severity) and 0.0 <= self.severity <= 1.0):
            raise InvalidRule("severity", f"must be 0 to 1, got {self.severity}")
        if len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidRule("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
        return self

    @classmethod
    def from_mapping(cls, data: dict[str, object]) -> RuleSpec:
        """A spec from a rule file's table (keys: id, expression, action, priority, severity, mode,
        description); InvalidRule names an unknown key or a bad value."""
        known = {"id", "expression", "action", "priority", "severity", "mode", "description"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidRule(unknown[0], f"unknown key (known: {', '.join(sorted(known))})")
        for required in ("id", "expression", "action"):
            if required not in data:
                raise InvalidRule(required, "is required")
        try:
            action = RuleAction(str(data["action"]).upper())
        except ValueError:
            raise InvalidRule("action", "must be DECLINE, REVIEW, ALLOW or TAG") from None
        try:
            mode = RuleMode(str(data.get("mode", "active")).lower())
        except ValueError:
            raise InvalidRule("mode", "must be active, shadow or disabled") from None
        priority, severity = data.get("priority", 100), data.get("severity", 0.5)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidRule("priority", "must be an integer")
        if not isinstance(severity, int | float) or isinstance(severity, bool):
            raise InvalidRule("severity", "must be a number")
        return cls(
            rule_id=str(data["id"]),
            expression=str(data["expression"]).strip(),
            action=action,
            priority=priority,
            severity=float(severity),
            mode=mode,
            description=str(data.get("description", "")).strip(),
        ).validate()

    @classmethod
    def from_proto(cls, message: rules_pb2.Rule) -> RuleSpec:
        """The spec of a wire Rule (server-set fields ignored); InvalidRule names the bad field."""
        try:
            action = RuleAction.from_proto(message.action)
        except ValueError as exc:
            raise InvalidRule("rule.action", str(exc)) from None
        try:
            mode = RuleMode.from_proto(message.mode)
        except ValueError as exc:
            raise InvalidRule("rule.mode", str(exc)) from None
        spec = cls(
            rule_id=message.rule_id,
            expression=message.expression,
            action=action,
            priority=message.priority,
            severity=message.severity,
            mode=mode,
            description=message.description,
        )
        try:
            return spec.validate()
        except InvalidRule as exc:
            raise InvalidRule(f"rule.{exc.field}", exc.description) from None


@dataclass(frozen=True, slots=True)
class Rule:
    """One stored, immutable version of a rule."""

    spec: RuleSpec
    version: int
    author: str
    created_at: dt.datetime
    comment: str = ""
    deleted: bool = False

    @property
    def rule_id(self) -> str:
        return self.spec.rule_id

    def to_proto(self) -> rules_pb2.Rule:
        """The wire form."""
        created = timestamp_pb2.Timestamp()
        created.FromDatetime(self.created_at.astimezone(dt.UTC))
        return rules_pb2.Rule(
            rule_id=self.spec.rule_id,
            version=self.version,
            expression=self.spec.expression,
            action=self.spec.action.proto,  # type: ignore[arg-type]
            priority=self.spec.priority,
            severity=self.spec.severity,
            mode=self.spec.mode.proto,  # type: ignore[arg-type]
            description=self.spec.description,
            author=self.author,
            created_at=created,
            comment=self.comment,
            deleted=self.deleted,
        )
