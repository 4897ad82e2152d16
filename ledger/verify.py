"""``sentinel ledger verify``: recompute every hash chain and the balances from the stored entries.

Changing, inserting or deleting an entry inside a chain makes the stored hash of that entry (or of
the entry after a deleted one) differ from the recomputed one; the report names the first broken
entry by sequence. The hash covers an entry's key and blobs (chain.py); every other column is a
projection of the blobs, so verify decodes them and compares each column with what they say.
Balances are a projection of the approved entries, so they are recomputed with exact NUMERIC sums
and compared too. What a chain alone cannot show: the removal of a chain's last entries, a rewrite
that recomputes every later hash, or a whole new chain dated in the past (the writer role may insert
one). Checkpoints close that gap up to the last one taken: the owner records the chain heads
(``take_checkpoint``, ``sentinel ledger checkpoint``), verify requires every recorded head to still be
in its chain and every entry dated before a checkpoint to be covered by it. Keeping the printed heads
somewhere the database's superuser cannot write also covers a superuser's rewrite.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from google.protobuf.message import DecodeError

from sentinel.ledger.chain import entry_hash, epoch_microseconds, genesis_hash
from sentinel.ledger.records import LedgerRecord, record_from_messages
from sentinel.postgres import OWNER_ROLE
from sentinel.v1 import decision_pb2, transaction_pb2

_VERIFIED_COLUMNS = """
sequence, chain_id, recorded_at, idempotency_key, transaction_id, fingerprint, account_id,
counterparty_id, amount, currency, outcome, risk_score, transaction_bytes, decision_bytes, entry_hash
"""
_ENTRIES = f"SELECT {_VERIFIED_COLUMNS} FROM ledger.decisions ORDER BY chain_id, sequence"
# One entry's chain from an anchor (the head a checkpoint recorded before it, else the chain's start).
_ENTRY_CHAIN_ID = "SELECT chain_id FROM ledger.decisions WHERE sequence = $1 AND recorded_at = $2"
_ANCHOR = """
SELECT checkpoint_id, sequence, entry_hash FROM ledger.checkpoint_heads
WHERE chain_id = $1 AND sequence < $2 ORDER BY sequence DESC, checkpoint_id LIMIT 1
"""
_CHAIN_SEGMENT = f"""
SELECT {_VERIFIED_COLUMNS} FROM ledger.decisions
WHERE chain_id = $1 AND sequence >= $2 AND sequence <= $3 ORDER BY sequence
"""
# The columns that are projections of the blobs (LedgerRecord fields of the same names).
_PROJECTED = (
    "transaction_id",
    "idempotency_key",
    "fingerprint",
    "account_id",
    "counterparty_id",
    "amount",
    "currency",
    "outcome",
    "risk_score",
)

# How long after its recorded_at an entry may still commit: a group commits within
# ledger_commit_timeout_s of it or is spooled and written again with a new time. The margin also
# absorbs clock skew between the service's hosts and the database. Entries dated within it of a
# checkpoint are not required to be in that checkpoint.
CHECKPOINT_GRACE = timedelta(minutes=5)

_CHECKPOINTS = "SELECT checkpoint_id, taken_at FROM ledger.checkpoints ORDER BY taken_at, checkpoint_id"
_CHECKPOINT_HEADS = """
SELECT h.checkpoint_id, c.taken_at, h.chain_id, h.sequence, h.entry_hash
FROM ledger.checkpoint_heads AS h JOIN ledger.checkpoints AS c USING (checkpoint_id)
ORDER BY h.chain_id, h.sequence, h.checkpoint_id
"""
_LATEST_HEADS = """
SELECT DISTINCT ON (chain_id) checkpoint_id, chain_id, sequence, entry_hash
FROM ledger.checkpoint_heads ORDER BY chain_id, sequence DESC
"""

_BALANCE_MISMATCHES = """
WITH movements AS (
    SELECT account_id AS account, currency, -amount AS delta, sequence
    FROM ledger.decisions WHERE outcome = 'APPROVE'
    UNION ALL
    SELECT counterparty_id, currency, amount, sequence
    FROM ledger.decisions WHERE outcome = 'APPROVE' AND counterparty_id <> ''
), expected AS (
    SELECT account, currency, sum(delta) AS amount FROM movements GROUP BY account, currency
)
SELECT coalesce(e.account, b.account_id) AS account_id, coalesce(e.currency, b.currency) AS currency,
       e.amount AS expected, b.amount AS stored
