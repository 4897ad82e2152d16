"""Fuzz target ``request_decoder``: scoring request bytes through the compiled decoder (``WireDecoder``).

Each input is a ScoreBatchRequest body for ``decode_batch``, and the same bytes cut at SEPARATOR are
ScoreRequest bodies for one ``decode_singles`` call (a body without SEPARATOR is one ScoreRequest: its
field 1 is the batch's). The clock is fixed (NOW), so that a crash replays, and each input is decoded
with the default ``max_clock_skew_s`` and with the widest the settings allow. Asserted for every input,
against the Python twin (protobuf, ``validate_transaction``, ``append_transaction``, the deterministic
serialization) as the reference:

- ``decode_batch`` raises WireDecodeError exactly when protobuf cannot parse the body, and nothing else;
  ``decode_singles`` raises nothing (an unparsable body is that item's error, UNDECODABLE);
- every item is either a row or an error, never both; rows come in item order;
- an item is a row exactly when the twin accepts it (otherwise the twin's violations, in any order), and
  a row holds the twin's ids, amount, currency, canonical bytes, fingerprint and every column bit;
- what a row hands on to Redis and the ledger stands on its own: the hot path's row check finds it
  usable, its account slot names its account, its bytes are within MAX_TRANSACTION_BYTES, and the ledger
  record the record stage builds from it passes LedgerRecord's checks.

The compiled decoder carries no coverage instrumentation: the guidance comes from the twin (validation
branches, regular expressions), which reads every field the decoder reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
from google.protobuf.message import DecodeError

from sentinel.clients import make_transaction
from sentinel.config import Settings
from sentinel.hotpath import (
    DecodedTransactions,
    TransactionColumnsBuilder,
    WireDecodeError,
    WireDecoder,
    ledger_records,
)
from sentinel.hotpath._constants import ROW_USABLE
from sentinel.hotpath.columns import _DTYPES
from sentinel.hotpath.reference_features import row_problem
from sentinel.hotpath.wire import MAX_TRANSACTION_BYTES, UNDECODABLE
from sentinel.ledger.records import LedgerRecord
from sentinel.server.errors import InvalidTransaction
from sentinel.server.outcome import APPROVE, OUTCOME_NAMES
from sentinel.server.requests import Decided
from sentinel.server.validate import CURRENCY_EXPONENTS, ValidatedTransaction, validate_transaction
from sentinel.server.wire_columns import append_transaction
from sentinel.v1 import scoring_pb2, transaction_pb2

NOW = 1_700_000_000.25  # the decoder's clock: fixed, so that a crash replays
_SKEW = Settings.model_fields["max_clock_skew_s"]
SKEWS = (_SKEW.default, float(next(bound.le for bound in _SKEW.metadata if hasattr(bound, "le"))))
SEPARATOR = b"\xff\xfe\xfd\xfc"  # cuts an input into ScoreRequest bodies (never valid protobuf)
MAX_LEN = 48 * 1024  # past MAX_TRANSACTION_BYTES, so oversized transactions can be reached

# Tokens the mutations insert: a tag of every Transaction field with its own wire type and some with
# another, a group, and values at the validation's edges (a negative int32, NaN, 90 and 180 degrees).
DICTIONARY = (
    *(bytes([field << 3 | 2]) for field in (1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 13)),
    b"\x28",  # type (5), varint
    b"\x48",  # channel (9), varint
    b"\x09",  # geo.latitude (1), fixed64
    b"\x11",  # geo.longitude (2), fixed64
    b"\x0b",  # a group (1) ...
    b"\x0c",  # ... and its end
    b"\x7f\xff\xff\xff\x0f",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x00\x00\x00\x00\x00\x00\xf8\x7f",
    b"\x00\x00\x00\x00\x00\x80\x56\x40",
    b"\x00\x00\x00\x00\x00\x80\x66\x40",
    b"EUR",
    b"JPY",
    b"BHD",
    b"XAU",
    b"::ffff:1.2.3.4",
    b"fe80::1%",
    SEPARATOR,
)
DECODERS = {skew: WireDecoder(CURRENCY_EXPONENTS, skew) for skew in SKEWS}
DECIDED = Decided(  # stands for the decision of any row
    decision=b"", outcome=APPROVE, risk_score=0.5, degraded=False, model_version="fuzz"
)

Reference = transaction_pb2.Transaction | None  # the item as protobuf parses it; None: it does not


def TestOneInput(data: bytes) -> None:  # the name atheris and libFuzzer use
    """Decode ``data`` as a batch and as single requests; assert the properties of the module doc."""
    for skew, decoder in DECODERS.items():
        _decode(data, decoder, skew)


def _decode(data: bytes, decoder: WireDecoder, skew: float) -> None:
    try:
        batch = scoring_pb2.ScoreBatchRequest.FromString(data)
    except DecodeError:
        try:
            decoder.decode_batch(data, NOW)
        except WireDecodeError:
            pass
        else:
            raise AssertionError("decode_batch accepted a body protobuf refuses")
    else:
        transactions: list[Reference] = list(batch.transactions)
        check(decoder.decode_batch(data, NOW), transactions, "transactions[{}]", skew)
    bodies = data.split(SEPARATOR)
    check(decoder.decode_singles(bodies, NOW), [_single(body) for body in bodies], "transaction", skew)


def _single(body: bytes) -> Reference:
    try:
        return scoring_pb2.ScoreRequest.FromString(body).transaction
    except DecodeError:
        return None


def check(decoded: DecodedTransactions, messages: Sequence[Reference], path: str, skew: float) -> None:
    """``decoded`` against the twin's verdict on each item (``path``: the item's field path pattern),
    both with the clock skew ``skew``."""
    assert decoded.count == len(messages), (decoded.count, len(messages))
    items = decoded.items.tolist()
    errors = dict(decoded.errors)
    assert len(errors) == len(decoded.errors), "an item reported twice"
    assert sorted(items) == items and len(set(items)) == len(items), items
    assert not set(items) & set(errors), "an item is both a row and an error"
    assert set(items) | set(errors) == set(range(decoded.count)), "an item is neither row nor error"
    rows: list[ValidatedTransaction] = []
    builder = TransactionColumnsBuilder(max(len(items), 1))
    accounts: dict[str, int] = {}
    for item, message in enumerate(messages):
        if message is None:
            (violation,) = errors[item]
            assert violation[0] == "transaction" and violation[1].startswith(UNDECODABLE), violation
            continue
        try:
            txn = validate_transaction(message, NOW, skew, path.format(item))
        except InvalidTransaction as exc:
            expected = sorted((v.field, v.description) for v in exc.violations)
            assert item in errors, f"item {item} is a row, the twin refuses it: {expected}"
            assert sorted(errors[item]) == expected, (errors[item], expected)
            continue
        assert item in items, f"item {item} is refused ({errors.get(item)}), the twin accepts it"
        append_transaction(builder, accounts.setdefault(txn.account_id, len(accounts)), txn)
        rows.append(txn)
    _check_rows(decoded, rows)
    expected_columns = builder.build()
    for name in _DTYPES:
        column = getattr(decoded.columns, name)
        assert column.tobytes() == getattr(expected_columns, name).tobytes(), name
    assert decoded.accounts == list(accounts)


def _check_rows(decoded: DecodedTransactions, rows: list[ValidatedTransaction]) -> None:
    """The per-row values against the twin's, and what each row hands on."""
    assert len(decoded.columns) == len(rows) == len(decoded.items)
    assert decoded.transaction_ids == [txn.transaction_id for txn in rows]
    assert decoded.idempotency_keys == [txn.idempotency_key for txn in rows]
    assert decoded.account_ids == [txn.account_id for txn in rows]
    assert decoded.counterparty_ids == [txn.message.counterparty_id for txn in rows]
    assert decoded.currencies == [txn.currency for txn in rows]
    assert decoded.amounts == [txn.message.amount.amount for txn in rows]
    canonical = [txn.message.SerializeToString(deterministic=True) for txn in rows]
    assert decoded.transaction_bytes == canonical
    assert decoded.fingerprints == [hashlib.sha256(data).digest() for data in canonical]
    for row in range(len(rows)):
        assert row_problem(decoded.columns, row, len(decoded.accounts)) == ROW_USABLE, row
        assert decoded.accounts[decoded.columns.account_slot[row]] == decoded.account_ids[row]
        assert len(decoded.transaction_bytes[row]) <= MAX_TRANSACTION_BYTES
    indexes = list(range(len(rows)))
    for record in ledger_records(
        LedgerRecord,
        [decoded],
        np.zeros(len(indexes), np.int32),
        np.arange(len(indexes)),
        indexes,
        [DECIDED] * len(rows),
        OUTCOME_NAMES,
    ):
        replace(record)  # the record's own checks: raises when the ledger would refuse it


