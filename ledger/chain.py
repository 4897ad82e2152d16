"""Tamper evidence: every ledger entry's hash covers the entry and the hash of the previous entry of
its chain, so changing, inserting or deleting an entry inside a chain breaks every later link.

The writer computes the hashes (it knows the entries before they are stored) and ``sentinel ledger
verify`` recomputes them from the stored rows with the same function. The encoding is explicit and
unambiguous (fixed-width numbers, length-prefixed strings), never a repr or a JSON dump whose
formatting could drift between versions.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime

from sentinel.ledger.records import LedgerRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# sequence, chain id, recorded_at, risk score, model score, degraded, decided_at, #rules, #reasons
_FIXED = struct.Struct(">qqqdd?qII")
_VARIABLE_FIELDS = 13
_LENGTHS = struct.Struct(f">{_VARIABLE_FIELDS}I")


def epoch_microseconds(moment: datetime) -> int:
    """Exact microseconds since 1970 (no float rounding), as Postgres stores timestamptz."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def canonical_amount(record: LedgerRecord) -> str:
    """The amount as Postgres NUMERIC gives it back, minus trailing zeros: 10.50 and 10.5 hash alike."""
    return format(record.amount.normalize(), "f")


def genesis_hash(chain_id: int) -> bytes:
    """The 'previous hash' of a chain's first entry."""
    return hashlib.sha256(b"sentinel.ledger chain %d" % chain_id).digest()


def entry_hash(
    previous: bytes, sequence: int, chain_id: int, recorded_at: datetime, record: LedgerRecord
) -> bytes:
    """SHA-256 of the previous entry's hash and every stored field of this entry."""
    fixed = _FIXED.pack(
        sequence, chain_id, epoch_microseconds(recorded_at), record.risk_score, record.model_score,
        record.degraded, epoch_microseconds(record.decided_at), len(record.rules_fired), len(record.reasons),
    )
    variable = (
        record.idempotency_key.encode(),
        record.transaction_id.encode(),
        record.fingerprint,
        record.account_id.encode(),
        record.counterparty_id.encode(),
        canonical_amount(record).encode(),
        record.currency.encode(),
        record.outcome.encode(),
        record.model_version.encode(),
        "\x00".join(record.rules_fired).encode(),  # NUL cannot occur inside a field
        "\x00".join(record.reasons).encode(),
        record.transaction_bytes,
        record.decision_bytes,
    )
    lengths = _LENGTHS.pack(*map(len, variable))  # every length first, then the fields
    return hashlib.sha256(b"".join((previous, fixed, lengths, *variable))).digest()
