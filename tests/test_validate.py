"""The validate stage: every contract violation is named by field; valid input passes unchanged."""

from __future__ import annotations

import ipaddress
import time
from decimal import Decimal

import pytest

from sentinel.server.errors import InvalidTransaction
from sentinel.server.validate import MAX_TRANSACTION_BYTES, validate_transaction
from sentinel.v1 import transaction_pb2

NOW = time.time()


def make_transaction(**overrides: object) -> transaction_pb2.Transaction:
    txn = transaction_pb2.Transaction(
        transaction_id="t-1",
        account_id="C123",
        counterparty_id="M456",
        type=transaction_pb2.TRANSACTION_TYPE_PAYMENT,
        amount=transaction_pb2.Money(amount="120.50", currency="EUR"),
        geo=transaction_pb2.GeoLocation(latitude=52.52, longitude=13.4, country="DE"),
        device_id="device-1",
        ip_address="192.0.2.10",
    )
    txn.event_time.FromSeconds(int(NOW) - 5)
    for name, value in overrides.items():
        if isinstance(value, transaction_pb2.Money | transaction_pb2.GeoLocation):
            getattr(txn, name).CopyFrom(value)
        else:
            setattr(txn, name, value)
    return txn


def violations(txn: transaction_pb2.Transaction) -> dict[str, str]:
    with pytest.raises(InvalidTransaction) as caught:
        validate_transaction(txn, NOW, 86_400)
    return {v.field: v.description for v in caught.value.violations}


def test_valid_transaction() -> None:
    result = validate_transaction(make_transaction(), NOW, 86_400)
    assert result.amount == Decimal("120.50")
    assert result.currency == "EUR"
    assert result.idempotency_key == "t-1"
    assert result.event_time == int(NOW) - 5


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"transaction_id": ""}, "transaction.transaction_id", "is required"),
        ({"transaction_id": "x" * 129}, "transaction.transaction_id", "1 to 128"),
        ({"transaction_id": "a b"}, "transaction.transaction_id", "[A-Za-z0-9._:-]"),
        ({"idempotency_key": "k\n"}, "transaction.idempotency_key", "1 to 128"),
        ({"account_id": ""}, "transaction.account_id", "is required"),
        ({"account_id": "a" * 200}, "transaction.account_id", "printable"),
        ({"type": 0}, "transaction.type", "is required"),
        ({"type": 42}, "transaction.type", "unknown transaction type 42"),
        ({"channel": 99}, "transaction.channel", "unknown channel 99"),
        (
            {"amount": transaction_pb2.Money(amount="-5", currency="EUR")},
            "transaction.amount.amount",
            "non-negative decimal",
        ),
        (
            {"amount": transaction_pb2.Money(amount="abc", currency="EUR")},
            "transaction.amount.amount",
            "non-negative decimal",
        ),
        (
            {"amount": transaction_pb2.Money(amount="1e5", currency="EUR")},
            "transaction.amount.amount",
            "non-negative decimal",
        ),
        (
            {"amount": transaction_pb2.Money(amount="0.00", currency="EUR")},
            "transaction.amount.amount",
            "greater than zero",
        ),
        (
            {"amount": transaction_pb2.Money(amount="1.005", currency="EUR")},
            "transaction.amount.amount",
            "EUR allows at most 2 fraction digits",
        ),
        (
            {"amount": transaction_pb2.Money(amount="10.5", currency="JPY")},
            "transaction.amount.amount",
            "JPY allows at most 0",
        ),
        (
            {"amount": transaction_pb2.Money(amount="10", currency="EUX")},
            "transaction.amount.currency",
            "unknown ISO 4217 currency code 'EUX'",
        ),
        (
            {"amount": transaction_pb2.Money(amount="10", currency="")},
            "transaction.amount.currency",
            "is required",
        ),
        (
            {"geo": transaction_pb2.GeoLocation(latitude=95, longitude=1)},
            "transaction.geo.latitude",
            "between -90 and 90",
        ),
        (
            {"geo": transaction_pb2.GeoLocation(latitude=float("nan"), longitude=1)},
            "transaction.geo.latitude",
            "between -90 and 90",
        ),
        ({"geo": transaction_pb2.GeoLocation(latitude=1)}, "transaction.geo", "set together"),
        ({"geo": transaction_pb2.GeoLocation(country="Germany")}, "transaction.geo.country", "alpha-2"),
        ({"ip_address": "999.1.1.1"}, "transaction.ip_address", "not an IPv4 or IPv6"),
        ({"device_id": "d" * 129}, "transaction.device_id", "at most 128"),
    ],
)
def test_violation_names_field(overrides: dict[str, object], field: str, fragment: str) -> None:
    found = violations(make_transaction(**overrides))
    assert field in found, found
    assert fragment in found[field]


