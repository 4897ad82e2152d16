"""The compiled request path (``WireDecoder``) gives exactly the results of the Python path it replaces.

The reference twin, per transaction: protobuf (upb) parses the request, ``validate_transaction`` checks
it, ``append_transaction`` makes it a row, ``SerializeToString(deterministic=True)`` + sha256 give its
canonical bytes and fingerprint. Compared with no tolerance: violations (field, description, order),
every column bit for bit, ids, amount texts, canonical bytes; and bodies are refused (WireDecodeError,
or an item error for the single-transaction requests) exactly when protobuf raises DecodeError.

One documented difference: upb iterates a map in a hash order that changes from process to process, so
the reference's attribute violations have no stable order; they are compared as a sorted block (the
decoder gives them in the deterministic serialization's key order).
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from unittest import mock

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sentinel.hotpath import (
    CHANNELS,
    TRANSACTION_TYPES,
    DecodedTransactions,
    InvalidTransactionValue,
    TransactionColumnsBuilder,
    WireDecodeError,
    WireDecoder,
    _wire,
    ledger_records,
)
from sentinel.hotpath import wire as hotpath_wire
from sentinel.hotpath._wire import transaction_is_canonical
from sentinel.hotpath.columns import _DTYPES
from sentinel.ledger.records import LedgerRecord
from sentinel.server import validate
from sentinel.server.errors import InvalidTransaction
from sentinel.server.outcome import OUTCOME_NAMES
from sentinel.server.requests import Decided
from sentinel.server.validate import validate_transaction
from sentinel.server.wire_columns import append_transaction
from sentinel.v1 import scoring_pb2, transaction_pb2

NOW = 1_700_000_000.25
SKEW = 86_400.0
EXPONENTS = validate.CURRENCY_EXPONENTS
PARITY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Transaction = transaction_pb2.Transaction


# ------------------------------------------------------------------------------------------ wire helpers
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if not byte & 0x80:
            return value, at


def split_fields(data: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """The top-level fields of serialized bytes (no groups) as (field, wire type, tag+length, value)."""
    fields = []
    at = 0
    while at < len(data):
        start = at
        key, at = read_varint(data, at)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, end = read_varint(data, at)
        elif wire_type == 1:
            end = at + 8
        elif wire_type == 5:
            end = at + 4
        else:
            assert wire_type == 2
            size, at = read_varint(data, at)
            end = at + size
        fields.append((field, wire_type, data[start:at], data[at:end]))
        at = end
    return fields


def batch_body(transactions: Sequence[bytes]) -> bytes:
    return b"".join(ld(1, data) for data in transactions)


# ---------------------------------------------------------------------------------------- the reference
def _normalized(violations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Attribute violations (the block the reference gives in upb's per-process hash order) sorted."""
    positions = [i for i, (field, _) in enumerate(violations) if ".attributes[" in field]
    result = list(violations)
    for position, violation in zip(positions, sorted(violations[i] for i in positions), strict=True):
        result[position] = violation
    return result


class Expected:
    """What the Python path gives for a list of parsed messages (None: the item could not be parsed)."""

    def __init__(
        self,
        messages: Sequence[transaction_pb2.Transaction | None],
        paths: Sequence[str],
        now: float,
        skew: float,
    ) -> None:
        self.count = len(messages)
        self.errors: list[tuple[int, list[tuple[str, str]]]] = []
        self.row_error: InvalidTransactionValue | None = None
        self.items: list[int] = []
        self.accounts: dict[str, int] = {}
        self.valid: list[Any] = []
        self.transaction_bytes: list[bytes] = []
        builder = TransactionColumnsBuilder(max(len(messages), 1))
        for index, (message, path) in enumerate(zip(messages, paths, strict=True)):
            if message is None:
                self.errors.append((index, [("transaction", "the request could not be parsed")]))
                continue
            try:
                txn = validate_transaction(message, now, skew, path)
            except InvalidTransaction as exc:
                self.errors.append((index, _normalized([(v.field, v.description) for v in exc.violations])))
                continue
            slot = self.accounts.setdefault(txn.account_id, len(self.accounts))
            try:
                append_transaction(builder, slot, txn)
            except InvalidTransactionValue as exc:
                self.row_error = self.row_error or exc
                continue
            self.items.append(index)
            self.valid.append(txn)
            self.transaction_bytes.append(message.SerializeToString(deterministic=True))
        self.columns = builder.build()

    def check(self, decode: Callable[[], DecodedTransactions]) -> DecodedTransactions | None:
        if self.row_error is not None:
            with pytest.raises(InvalidTransactionValue) as caught:
                decode()
            assert (caught.value.field, caught.value.description) == (
                self.row_error.field,
                self.row_error.description,
            )
            return None
        decoded = decode()
        assert decoded.count == self.count
        errors = []
        for index, violations in decoded.errors:
            if violations and violations[0][1].startswith("the request could not be parsed: "):
                assert len(violations) == 1 and violations[0][0] == "transaction"
                violations = [("transaction", "the request could not be parsed")]
            errors.append((index, _normalized(violations)))
        assert errors == self.errors
        assert decoded.items.dtype == np.intp
        assert decoded.items.tolist() == self.items
        assert decoded.accounts == list(self.accounts)
        assert len(decoded.columns) == len(self.items)
        for name, dtype in _DTYPES.items():
            column, expected = getattr(decoded.columns, name), getattr(self.columns, name)
            assert column.dtype == dtype and column.tobytes() == expected.tobytes(), name
        assert decoded.transaction_ids == [t.transaction_id for t in self.valid]
        assert decoded.idempotency_keys == [t.idempotency_key for t in self.valid]
        assert decoded.account_ids == [t.account_id for t in self.valid]
        assert decoded.counterparty_ids == [t.message.counterparty_id for t in self.valid]
        assert decoded.currencies == [t.currency for t in self.valid]
        assert decoded.amounts == [t.message.amount.amount for t in self.valid]
        assert decoded.transaction_bytes == self.transaction_bytes
        assert decoded.fingerprints == [hashlib.sha256(data).digest() for data in self.transaction_bytes]
        return decoded