FROM expected AS e
FULL JOIN ledger.balances AS b ON b.account_id = e.account AND b.currency = e.currency
WHERE e.amount IS DISTINCT FROM b.amount
ORDER BY 1, 2
LIMIT 100
"""

_KEYS_WITHOUT_ENTRY = """
SELECT k.idempotency_key, k.sequence FROM ledger.idempotency_keys AS k
WHERE NOT EXISTS (SELECT 1 FROM ledger.decisions AS d
                  WHERE d.sequence = k.sequence AND d.recorded_at = k.recorded_at
                    AND d.idempotency_key = k.idempotency_key)
ORDER BY k.sequence LIMIT 100
"""

_REPLAY_CONFLICTS = """
SELECT idempotency_key, transaction_id, replayed_at FROM ledger.replay_conflicts
ORDER BY replayed_at, idempotency_key LIMIT 100
"""

_ENTRIES_WITHOUT_KEY = """
SELECT d.sequence, d.idempotency_key FROM ledger.decisions AS d
WHERE NOT EXISTS (SELECT 1 FROM ledger.idempotency_keys AS k
                  WHERE k.idempotency_key = d.idempotency_key AND k.sequence = d.sequence)
ORDER BY d.sequence LIMIT 100
"""


@dataclass(frozen=True)
class BrokenEntry:
    """An entry whose stored hash does not match the recomputed one."""

    sequence: int
    chain_id: int
    transaction_id: str
    reason: str


@dataclass(frozen=True)
class CheckpointHead:
    """A chain's head as the checkpoint ``checkpoint_id`` recorded it."""

    checkpoint_id: int
    chain_id: int
    sequence: int
    entry_hash: str  # hex


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint just taken, with the last recorded head of every chain (the external anchor)."""

    checkpoint_id: int
    taken_at: datetime
    heads: list[CheckpointHead]


@dataclass(frozen=True)
class CheckpointMismatch:
    """An entry or head that contradicts what the checkpoint ``checkpoint_id`` recorded."""

    checkpoint_id: int
    taken_at: datetime
    chain_id: int
    sequence: int
    reason: str


@dataclass
class VerifyReport:
    """What verify found; ``ok`` when nothing."""

    entries: int = 0
    chains: dict[int, str] = field(default_factory=dict)  # chain id -> hex hash of its last entry
    broken: list[BrokenEntry] = field(default_factory=list)  # the first break of each broken chain
    balance_mismatches: list[tuple[str, str, Decimal | None, Decimal | None]] = field(default_factory=list)
    keys_without_entry: list[tuple[str, int]] = field(default_factory=list)
    entries_without_key: list[tuple[int, str]] = field(default_factory=list)
    checkpoints: int = 0
    checkpoint_mismatches: list[CheckpointMismatch] = field(default_factory=list)
    # Decisions acknowledged from the spool whose key the ledger held for another transaction: kept, not
    # chained; a business matter to settle, not damage, so they do not make the report fail.
    replay_conflicts: list[tuple[str, str, datetime]] = field(default_factory=list)

    @property
    def first_broken(self) -> BrokenEntry | None:
        """The broken entry with the lowest sequence."""
        return min(self.broken, key=lambda entry: entry.sequence, default=None)

    @property
    def first_checkpoint_mismatch(self) -> CheckpointMismatch | None:
        """The mismatch of the earliest checkpoint that disagrees with the ledger."""
        return min(
            self.checkpoint_mismatches, key=lambda found: (found.checkpoint_id, found.sequence), default=None
        )

    @property
    def ok(self) -> bool:
        return not (
            self.broken
            or self.balance_mismatches
            or self.keys_without_entry
            or self.entries_without_key
            or self.checkpoint_mismatches
        )


class _CheckpointCheck:
    """Checks the entries of verify's walk (by chain, then sequence) against the checkpoints.

    A recorded head must still be in its chain with the recorded hash. An entry dated before a
    checkpoint (less CHECKPOINT_GRACE) must be covered by it: that checkpoint, or an earlier one, recorded
    a head of the entry's chain at or after the entry; and no checkpoint taken before an entry's date
    (less the grace) can cover it. Checkpoints record only the heads that moved, so the head covering
    an entry is the first one at or after it in its chain.
    """

    def __init__(self, checkpoints: list[asyncpg.Record], heads: list[asyncpg.Record]) -> None:
        self._checkpoints = checkpoints
        self._cutoffs = [row["taken_at"] - CHECKPOINT_GRACE for row in checkpoints]
        self._pending: dict[int, deque[asyncpg.Record]] = {}
        for head in heads:
            self._pending.setdefault(head["chain_id"], deque()).append(head)
        self._misdated_chains: set[int] = set()  # reported once each
        self.mismatches: list[CheckpointMismatch] = []

    def _mismatch(self, checkpoint: asyncpg.Record, chain_id: int, sequence: int, reason: str) -> None:
        self.mismatches.append(
            CheckpointMismatch(
                checkpoint["checkpoint_id"], checkpoint["taken_at"], chain_id, sequence, reason
            )
        )

    def entry(self, row: asyncpg.Record, chain_id: int, stored: bytes) -> None:
        """Check one entry of the walk."""
        sequence, pending = row["sequence"], self._pending.get(chain_id, deque())
        while pending and pending[0]["sequence"] < sequence:
            self._missing(pending.popleft())
        covering = pending[0] if pending else None
        while pending and pending[0]["sequence"] == sequence:
            head = pending.popleft()
            if bytes(head["entry_hash"]) != stored:
                self._mismatch(
                    head,
                    chain_id,
                    sequence,
                    f"the entry at sequence {sequence} of chain {chain_id} is not the one this "
                    "checkpoint recorded as the chain's head: the chain was rewritten",
                )
        if chain_id not in self._misdated_chains:
            self._check_date(row, chain_id, covering)

    def _check_date(self, row: asyncpg.Record, chain_id: int, covering: asyncpg.Record | None) -> None:
        """An entry must be dated after the checkpoints before the one that first holds it, and not after
        that one (both give or take the grace)."""
        recorded_at, sequence = row["recorded_at"], row["sequence"]
        entry = (
            f"entry {sequence} of chain {chain_id} (transaction {row['transaction_id']!r}), "
            f"recorded at {recorded_at.isoformat()},"
        )
        first = bisect_right(self._cutoffs, recorded_at)
        if first < len(self._checkpoints) and (
            covering is None or covering["taken_at"] > self._checkpoints[first]["taken_at"]
        ):
            checkpoint = self._checkpoints[first]
            reason = (
                f"{entry} is not in checkpoint {checkpoint['checkpoint_id']} taken after it: it was "
                "written later with an earlier date (forged history)"
            )
        elif covering is not None and covering["taken_at"] < recorded_at - CHECKPOINT_GRACE:
            checkpoint = covering
            reason = (
                f"{entry} is held by checkpoint {checkpoint['checkpoint_id']} taken before that: it "
                "was written with a later date (forged history)"
            )
        else:
            return
        self._misdated_chains.add(chain_id)
        self._mismatch(checkpoint, chain_id, sequence, reason)

    def _missing(self, head: asyncpg.Record) -> None:
        self._mismatch(
            head,
            head["chain_id"],
            head["sequence"],
            f"chain {head['chain_id']} no longer holds sequence {head['sequence']}, which this "
            "checkpoint recorded as its head: entries were removed or the chain rewritten",
        )

    def finish(self) -> None:
        """Report the recorded heads the walk never reached."""
        for pending in self._pending.values():
            while pending:
                self._missing(pending.popleft())


@dataclass(frozen=True)
class EntryChainCheck:
    """Whether one entry's chain verifies from its anchor up to the entry (``verify_entry_chain``)."""

    chain_id: int
    anchor: str  # "chain start" or "checkpoint N"
    entries: int  # entries recomputed, the entry included
    broken: BrokenEntry | None  # the first entry that does not verify, None when all do

    @property
    def ok(self) -> bool:
        return self.broken is None


