"""Rules in a real Postgres: immutable versions, audit trail, rollback, stale writes, the loaded set."""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest

from sentinel.server.rules.definitions import InvalidRule, RuleAction, RuleMode, RuleSpec
from sentinel.server.rules.language import RuleExpressionError
from sentinel.server.rules.rulefiles import default_rule_specs, seed_default_rules
from sentinel.server.rules.storage import RuleNotFound, RuleStore, StaleVersion

SPEC = RuleSpec("big-transfer", 'amount > 5000 and type == "TRANSFER"', RuleAction.REVIEW, 300, 0.4)


async def test_every_change_is_a_new_immutable_version(rule_store: RuleStore) -> None:
    first = await rule_store.put(SPEC, "alice", "first cut")
    assert (first.version, first.author, first.comment, first.deleted) == (1, "alice", "first cut", False)
    second = await rule_store.put(
        dataclasses.replace(SPEC, expression="amount > 9000"), "bob", "fewer hits", 1
    )
    assert second.version == 2
    assert (await rule_store.get("big-transfer")).spec.expression == "amount > 9000"
    assert (await rule_store.get("big-transfer", 1)).spec.expression == SPEC.expression
    assert [rule.version for rule in await rule_store.versions("big-transfer")] == [2, 1]
    history = await rule_store.history("big-transfer")
    assert [(h["version"], h["change"], h["author"]) for h in history] == [
        (2, "update", "bob"),
        (1, "create", "alice"),
    ]
    assert history[0]["created_at"] >= history[1]["created_at"]


async def test_stale_expected_version_is_refused(rule_store: RuleStore) -> None:
    await rule_store.put(SPEC, "alice")
    await rule_store.put(SPEC, "bob", expected_version=1)
    with pytest.raises(StaleVersion, match="at version 2, not 1"):
        await rule_store.put(SPEC, "carol", expected_version=1)
    assert len(await rule_store.versions("big-transfer")) == 2


async def test_bad_content_is_refused_before_anything_is_stored(rule_store: RuleStore) -> None:
    with pytest.raises(RuleExpressionError, match="unknown name 'ammount' at column 1"):
        await rule_store.put(dataclasses.replace(SPEC, expression="ammount > 1"), "alice")
    with pytest.raises(InvalidRule, match="severity"):
        await rule_store.put(dataclasses.replace(SPEC, severity=1.5), "alice")
    with pytest.raises(InvalidRule, match="author"):
        await rule_store.put(SPEC, " ")
    assert await rule_store.current(include_deleted=True) == []
    assert await rule_store.generation() == 0


async def test_rollback_restores_an_earlier_version_as_a_new_one(rule_store: RuleStore) -> None:
    await rule_store.put(SPEC, "alice")
    await rule_store.put(dataclasses.replace(SPEC, expression="amount > 1", mode=RuleMode.SHADOW), "bob")
    restored = await rule_store.rollback("big-transfer", 1, "carol", "too many hits")
    assert restored.version == 3
    assert restored.spec == SPEC
    history = await rule_store.history("big-transfer")
    assert (history[0]["change"], history[0]["restored_from"], history[0]["author"]) == (
        "rollback",
        1,
        "carol",
    )
    with pytest.raises(RuleNotFound):
        await rule_store.rollback("big-transfer", 9, "carol")
    with pytest.raises(InvalidRule, match="earlier version"):
        await rule_store.rollback("big-transfer", 3, "carol")


async def test_delete_keeps_history_and_can_be_rolled_back(rule_store: RuleStore) -> None:
    await rule_store.put(SPEC, "alice")
    deleted = await rule_store.delete("big-transfer", "bob", "retired")
    assert (deleted.version, deleted.deleted) == (2, True)
    assert await rule_store.current() == []
    assert [r.rule_id for r in await rule_store.current(include_deleted=True)] == ["big-transfer"]
    with pytest.raises(RuleNotFound):
        await rule_store.delete("big-transfer", "bob")
    with pytest.raises(InvalidRule, match="records the deletion"):
        await rule_store.rollback("big-transfer", 2, "carol")
    back = await rule_store.rollback("big-transfer", 1, "carol", "still needed")
    assert (back.version, back.deleted) == (3, False)
    assert [r.rule_id for r in await rule_store.current()] == ["big-transfer"]


async def test_versions_cannot_be_changed_even_by_their_owner(
    rule_store: RuleStore, database_url: str
) -> None:
    await rule_store.put(SPEC, "alice")
    connection = await asyncpg.connect(database_url)  # the superuser login of the test cluster
    try:
        for statement in (
            "UPDATE ledger.rule_versions SET expression = 'amount > 0'",
            "DELETE FROM ledger.rule_versions",
            "TRUNCATE ledger.rule_versions",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await connection.execute(statement)
    finally:
        await connection.close()


async def test_loaded_set_holds_active_and_shadow_rules_with_versions(rule_store: RuleStore) -> None:
    await rule_store.put(SPEC, "alice")
    await rule_store.put(
        RuleSpec("watch", "amount > 1", RuleAction.DECLINE, 900, 0.9, RuleMode.SHADOW), "alice"
    )
    await rule_store.put(
        RuleSpec("off", "amount > 1", RuleAction.DECLINE, 999, 0.9, RuleMode.DISABLED), "alice"
    )
    await rule_store.put(RuleSpec("gone", "amount > 1", RuleAction.TAG, 10, 0.1), "alice")
    await rule_store.delete("gone", "alice")
    await rule_store.set_mode("big-transfer", RuleMode.ACTIVE, "bob", "re-enabled")  # a version of its own
    rule_set = await rule_store.load_rule_set()
    assert rule_set.generation == await rule_store.generation() == 6
    assert [(r.rule_id, r.version, r.mode, r.shadow) for r in rule_set.rules] == [
        ("watch", 1, RuleMode.SHADOW, True),
        ("big-transfer", 2, RuleMode.ACTIVE, False),
    ]
    assert rule_set.shadow_mask.tolist() == [True, False]
    assert len(rule_set.program_set) == 2
    # immutable versions are compiled once; a new version is compiled afresh
    await rule_store.put(dataclasses.replace(SPEC, expression="amount > 1"), "bob")
    reloaded = await rule_store.load_rule_set()
    assert reloaded.rules[0] is rule_set.rules[0]
    assert reloaded.rules[1].version == 3 and reloaded.rules[1].program != rule_set.rules[1].program


async def test_default_rules_seed_an_empty_database_once(rule_store: RuleStore) -> None:
    seeded = await seed_default_rules(rule_store)
    assert [rule.rule_id for rule in seeded] == [spec.rule_id for spec in default_rule_specs()]
    assert {
        "drained-account-transfer",
        "impossible-travel",
        "high-value-away-from-home",
        "velocity-burst",
    } <= {rule.rule_id for rule in seeded}
    assert await seed_default_rules(rule_store) == []
    rule_set = await rule_store.load_rule_set()
    assert len(rule_set) == len(seeded)
    await rule_store.delete("velocity-burst", "alice")
    assert await seed_default_rules(rule_store) == []  # analysts' deletions stand