def expect_batch(body: bytes, now: float = NOW, skew: float = SKEW) -> Expected | None:
    """The reference for a ScoreBatchRequest body; None when protobuf cannot parse it."""
    try:
        request = scoring_pb2.ScoreBatchRequest.FromString(body)
    except DecodeError:
        return None
    messages = list(request.transactions)
    return Expected(messages, [f"transactions[{i}]" for i in range(len(messages))], now, skew)


def expect_singles(bodies: Sequence[bytes], now: float = NOW, skew: float = SKEW) -> Expected:
    messages: list[transaction_pb2.Transaction | None] = []
    for body in bodies:
        try:
            messages.append(scoring_pb2.ScoreRequest.FromString(body).transaction)
        except DecodeError:
            messages.append(None)
    return Expected(messages, ["transaction"] * len(messages), now, skew)


def check_batch(
    body: bytes, decoder: WireDecoder | None = None, now: float = NOW
) -> DecodedTransactions | None:
    """Decode ``body`` both ways and compare; also as single-transaction requests when it has items."""
    decoder = decoder or WireDecoder(EXPONENTS, SKEW)
    expected = expect_batch(body, now)
    if expected is None:
        with pytest.raises(WireDecodeError):
            decoder.decode_batch(body, now)
        return None
    return expected.check(lambda: decoder.decode_batch(body, now))


def check_singles(bodies: Sequence[bytes], decoder: WireDecoder | None = None, now: float = NOW) -> None:
    decoder = decoder or WireDecoder(EXPONENTS, SKEW)
    expect_singles(bodies, now).check(lambda: decoder.decode_singles(bodies, now))


# ------------------------------------------------------------------------------------------- strategies
ID_ALPHABET = string.ascii_letters + string.digits + "._:-"
KEY_ALPHABET = string.ascii_letters + string.digits + "_.-"
ODD_CHARACTERS = "aZ9 -:.éЖ中😀\x00\t\n\x1f\x7f\x80\x9f\u2028\ufeff"
UNICODE = st.text(st.characters(codec="utf-8"), max_size=12)


def repeated(characters: str, low: int, high: int) -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, st.sampled_from(characters), st.integers(low, high))


