"""What one worker process holds open: Redis, the model, the rules, the ledger writer.

Opened after the worker process started (never inherited from the supervisor) and closed in the reverse
order on shutdown, after the gRPC server stopped taking calls, so the ledger writer flushes last.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sentinel.config import Settings
from sentinel.ledger.migrate import migrate
from sentinel.ledger.writer import LedgerWriter
from sentinel.model_export.registry import ModelRegistry
from sentinel.model_export.reloader import ActiveModel
from sentinel.postgres import writer_pool
from sentinel.server.ledger_gauges import export_ledger_state
from sentinel.server.ledger_replica import export_replica_lag
from sentinel.server.redis_cluster import cluster_client
from sentinel.server.rules.reload import RuleSetWatcher
from sentinel.server.rules.rulefiles import seed_default_rules
from sentinel.server.rules.storage import RuleStore
from sentinel.server.state_store import AccountStateStore

log = structlog.get_logger("sentinel.worker")


def redis_client(settings: Settings) -> Redis | RedisCluster:
    """A client that never hangs: its socket timeouts are a backstop well above the state budget (the
    pipeline enforces the budget itself, counting only time in which the worker listened; a socket
    timeout equal to it would trip whenever the event loop was busy). A cluster's: ``cluster_client``."""
    assert settings.redis_url is not None
    timeout = max(1.0, 10 * settings.redis_budget_ms / 1000)
    if settings.redis_cluster:
        return cluster_client(settings.redis_url, timeout_s=timeout)
    return Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)


@dataclass
class WorkerResources:
    """The open connections and the hot-swappable model and rules of one worker."""

    redis: Redis | RedisCluster
    state_store: AccountStateStore
    model: ActiveModel
    rule_store: RuleStore
    rules: RuleSetWatcher
    ledger: LedgerWriter
    ledger_reads: asyncpg.Pool
    replica_reads: asyncpg.Pool | None = None  # ledger_read_url's
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings, worker_id: int) -> WorkerResources:
        """Connect everything; raises (and the worker exits) when the model or the ledger cannot start."""
        if settings.redis_url is None or settings.database_url is None:
            raise ValueError("sentinel serve needs redis_url and database_url (or use `sentinel dev serve`)")
        model = await asyncio.to_thread(ActiveModel, ModelRegistry.from_settings(settings))
        ledger = LedgerWriter(settings, name=f"worker-{worker_id}")
        await ledger.start()
        ledger_reads = await writer_pool(
            settings.database_url,
            connect_timeout_s=settings.ledger_connect_timeout_s,
            max_size=4,
            application_name=f"sentinel-ledger-reads-{worker_id}",
        )
        rule_store = await RuleStore.connect(settings.database_url)
        rules = await RuleSetWatcher.start(
            rule_store, settings.database_url, poll_interval_s=settings.rules_poll_interval_ms / 1000
        )
        client = redis_client(settings)
        state_store = AccountStateStore(
            client, state_ttl_s=settings.state_ttl_s, claim_ttl_s=settings.idempotency_ttl_s
        )
        resources = cls(client, state_store, model, rule_store, rules, ledger, ledger_reads)
        if settings.ledger_read_url:
            resources.replica_reads = await writer_pool(
                settings.ledger_read_url,
                connect_timeout_s=settings.ledger_connect_timeout_s,
                max_size=4,
                application_name=f"sentinel-ledger-replica-reads-{worker_id}",
            )
            resources._tasks.append(asyncio.create_task(export_replica_lag(resources.replica_reads)))
        resources._tasks.append(asyncio.create_task(model.watch(settings.model_poll_interval_ms / 1000)))
        resources._tasks.append(asyncio.create_task(export_ledger_state(ledger)))
        log.info("worker_ready", model_version=model.current.version, rules=len(rules.current))
        return resources

    def ledger_pools(self) -> tuple[asyncpg.Pool, asyncpg.Pool | None]:
        """The LedgerService's pools: where it reads, and the primary to ask when that is a replica."""
        if self.replica_reads is None:
            return self.ledger_reads, None
        return self.replica_reads, self.ledger_reads

    async def close(self) -> None:
        """Stop watching, flush the ledger writer, close connections."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.rules.stop()
        await self.ledger.close()
        await self.ledger_reads.close()
        if self.replica_reads is not None:
            await self.replica_reads.close()
        await self.rule_store.close()
        await self.redis.aclose()


async def prepare_database(settings: Settings) -> None:
    """Once per start, before the workers: apply ledger migrations and load the default rules into an
    empty rule store (so a fresh `make run` scores with the documented default rule set)."""
    assert settings.database_url is not None
    if settings.ledger_migrate_on_start:
        applied = await migrate(settings.ledger_admin_url or settings.database_url)
        if applied:
            log.info("ledger_migrated", versions=applied)
    if not settings.rules_seed_defaults:
        return
    store = await RuleStore.connect(settings.database_url)
    try:
        seeded = await seed_default_rules(store)
        if seeded:
            log.info("default_rules_loaded", rules=[rule.spec.rule_id for rule in seeded])
    finally:
        await store.close()
