"""The *validate* stage: turn a wire Transaction into a checked, typed value or name what is wrong.

Everything the later stages rely on is checked here, once, so the hot path never sees a NaN, an
unknown currency or an absurd timestamp. Violations name the field with its full path, the way
clients address it (``transaction.amount.currency``, ``transactions[3].event_time``).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

from iso4217 import Currency

from sentinel.hotpath.wire import (
    EARLIEST_EVENT_TIME,
    MAX_ATTRIBUTE_KEY_LENGTH,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    MAX_DEVICE_ID_LENGTH,
    MAX_ID_LENGTH,
    MAX_PRINTABLE_ID_LENGTH,
    MAX_TRANSACTION_BYTES,
)
from sentinel.server.errors import FieldViolation, InvalidTransaction
from sentinel.v1 import transaction_pb2

_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_ID_LENGTH}}}")
_PRINTABLE_ID = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_PRINTABLE_ID_LENGTH}}}")
_AMOUNT = re.compile(r"(?P<int>[0-9]{1,18})(?:\.(?P<frac>[0-9]+))?")
_BALANCE = re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{1,8})?")
# All four balances at once, one per line: the common case costs one match instead of four.
_FOUR_BALANCES = re.compile(rf"{_BALANCE.pattern}(?:\n{_BALANCE.pattern}){{3}}")
_BALANCE_FIELDS = ("origin_before", "origin_after", "destination_before", "destination_after")
_COUNTRY = re.compile(r"[A-Z]{2}")
_ATTRIBUTE_KEY = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_ATTRIBUTE_KEY_LENGTH}}}")
# Dotted-quad IPv4 exactly as ipaddress accepts it (no leading zeros); anything else goes to ipaddress.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# ISO 4217 codes without a minor unit (precious metals, funds) accept this many fraction digits.
UNITLESS_FRACTION_DIGITS = 6
_NOT_CURRENCIES = frozenset({"XXX", "XTS"})  # "no currency" and "testing" codes
CURRENCY_EXPONENTS: dict[str, int] = {
    currency.code: (UNITLESS_FRACTION_DIGITS if currency.exponent is None else currency.exponent)
    for currency in Currency
    if currency.code not in _NOT_CURRENCIES
}
_TYPES = frozenset(transaction_pb2.TransactionType.values()) - {0}
_CHANNELS = frozenset(transaction_pb2.Channel.values())


class ValidatedTransaction(NamedTuple):
    """A transaction whose every field has been checked; the wire message is kept for the ledger.

    A NamedTuple rather than a frozen dataclass: as immutable, and built once per transaction on the
    request path at a quarter of the cost."""

    message: transaction_pb2.Transaction
    transaction_id: str
    idempotency_key: str
    account_id: str
    amount: Decimal
    currency: str
    event_time: float  # seconds since the epoch


def _check_money_fraction(fraction: str | None, currency: str, exponent: int | None) -> str | None:
    if fraction is None or exponent is None:
        return None
    if len(fraction) > exponent:
        return f"{currency} allows at most {exponent} fraction digits, got {len(fraction)}"
    return None


def validate_transaction(
    message: transaction_pb2.Transaction, now: float, max_skew_s: float, path: str = "transaction"
) -> ValidatedTransaction:
    """Check ``message`` against the contract; raise InvalidTransaction listing every violation.

    Unknown fields are dropped from ``message`` (in place): the ledger stores the message as it is, and
    what this server cannot read it must not store (proto3 ignores them, so they are not refused). Runs
    once per transaction on the request path, so every field is read from the message once."""
    message.DiscardUnknownFields()
    violations: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        violations.append(FieldViolation(f"{path}.{field}", description))

    transaction_id = message.transaction_id
    if not transaction_id:
        bad("transaction_id", "is required")
    elif not _ID.fullmatch(transaction_id):
        bad("transaction_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
    idempotency_key = message.idempotency_key
    if idempotency_key and not _ID.fullmatch(idempotency_key):
        bad("idempotency_key", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
    account_id = message.account_id
    if not account_id:
        bad("account_id", "is required")
    elif not _PRINTABLE_ID.fullmatch(account_id):
        bad("account_id", "must be 1 to 128 printable characters")
    counterparty_id = message.counterparty_id
    if counterparty_id and not _PRINTABLE_ID.fullmatch(counterparty_id):
        bad("counterparty_id", "must be at most 128 printable characters")
    kind = message.type
    if kind == 0:
        bad("type", "is required")
    elif kind not in _TYPES:
        bad("type", f"unknown transaction type {kind}")
    if message.channel not in _CHANNELS:
        bad("channel", f"unknown channel {message.channel}")

    amount = Decimal(0)
    money = message.amount
    currency = money.currency
    if not message.HasField("amount"):
        bad("amount", "is required")
    else:
        exponent = CURRENCY_EXPONENTS.get(currency)
        if not currency:
            bad("amount.currency", "is required")
        elif exponent is None:
            bad("amount.currency", f"unknown ISO 4217 currency code {currency[:8]!r}")
        text = money.amount
        match = _AMOUNT.fullmatch(text)
        if match is None:
            bad("amount.amount", f"must be a non-negative decimal number such as '12.50', got {text[:32]!r}")
        else:
            amount = Decimal(text)
            if amount <= 0:
                bad("amount.amount", "must be greater than zero")
            problem = _check_money_fraction(match.group("frac"), currency, exponent)
            if problem:
                bad("amount.amount", problem)

    event_time = 0.0
    if not message.HasField("event_time"):
        bad("event_time", "is required")
    else:
        stamp = message.event_time
        seconds, nanos = stamp.seconds, stamp.nanos
        if not 0 <= nanos <= 999_999_999:
            bad("event_time", "nanos must be between 0 and 999,999,999")
        elif seconds < EARLIEST_EVENT_TIME:
            bad("event_time", "must not be before 2000-01-01T00:00:00Z")
        elif seconds > now + max_skew_s:
            bad("event_time", f"lies more than {max_skew_s:.0f} s in the future")
        else:
            event_time = seconds + nanos / 1e9

    if message.HasField("geo"):
        _check_geo(message.geo, bad)
    if len(message.device_id) > MAX_DEVICE_ID_LENGTH:
        bad("device_id", f"must be at most {MAX_DEVICE_ID_LENGTH} characters")
    ip = message.ip_address
    if ip and not _IPV4.fullmatch(ip):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            bad("ip_address", f"not an IPv4 or IPv6 address: {ip[:64]!r}")
    if message.HasField("balances"):
        _check_balances(message.balances, bad)
    attributes = message.attributes
    if len(attributes) > MAX_ATTRIBUTES:
        bad("attributes", f"at most {MAX_ATTRIBUTES} entries allowed, got {len(attributes)}")
    elif attributes:
        for key, value in attributes.items():
            if not _ATTRIBUTE_KEY.fullmatch(key):
                bad(f"attributes[{key[:64]!r}]", "key must be 1 to 64 characters of [A-Za-z0-9_.-]")
            elif len(value) > MAX_ATTRIBUTE_VALUE:
                bad(f"attributes[{key!r}]", f"value must be at most {MAX_ATTRIBUTE_VALUE} characters")
    size = message.ByteSize()
    if size > MAX_TRANSACTION_BYTES:
        violations.append(
            FieldViolation(
                path, f"is {size} bytes serialized, over the limit of {MAX_TRANSACTION_BYTES} bytes"
            )
        )

    if violations:
        raise InvalidTransaction(violations)
    return ValidatedTransaction(
        message, transaction_id, idempotency_key or transaction_id, account_id, amount, currency, event_time
    )


def validate_recorded(transaction_bytes: bytes) -> ValidatedTransaction:
    """A transaction read back from the ledger (its serialized ``Transaction``) as a typed value again,
    for a replay (backtests, ``sentinel state rebuild``).

    The clock-skew bound is left out: it held against the clock at the moment of scoring, and a replay
    takes every recorded transaction whatever the clock says today. Raises InvalidTransaction, or
    google.protobuf's DecodeError for bytes that are no Transaction."""
    message = transaction_pb2.Transaction.FromString(transaction_bytes)
    return validate_transaction(message, math.inf, 0.0)