valid_ids = st.one_of(st.text(ID_ALPHABET, min_size=1, max_size=20), repeated("a9-", 126, 128))
wild_ids = st.one_of(
    valid_ids, repeated("a", 127, 130), st.text(ODD_CHARACTERS + ID_ALPHABET, max_size=10), UNICODE
)
valid_printable = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=24),
    st.text(ID_ALPHABET, min_size=1, max_size=12),
    repeated("aé😀\x80\u2028", 120, 128),
)
wild_printable = st.one_of(
    valid_printable, repeated("aé😀", 127, 131), st.text(ODD_CHARACTERS, max_size=10), UNICODE
)
decimal_texts = st.builds(
    lambda whole, fraction: whole + ("" if fraction is None else "." + fraction),
    st.text("0123456789", min_size=1, max_size=19),
    st.none() | st.text("0123456789", min_size=1, max_size=9),
)
valid_amounts = st.one_of(
    st.builds(
        lambda whole, fraction: whole + ("" if fraction is None else "." + fraction),
        st.text("123456789", min_size=1, max_size=1).flatmap(
            lambda first: st.text("0123456789", max_size=17).map(lambda rest: first + rest)
        ),
        st.none() | st.text("0123456789", min_size=1, max_size=2),
    ),
    st.sampled_from(["100.00", "0.01", "1", "999999999999999999.99", "000012.5", "0.1", "123456789.12"]),
)
wild_amounts = st.one_of(
    valid_amounts,
    decimal_texts,
    st.sampled_from(
        [
            "0",
            "0.00",
            "",
            "-1",
            "1e5",
            "\u0661\u0662",
            " 1",
            "1.",
            ".5",
            "1..2",
            "12.5x",
            "9" * 19,
            "0.0000001",
            "1" * 40,
            "é" * 40,
            "\x00",
        ]
    ),
    UNICODE,
)
ALL_CURRENCIES = sorted(EXPONENTS)
valid_currencies = st.one_of(
    st.sampled_from(["EUR", "JPY", "BHD", "XAU", "CLF", "USD"]), st.sampled_from(ALL_CURRENCIES)
)
wild_currencies = st.one_of(
    valid_currencies,
    st.sampled_from(
        ["", "XXX", "XTS", "eur", "EURO", "€", "ÄÖÜ", "ABCDEFGHIJK\x00", "US", "ZZZ", "中文中文中文中文中"]
    ),
    UNICODE,
)
EARLIEST = validate.EARLIEST_EVENT_TIME
LATEST = int(NOW + SKEW)
valid_seconds = st.one_of(st.sampled_from([EARLIEST, LATEST, int(NOW)]), st.integers(EARLIEST, LATEST))
wild_seconds = st.one_of(
    valid_seconds,
    st.sampled_from([EARLIEST - 1, LATEST + 1, 0, -1, -(2**63), 2**63 - 1, 10**11, 2**53 + 1]),
    st.integers(-(2**63), 2**63 - 1),
)
valid_nanos = st.one_of(st.sampled_from([0, 1, 999_999_999]), st.integers(0, 999_999_999))
wild_nanos = st.one_of(
    valid_nanos, st.sampled_from([-1, 10**9, -(2**31), 2**31 - 1]), st.integers(-(2**31), 2**31 - 1)
)
latitudes = st.one_of(st.floats(-90, 90), st.sampled_from([-90.0, 90.0, -0.0, 0.0, 52.52]))
longitudes = st.one_of(st.floats(-180, 180), st.sampled_from([-180.0, 180.0, -0.0, 0.0, 13.4]))
wild_degrees = st.one_of(
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 90.0000001, math.nextafter(90, 91), -180.5, 1e308]),
)
valid_countries = st.one_of(st.just(""), st.text(string.ascii_uppercase, min_size=2, max_size=2))
wild_countries = st.one_of(
    valid_countries, st.sampled_from(["de", "D", "DEU", "ÄB", "D1", "\x00\x00"]), UNICODE
)
valid_devices = st.one_of(st.just(""), st.text(max_size=20), repeated("dé😀", 120, 128))
wild_devices = st.one_of(valid_devices, repeated("dé😀", 128, 131))
valid_ips = st.one_of(
    st.just(""),
    st.builds(lambda *octets: ".".join(map(str, octets)), *[st.integers(0, 255)] * 4),
    st.sampled_from(["::1", "2001:db8::1", "fe80::1%eth0", "::ffff:192.0.2.1", "0.0.0.0", "255.255.255.255"]),
)
wild_ips = st.one_of(
    valid_ips,
    st.sampled_from(
        [
            "1.2.3.04",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "\u0661.2.3.4",
            " 1.2.3.4",
            "1.2.3.4\n",
            "::g",
            "1.2.3.4%x",
            "fe80::1%",
            "localhost",
            "01.2.3.4",
            "1.2.3.-1",
            "1.2.3.1000",
        ]
    ),
    UNICODE,
)
valid_balances = st.one_of(
    st.none(),
    st.builds(
        lambda sign, whole, fraction: sign + whole + ("" if fraction is None else "." + fraction),
        st.sampled_from(["", "-"]),
        st.text("0123456789", min_size=1, max_size=18),
        st.none() | st.text("0123456789", min_size=1, max_size=8),
    ),
    st.sampled_from(["0", "-0", "-0.00000000", "123456789012345678.12345678", "1"]),
)
wild_balances = st.one_of(
    valid_balances,
    st.sampled_from(
        ["", "-", "--1", "+1", "1.123456789", "1e3", " 1", "1,0", "\u0661", "1" * 19, "1.", ".1"]
    ),
    UNICODE,
)
valid_keys = st.one_of(st.text(KEY_ALPHABET, min_size=1, max_size=12), repeated("k_", 60, 64))
wild_keys = st.one_of(
    valid_keys,
    st.sampled_from(["", "a b", "é", "x:y", "k" * 65, "a\x00", "'", '"']),
    UNICODE,
    repeated("é", 63, 66),
)
valid_values = st.one_of(st.text(max_size=12), repeated("vé😀", 250, 256))
wild_values = st.one_of(valid_values, repeated("vé😀", 255, 260))


@st.composite
def attribute_maps(
    draw: st.DrawFn, keys: st.SearchStrategy[str], values: st.SearchStrategy[str]
) -> dict[str, str]:
    size = draw(st.one_of(st.integers(0, 4), st.integers(30, 34)))
    return draw(st.dictionaries(keys, values, min_size=min(size, 2), max_size=size))


def _fit(amount: str, currency: str) -> str:
    """A valid amount with no more fraction digits than the currency allows."""
    whole, _, fraction = amount.partition(".")
    fraction = fraction[: EXPONENTS[currency]]
    fitted = whole + ("." + fraction if fraction else "")
    return fitted if fitted.strip("0.") else "1"


VALID: dict[str, st.SearchStrategy[Any]] = {
    "transaction_id": valid_ids,
    "idempotency_key": st.one_of(st.just(""), valid_ids),
    "account_id": valid_printable,
    "counterparty_id": st.one_of(st.just(""), valid_printable),
    "type": st.sampled_from(sorted(TRANSACTION_TYPES.values())),
    "channel": st.sampled_from(sorted(CHANNELS.values())),
    "amount": st.tuples(valid_amounts, valid_currencies).map(lambda pair: (_fit(*pair), pair[1])),
    "event_time": st.tuples(valid_seconds, valid_nanos),
    "geo": st.one_of(
        st.none(),
        st.tuples(st.none(), st.none(), valid_countries),
        st.tuples(latitudes, longitudes, valid_countries),
    ),
    "device_id": valid_devices,
    "ip_address": valid_ips,
    "balances": st.none() | st.tuples(valid_balances, valid_balances, valid_balances, valid_balances),
    "attributes": attribute_maps(valid_keys, valid_values).filter(lambda attributes: len(attributes) <= 32),
}
WILD: dict[str, st.SearchStrategy[Any]] = {
    "transaction_id": wild_ids,
    "idempotency_key": wild_ids,
    "account_id": wild_printable,
    "counterparty_id": wild_printable,
    "type": st.one_of(st.integers(0, 7), st.sampled_from([-1, 9, 2**31 - 1, -(2**31)])),
    "channel": st.one_of(st.integers(0, 8), st.sampled_from([-1, 100, 2**31 - 1, -(2**31)])),
    "amount": st.none() | st.tuples(wild_amounts, wild_currencies),
    "event_time": st.none() | st.tuples(wild_seconds, wild_nanos),
    "geo": st.tuples(
        st.none() | wild_degrees | latitudes, st.none() | wild_degrees | longitudes, wild_countries
    ),
    "device_id": wild_devices,
    "ip_address": wild_ips,
    "balances": st.tuples(wild_balances, wild_balances, wild_balances, wild_balances),
    "attributes": attribute_maps(wild_keys, wild_values),
}


