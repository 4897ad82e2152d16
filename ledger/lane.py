"""One writer connection and its hash chain: writes a group of records in one transaction.

A group costs a fixed number of round trips whatever its size. Two ways, one result:

- The normal way (every key new): keys, entries and balance movements go in with ONE statement
  (data-modifying CTEs over one array of ``ledger.entry_row`` values) that commits on its own. The
  keys are inserted without ON CONFLICT, so a key that already exists aborts the whole statement
  (nothing is stored) and the group takes the general way. The hashes need the sequence numbers
  beforehand: each statement also draws the numbers for the lane's next group, so under load a group
  is one round trip. One round trip matters more than it seems: the writer shares its event loop
  with the server's handlers, and every reply waits for the loop, so each extra round trip adds the
  loop's latency to the commit. Measured against binary COPY for 2,000-record groups, the array
  costs the writer no more CPU per record and Postgres the same. One array of rows rather than one
  array per column: asyncpg checks every array element with Python-level isinstance calls, about 24
  per entry for 13 column arrays and 3 for one array of rows.
- The general way (a group holding a key that is already stored, i.e. a retry): in one transaction,
  the keys go in with ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING`` (the
  unique key decides which records are new and Postgres numbers them), the stored entries of the keys
  that already existed come back with one SELECT, and the new entries and their balance movements go
  in with the normal way's statement minus its keys.

Either commits with ``synchronous_commit=on``: when ``write`` returns, the group is on disk.

Each lane is its own chain: lanes commit concurrently, so a single chain would serialize them. A
lane starts a new chain whenever it (re)connects, because after a failed COMMIT it cannot know
whether its last group is in the database, i.e. which hash its chain ends with.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import NamedTuple

import asyncpg
import structlog

from sentinel.hotpath import entry_rows
from sentinel.ledger.chain import epoch_microseconds, genesis_hash
from sentinel.ledger.records import LedgerRecord
from sentinel.postgres import connect_as_writer

log = structlog.get_logger(__name__)

_INSERT_KEYS = """
INSERT INTO ledger.idempotency_keys (idempotency_key, sequence, transaction_id, recorded_at)
SELECT key, nextval('ledger.entry_sequence'), transaction_id, $3
FROM unnest($1::text[], $2::text[]) AS given(key, transaction_id)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key, sequence
"""

_STORED_ENTRIES = """
SELECT k.idempotency_key, k.sequence, d.fingerprint, d.decision_bytes
FROM ledger.idempotency_keys AS k
JOIN ledger.decisions AS d
  ON d.transaction_id = k.transaction_id AND d.recorded_at = k.recorded_at AND d.sequence = k.sequence
