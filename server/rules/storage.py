"""Rules in Postgres: immutable versions, an audit trail, rollback, and the compiled-set loader.

The tables come from the ledger's migration runner (``ledger/migrations/0100_rules.sql``): each change
inserts one row of ``ledger.rule_versions`` (the new version *and* its audit record) and bumps the
rule set's generation in ``ledger.rule_set_state`` in the same transaction, then announces it with
``NOTIFY sentinel_rules`` (delivered at commit). The store connects as the ledger's writer role, which
may insert and read versions but never change or delete one.

Every write compiles the expression first, so a stored version always compiled when it was stored.
Changing rules will require the admin role once the service has authentication; until then whoever
reaches the RulesService or the database can change them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import asyncpg
import structlog

from sentinel.postgres import writer_pool
from sentinel.server.rules.compiler import (
    CompiledRule,
    CompiledRuleSet,
    build_rule_set,
    compile_expression,
    compile_rule,
)
from sentinel.server.rules.definitions import (
    MAX_AUTHOR_LENGTH,
    MAX_COMMENT_LENGTH,
    InvalidRule,
    Rule,
    RuleAction,
    RuleMode,
    RuleSpec,
)
from sentinel.server.rules.language import RuleExpressionError

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "sentinel_rules"

_COLUMNS = (
    "rule_id, version, expression, action, priority, severity, mode, description, author, comment, "
    "created_at, deleted"
)
_CURRENT_VERSIONS = (
    f"SELECT DISTINCT ON (rule_id) {_COLUMNS} FROM ledger.rule_versions ORDER BY rule_id, version DESC"
)
_LATEST_VERSION = (
    f"SELECT {_COLUMNS} FROM ledger.rule_versions WHERE rule_id = $1 ORDER BY version DESC LIMIT 1"
)


class RuleNotFound(LookupError):
    """No such rule (or version); the RPC maps it to NOT_FOUND."""


class StaleVersion(RuntimeError):
    """The change was based on a version that is no longer current; the RPC maps it to ABORTED."""

    def __init__(self, rule_id: str, expected: int, current: int) -> None:
        self.current = current
        super().__init__(
            f"rule {rule_id!r} is at version {current}, not {expected}: reload it and apply the change again"
        )


def _rule(row: asyncpg.Record) -> Rule:
    spec = RuleSpec(
        rule_id=row["rule_id"],
        expression=row["expression"],
        action=RuleAction(row["action"]),
        priority=row["priority"],
        severity=row["severity"],
        mode=RuleMode(row["mode"]),
        description=row["description"],
    )
    return Rule(spec, row["version"], row["author"], row["created_at"], row["comment"], row["deleted"])


def _check_change(author: str, comment: str) -> None:
    if not author.strip():
        raise InvalidRule("author", "is required (who makes the change)")
    if len(author) > MAX_AUTHOR_LENGTH:
        raise InvalidRule("author", f"must be at most {MAX_AUTHOR_LENGTH} characters")
    if len(comment) > MAX_COMMENT_LENGTH:
        raise InvalidRule("comment", f"must be at most {MAX_COMMENT_LENGTH} characters")


class RuleStore:
    """Reads and changes rules; one instance per process, over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # Versions are immutable, so a version compiled once stays valid: a reload compiles only
        # what changed and keeps the worker's event loop free.
        self._compiled: dict[tuple[str, int], CompiledRule] = {}

    @classmethod
    async def connect(cls, dsn: str, *, connect_timeout_s: float = 5.0, max_size: int = 4) -> RuleStore:
        """A store over a new pool acting as the ledger's writer role (run the migrations first)."""
        return cls(
            await writer_pool(
                dsn, connect_timeout_s=connect_timeout_s, max_size=max_size, application_name="sentinel-rules"
            )
        )

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    # --- reads -----------------------------------------------------------------------------------
    async def generation(self) -> int:
        """The rule set's change counter: it grows with every change (cheap; what watchers poll)."""
        return int(await self._pool.fetchval("SELECT generation FROM ledger.rule_set_state"))

    async def current(self, include_deleted: bool = False) -> list[Rule]:
        """The current version of every rule, by descending priority, then id."""
        rows = await self._pool.fetch(_CURRENT_VERSIONS)
        rules = [_rule(row) for row in rows if include_deleted or not row["deleted"]]
        rules.sort(key=lambda rule: (-rule.spec.priority, rule.rule_id))
        return rules

    async def get(self, rule_id: str, version: int = 0) -> Rule:
        """One version (0: the current one, which may record a deletion); RuleNotFound otherwise."""
        if version:
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM ledger.rule_versions WHERE rule_id = $1 AND version = $2",
                rule_id,
                version,
            )
        else:
            row = await self._pool.fetchrow(
                _LATEST_VERSION,
                rule_id,
            )
        if row is None:
            raise RuleNotFound(
                f"rule {rule_id!r}" + (f" has no version {version}" if version else " does not exist")
            )
        return _rule(row)

    async def versions(self, rule_id: str) -> list[Rule]:
        """Every version of a rule, newest first; RuleNotFound when it never existed."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM ledger.rule_versions WHERE rule_id = $1 ORDER BY version DESC", rule_id
        )
        if not rows:
            raise RuleNotFound(f"rule {rule_id!r} does not exist")
        return [_rule(row) for row in rows]

    async def history(self, rule_id: str) -> list[dict[str, Any]]:
        """The audit trail of a rule, newest first: version, change, author, time, comment, restored_from."""
        rows = await self._pool.fetch(
            "SELECT version, change, author, created_at, comment, restored_from, mode, deleted "
            "FROM ledger.rule_versions WHERE rule_id = $1 ORDER BY version DESC",
            rule_id,
        )
        if not rows:
            raise RuleNotFound(f"rule {rule_id!r} does not exist")
        return [dict(row) for row in rows]

    async def load_rule_set(self) -> CompiledRuleSet:
        """The current rules, compiled, with the generation they belong to (one consistent snapshot).

        A stored rule whose expression no longer compiles (the feature schema changed under it) is
        left out and logged as ``rule_not_compilable``: the others keep working.
        """
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            generation = int(await connection.fetchval("SELECT generation FROM ledger.rule_set_state"))
            rows = await connection.fetch(
                f"SELECT DISTINCT ON (rule_id) {_COLUMNS} FROM ledger.rule_versions "
                "ORDER BY rule_id, version DESC"
            )
        compiled: dict[tuple[str, int], CompiledRule] = {}
        for row in rows:
            if row["deleted"]:
                continue
            key = (row["rule_id"], row["version"])
            cached = self._compiled.get(key)
            if cached is not None:
                compiled[key] = cached
                continue
            rule = _rule(row)
            try:
                compiled[key] = compile_rule(rule)
            except RuleExpressionError as exc:
                log.error("rule_not_compilable", rule_id=rule.rule_id, version=rule.version, error=str(exc))
        self._compiled = compiled
        return build_rule_set(compiled.values(), generation)

    # --- changes ---------------------------------------------------------------------------------
    async def put(self, spec: RuleSpec, author: str, comment: str = "", expected_version: int = 0) -> Rule:
        """Create a rule or add a version of it (also re-creates a deleted rule).

        Raises InvalidRule / RuleExpressionError for bad content and StaleVersion when
        ``expected_version`` (0: no check) is not the current version.
        """
        spec.validate()
        _check_change(author, comment)
        compile_expression(spec.expression)
        return await self._write(
            spec.rule_id, author, comment, expected_version, lambda _current: (spec, "update")
        )

    async def set_mode(self, rule_id: str, mode: RuleMode, author: str, comment: str = "") -> Rule:
        """A new version of the current rule with another mode (enable / shadow / disable)."""
        _check_change(author, comment)

        def change(current: Rule | None) -> tuple[RuleSpec, str]:
            if current is None or current.deleted:
                raise RuleNotFound(f"rule {rule_id!r} does not exist")
            return dataclasses.replace(current.spec, mode=mode), "update"

        return await self._write(rule_id, author, comment, 0, change)

    async def delete(self, rule_id: str, author: str, comment: str = "", expected_version: int = 0) -> Rule:
        """Record the deletion as a new version (the history stays); RuleNotFound if already gone."""
        _check_change(author, comment)

        def change(current: Rule | None) -> tuple[RuleSpec, str]:
            if current is None or current.deleted:
                raise RuleNotFound(f"rule {rule_id!r} does not exist")
            return current.spec, "delete"

        return await self._write(rule_id, author, comment, expected_version, change)

    async def rollback(self, rule_id: str, to_version: int, author: str, comment: str = "") -> Rule:
        """Make an earlier version current again, as a new version that copies it."""
        _check_change(author, comment)
        target = await self.get(rule_id, to_version) if to_version > 0 else None
        if target is None:
            raise RuleNotFound(f"rule {rule_id!r} has no version {to_version}")
        if target.deleted:
            raise InvalidRule(
                "to_version", f"version {to_version} records the deletion; choose an earlier one"
            )
        compile_expression(target.spec.expression)

        def change(current: Rule | None) -> tuple[RuleSpec, str]:
            assert current is not None
            if to_version >= current.version:
                raise InvalidRule(
                    "to_version", f"must be an earlier version than the current {current.version}"
                )
            return target.spec, "rollback"

        return await self._write(rule_id, author, comment, 0, change, restored_from=to_version)

    async def _write(
        self,
        rule_id: str,
        author: str,
        comment: str,
        expected_version: int,
        change: Any,
        restored_from: int | None = None,
    ) -> Rule:
        async with self._pool.acquire() as connection, connection.transaction():
            # The row lock on the generation serializes every change of every rule.
            generation = await connection.fetchval(
                "UPDATE ledger.rule_set_state SET generation = generation + 1 RETURNING generation"
            )
            row = await connection.fetchrow(
                _LATEST_VERSION,
                rule_id,
            )
            current = None if row is None else _rule(row)
            current_version = 0 if current is None else current.version
            if expected_version and expected_version != current_version:
                raise StaleVersion(rule_id, expected_version, current_version)
            spec, kind = change(current)
            if kind == "update" and (current is None or current.deleted):
                kind = "create"
            inserted = await _insert(
                connection, spec, current_version + 1, author, comment, kind, restored_from, generation
            )
            await connection.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(generation))
        rule = _rule(inserted)
        log.info(
            "rule_changed",
            rule_id=rule_id,
            version=rule.version,
            change=kind,
            author=author,
            mode=spec.mode.value,
            generation=generation,
        )
        return rule

    async def seed_if_empty(self, specs: Iterable[RuleSpec], author: str, comment: str) -> list[Rule]:
        """Store ``specs`` as version 1 each when no rule was ever stored; else store nothing.

        Safe when several workers start at once: the generation's row lock makes the check and the
        inserts one step, so exactly one of them seeds.
        """
        specs = [spec.validate() for spec in specs]
        _check_change(author, comment)
        for spec in specs:
            compile_expression(spec.expression)
        stored: list[Rule] = []
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT generation FROM ledger.rule_set_state FOR UPDATE")
            if await connection.fetchval("SELECT EXISTS (SELECT 1 FROM ledger.rule_versions)"):
                return []
            generation = 0
            for spec in specs:
                generation = await connection.fetchval(
                    "UPDATE ledger.rule_set_state SET generation = generation + 1 RETURNING generation"
                )
                stored.append(
                    _rule(await _insert(connection, spec, 1, author, comment, "create", None, generation))
                )
            if specs:
                await connection.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(generation))
        log.info("rules_seeded", rules=[rule.rule_id for rule in stored], author=author)
        return stored


async def _insert(
    connection: asyncpg.Connection,
    spec: RuleSpec,
    version: int,
    author: str,
    comment: str,
    kind: str,
    restored_from: int | None,
    generation: int,
) -> asyncpg.Record:
    return await connection.fetchrow(
        "INSERT INTO ledger.rule_versions (rule_id, version, expression, action, priority, severity, "
        "mode, description, author, comment, deleted, change, restored_from, generation) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        f"RETURNING {_COLUMNS}",
        spec.rule_id,
        version,
        spec.expression,
        spec.action.value,
        spec.priority,
        spec.severity,
        spec.mode.value,
        spec.description,
        author,
        comment,
        kind == "delete",
        kind,
        restored_from,
        generation,
    )