def build(fields: dict[str, Any]) -> transaction_pb2.Transaction:
    message = Transaction()
    for name in (
        "transaction_id",
        "idempotency_key",
        "account_id",
        "counterparty_id",
        "device_id",
        "ip_address",
    ):
        setattr(message, name, fields[name])
    message.type = fields["type"]
    message.channel = fields["channel"]
    if fields["amount"] is not None:
        message.amount.SetInParent()
        message.amount.amount, message.amount.currency = fields["amount"]
    if fields["event_time"] is not None:
        message.event_time.SetInParent()
        message.event_time.seconds, message.event_time.nanos = fields["event_time"]
    if fields["geo"] is not None:
        latitude, longitude, country = fields["geo"]
        message.geo.SetInParent()
        if latitude is not None:
            message.geo.latitude = latitude
        if longitude is not None:
            message.geo.longitude = longitude
        message.geo.country = country
    if fields["balances"] is not None:
        message.balances.SetInParent()
        for name, value in zip(
            ("origin_before", "origin_after", "destination_before", "destination_after"),
            fields["balances"],
            strict=True,
        ):
            if value is not None:
                setattr(message.balances, name, value)
    message.attributes.update(fields["attributes"])
    return message


@st.composite
def transactions(draw: st.DrawFn, wild: bool = True) -> transaction_pb2.Transaction:
    """Valid transactions, and (``wild``) ones with a few fields drawn from adversarial values."""
    fields = {name: draw(strategy) for name, strategy in VALID.items()}
    if wild and draw(st.booleans()):
        for name in draw(st.lists(st.sampled_from(sorted(WILD)), min_size=1, max_size=4, unique=True)):
            fields[name] = draw(WILD[name])
    return build(fields)


@st.composite
def unknown_fields(draw: st.DrawFn, depth: int = 0) -> bytes:
    """An unknown field: a number past the schema's (or a known one with another wire type), any type."""
    field = draw(st.one_of(st.integers(14, 40), st.sampled_from([2**29 - 1, 1, 5, 6, 7, 13, 1000])))
    wire_type = draw(st.sampled_from([0, 1, 2, 3, 5] if depth < 3 else [0, 1, 2, 5]))
    if (field in (5, 9) and wire_type == 0) or (field in (1, 6, 7, 13) and wire_type == 2):
        wire_type = 5  # a known field with its own type is no unknown field
    if wire_type == 0:
        return tag(field, 0) + varint(draw(st.integers(0, 2**64 - 1)))
    if wire_type == 1:
        return tag(field, 1) + draw(st.binary(min_size=8, max_size=8))
    if wire_type == 5:
        return tag(field, 5) + draw(st.binary(min_size=4, max_size=4))
    if wire_type == 2:
        return ld(field, draw(st.binary(max_size=6)))  # not UTF-8 checked: unknown
    inner = b"".join(draw(st.lists(unknown_fields(depth + 1), max_size=2)))
    return tag(field, 3) + inner + tag(field, 4)


@st.composite
def encodings(draw: st.DrawFn, message: transaction_pb2.Transaction) -> bytes:
    """The message serialized the way clients do (deterministic), or any other valid way: another map
    order, fields shuffled or repeated, unknown fields (also inside sub-messages), non-minimal lengths."""
    canonical = message.SerializeToString(deterministic=True)
    kind = draw(
        st.sampled_from(
            ["deterministic", "deterministic", "plain", "shuffled", "unknown", "repeated", "lengths"]
        )
    )
    if kind == "deterministic":
        return canonical
    if kind == "plain":
        return message.SerializeToString()
    fields = split_fields(canonical)
    if kind == "shuffled":
        fields = draw(st.permutations(fields))
    elif kind == "unknown":
        rebuilt = []
        for field, wire_type, head, value in fields:
            if field in (6, 7, 8, 12, 13) and draw(st.booleans()):
                value += draw(unknown_fields())
                head = tag(field, wire_type) + varint(len(value))
            rebuilt.append((field, wire_type, head, value))
        fields = rebuilt
        for _ in range(draw(st.integers(1, 3))):
            position = draw(st.integers(0, len(fields)))
            fields.insert(position, (0, 0, draw(unknown_fields()), b""))
    elif kind == "repeated" and fields:
        fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(fields)))
        defaults = [tag(5, 0) + b"\x00", tag(9, 0) + b"\x00", ld(1, b""), ld(6, b""), ld(7, ld(3, b""))]
        fields.insert(draw(st.integers(0, len(fields))), (0, 0, draw(st.sampled_from(defaults)), b""))
    elif kind == "lengths":
        rebuilt = []
        for field, wire_type, head, value in fields:
            if wire_type == 2 and draw(st.booleans()):
                extra = draw(
                    st.integers(1, 5 - len(varint(len(value)))) if len(varint(len(value))) < 5 else st.just(0)
                )
                length = bytearray(varint(len(value)))
                if extra:
                    length[-1] |= 0x80
                    length += b"\x80" * (extra - 1) + b"\x00"
                head = tag(field, wire_type) + bytes(length)
            rebuilt.append((field, wire_type, head, value))
        fields = rebuilt
    return b"".join(head + value for _, _, head, value in fields)


