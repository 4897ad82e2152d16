"""``sentinel ledger verify``: recompute every hash chain and the balances from the stored entries.

Changing, inserting or deleting an entry inside a chain makes the stored hash of that entry (or of
the entry after a deleted one) differ from the recomputed one; the report names the first broken
entry by sequence. The hash covers an entry's key and blobs (chain.py); every other column is a
projection of the blobs, so verify decodes them and compares each column with what they say.
Balances are a projection of the approved entries, so they are recomputed with exact NUMERIC sums
and compared too. What a chain alone cannot show: the removal of a chain's last entries, or a
rewrite that recomputes every later hash; anchoring the chain heads this command prints somewhere
the database's superuser cannot write closes that gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
from google.protobuf.message import DecodeError

from sentinel.ledger.chain import entry_hash, epoch_microseconds, genesis_hash
from sentinel.ledger.records import LedgerRecord, record_from_messages
from sentinel.v1 import decision_pb2, transaction_pb2

_ENTRIES = """
SELECT sequence, chain_id, recorded_at, idempotency_key, transaction_id, fingerprint, account_id,
       counterparty_id, amount, currency, outcome, risk_score, transaction_bytes, decision_bytes, entry_hash
FROM ledger.decisions
ORDER BY chain_id, sequence
"""
# The columns that are projections of the blobs (LedgerRecord fields of the same names).
_PROJECTED = ("transaction_id", "idempotency_key", "fingerprint", "account_id", "counterparty_id", "amount",
              "currency", "outcome", "risk_score")

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


@dataclass
class VerifyReport:
    """What verify found; ``ok`` when nothing."""

    entries: int = 0
    chains: dict[int, str] = field(default_factory=dict)  # chain id -> hex hash of its last entry
    broken: list[BrokenEntry] = field(default_factory=list)  # the first break of each broken chain
    balance_mismatches: list[tuple[str, str, Decimal | None, Decimal | None]] = field(default_factory=list)
    keys_without_entry: list[tuple[str, int]] = field(default_factory=list)
    entries_without_key: list[tuple[int, str]] = field(default_factory=list)

    @property
    def first_broken(self) -> BrokenEntry | None:
        """The broken entry with the lowest sequence."""
        return min(self.broken, key=lambda entry: entry.sequence, default=None)

    @property
    def ok(self) -> bool:
        return not (self.broken or self.balance_mismatches or self.keys_without_entry
                    or self.entries_without_key)


def _stored_record(row: asyncpg.Record) -> LedgerRecord:
    """The entry's record as its columns hold it."""
    return LedgerRecord(**{name: row[name] for name in _PROJECTED},
                        transaction_bytes=row["transaction_bytes"], decision_bytes=row["decision_bytes"])


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


async def verify_ledger(dsn: str) -> VerifyReport:
    """Check every chain, the key index and the balances in one consistent snapshot."""
    report = VerifyReport()
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            chain_id, previous, chain_broken = 0, b"", False  # chain ids start at 1
            async for row in connection.cursor(_ENTRIES, prefetch=2_000):
                report.entries += 1
                if row["chain_id"] != chain_id:
                    chain_id = int(row["chain_id"])
                    previous, chain_broken = genesis_hash(chain_id), False
                stored = bytes(row["entry_hash"])
                report.chains[chain_id] = stored.hex()
                if chain_broken:
                    continue
                reason = None
                try:
                    record = _stored_record(row)
                    expected = entry_hash(previous, row["sequence"], chain_id,
                                          epoch_microseconds(row["recorded_at"]), record)
                except ValueError as exc:
                    expected, reason = b"", f"stored values are invalid: {exc}"
                if expected != stored:
                    reason = reason or ("stored hash differs from the recomputed one: this entry, or the "
                                        "chain before it, was changed, inserted or deleted")
                else:
                    reason = _projection_mismatch(row)
                if reason is not None:
                    report.broken.append(
                        BrokenEntry(row["sequence"], chain_id, row["transaction_id"], reason)
                    )
                    chain_broken = True
                previous = stored
            report.balance_mismatches = [tuple(row) for row in await connection.fetch(_BALANCE_MISMATCHES)]
            report.keys_without_entry = [tuple(row) for row in await connection.fetch(_KEYS_WITHOUT_ENTRY)]
            report.entries_without_key = [tuple(row) for row in await connection.fetch(_ENTRIES_WITHOUT_KEY)]
    finally:
        await connection.close()
    return report