def seeds() -> list[bytes]:
    """Typical bodies: valid transactions of every shape, refused ones, and non-canonical encodings."""
    when = datetime.fromtimestamp(NOW - 60, UTC)
    plain = make_transaction(
        transaction_id="t-1", account_id="C1231006815", amount="9839.64", currency="EUR", event_time=when
    )
    full = make_transaction(
        transaction_id="t-2",
        idempotency_key="key-2",
        account_id="C1231006815",
        counterparty_id="M1979787155",
        amount="120000",
        currency="JPY",
        event_time=when,
        type="TRANSFER",
        latitude=52.52,
        longitude=13.4,
        country="DE",
        device_id="d-1",
        ip_address="2001:db8::1",
        attributes={"mcc": "5967", "channel.note": "é"},
    )
    full.channel = transaction_pb2.CHANNEL_WEB
    full.balances.origin_before, full.balances.origin_after = "10000.5", "-0.01"
    refused = make_transaction(
        transaction_id="bad id", account_id="", amount="0.001", currency="EUR", event_time=when
    )
    refused.event_time.nanos = -1
    refused.geo.latitude = 91.0
    refused.ip_address = "1.2.3.04"
    refused.attributes["a b"] = "x"
    late = make_transaction(  # valid with the widest skew only
        transaction_id="t-3", account_id="C2", amount="1", currency="BHD", event_time=when
    )
    late.event_time.seconds = int(NOW + SKEWS[-1])
    items = [m.SerializeToString(deterministic=True) for m in (plain, full, refused)]
    batch = scoring_pb2.ScoreBatchRequest(transactions=[plain, full, refused, late])
    unknown = items[0] + b"\x78\x01"  # field 15, varint: an unknown field (the non-canonical path)
    return [
        batch.SerializeToString(deterministic=True),
        batch.SerializeToString(),  # map entries in the runtime's order
        b"\x0a" + bytes([len(unknown)]) + unknown,
        # a three-byte length prefix where fewer would do (valid, not canonical)
        b"\x0a" + bytes([len(items[1]) & 0x7F | 0x80, len(items[1]) >> 7 | 0x80, 0]) + items[1],
        SEPARATOR.join(scoring_pb2.ScoreRequest(transaction=m).SerializeToString() for m in (plain, full)),
        b"",
    ]