# ------------------------------------------------------------------------------------------------ tests
def test_limits_are_the_server_validation_limits() -> None:
    assert hotpath_wire.MAX_ID_LENGTH == validate.MAX_ID_LENGTH
    assert hotpath_wire.MAX_ATTRIBUTES == validate.MAX_ATTRIBUTES
    assert hotpath_wire.MAX_ATTRIBUTE_VALUE == validate.MAX_ATTRIBUTE_VALUE
    assert hotpath_wire.MAX_TRANSACTION_BYTES == validate.MAX_TRANSACTION_BYTES
    assert hotpath_wire.EARLIEST_EVENT_TIME == validate.EARLIEST_EVENT_TIME
    # the literal limits of validate.py's regular expressions and messages
    assert validate._PRINTABLE_ID.pattern.endswith(f"{{1,{hotpath_wire.MAX_PRINTABLE_ID_LENGTH}}}")
    assert validate._ATTRIBUTE_KEY.pattern.endswith(f"{{1,{hotpath_wire.MAX_ATTRIBUTE_KEY_LENGTH}}}")
    assert hotpath_wire.MAX_DEVICE_ID_LENGTH == 128
    assert set(TRANSACTION_TYPES.values()) == validate._TYPES
    assert set(CHANNELS.values()) == validate._CHANNELS


@PARITY
@given(st.lists(transactions(), max_size=6), st.data())
def test_batches_match_the_python_path(
    messages: list[transaction_pb2.Transaction], data: st.DataObject
) -> None:
    for message in messages:
        canonical = message.SerializeToString(deterministic=True)
        assert transaction_is_canonical(canonical)  # what clients send takes the fast path
    encoded = [data.draw(encodings(message)) for message in messages]
    body = batch_body(encoded)
    if data.draw(st.booleans()):  # unknown fields of the request itself, field 1 with other wire types
        body = data.draw(unknown_fields()) + body + tag(1, 0) + varint(7) + tag(1, 5) + b"abcd"
    check_batch(body)
    for transaction_bytes in encoded:
        expected = Transaction.FromString(transaction_bytes)
        expected.DiscardUnknownFields()
        # canonical exactly when the bytes are the deterministic serialization of what they decode to
        canonical = expected.SerializeToString(deterministic=True)
        assert transaction_is_canonical(transaction_bytes) == (transaction_bytes == canonical)


@PARITY
@given(st.lists(transactions(wild=False), min_size=1, max_size=8))
def test_valid_transactions_are_all_rows(messages: list[transaction_pb2.Transaction]) -> None:
    body = batch_body([m.SerializeToString(deterministic=True) for m in messages])
    # what clients send never takes the slow path through protobuf
    with mock.patch.object(_wire, "canonical_transaction", side_effect=AssertionError("slow path")):
        decoded = check_batch(body)
    assert decoded is not None and not decoded.errors and len(decoded.columns) == len(messages)


@PARITY
@given(st.lists(transactions(), min_size=1, max_size=6), st.sampled_from(sorted(OUTCOME_NAMES)))
def test_decoded_rows_make_ledger_records_that_pass_the_records_own_checks(
    messages: list[transaction_pb2.Transaction], outcome: int
) -> None:
    """The scoring path builds its ledger records without checking them again (the compiled
    ``ledger_records``): whatever the decoder lets through, the record's checks accept."""
    body = batch_body([m.SerializeToString(deterministic=True) for m in messages])
    decoded = WireDecoder(EXPONENTS, SKEW).decode_batch(body, NOW)
    rows = list(range(len(decoded.transaction_ids)))
    decided = [Decided(b"\x08\x01", outcome, 0.25, False, "v1")] * len(rows)
    for record in ledger_records(
        LedgerRecord,
        [decoded],
        np.zeros(len(rows), np.int32),
        np.arange(len(rows)),
        rows,
        decided,
        OUTCOME_NAMES,
    ):
        assert replace(record) == record  # replace() builds it again through every check


@PARITY
@given(st.lists(transactions(), max_size=4), st.data())
def test_single_requests_match_the_python_path(
    messages: list[transaction_pb2.Transaction], data: st.DataObject
) -> None:
    bodies = []
    for message in messages:
        encoded = data.draw(encodings(message))
        shape = data.draw(st.sampled_from(["one", "one", "split", "unknown", "garbage", "empty"]))
        if shape == "one":
            bodies.append(ld(1, encoded))
        elif shape == "split":  # a singular message field given twice: protobuf merges the two
            fields = split_fields(encoded) if encoded == message.SerializeToString(deterministic=True) else []
            cut = data.draw(st.integers(0, len(fields)))
            first = b"".join(h + v for _, _, h, v in fields[:cut])
            second = b"".join(h + v for _, _, h, v in fields[cut:])
            bodies.append(ld(1, first) + data.draw(unknown_fields()) + ld(1, second))
        elif shape == "unknown":
            bodies.append(data.draw(unknown_fields()) + ld(1, encoded) + data.draw(unknown_fields()))
        elif shape == "garbage":
            bodies.append(data.draw(st.binary(max_size=12)))
        else:
            bodies.append(b"")
    check_singles(bodies)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=48))
