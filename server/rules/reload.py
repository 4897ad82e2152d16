"""Hot reload: keep each worker's compiled rule set current within a second of a change.

Every change of a rule bumps the rule set's generation and sends ``NOTIFY sentinel_rules`` at commit
(see ``storage``). Each worker runs one :class:`RuleSetWatcher` in its event loop: it LISTENs on a
dedicated connection and, on a notification or every ``poll_interval_s`` (the fallback when a
notification is lost, e.g. while the listening connection reconnects), compares the stored
generation with its own and reloads when they differ. The new set is compiled off to the side and
then swapped in with one attribute assignment, so a request sees either the old or the new set,
never a mix, and nothing waits for the reload. If the database is unreachable the worker keeps
deciding with the set it has and logs ``rules_reload_failed``.

Use in a worker::

    watcher = await RuleSetWatcher.start(store, dsn, poll_interval_s=settings.rules_poll_interval_ms / 1000)
    ...
    rule_set = watcher.current          # per micro-batch: an immutable CompiledRuleSet
    ...
    await watcher.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import asyncpg
import structlog

from sentinel.postgres import connect_as_writer
from sentinel.server.rules.compiler import CompiledRuleSet
from sentinel.server.rules.storage import NOTIFY_CHANNEL, RuleStore

log = structlog.get_logger(__name__)

RETRY_AFTER_FAILURE_S = 1.0


class RuleSetWatcher:
    """The current compiled rule set of one worker, reloaded on NOTIFY and by polling."""

    def __init__(
        self,
        store: RuleStore,
        dsn: str,
        initial: CompiledRuleSet,
        *,
        poll_interval_s: float = 0.5,
        on_change: Callable[[CompiledRuleSet], None] | None = None,
    ) -> None:
        self._store = store
        self._dsn = dsn
        self._current = initial
        self._poll_interval_s = poll_interval_s
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        store: RuleStore,
        dsn: str,
        *,
        poll_interval_s: float = 0.5,
        on_change: Callable[[CompiledRuleSet], None] | None = None,
    ) -> RuleSetWatcher:
        """Load the current set (errors propagate: a worker should not serve without rules), then watch."""
        watcher = cls(
            store, dsn, await store.load_rule_set(), poll_interval_s=poll_interval_s, on_change=on_change
        )
        await watcher._listen()
        watcher._task = asyncio.create_task(watcher._run(), name="rules-watcher")
        log.info("rules_loaded", generation=watcher.current.generation, rules=_describe(watcher.current))
        return watcher

    @property
    def current(self) -> CompiledRuleSet:
        """The rule set to evaluate now (immutable; replaced as a whole on reload)."""
        return self._current

    @property
    def listening(self) -> bool:
        """Whether notifications are being received (else only polling picks up changes)."""
        return self._listener is not None and not self._listener.is_closed()

    async def stop(self) -> None:
        """Stop watching and close the listening connection (the store is the caller's)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_listener()

    async def wait_for_generation(self, generation: int, timeout_s: float) -> CompiledRuleSet:
        """Wait until the current set is at least ``generation`` (TimeoutError after ``timeout_s``)."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: self._current.generation >= generation)
        return self._current

    async def refresh(self) -> bool:
        """Reload now if the stored generation differs from the current one; whether it reloaded."""
        generation = await self._store.generation()
        if generation == self._current.generation:
            return False
        started = time.perf_counter()
        new = await self._store.load_rule_set()
        previous, self._current = self._current, new
        log.info(
            "rules_reloaded",
            generation=new.generation,
            previous_generation=previous.generation,
            rules=_describe(new),
            reload_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        if self._on_change is not None:
            self._on_change(new)
        async with self._changed:
            self._changed.notify_all()
        return True

    # --- internals ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if not self.listening:
                    await self._listen()
                await self.refresh()
            except Exception as exc:  # never let the watcher die: a dead watcher means stale rules
                log.warning(
                    "rules_reload_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    generation=self._current.generation,
                )
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)

    async def _listen(self) -> None:
        await self._close_listener()
        connection = await connect_as_writer(
            self._dsn, connect_timeout_s=5.0, application_name="sentinel-rules-watcher"
        )
        await connection.add_listener(NOTIFY_CHANNEL, self._notified)
        connection.add_termination_listener(self._terminated)
        self._listener = connection
        # A change committed while we were not listening is picked up by the next refresh.
        self._wake.set()

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            generation = int(payload)
        except ValueError:
            generation = -1
        if generation != self._current.generation:
            self._wake.set()

    def _terminated(self, connection: object) -> None:
        if connection is not self._listener:
            return  # closed by us
        log.warning("rules_listener_lost", generation=self._current.generation)
        self._listener = None
        self._wake.set()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await listener.close(timeout=2.0)


def _describe(rule_set: CompiledRuleSet) -> list[str]:
    return [f"{rule.rule_id}@v{rule.version}{' (shadow)' if rule.shadow else ''}" for rule in rule_set.rules]
