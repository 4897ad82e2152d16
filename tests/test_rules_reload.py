"""Hot reload: every watcher (one per worker) sees a change within a second, NOTIFY or not."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from sentinel.server.rules.compiler import CompiledRuleSet
from sentinel.server.rules.definitions import RuleAction, RuleMode, RuleSpec
from sentinel.server.rules.reload import RuleSetWatcher
from sentinel.server.rules.storage import RuleStore

SPEC = RuleSpec("big-transfer", "amount > 5000", RuleAction.REVIEW, 300, 0.4)


async def test_every_watcher_applies_a_change_within_a_second(
    rule_store: RuleStore, database_url: str
) -> None:
    seen: list[CompiledRuleSet] = []
    # a slow poll: only NOTIFY can make the deadline
    watchers = [
        await RuleSetWatcher.start(rule_store, database_url, poll_interval_s=30.0, on_change=seen.append)
        for _ in range(3)
    ]
    try:
        assert all(len(w.current) == 0 and w.listening for w in watchers)
        for change in range(3):
            mode = (RuleMode.ACTIVE, RuleMode.SHADOW, RuleMode.ACTIVE)[change]
            stored = await rule_store.put(SPEC, "alice", f"change {change}")
            stored = await rule_store.set_mode("big-transfer", mode, "alice")
            started = time.monotonic()
            generation = await rule_store.generation()
            sets = await asyncio.gather(*(w.wait_for_generation(generation, 1.0) for w in watchers))
            assert time.monotonic() - started < 1.0
            for rule_set in sets:
                assert [(r.rule_id, r.version, r.shadow) for r in rule_set.rules] == [
                    ("big-transfer", stored.version, mode is RuleMode.SHADOW)
                ]
        assert seen and seen[-1].generation == generation
    finally:
        for watcher in watchers:
            await watcher.stop()


async def test_polling_covers_a_lost_listener_and_it_reconnects(
    rule_store: RuleStore, database_url: str
) -> None:
    watcher = await RuleSetWatcher.start(rule_store, database_url, poll_interval_s=0.2)
    admin = await asyncpg.connect(database_url)
    try:
        terminated = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'sentinel-rules-watcher' AND datname = current_database()"
        )
        assert terminated == 1
        stored = await rule_store.put(SPEC, "alice")
        rule_set = await watcher.wait_for_generation(await rule_store.generation(), 1.0)
        assert [(r.rule_id, r.version) for r in rule_set.rules] == [("big-transfer", stored.version)]
        for _ in range(50):  # the listener comes back on the next poll
            if watcher.listening:
                break
            await asyncio.sleep(0.05)
        assert watcher.listening
    finally:
        await admin.close()
        await watcher.stop()


async def test_an_unchanged_generation_does_not_reload(rule_store: RuleStore, database_url: str) -> None:
    await rule_store.put(SPEC, "alice")
    watcher = await RuleSetWatcher.start(rule_store, database_url, poll_interval_s=0.1)
    try:
        before = watcher.current
        assert await watcher.refresh() is False
        assert watcher.current is before
    finally:
        await watcher.stop()