@example(b"")
@example(b"\x0a\x00")
@example(b"\x0b\x0c")
@example(b"\x03\x04")
@example(b"\x2b\x00\x00\x2c")
def test_random_bodies_are_refused_exactly_when_protobuf_refuses_them(body: bytes) -> None:
    check_batch(body)
    check_singles([body])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(transactions(), min_size=1, max_size=3), st.data())
def test_mutated_bodies_are_refused_exactly_when_protobuf_refuses_them(
    messages: list[transaction_pb2.Transaction], data: st.DataObject
) -> None:
    body = bytearray(batch_body([data.draw(encodings(m)) for m in messages]))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            body[position] = data.draw(st.integers(0, 255))
        elif action == "insert":
            body[position:position] = data.draw(st.binary(min_size=1, max_size=3))
        elif len(body) > 1:
            del body[position]
    check_batch(bytes(body))
    check_singles([ld(1, bytes(body)), bytes(body)])


def _typical(n: int) -> list[transaction_pb2.Transaction]:
    messages = []
    for i in range(n):
        message = build(
            {name: None for name in VALID}
            | {
                "transaction_id": f"txn-{i}",
                "idempotency_key": f"key-{i}",
                "account_id": f"C{i % 2}",
                "counterparty_id": "M1",
                "type": 2,
                "channel": 1,
                "amount": ("100.00", "EUR"),
                "event_time": (int(NOW) - 10, 5),
                "geo": (52.52, 13.4, "DE"),
                "device_id": "dev-1",
                "ip_address": "192.0.2.1",
                "balances": ("1.5", None, "-2", "0"),
                "attributes": {"mcc": "5967", "b": ""},
            }
        )
        messages.append(message)
    return messages


def test_every_truncation_is_refused_like_protobuf() -> None:
    body = batch_body([m.SerializeToString(deterministic=True) for m in _typical(2)])
    for end in range(len(body)):
        check_batch(body[:end])
        check_singles([body[:end], ld(1, body[:end])])


STRING_FIELDS: dict[str, Callable[[bytes], bytes]] = {
    "transaction_id": lambda s: ld(1, s),
    "idempotency_key": lambda s: ld(2, s),
    "account_id": lambda s: ld(3, s),
    "counterparty_id": lambda s: ld(4, s),
    "device_id": lambda s: ld(10, s),
    "ip_address": lambda s: ld(11, s),
    "amount.amount": lambda s: ld(6, ld(1, s)),
    "amount.currency": lambda s: ld(6, ld(2, s)),
    "geo.country": lambda s: ld(8, ld(3, s)),
    "balances.origin_before": lambda s: ld(12, ld(1, s)),
    "balances.origin_after": lambda s: ld(12, ld(2, s)),
    "balances.destination_before": lambda s: ld(12, ld(3, s)),
    "balances.destination_after": lambda s: ld(12, ld(4, s)),
    "attributes key": lambda s: ld(13, ld(1, s) + ld(2, b"v")),
    "attributes value": lambda s: ld(13, ld(1, b"k") + ld(2, s)),
}
BAD_UTF8 = [
    b"\xff",
    b"\x80",
    b"\xc0\x80",
    b"\xc1\xbf",
    b"\xe0\x80\x80",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xe2\x82",
    b"a\xf0\x9f\x98",
    b"\xf0\x80\x80\x80",
]
GOOD_UTF8 = [
    b"",
    "é".encode(),
    "€".encode(),
    "😀".encode(),
    b"\xed\x9f\xbf",
    b"\xee\x80\x80",
    b"\xf4\x8f\xbf\xbf",
    b"\x00\x7f",
    "\u2028".encode(),
]


@pytest.mark.parametrize("field", sorted(STRING_FIELDS))
def test_invalid_utf8_in_any_string_field_is_refused(field: str) -> None:
    prefix = _typical(1)[0].SerializeToString(deterministic=True)
    for text in BAD_UTF8 + GOOD_UTF8:
        transaction = prefix + STRING_FIELDS[field](text)
        for body in (
            ld(1, transaction),
            ld(1, STRING_FIELDS[field](text)),
            ld(1, ld(1, b"t") + ld(99, text)),
        ):
            check_batch(body)
            check_singles([body])
        refused = expect_batch(ld(1, transaction)) is None
        assert refused == (text in BAD_UTF8)


