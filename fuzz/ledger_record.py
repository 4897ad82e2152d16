"""Fuzz target ``ledger_record``: the spool's on-disk record codec, which replay reads back into the ledger.

While Postgres is away, decisions are spooled to local segment files (``ledger.spool``) and replayed
into Postgres later, so whatever a segment holds goes into the ledger. An input is a mode byte and
bytes: even mode, one record's payload (``decode_record``); odd mode, a segment's bytes, frames and all
(``decode_frames``). Asserted:

- the only error is the documented one, SpoolCorruptError;
- every record read has the types LedgerRecord declares and meets its documented checks, restated
  here: non-empty ids, no NUL and nothing without a UTF-8 form in the texts, a 32-byte fingerprint, a
  positive finite amount PostgreSQL's numeric can hold, a three-letter currency code, a known outcome,
  a finite float risk score;
- records round-trip: ``decode_record(encode_record(r)) == r`` and the encoding is a fixed point (so a
  record is replayed exactly as it was spooled, amount digits included); a segment's records written
  again as frames read back the same.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

from sentinel.clients import make_transaction
from sentinel.ledger.records import (
    FINGERPRINT_BYTES,
    NUMERIC_MAX_FRACTION_DIGITS,
    NUMERIC_MAX_INTEGER_DIGITS,
    OUTCOMES,
    LedgerRecord,
    record_from_messages,
)
from sentinel.ledger.spool import (
    SpoolCorruptError,
    decode_frames,
    decode_record,
    encode_frames,
    encode_record,
)
from sentinel.v1 import decision_pb2

MAX_LEN = 16 * 1024
PAYLOAD, SEGMENT = 0, 1  # the mode byte's lowest bit
# JSON tokens: escapes (a lone surrogate, NUL, a line break), numbers at and past the edges, other types.
DICTIONARY = tuple(
    token.encode()
    for token in (
        "\\ud800",
        "\\u0000",
        "\\n",
        "E+999999",
        "E-99999",
        "1e999",
        "-0.0",
        "NaN",
        "Infinity",
        "true",
        "null",
        "[]",
        "{}",
        "1",
        '"APPROVE"',
        '"EUR"',
        "==",
    )
)
_TEXTS = ("transaction_id", "idempotency_key", "account_id", "counterparty_id", "currency", "outcome")
_BLOBS = ("fingerprint", "transaction_bytes", "decision_bytes")


def TestOneInput(data: bytes) -> None:  # the name atheris and libFuzzer use
    """Decode the input as a record or a segment; assert the properties of the module doc."""
    if not data:
        return
    body = data[1:]
    try:
        records = [decode_record(body)] if data[0] & 1 == PAYLOAD else decode_frames(body, "fuzz")
    except SpoolCorruptError:
        return
    for record in records:
        check_record(record)
    assert decode_frames(encode_frames(records), "fuzz") == records


def check_record(record: LedgerRecord) -> None:
    """The declared types and documented checks of a LedgerRecord, and the codec's round trip."""
    for name in _TEXTS:
        text = getattr(record, name)
        assert type(text) is str and "\x00" not in text, (name, text)
        text.encode()  # UnicodeEncodeError for a lone surrogate, which no database text can hold
    assert record.transaction_id and record.idempotency_key and record.account_id
    for name in _BLOBS:
        assert type(getattr(record, name)) is bytes, name
    assert len(record.fingerprint) == FINGERPRINT_BYTES
    amount = record.amount
    assert type(amount) is Decimal and amount.is_finite() and amount > 0, amount
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    assert len(digits) + exponent <= NUMERIC_MAX_INTEGER_DIGITS and -exponent <= NUMERIC_MAX_FRACTION_DIGITS
    currency = record.currency
    assert len(currency) == 3 and all("A" <= letter <= "Z" for letter in currency), currency
    assert record.outcome in OUTCOMES
    assert type(record.risk_score) is float and math.isfinite(record.risk_score), record.risk_score
    encoded = encode_record(record)
    assert decode_record(encoded) == record, encoded
    assert encode_record(decode_record(encoded)) == encoded


def seeds() -> list[bytes]:
    """Records as the server spools them (with and without optional parts) and a segment of them."""
    records = []
    for number, (amount, currency, outcome) in enumerate(
        [("9839.64", "EUR", "APPROVE"), ("120000", "JPY", "DECLINE"), ("0.000001", "XAU", "REVIEW")]
    ):
        transaction = make_transaction(
            transaction_id=f"t-{number}",
            idempotency_key="key-1" if number == 1 else "",
            account_id="C1231006815",
            counterparty_id="M1979787155" if number else "",
            amount=amount,
            currency=currency,
            event_time=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
            attributes={"mcc": "5967"} if number == 2 else None,
        )
        decision = decision_pb2.Decision(
            transaction_id=transaction.transaction_id,
            outcome=f"OUTCOME_{outcome}",
            risk_score=0.25 * number,
            model_version="gb-1",
        )
        records.append(record_from_messages(transaction, decision))
    segment_bytes = encode_frames(records)
    payloads = [bytes([PAYLOAD]) + encode_record(record) for record in records]
    return [*payloads, bytes([SEGMENT]) + segment_bytes, bytes([SEGMENT]) + segment_bytes[:-7]]