async def verify_entry_chain(
    connection: asyncpg.Connection, sequence: int, recorded_at: datetime
) -> EntryChainCheck | None:
    """Recompute the hash chain of the entry (``sequence``, ``recorded_at``) up to it, in one snapshot;
    None when there is no such entry.

    The walk starts at the last head a checkpoint recorded before the entry in its chain (the owner role
    vouched for it, and its stored hash must still be the recorded one), else at the chain's start; so
    its cost is the entries written since that checkpoint. Only the entry's own chain up to it is
    checked: ``sentinel ledger verify`` checks everything (later entries, balances, key index)."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        chain_id = await connection.fetchval(_ENTRY_CHAIN_ID, sequence, recorded_at)
        if chain_id is None:
            return None
        anchor = await connection.fetchrow(_ANCHOR, chain_id, sequence)
        previous, start, name = genesis_hash(chain_id), 0, "chain start"
        if anchor is not None:
            previous, start = bytes(anchor["entry_hash"]), anchor["sequence"]
            name = f"checkpoint {anchor['checkpoint_id']}"
        entries, anchored = 0, anchor is None
        async for row in connection.cursor(_CHAIN_SEGMENT, chain_id, start, sequence, prefetch=2_000):
            if not anchored:  # the anchor's own entry: still there, with the hash the checkpoint recorded
                if row["sequence"] != start or bytes(row["entry_hash"]) != previous:
                    break
                anchored = True
                continue
            entries += 1
            reason = _entry_fault(row, previous, chain_id)
            if reason is not None:
                return EntryChainCheck(chain_id, name, entries, _broken(row, chain_id, reason))
            previous = bytes(row["entry_hash"])
        if not anchored:
            reason = (
                f"the head {name} recorded at sequence {start} is gone or changed: the chain was rewritten"
            )
            return EntryChainCheck(chain_id, name, 0, BrokenEntry(start, chain_id, "", reason))
    return EntryChainCheck(chain_id, name, entries, None)


def _broken(row: asyncpg.Record, chain_id: int, reason: str) -> BrokenEntry:
    return BrokenEntry(row["sequence"], chain_id, row["transaction_id"], reason)


def _stored_record(row: asyncpg.Record) -> LedgerRecord:
    """The entry's record as its columns hold it."""
    return LedgerRecord(
        **{name: row[name] for name in _PROJECTED},
        transaction_bytes=row["transaction_bytes"],
        decision_bytes=row["decision_bytes"],
    )