def _groups(levels: int, field: int = 20) -> bytes:
    return tag(field, 3) * levels + tag(field, 4) * levels


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_groups(100), id="100 groups in the request"),
        pytest.param(_groups(101), id="101 groups in the request"),
        pytest.param(ld(1, _groups(99)), id="99 groups in a transaction"),
        pytest.param(ld(1, _groups(100)), id="100 groups in a transaction"),
        pytest.param(ld(1, ld(6, _groups(98))), id="98 groups in money"),
        pytest.param(ld(1, ld(6, _groups(99))), id="99 groups in money"),
        pytest.param(ld(1, ld(13, _groups(98))), id="98 groups in a map entry"),
        pytest.param(ld(1, ld(13, _groups(99))), id="99 groups in a map entry"),
        pytest.param(tag(20, 3) + tag(21, 4), id="mismatched end group"),
        pytest.param(tag(20, 3), id="unterminated group"),
        pytest.param(tag(20, 4), id="end group in the request"),
        pytest.param(ld(1, tag(20, 4)), id="end group in a transaction"),
        pytest.param(ld(1, tag(20, 3)) + tag(20, 4), id="group closed outside its message"),
        pytest.param(
            tag(20, 3) + b"\x00\x00" + b"\x02\x00" + tag(0, 3) + tag(0, 4) + tag(20, 4),
            id="field 0 in a group",
        ),
        pytest.param(tag(20, 3) + tag(0, 4) + tag(20, 4), id="end group 0 in a group"),
        pytest.param(b"\x00\x00", id="field 0"),
        pytest.param(ld(1, b"\x00\x00"), id="field 0 in a transaction"),
        pytest.param(ld(1, ld(13, b"\x00\x00")), id="field 0 in a map entry"),
        pytest.param(b"\x0e", id="wire type 6"),
        pytest.param(tag(20, 3) + b"\x0f" + tag(20, 4), id="wire type 7 in a group"),
        pytest.param(b"\x8a\x80\x80\x80\x00\x00", id="5-byte tag"),
        pytest.param(b"\x8a\x80\x80\x80\x80\x00\x00", id="6-byte tag"),
        pytest.param(b"\xfa\xff\xff\xff\x1f\x00", id="tag over 32 bits"),
        pytest.param(b"\xfa\xff\xff\xff\x0f\x00", id="largest field number"),
        pytest.param(b"\x0a\x80\x80\x80\x80\x00", id="5-byte length"),
        pytest.param(b"\x0a\x80\x80\x80\x80\x80\x00", id="6-byte length"),
        pytest.param(ld(1, tag(5, 0) + b"\xff" * 9 + b"\x7f"), id="10-byte varint with high bits"),
        pytest.param(ld(1, tag(5, 0) + b"\xff" * 10 + b"\x01"), id="11-byte varint"),
        pytest.param(
            ld(1, ld(5, b"\x01") + tag(6, 0) + b"\x01" + tag(7, 5) + b"abcd" + tag(13, 1) + bytes(8)),
            id="known fields with other wire types",
        ),
        pytest.param(
            ld(1, tag(6, 3) + tag(6, 4)) + tag(1, 3) + ld(1, b"") + tag(1, 4), id="message fields as groups"
        ),
        pytest.param(ld(1, ld(7, tag(1, 0) + b"\x80")), id="varint past the end of its message"),
        pytest.param(ld(1, ld(8, tag(1, 1) + bytes(7))) + bytes(1), id="double past the end of its message"),
    ],
)
def test_hand_built_bodies(body: bytes) -> None:
    check_batch(body)
    check_singles([body])


def test_undecodable_singles_are_item_errors() -> None:
    decoded = WireDecoder(EXPONENTS, SKEW).decode_singles([b"\x0a\x05ab", b"", ld(1, ld(1, b"\xff"))], NOW)
    assert [index for index, _ in decoded.errors] == [0, 1, 2]
    field, description = decoded.errors[0][1][0]
    assert field == "transaction" and description.startswith("the request could not be parsed: truncated")
    assert decoded.errors[2][1][0][1].startswith("the request could not be parsed: invalid UTF-8")
    assert decoded.errors[1][1][0] == ("transaction.transaction_id", "is required")


def test_an_unparsable_batch_raises_wire_decode_error() -> None:
    with pytest.raises(WireDecodeError, match="invalid UTF-8 in a string field at byte 4"):
        WireDecoder(EXPONENTS, SKEW).decode_batch(ld(1, ld(1, b"\xff")), NOW)
    assert issubclass(WireDecodeError, ValueError)


def test_map_entries_in_upbs_deterministic_order_are_canonical() -> None:
    message = Transaction(transaction_id="t")
    keys = ["a", "ab", "b", "", "abc", "B", "aa", "a\x00", "é", "z"]
    message.attributes.update({key: "v" for key in keys})
    data = message.SerializeToString(deterministic=True)
    entries = [value for field, _, _, value in split_fields(data) if field == 13]
    written = [split_fields(entry)[0][3].decode() for entry in entries]
    # bytewise on the common prefix, the longer key first when one is a prefix of the other
    assert written == ["B", "a\x00", "aa", "abc", "ab", "a", "b", "z", "é", ""]
    assert transaction_is_canonical(data)
    swapped = split_fields(data)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert not transaction_is_canonical(b"".join(h + v for _, _, h, v in swapped))
    # entries always have both key and value, even empty
    assert ld(13, ld(1, b"") + ld(2, b"v")) in data


def test_explicit_presence_fields_are_written_when_set_to_defaults() -> None:
    message = Transaction()
    message.amount.SetInParent()
    message.event_time.SetInParent()
    message.geo.latitude = 0.0
    message.balances.origin_before = ""
    data = message.SerializeToString(deterministic=True)
    assert data == ld(6, b"") + ld(7, b"") + ld(8, tag(1, 1) + bytes(8)) + ld(12, ld(1, b""))
    assert transaction_is_canonical(data)
    assert not transaction_is_canonical(ld(1, b"") + data)  # an implicit-presence default written
    assert not transaction_is_canonical(tag(5, 0) + b"\x00" + data)
    assert not transaction_is_canonical(ld(7, tag(1, 0) + b"\x00"))


def test_negative_int32_values_are_canonical_only_as_ten_byte_varints() -> None:
    data = tag(5, 0) + varint(-1) + tag(9, 0) + varint(-(2**31))
    assert Transaction.FromString(data).SerializeToString(deterministic=True) == data
    assert transaction_is_canonical(data)
    assert not transaction_is_canonical(tag(5, 0) + varint(2**32 - 1))  # -1 as a 5-byte varint
    check_batch(ld(1, tag(5, 0) + varint(2**32 - 1)))
    check_batch(ld(1, tag(5, 0) + varint(2**32 + 3)))  # int32 keeps the low 32 bits: type 3


