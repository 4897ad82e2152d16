"""The ledger's read replica (``ledger_read_url``): how far behind it is, as a metric.

A streaming-replication standby replays the primary's WAL after the primary committed it, so a read
there may not see a decision acknowledged a moment ago. ``GetDecision`` (server/ledger_service.py)
therefore asks the primary when the replica does not have the decision; balances and histories are
served as the replica has them. Its lag is sampled once a second by each worker: the time since the
commit of the last transaction it replayed, or 0 when it has replayed everything it received (an idle
primary sends nothing, and the replay timestamp would age without the replica being behind).
"""

from __future__ import annotations

import asyncio
import math

import asyncpg
import structlog

from sentinel.server import metrics

log = structlog.get_logger("sentinel.ledger.replica")

SAMPLE_INTERVAL_S = 1.0

_LAG = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
    ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0.0)::float8
END
"""


async def replica_lag_s(connection: asyncpg.Connection) -> float:
    """Seconds the replica's replay is behind (see the module docstring); raises ValueError when the
    server is not a standby (ledger_read_url names a primary: nothing would ever be replicated)."""
    lag = await connection.fetchval(_LAG)
    if lag is None:
        raise ValueError("ledger_read_url is not a standby (pg_is_in_recovery() is false)")
    return max(0.0, float(lag))


async def export_replica_lag(pool: asyncpg.Pool, interval_s: float = SAMPLE_INTERVAL_S) -> None:
    """Set sentinel_ledger_replica_lag_seconds from the replica until cancelled (NaN while it cannot be
    asked)."""
    failing = False
    while True:
        try:
            async with pool.acquire() as connection:
                metrics.LEDGER_REPLICA_LAG.set(await replica_lag_s(connection))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            metrics.LEDGER_REPLICA_LAG.set(math.nan)
            if not failing:  # once per outage, not once a second
                log.warning("ledger_replica_lag_unknown", error=repr(exc))
            failing = True
        else:
            failing = False
        await asyncio.sleep(interval_s)