def _projection_mismatch(row: asyncpg.Record) -> str | None:
    """Which column disagrees with the entry's blobs, or None."""
    try:
        transaction = transaction_pb2.Transaction.FromString(row["transaction_bytes"])
        decision = decision_pb2.Decision.FromString(row["decision_bytes"])
    except DecodeError:
        return "the stored Transaction or Decision is not a valid sentinel.v1 message"
    expected = record_from_messages(transaction, decision, transaction_bytes=row["transaction_bytes"])
    for name in _PROJECTED:
        if getattr(expected, name) != row[name]:
            return f"column {name} differs from the stored Transaction/Decision"
    return None


def _entry_fault(row: asyncpg.Record, previous: bytes, chain_id: int) -> str | None:
    """Why the entry in ``row`` does not verify after the entry hashed ``previous``, or None."""
    try:
        expected = entry_hash(
            previous, row["sequence"], chain_id, epoch_microseconds(row["recorded_at"]), _stored_record(row)
        )
    except ValueError as exc:
        return f"stored values are invalid: {exc}"
    if expected != bytes(row["entry_hash"]):
        return (
            "stored hash differs from the recomputed one: this entry, or the chain before it, was "
            "changed, inserted or deleted"
        )
    return _projection_mismatch(row)


async def verify_ledger(dsn: str) -> VerifyReport:
    """Check every chain, the checkpoints, the key index and the balances in one consistent snapshot."""
    report = VerifyReport()
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            checkpoints = await connection.fetch(_CHECKPOINTS)
            report.checkpoints = len(checkpoints)
            against = _CheckpointCheck(checkpoints, await connection.fetch(_CHECKPOINT_HEADS))
            chain_id, previous, chain_broken = 0, b"", False  # chain ids start at 1
            async for row in connection.cursor(_ENTRIES, prefetch=2_000):
                report.entries += 1
                if row["chain_id"] != chain_id:
                    chain_id = int(row["chain_id"])
                    previous, chain_broken = genesis_hash(chain_id), False
                stored = bytes(row["entry_hash"])
                report.chains[chain_id] = stored.hex()
                against.entry(row, chain_id, stored)
                if chain_broken:
                    continue
                reason = _entry_fault(row, previous, chain_id)
                if reason is not None:
                    report.broken.append(_broken(row, chain_id, reason))
                    chain_broken = True
                previous = stored
            against.finish()
            report.checkpoint_mismatches = against.mismatches
            report.balance_mismatches = [tuple(row) for row in await connection.fetch(_BALANCE_MISMATCHES)]
            report.keys_without_entry = [tuple(row) for row in await connection.fetch(_KEYS_WITHOUT_ENTRY)]
            report.entries_without_key = [tuple(row) for row in await connection.fetch(_ENTRIES_WITHOUT_KEY)]
            report.replay_conflicts = [tuple(row) for row in await connection.fetch(_REPLAY_CONFLICTS)]
    finally:
        await connection.close()
    return report


async def take_checkpoint(dsn: str) -> Checkpoint:
    """Record the chain heads that moved since the last checkpoint, acting as the owner role.

    ``dsn`` must be a login that is a member of the owner role (the one that runs migrations): the
    service's writer role may read checkpoints but not write them.
    """
    connection = await asyncpg.connect(dsn, server_settings={"role": OWNER_ROLE})
    try:
        async with connection.transaction():
            checkpoint_id = await connection.fetchval("SELECT ledger.take_checkpoint($1)", CHECKPOINT_GRACE)
            taken_at = await connection.fetchval(
                "SELECT taken_at FROM ledger.checkpoints WHERE checkpoint_id = $1", checkpoint_id
            )
            heads = [
                CheckpointHead(
                    row["checkpoint_id"], row["chain_id"], row["sequence"], row["entry_hash"].hex()
                )
                for row in await connection.fetch(_LATEST_HEADS)
            ]
    finally:
        await connection.close()
    return Checkpoint(checkpoint_id, taken_at, heads)