WHERE k.idempotency_key = ANY($1::text[])
"""

_DRAW_SEQUENCES = "SELECT nextval('ledger.entry_sequence') FROM generate_series(1, $1)"

# The entries of a group as ``ledger.entry_row`` values ($1, see migration 0003; amounts as exact decimal
# text: asyncpg encodes a Decimal several times slower than a str), $2 recorded_at, $3 chain id. The
# balance update, which the statements below run LAST, takes the movements of the approved entries
# (migration 0006), built from the rows the insert returns: a debit of the origin and a credit of a
# non-empty counterparty each. Handing it the entry rows themselves, blobs and all, cost Postgres about
# 3 % more per entry (copies of the whole array, two sorts). Last, because it locks the balance rows it
# changes until COMMIT, and groups of the other lanes touching the same accounts (busy merchants are
# in nearly every group) wait for those locks. Run first, as Postgres runs a main query before the
# data-modifying CTEs it does not read, the locks were also held through the entries' inserts, and
# lanes spent a fifth of their time waiting for each other.
# The decision events' outbox (migration 0007, docs/decisions/0017-decision-events-outbox.md): one delivery
# per new entry and matching active destination, in the entries' statement, so an entry is stored if and
# only if its deliveries are. Postgres runs a data-modifying CTE even when the main query does not read it;
# with no destination the join inserts nothing. The rows go in in sequence order: their delivery ids,
# which order an account's events, then follow the chain within the group.
_INSERT_ENTRIES = """
given AS (
    SELECT * FROM unnest($1::ledger.entry_row[])
), new_entries AS (
    INSERT INTO ledger.decisions (sequence, chain_id, recorded_at, idempotency_key, transaction_id,
        fingerprint, account_id, counterparty_id, amount, currency, outcome, risk_score, transaction_bytes,
        decision_bytes, entry_hash)
    SELECT sequence, $3, $2, idempotency_key, transaction_id, fingerprint, account_id, counterparty_id,
        amount::numeric, currency, outcome, risk_score, transaction_bytes, decision_bytes, entry_hash
    FROM given
    RETURNING sequence, account_id, counterparty_id, amount, currency, outcome
), new_deliveries AS (
    INSERT INTO ledger.event_deliveries (destination_id, sequence, account_id, recorded_at)
    SELECT d.destination_id, e.sequence, e.account_id, $2
    FROM new_entries AS e
    JOIN ledger.event_destinations AS d ON d.active
        AND (cardinality(d.outcomes) = 0 OR e.outcome = ANY (d.outcomes))
        AND (cardinality(d.event_types) = 0 OR 'decision.recorded' = ANY (d.event_types))
    ORDER BY e.sequence
)"""

_APPLY_BALANCES = """ledger.apply_balance_movements(ARRAY(
    SELECT (account_id, currency, -amount, sequence)::ledger.balance_movement
    FROM new_entries WHERE outcome = 'APPROVE'
    UNION ALL
    SELECT (counterparty_id, currency, amount, sequence)::ledger.balance_movement
    FROM new_entries WHERE outcome = 'APPROVE' AND counterparty_id <> ''
))"""

# The normal way: keys, entries and balances in one self-committing statement, which also draws $4
# sequence numbers for the lane's next group.
_WRITE_NEW_GROUP = f"""
WITH {_INSERT_ENTRIES}, new_keys AS (
    INSERT INTO ledger.idempotency_keys (idempotency_key, sequence, transaction_id, recorded_at)
    SELECT idempotency_key, sequence, transaction_id, $2 FROM given
    RETURNING 1
)
SELECT {_APPLY_BALANCES},
       ARRAY(SELECT nextval('ledger.entry_sequence') FROM generate_series(1, $4)) AS next_sequences
