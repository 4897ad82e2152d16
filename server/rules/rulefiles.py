"""Rule files (TOML) and the default rule set.

A rule file holds one ``[[rule]]`` table per rule with the keys ``id``, ``expression``, ``action``
(DECLINE, REVIEW, ALLOW, TAG), ``priority`` (0..1000, default 100), ``severity`` (0..1, default 0.5),
``mode`` (active, shadow, disabled; default active) and ``description``. TOML rather than YAML: it is
in the standard library (``tomllib``), has no implicit typing surprises (``NO`` stays a string) and
its multi-line literal strings (``'''...'''``) hold expressions with quotes unchanged.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import structlog

from sentinel.server.rules.definitions import InvalidRule, Rule, RuleSpec
from sentinel.server.rules.language import RuleExpressionError, check_expression
from sentinel.server.rules.storage import RuleStore

log = structlog.get_logger(__name__)

DEFAULT_RULES_AUTHOR = "sentinel"


class RuleFileError(ValueError):
    """A rule file is not valid; the message names the file, the rule and the problem."""


def parse_rule_file(text: str, source: str = "<rules>") -> list[RuleSpec]:
    """The rules of a TOML rule file, each validated and its expression type-checked."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into arrays and inline tables without a bound of its own
        raise RuleFileError(f"{source}: not valid TOML: arrays or tables nested too deeply") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise RuleFileError(f"{source}: unknown top-level key {unknown[0]!r} (rules are [[rule]] tables)")
    tables = document.get("rule")
    if not isinstance(tables, list) or not tables:
        raise RuleFileError(f"{source}: no [[rule]] tables")
    specs: list[RuleSpec] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, start=1):
        if not isinstance(table, dict):
            raise RuleFileError(f"{source}: rule #{number} is not a table (rules are [[rule]] tables)")
        name = f"rule {table.get('id', f'#{number}')!s}"
        try:
            spec = RuleSpec.from_mapping(table)
            check_expression(spec.expression)
        except InvalidRule as exc:
            raise RuleFileError(f"{source}: {name}: {exc}") from None
        except RuleExpressionError as exc:
            raise RuleFileError(f"{source}: {name}: expression: {exc}") from None
        if spec.rule_id in seen:
            raise RuleFileError(f"{source}: {name}: the id appears twice")
        seen.add(spec.rule_id)
        specs.append(spec)
    return specs


# What a TOML string cannot hold as it is: control characters but tab (a multi-line string also holds
# line feeds; a carriage return there is read as part of a line end). A basic string escapes them, and
# its quote and backslash. Not with json.dumps: it writes characters past U+FFFF as surrogate pairs
# ("\ud83d\ude00"), which TOML refuses.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TO_ESCAPE = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """A TOML string that reads back as ``text`` (stripped, as rule files are read): multi-line literal
    when possible (expressions keep their quotes), else basic."""
    stripped = text.strip()
    if "\n" in stripped and "'''" not in text and not _CONTROL.search(stripped.replace("\n", "")):
        return f"'''\n{stripped}\n'''"
    return '"' + _TO_ESCAPE.sub(lambda found: _ESCAPES.get(found[0], f"\\u{ord(found[0]):04x}"), text) + '"'


def to_toml(rule: Rule) -> str:
    """One stored version as a ``[[rule]]`` table that ``parse_rule_file`` reads back to the same spec."""
    spec = rule.spec
    created = rule.created_at.isoformat(timespec="seconds")
    state = " (deleted)" if rule.deleted else ""
    lines = [
        f"# version {rule.version}{state}, by {rule.author} at {created}"
        + (f": {' '.join(rule.comment.split())}" if rule.comment else ""),
        "[[rule]]",
        f"id = {_toml_string(spec.rule_id)}",
        f"expression = {_toml_string(spec.expression)}",
        f"action = {_toml_string(spec.action.value)}",
        f"priority = {spec.priority}",
        f"severity = {spec.severity!r}",
        f"mode = {_toml_string(spec.mode.value)}",
        f"description = {_toml_string(spec.description)}",
    ]
    return "\n".join(lines)


def read_rule_file(path: Path) -> list[RuleSpec]:
    """``parse_rule_file`` of a file on disk."""
    return parse_rule_file(path.read_text(encoding="utf-8"), str(path))


def default_rule_specs() -> list[RuleSpec]:
    """The default rule set shipped with SentinelStream (``default_rules.toml`` of this package)."""
    text = resources.files("sentinel.server.rules").joinpath("default_rules.toml").read_text(encoding="utf-8")
    return parse_rule_file(text, "default_rules.toml")


async def seed_default_rules(store: RuleStore) -> list[Rule]:
    """Store the default rule set if the rule database has never held a rule; the versions stored.

    Call it once at start-up (any number of workers may call it at once: exactly one seeds). A
    database where rules were deleted is not re-seeded: the analysts' choices stand.
    """
    stored = await store.seed_if_empty(default_rule_specs(), DEFAULT_RULES_AUTHOR, "default rule set")
    if stored:
        log.info("default_rules_seeded", rules=[rule.rule_id for rule in stored])
    return stored
