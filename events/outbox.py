"""The dispatcher's statements on the outbox (``ledger.event_deliveries``), run as the events role.

A dispatcher claims a destination's due deliveries with ``FOR UPDATE SKIP LOCKED`` inside a transaction
it holds while it delivers them, then deletes the delivered rows and reschedules (or kills) the failed
ones before committing. Other dispatchers skip the locked rows; a dispatcher that dies (even SIGKILL)
drops its connection, Postgres rolls its transaction back and the rows are claimable again at once, so
an event is delivered at least once, under the same event id.

Order per account and destination: a row is claimed only when it is the earliest pending row (by
delivery_id) of its account for the destination. Pending rows count whoever has them locked, so at most
one delivery per (destination, account) is in flight, and one that failed holds the later ones back
until it is delivered or dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

# A claim in two statements, each planned well whatever the statistics say (the table churns too fast for
# them: planned on an "empty" table, a one-statement claim joined every pending row with every other).
# First the head of every account's queue (its pending row with the lowest delivery_id, whoever has it
# locked), the due ones among them, oldest first: one walk of the (destination, account, delivery_id)
# index. Then those rows, locked, by primary key; the conditions are checked again on the row version the
# lock finds (delivered or rescheduled by another dispatcher meanwhile: skipped).
HEADS = """
SELECT sequence FROM (
    SELECT DISTINCT ON (account_id) sequence, delivery_id, next_attempt_at
    FROM ledger.event_deliveries
    WHERE destination_id = $1 AND state = 'pending'
    ORDER BY account_id, delivery_id
) AS head
WHERE next_attempt_at <= now()
ORDER BY delivery_id
LIMIT $2
"""
LOCK = """
SELECT sequence, account_id, recorded_at, attempts
FROM ledger.event_deliveries
WHERE destination_id = $1 AND sequence = ANY ($2::bigint[]) AND state = 'pending' AND next_attempt_at <= now()
ORDER BY delivery_id
FOR UPDATE SKIP LOCKED
"""

# The entries behind claimed deliveries; recorded_at prunes the monthly partitions.
ENTRIES = """
SELECT e.sequence, e.recorded_at, e.account_id, e.counterparty_id, e.amount::text AS amount, e.currency,
       e.outcome, e.risk_score, e.transaction_bytes, e.decision_bytes
FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS wanted(account_id, sequence, recorded_at)
JOIN ledger.decisions AS e
  ON e.account_id = wanted.account_id AND e.sequence = wanted.sequence AND e.recorded_at = wanted.recorded_at
"""

DELIVERED = "DELETE FROM ledger.event_deliveries WHERE destination_id = $1 AND sequence = ANY ($2::bigint[])"

# A failed delivery is tried again after its delay, or becomes dead once it has been failing for longer
# than the retry age (counted from when it was enqueued: recorded, or replayed).
FAILED = """
UPDATE ledger.event_deliveries AS o
SET attempts = o.attempts + 1,
    next_attempt_at = now() + failed.delay_s * interval '1 second',
    last_error = failed.error,
    state = CASE WHEN now() - o.enqueued_at >= $3::float8 * interval '1 second' THEN 'dead' ELSE 'pending' END
FROM unnest($2::bigint[], $4::float8[], $5::text[]) AS failed(sequence, delay_s, error)
WHERE o.destination_id = $1 AND o.sequence = failed.sequence
RETURNING o.sequence, o.state
"""

DESTINATION = """
SELECT kind, url, active, secret,
       CASE WHEN previous_secret_until > now() THEN previous_secret END AS previous_secret
FROM ledger.event_destinations WHERE destination_id = $1
"""

ACTIVE_DESTINATIONS = (
    "SELECT destination_id FROM ledger.event_destinations WHERE active ORDER BY destination_id"
)

OUTBOX_STATE = """
SELECT d.destination_id,
       count(o.sequence) FILTER (WHERE o.state = 'pending') AS pending,
       count(o.sequence) FILTER (WHERE o.state = 'dead') AS dead,
       coalesce(extract(epoch FROM now() - min(o.enqueued_at) FILTER (WHERE o.state = 'pending')), 0)::float8
           AS lag_s
FROM ledger.event_destinations AS d
LEFT JOIN ledger.event_deliveries AS o ON o.destination_id = d.destination_id
WHERE d.active
GROUP BY d.destination_id
"""


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One claimed row: the event's ledger entry and how often it was tried before."""

    sequence: int
    account_id: str
    recorded_at: datetime
    attempts: int


async def claim(connection: asyncpg.Connection, destination_id: str, limit: int) -> list[ClaimedDelivery]:
    """Lock up to ``limit`` due deliveries of the destination, oldest first, one per account (inside the
    caller's transaction)."""
    heads = [row[0] for row in await connection.fetch(HEADS, destination_id, limit)]
    if not heads:
        return []
    rows = await connection.fetch(LOCK, destination_id, heads)
    return [ClaimedDelivery(row[0], row[1], row[2], row[3]) for row in rows]


async def entries(connection: asyncpg.Connection, claimed: Sequence[ClaimedDelivery]) -> list[asyncpg.Record]:
    """The ledger rows of the claimed deliveries (an entry is never missing unless the ledger was damaged)."""
    return await connection.fetch(
        ENTRIES,
        [c.account_id for c in claimed],
        [c.sequence for c in claimed],
        [c.recorded_at for c in claimed],
    )
