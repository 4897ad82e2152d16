"""Tamper evidence: every ledger entry's hash covers the entry and the hash of the previous entry of
its chain, so changing, inserting or deleting an entry inside a chain breaks every later link.

An entry is its position (sequence, chain, recorded_at), its idempotency key and the two protobuf
blobs it stores (the canonical Transaction and the Decision); the hash covers exactly those. The
other columns of an entry are projections of the blobs (account, amount, outcome, ...), which
``sentinel ledger verify`` compares with the blobs instead of hashing them a second time.

The writer computes the hashes (it knows the entries before they are stored), with the compiled twin of
``entry_hash`` (``sentinel.hotpath.entry_rows``, one call per group; tests/test_ledger_compiled.py holds
the two equal), and verify recomputes them with ``entry_hash``. The encoding is explicit and
unambiguous (fixed-width numbers, lengths before the variable fields), never a repr or a JSON dump
whose formatting could drift.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime

from sentinel.ledger.records import LedgerRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# sequence, chain id, recorded_at (µs since 1970), then the lengths of key, transaction, decision
_HEADER = struct.Struct(">qqqIII")


def epoch_microseconds(moment: datetime) -> int:
    """Exact microseconds since 1970 (no float rounding), as Postgres stores timestamptz."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def genesis_hash(chain_id: int) -> bytes:
    """The 'previous hash' of a chain's first entry."""
    return hashlib.sha256(b"sentinel.ledger chain %d" % chain_id).digest()


def entry_hash(
    previous: bytes, sequence: int, chain_id: int, recorded_at_us: int, record: LedgerRecord
) -> bytes:
    """SHA-256 of the previous entry's hash, the entry's position, key and blobs.

    ``recorded_at_us`` is ``epoch_microseconds(recorded_at)``: a group shares one, computed once.
    """
    key = record.idempotency_key.encode()
    transaction, decision = record.transaction_bytes, record.decision_bytes
    header = _HEADER.pack(sequence, chain_id, recorded_at_us, len(key), len(transaction), len(decision))
    return hashlib.sha256(b"".join((previous, header, key, transaction, decision))).digest()