def test_attribute_violations_come_in_the_deterministic_key_order() -> None:
    message = _typical(1)[0]
    message.attributes.update({"b b": "x", "a a": "y", "z": "v" * 300, "a": "v" * 257})
    decoded = WireDecoder(EXPONENTS, SKEW).decode_batch(ld(1, message.SerializeToString()), NOW)
    assert [field for field, _ in decoded.errors[0][1]] == [
        "transactions[0].attributes['a a']",
        "transactions[0].attributes['a']",
        "transactions[0].attributes['b b']",
        "transactions[0].attributes['z']",
    ]


def test_oversized_transactions() -> None:
    message = _typical(1)[0]
    message.ip_address = "fe80::1%" + "x" * validate.MAX_TRANSACTION_BYTES  # valid, no length limit
    check_batch(ld(1, message.SerializeToString(deterministic=True)))
    message.attributes.update({f"k{i}": "é" * 300 for i in range(40)})
    decoded = check_batch(ld(1, message.SerializeToString()))
    assert decoded is not None and decoded.errors[0][1][-1][0] == "transactions[0]"


@pytest.mark.parametrize(
    ("now", "skew"),
    [
        (NOW, 0.0),
        (math.inf, 0.0),
        (math.nan, 5.0),
        (-math.inf, 1.0),
        (2.0**53 + 2, 1.0),
        (9.3e18, 0.0),
        (-1e19, 0.0),
    ],
)
@pytest.mark.parametrize("seconds", [EARLIEST, int(NOW), 2**53 + 1, 2**53 + 3, 2**62, 2**63 - 1, -(2**63)])
def test_event_time_bounds_compare_exactly(now: float, skew: float, seconds: int) -> None:
    message = _typical(1)[0]
    message.event_time.seconds = seconds
    body = ld(1, message.SerializeToString(deterministic=True))
    expect_batch(body, now, skew).check(lambda: WireDecoder(EXPONENTS, skew).decode_batch(body, now))  # type: ignore[union-attr]


def test_currency_tables_of_any_shape() -> None:
    exponents: dict[str, Any] = {
        "EUR": 2,
        "JPY": 0,
        "eur": 3,
        "EURO": 1,
        "€": 2,
        "BIG": 10**30,
        "NEG": -1,
        "HUGE": 40000,
        "NON": None,
    }
    amounts = ["1", "1.5", "1.123", "0.1234", "7." + "1" * 50]
    messages = []
    for currency in [*exponents, "USD", ""]:
        for amount in amounts:
            message = _typical(1)[0]
            message.amount.currency, message.amount.amount = currency, amount
            messages.append(message)
    body = batch_body([m.SerializeToString(deterministic=True) for m in messages])
    with mock.patch.object(validate, "CURRENCY_EXPONENTS", exponents):
        check_batch(body, WireDecoder(exponents, SKEW))


def test_amounts_and_balances_convert_like_python_float() -> None:
    texts = [
        "0.1",
        "0.3",
        "123456789012345678",
        "999999999999999999.99",
        "1.00000000000000000000001",
        "9007199254740993",
        "0.000000000000000000000001",
        "5",
        "123456.789012345678901234567",
    ]
    exponents = dict(EXPONENTS, EUR=40)
    messages = []
    for text in texts:
        message = _typical(1)[0]
        message.amount.currency = "XAU" if len(text.partition(".")[2]) <= 6 else "EUR"
        message.amount.amount = text
        whole, _, fraction = text.partition(".")
        message.balances.origin_before = "-" + whole + ("." + fraction[:8] if fraction else "")
        messages.append(message)
    body = batch_body([m.SerializeToString(deterministic=True) for m in messages])
    with mock.patch.object(validate, "CURRENCY_EXPONENTS", exponents):
        decoded = check_batch(body, WireDecoder(exponents, SKEW))
    assert decoded is not None and len(decoded.columns) == len(texts)
    assert decoded.columns.amount.tolist() == [float(t) for t in texts]
    assert decoded.columns.origin_before.tolist() == [float(m.balances.origin_before) for m in messages]


def test_row_problems_raise_like_the_builder() -> None:
    message = _typical(1)[0]
    message.event_time.seconds = 2 * 10**11  # valid for a replay (no clock bound), beyond MAX_EVENT_TIME
    body = ld(1, message.SerializeToString(deterministic=True))
    expected = expect_batch(body, math.inf, 0.0)
    assert expected is not None and expected.row_error is not None
    expected.check(lambda: WireDecoder(EXPONENTS, 0.0).decode_batch(body, math.inf))


def test_the_result() -> None:
    messages = _typical(3)
    messages[1].amount.amount = "0"
    messages[2].idempotency_key = ""
    decoded = check_batch(batch_body([m.SerializeToString(deterministic=True) for m in messages]))
    assert decoded is not None
    assert decoded.count == 3
    assert decoded.items.tolist() == [0, 2]
    assert decoded.errors == [(1, [("transactions[1].amount.amount", "must be greater than zero")])]
    assert decoded.accounts == ["C0"] and decoded.columns.account_slot.tolist() == [0, 0]
    assert decoded.idempotency_keys == ["key-0", "txn-2"]
    assert decoded.amounts == ["100.00", "100.00"] and decoded.currencies == ["EUR", "EUR"]
    empty = WireDecoder(EXPONENTS, SKEW).decode_batch(b"", NOW)
    assert empty.count == 0 and len(empty.columns) == 0 and empty.items.shape == (0,)
    assert WireDecoder(EXPONENTS, SKEW).decode_singles([], NOW).count == 0
