"""The *validate* stage: turn a wire Transaction into a checked, typed value or name what is wrong.

Everything the later stages rely on is checked here, once, so the hot path never sees a NaN, an
unknown currency or an absurd timestamp. Violations name the field with its full path, the way
clients address it (``transaction.amount.currency``, ``transactions[3].event_time``).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from decimal import Decimal

from iso4217 import Currency

from sentinel.v1 import transaction_pb2

_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_PRINTABLE_128 = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
_AMOUNT = re.compile(r"(?P<int>[0-9]{1,18})(?:\.(?P<frac>[0-9]+))?")
_BALANCE = re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{1,8})?")
_COUNTRY = re.compile(r"[A-Z]{2}")
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_VALUE = 256
EARLIEST_EVENT_TIME = 946_684_800  # 2000-01-01T00:00:00Z
# ISO 4217 codes without a minor unit (precious metals, funds) accept this many fraction digits.
UNITLESS_FRACTION_DIGITS = 6
_NOT_CURRENCIES = frozenset({"XXX", "XTS"})  # "no currency" and "testing" codes
_CURRENCY_EXPONENTS: dict[str, int] = {
    currency.code: (UNITLESS_FRACTION_DIGITS if currency.exponent is None else currency.exponent)
    for currency in Currency
    if currency.code not in _NOT_CURRENCIES
}
_TYPES = frozenset(transaction_pb2.TransactionType.values()) - {0}
_CHANNELS = frozenset(transaction_pb2.Channel.values())


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its path and what is wrong with it."""

    field: str
    description: str


class InvalidTransaction(ValueError):
    """The transaction breaks the contract; ``violations`` names every bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


@dataclass(frozen=True, slots=True)
class ValidatedTransaction:
    """A transaction whose every field has been checked; the wire message is kept for the ledger."""

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
    """Check ``message`` against the contract; raise InvalidTransaction listing every violation."""
    violations: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        violations.append(FieldViolation(f"{path}.{field}", description))

    if not message.transaction_id:
        bad("transaction_id", "is required")
    elif not _ID.fullmatch(message.transaction_id):
        bad("transaction_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
    if message.idempotency_key and not _ID.fullmatch(message.idempotency_key):
        bad("idempotency_key", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
    if not message.account_id:
        bad("account_id", "is required")
    elif not _PRINTABLE_128.fullmatch(message.account_id):
        bad("account_id", "must be 1 to 128 printable characters")
    if message.counterparty_id and not _PRINTABLE_128.fullmatch(message.counterparty_id):
        bad("counterparty_id", "must be at most 128 printable characters")
    if message.type == 0:
        bad("type", "is required")
    elif message.type not in _TYPES:
        bad("type", f"unknown transaction type {message.type}")
    if message.channel not in _CHANNELS:
        bad("channel", f"unknown channel {message.channel}")

    amount = Decimal(0)
    currency = message.amount.currency
    if not message.HasField("amount"):
        bad("amount", "is required")
    else:
        exponent = _CURRENCY_EXPONENTS.get(currency)
        if not currency:
            bad("amount.currency", "is required")
        elif exponent is None:
            bad("amount.currency", f"unknown ISO 4217 currency code {currency[:8]!r}")
        match = _AMOUNT.fullmatch(message.amount.amount)
        if match is None:
            bad(
                "amount.amount",
                f"must be a non-negative decimal number such as '12.50', got {message.amount.amount[:32]!r}",
            )
        else:
            amount = Decimal(message.amount.amount)
            if amount <= 0:
                bad("amount.amount", "must be greater than zero")
            problem = _check_money_fraction(match.group("frac"), currency, exponent)
            if problem:
                bad("amount.amount", problem)

    event_time = 0.0
    if not message.HasField("event_time"):
        bad("event_time", "is required")
    else:
        seconds, nanos = message.event_time.seconds, message.event_time.nanos
        if not 0 <= nanos <= 999_999_999:
            bad("event_time", "nanos must be between 0 and 999,999,999")
        elif seconds < EARLIEST_EVENT_TIME:
            bad("event_time", "must not be before 2000-01-01T00:00:00Z")
        elif seconds > now + max_skew_s:
            bad("event_time", f"lies more than {max_skew_s:.0f} s in the future")
        else:
            event_time = seconds + nanos / 1e9

    if message.HasField("geo"):
        geo = message.geo
        has_lat, has_lon = geo.HasField("latitude"), geo.HasField("longitude")
        if has_lat != has_lon:
            bad("geo", "latitude and longitude must be set together")
        if has_lat and not (math.isfinite(geo.latitude) and -90.0 <= geo.latitude <= 90.0):
            bad("geo.latitude", "must be between -90 and 90")
        if has_lon and not (math.isfinite(geo.longitude) and -180.0 <= geo.longitude <= 180.0):
            bad("geo.longitude", "must be between -180 and 180")
        if geo.country and not _COUNTRY.fullmatch(geo.country):
            bad("geo.country", "must be an ISO 3166-1 alpha-2 code such as 'DE'")
    if len(message.device_id) > 128:
        bad("device_id", "must be at most 128 characters")
    if message.ip_address:
        try:
            ipaddress.ip_address(message.ip_address)
        except ValueError:
            bad("ip_address", f"not an IPv4 or IPv6 address: {message.ip_address[:64]!r}")
    if message.HasField("balances"):
        for name in ("origin_before", "origin_after", "destination_before", "destination_after"):
            if message.balances.HasField(name) and not _BALANCE.fullmatch(getattr(message.balances, name)):
                bad(f"balances.{name}", "must be a decimal number such as '-12.50'")
    if len(message.attributes) > MAX_ATTRIBUTES:
        bad("attributes", f"at most {MAX_ATTRIBUTES} entries allowed, got {len(message.attributes)}")
    else:
        for key, value in message.attributes.items():
            if not _ATTRIBUTE_KEY.fullmatch(key):
                bad(f"attributes[{key[:64]!r}]", "key must be 1 to 64 characters of [A-Za-z0-9_.-]")
            elif len(value) > MAX_ATTRIBUTE_VALUE:
                bad(f"attributes[{key!r}]", f"value must be at most {MAX_ATTRIBUTE_VALUE} characters")

    if violations:
        raise InvalidTransaction(violations)
    return ValidatedTransaction(
        message=message,
        transaction_id=message.transaction_id,
        idempotency_key=message.idempotency_key or message.transaction_id,
        account_id=message.account_id,
        amount=amount,
        currency=currency,
        event_time=event_time,
    )
