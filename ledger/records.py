"""What the ledger stores for one decision, and what the writer answers.

A LedgerRecord is checked when it is built, so a malformed record fails its own request instead of
the whole group-commit transaction it would have joined (Postgres rejects, for example, text with a
NUL character).
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NamedTuple

from sentinel.v1 import decision_pb2, transaction_pb2

Outcome = Literal["APPROVE", "REVIEW", "DECLINE"]
OUTCOMES: frozenset[str] = frozenset({"APPROVE", "REVIEW", "DECLINE"})
_CURRENCY = re.compile(r"[A-Z]{3}")
# What PostgreSQL cannot store in a text column: NUL, and lone surrogates (they have no UTF-8 form).
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
FINGERPRINT_BYTES = 32
# PostgreSQL's numeric holds at most this many digits before the decimal point, and this many after it.
NUMERIC_MAX_INTEGER_DIGITS = 131_072
NUMERIC_MAX_FRACTION_DIGITS = 16_383


class AckStatus(enum.Enum):
    """How far a submitted record got when submit() returned."""

    COMMITTED = "committed"  # in a committed Postgres transaction (or already there: see existed)
    SPOOLED = "spooled"  # fsync'd to the local spool while Postgres is unavailable; replayed later
    QUEUED = "queued"  # ack=async: in memory only, written shortly (lost if the process dies first)


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One decision to record: the two protobuf blobs are the record; the other fields are the
    projections the ledger indexes and sums (decision 0005). Strings may not contain NUL."""

    transaction_id: str
    idempotency_key: str
    fingerprint: bytes  # sha256 of the canonical transaction bytes: same key + other data = conflict
    account_id: str
    counterparty_id: str
    amount: Decimal
    currency: str
    outcome: Outcome
    risk_score: float
    transaction_bytes: bytes  # serialized sentinel.v1.Transaction
    decision_bytes: bytes  # serialized sentinel.v1.Decision (ledger_sequence 0: it is not known yet)

    def __post_init__(self) -> None:
        for name in ("transaction_id", "idempotency_key", "account_id"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        texts = (self.transaction_id, self.idempotency_key, self.account_id, self.counterparty_id)
        if _UNSTORABLE_TEXT.search("".join(texts)):
            raise ValueError("ledger text fields must not contain NUL characters or lone surrogates")
        if len(self.fingerprint) != FINGERPRINT_BYTES:
            raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes (sha256)")
        amount = self.amount
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            raise ValueError(f"amount must be a finite Decimal greater than zero (got {amount!r})")
        fraction_digits = -int(amount.as_tuple().exponent)  # an int: the amount is finite
        if amount.adjusted() >= NUMERIC_MAX_INTEGER_DIGITS or fraction_digits > NUMERIC_MAX_FRACTION_DIGITS:
            raise ValueError(
                f"amount must have at most {NUMERIC_MAX_INTEGER_DIGITS} digits before the decimal point "
                f"and {NUMERIC_MAX_FRACTION_DIGITS} after it, PostgreSQL's bounds (got {amount:.6e})"
            )
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code such as EUR (got {self.currency!r})")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)} (got {self.outcome!r})")
        if not math.isfinite(self.risk_score):
            raise ValueError("risk_score must be finite")


class LedgerAck(NamedTuple):
    """The writer's answer for one submitted record.

    ``existed`` is True when the idempotency key was already in the ledger (or earlier in the same
    submission): ``sequence``, ``stored_fingerprint`` and ``stored_decision`` then describe the stored
    entry, and ``conflict`` tells a key reused for different data (ALREADY_EXISTS) from an honest retry
    (answer with the stored decision, marked replayed). ``sequence`` is 0 unless ``status`` is
    COMMITTED: spooled and queued records get theirs when they are written.
    """

    idempotency_key: str
    status: AckStatus
    sequence: int = 0
    existed: bool = False
    stored_fingerprint: bytes | None = None
    stored_decision: bytes | None = None
    conflict: bool = False


def transaction_fingerprint(canonical_transaction: bytes) -> bytes:
    """The fingerprint of a transaction: sha256 of its canonical (deterministic) serialization."""
    return hashlib.sha256(canonical_transaction).digest()


def record_from_messages(
    transaction: transaction_pb2.Transaction,
    decision: decision_pb2.Decision,
    *,
    transaction_bytes: bytes | None = None,
    fingerprint: bytes | None = None,
    decision_bytes: bytes | None = None,
    amount: Decimal | None = None,
) -> LedgerRecord:
    """Build the record of a scored transaction from the two protobuf messages.

    Both messages are stored as their deterministic serialization, so the same transaction always gets
    the same fingerprint. A caller that already has any of the derived values (the serializations, the
    fingerprint, the parsed amount) passes them, so the scoring path computes none of them twice.
    """
    if transaction_bytes is None:
        transaction_bytes = transaction.SerializeToString(deterministic=True)
    if decision_bytes is None:
        decision_bytes = decision.SerializeToString(deterministic=True)
    return LedgerRecord(
        transaction_id=transaction.transaction_id,
        idempotency_key=transaction.idempotency_key or transaction.transaction_id,
        fingerprint=fingerprint or transaction_fingerprint(transaction_bytes),
        account_id=transaction.account_id,
        counterparty_id=transaction.counterparty_id,
        amount=Decimal(transaction.amount.amount) if amount is None else amount,
        currency=transaction.amount.currency,
        outcome=decision_pb2.Outcome.Name(decision.outcome).removeprefix("OUTCOME_"),  # type: ignore[arg-type]
        risk_score=decision.risk_score,
        transaction_bytes=transaction_bytes,
        decision_bytes=decision_bytes,
    )