def _check_geo(geo: transaction_pb2.GeoLocation, bad: Callable[[str, str], None]) -> None:
    has_lat, has_lon = geo.HasField("latitude"), geo.HasField("longitude")
    if has_lat != has_lon:
        bad("geo", "latitude and longitude must be set together")
    if has_lat:
        latitude = geo.latitude
        if not (math.isfinite(latitude) and -90.0 <= latitude <= 90.0):
            bad("geo.latitude", "must be between -90 and 90")
    if has_lon:
        longitude = geo.longitude
        if not (math.isfinite(longitude) and -180.0 <= longitude <= 180.0):
            bad("geo.longitude", "must be between -180 and 180")
    country = geo.country
    if country and not _COUNTRY.fullmatch(country):
        bad("geo.country", "must be an ISO 3166-1 alpha-2 code such as 'DE'")


def _check_balances(balances: transaction_pb2.BalanceSnapshot, bad: Callable[[str, str], None]) -> None:
    values = (
        balances.origin_before,
        balances.origin_after,
        balances.destination_before,
        balances.destination_after,
    )
    # No value can hold a newline and still match, so four valid lines mean four valid values.
    if all(values) and _FOUR_BALANCES.fullmatch("\n".join(values)):
        return
    for name, value in zip(_BALANCE_FIELDS, values, strict=True):
        if balances.HasField(name) and not _BALANCE.fullmatch(value):
            bad(f"balances.{name}", "must be a decimal number such as '-12.50'")