def test_missing_amount_and_time() -> None:
    txn = make_transaction()
    txn.ClearField("amount")
    txn.ClearField("event_time")
    assert set(violations(txn)) == {"transaction.amount", "transaction.event_time"}


@pytest.mark.parametrize(
    ("seconds", "fragment"),
    [(0, "before 2000-01-01"), (int(NOW) + 3 * 86_400, "in the future")],
)
def test_absurd_timestamps(seconds: int, fragment: str) -> None:
    txn = make_transaction()
    txn.event_time.FromSeconds(seconds)
    assert fragment in violations(txn)["transaction.event_time"]


def test_oversized_attributes() -> None:
    txn = make_transaction()
    txn.attributes["mcc"] = "x" * 300
    assert "at most 256" in violations(txn)["transaction.attributes['mcc']"]
    txn = make_transaction()
    for index in range(33):
        txn.attributes[f"k{index}"] = "v"
    assert "at most 32 entries" in violations(txn)["transaction.attributes"]


def test_balance_fields() -> None:
    txn = make_transaction()
    txn.balances.origin_before = "100.00"
    txn.balances.origin_after = "NaN"
    assert set(violations(txn)) == {"transaction.balances.origin_after"}


def test_path_prefix_for_batches() -> None:
    with pytest.raises(InvalidTransaction) as caught:
        validate_transaction(make_transaction(transaction_id=""), NOW, 86_400, "transactions[7]")
    assert caught.value.violations[0].field == "transactions[7].transaction_id"


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.1",
        "01.2.3.4",
        "1.2.3.04",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4 ",
        "::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:1.2.3.4",
        "1.2.3.٤",
        "localhost",
    ],
)
def test_ip_address_accepted_exactly_as_ipaddress_does(address: str) -> None:
    """The dotted-quad fast path must neither accept nor reject what ipaddress would not."""
    try:
        ipaddress.ip_address(address)
        expected: set[str] = set()
    except ValueError:
        expected = {"transaction.ip_address"}
    assert set(_violations_or_none(make_transaction(ip_address=address))) == expected


def test_every_bad_balance_is_named_in_field_order() -> None:
    txn = make_transaction()
    txn.balances.destination_after = "x"
    txn.balances.origin_before = ""
    assert list(violations(txn)) == [
        "transaction.balances.origin_before",
        "transaction.balances.destination_after",
    ]


def _violations_or_none(txn: transaction_pb2.Transaction) -> dict[str, str]:
    try:
        validate_transaction(txn, NOW, 86_400)
    except InvalidTransaction as exc:
        return {v.field: v.description for v in exc.violations}
    return {}


def test_a_balance_holding_a_newline_is_named() -> None:
    txn = make_transaction()
    txn.balances.origin_before = "1\n2"
    txn.balances.origin_after = "3"
    txn.balances.destination_before = "4"
    txn.balances.destination_after = "5"
    assert list(violations(txn)) == ["transaction.balances.origin_before"]
    txn.balances.origin_before = "1"
    assert _violations_or_none(txn) == {}


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    """One wire-format LEN field: tag, varint length, payload."""
    length, varint = len(payload), bytearray()
    while length >= 0x80:
        varint.append(length & 0x7F | 0x80)
        length >>= 7
    varint.append(length)
    return bytes([field_number << 3 | 2]) + bytes(varint) + payload


def test_unknown_fields_are_dropped_before_storage() -> None:
    known = make_transaction().SerializeToString()
    unknown = _length_delimited(15, b"u" * 5 * 1024 * 1024)
    # 5 MiB of unknown fields at the top and one inside amount (a repeated message field merges)
    wire = known + unknown + _length_delimited(6, _length_delimited(9, b"inside money"))
    result = validate_transaction(transaction_pb2.Transaction.FromString(wire), NOW, 86_400)
    assert result.message.SerializeToString() == known


def test_stored_size_is_bounded() -> None:
    # an IPv6 scope id has no length limit of its own
    txn = make_transaction(ip_address="fe80::1%" + "s" * MAX_TRANSACTION_BYTES)
    assert f"limit of {MAX_TRANSACTION_BYTES} bytes" in violations(txn)["transaction"]