FROM (SELECT count(*) FROM new_keys) AS keys_in, (SELECT count(*) FROM new_entries) AS entries_in
"""

# The general way's entries and balances, once its keys are in.
_WRITE_ENTRIES = f"""
WITH {_INSERT_ENTRIES}
SELECT {_APPLY_BALANCES} FROM (SELECT count(*) FROM new_entries) AS entries_in
"""

# The statement also draws the sequence numbers of the lane's next group, saving that group a round
# trip. A reserve older than this is dropped (gaps are harmless; sequences far behind the other
# lanes' would put a lane's entries out of time order in account histories).
_RESERVE_MAX_AGE_S = 0.05

# Most sequence numbers drawn ahead: twice the last group, up to this.
_RESERVE_MAX = 4096

UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})  # connection, resources, shutdown, system
UNAVAILABLE_SQLSTATES = frozenset({"25006"})  # read-only transaction: connected to a standby


class LedgerIntegrityError(RuntimeError):
    """The database contradicts itself (an idempotency key without its entry): never expected."""


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means Postgres is unreachable, shutting down, out of resources or too slow."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state[:2] in UNAVAILABLE_SQLSTATE_CLASSES or state in UNAVAILABLE_SQLSTATES
    return False


class EntryOutcome(NamedTuple):
    """Where one record ended up: a new entry, or the entry already stored under its key."""

    sequence: int
    existed: bool
    stored_fingerprint: bytes | None = None
    stored_decision: bytes | None = None


class LedgerLane:
    """A connection acting as the writer role, with the head of its hash chain."""

    def __init__(self, dsn: str, *, name: str, connect_timeout_s: float, partitions_ahead: int) -> None:
        self._dsn = dsn
        self._name = name
        self._connect_timeout_s = connect_timeout_s
        self._partitions_ahead = partitions_ahead
        self._connection: asyncpg.Connection | None = None
        self._chain_id = 0
        self._head = b""
        self._partitions_ready_until = datetime.min.replace(tzinfo=UTC)
        self._reserve: list[int] = []  # sequence numbers drawn ahead, ascending, above all used ones
        self._reserve_drawn_at = 0.0

    async def _connected(self) -> asyncpg.Connection:
        if self._connection is not None and not self._connection.is_closed():
            return self._connection
        connection = await connect_as_writer(
            self._dsn,
            connect_timeout_s=self._connect_timeout_s,
            application_name=f"sentinel-ledger-{self._name}",
        )
        try:
            writer = f"{socket.gethostname()}:{os.getpid()}:{self._name}"
            chain_id = await connection.fetchval(
                "INSERT INTO ledger.chains (writer) VALUES ($1) RETURNING chain_id", writer
            )
        except BaseException:
            connection.terminate()
            raise
        self._connection, self._chain_id, self._head = connection, chain_id, genesis_hash(chain_id)
        log.info("ledger_chain_started", chain_id=chain_id, writer=writer)
        return connection

    async def _ensure_partitions(self, connection: asyncpg.Connection, now: datetime) -> None:
        """Create this month's and the next months' partitions; checked again at the next month."""
        if now < self._partitions_ready_until:
            return
        await connection.fetchval("SELECT ledger.ensure_partitions($1, $2)", now, self._partitions_ahead)
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        self._partitions_ready_until = (
            month.replace(month=month.month + 1)
            if month.month < 12
            else month.replace(year=month.year + 1, month=1)
        )

    async def write(self, records: Sequence[LedgerRecord]) -> list[EntryOutcome]:
        """Record ``records`` in one transaction; one outcome per record, in order.

        A key repeated inside ``records`` is written once; its later occurrences are reported as
        existing, with the first occurrence's fingerprint and decision.
        """
        connection = await self._connected()
        now = datetime.now(UTC)
        await self._ensure_partitions(connection, now)
        first: dict[str, LedgerRecord] = {}
        for record in records:
            first.setdefault(record.idempotency_key, record)
        unique = list(first.values())
        sequences = await self._sequences(connection, len(unique))
        try:
            await self._write_new_group(connection, now, list(zip(sequences, unique, strict=True)))
        except asyncpg.UniqueViolationError:
            pass  # a key is already stored: nothing of the group was, the general way sorts it out
        else:
            return self._outcomes(records, first, dict(zip(first, sequences, strict=True)), {})
        self._reserve = []  # the general way draws newer numbers: older ones would break chain order
        return await self._write_group(connection, now, records, first, unique)

    async def _sequences(self, connection: asyncpg.Connection, count: int) -> list[int]:
        """``count`` ascending sequence numbers above every number this lane used so far."""
        reserve, self._reserve = self._reserve, []
        if len(reserve) >= count and time.monotonic() - self._reserve_drawn_at < _RESERVE_MAX_AGE_S:
            return reserve[:count]
        return sorted(row[0] for row in await connection.fetch(_DRAW_SEQUENCES, count))

    async def _write_new_group(
        self, connection: asyncpg.Connection, now: datetime, entries: list[tuple[int, LedgerRecord]]
    ) -> None:
        """Write records whose keys are all new in one self-committing statement."""
        rows, head = entry_rows(entries, self._head, self._chain_id, epoch_microseconds(now))
        reserve = min(_RESERVE_MAX, max(8, 2 * len(entries)))  # for the next group
        row = await connection.fetchrow(_WRITE_NEW_GROUP, rows, now, self._chain_id, reserve)
        self._head = head
        self._reserve, self._reserve_drawn_at = sorted(row["next_sequences"]), time.monotonic()

    async def _write_group(
        self,
        connection: asyncpg.Connection,
        now: datetime,
        records: Sequence[LedgerRecord],
        first: dict[str, LedgerRecord],
        unique: list[LedgerRecord],
    ) -> list[EntryOutcome]:
        """The general way: any group, including keys that are already stored."""
        async with connection.transaction():
            rows = await connection.fetch(
                _INSERT_KEYS,
                [record.idempotency_key for record in unique],
                [record.transaction_id for record in unique],
                now,
            )
            assigned: dict[str, int] = {row[0]: row[1] for row in rows}
            stored: dict[str, EntryOutcome] = {}
            if len(assigned) < len(unique):
                missing = [
                    record.idempotency_key for record in unique if record.idempotency_key not in assigned
                ]
                for row in await connection.fetch(_STORED_ENTRIES, missing):
                    stored[row[0]] = EntryOutcome(row[1], True, row[2], row[3])
                lost = set(missing) - set(stored)
                if lost:
                    raise LedgerIntegrityError(f"idempotency keys without a ledger entry: {sorted(lost)[:5]}")
            new_entries = [
                (assigned[record.idempotency_key], record)
                for record in unique
                if record.idempotency_key in assigned
            ]
            if any(new_entries[i][0] > new_entries[i + 1][0] for i in range(len(new_entries) - 1)):
                new_entries.sort(key=itemgetter(0))  # Postgres numbered them out of array order
            rows, head = entry_rows(new_entries, self._head, self._chain_id, epoch_microseconds(now))
            if rows:
                await connection.execute(_WRITE_ENTRIES, rows, now, self._chain_id)
        self._head = head
        return self._outcomes(records, first, assigned, stored)

    @staticmethod
    def _outcomes(
        records: Sequence[LedgerRecord],
        first: dict[str, LedgerRecord],
        assigned: dict[str, int],
        stored: dict[str, EntryOutcome],
    ) -> list[EntryOutcome]:
        """One outcome per submitted record: new, stored before, or a repeat within the group."""
        outcomes: list[EntryOutcome] = []
        seen: set[str] = set()
        for record in records:
            key = record.idempotency_key
            if key in stored:
                outcomes.append(stored[key])
            elif key in seen:
                original = first[key]
                outcomes.append(
                    EntryOutcome(assigned[key], True, original.fingerprint, original.decision_bytes)
                )
            else:
                outcomes.append(EntryOutcome(assigned[key], False))
            seen.add(key)
        return outcomes

    async def keep_conflicts(self, conflicts: Sequence[tuple[LedgerRecord, bytes | None]]) -> None:
        """Keep acknowledged records whose key the ledger holds for another transaction (with the
        stored fingerprint) in ledger.replay_conflicts; a record kept before is not added twice."""
        connection = await self._connected()
        await connection.executemany(
            "INSERT INTO ledger.replay_conflicts (idempotency_key, fingerprint, transaction_id, account_id,"
            " transaction_bytes, decision_bytes, stored_fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT DO NOTHING",
            [
                (
                    r.idempotency_key,
                    r.fingerprint,
                    r.transaction_id,
                    r.account_id,
                    r.transaction_bytes,
                    r.decision_bytes,
                    stored,
                )
                for r, stored in conflicts
            ],
        )

    def discard(self) -> None:
        """Drop the connection without waiting (its state is unknown); the next write starts a new chain."""
        if self._connection is not None:
            self._connection.terminate()
        self._connection = None

    async def close(self) -> None:
        """Close the connection cleanly, or drop it when that does not work within a second."""
        if self._connection is not None:
            try:
                await self._connection.close(timeout=1)
            except Exception:  # an outage or a stalled server: the connection is gone anyway
                self._connection.terminate()
        self._connection = None
