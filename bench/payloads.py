"""Realistic ``sentinel.v1.Transaction`` payloads for load tests, built from PaySim rows.

PaySim gives the money movements (type, amount, balances, counterparty) but nothing about where or
on what device a payment was made, and almost every PaySim account appears once. A benchmark that
sends such rows as they are would exercise neither per-account state nor the geo and device
features. So the rows are spread over a pool of accounts, and every account gets a home city, a
currency, one to three devices and an address range; most of its payments come from home on a known
device, a few from travel or a new device. Everything derives from one seed, so a run can be
repeated byte for byte.
"""

from __future__ import annotations

import csv
import random
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

from iso4217 import Currency

from sentinel.v1 import transaction_pb2

DEFAULT_SEED = 20_161_026  # EMSS 2016, where PaySim was published
DEFAULT_ACCOUNTS = 5_000
# Simulated month start: PaySim's step 1 is its first hour.
SIMULATION_START = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())
HOME_SHARE = 0.97  # payments made near the account's home city
KNOWN_DEVICE_SHARE = 0.95  # payments from one of the account's own devices
GEO_JITTER_DEGREES = 0.05  # about 5 km around the city centre

GRPC_FRAME_HEADER = struct.Struct(">BI")  # compressed flag, big-endian message length


@dataclass(frozen=True, slots=True)
class City:
    """Where accounts live: coordinates, country and the currency they pay in."""

    name: str
    latitude: float
    longitude: float
    country: str
    currency: str
    weight: int  # relative number of accounts living there


# PaySim simulates an African mobile-money service, so most accounts live in East Africa.
CITIES: tuple[City, ...] = (
    City("Nairobi", -1.2864, 36.8172, "KE", "KES", 30),
    City("Mombasa", -4.0435, 39.6682, "KE", "KES", 10),
    City("Kampala", 0.3476, 32.5825, "UG", "UGX", 10),
    City("Dar es Salaam", -6.7924, 39.2083, "TZ", "TZS", 10),
    City("Kigali", -1.9441, 30.0619, "RW", "RWF", 5),
    City("Lagos", 6.5244, 3.3792, "NG", "NGN", 8),
    City("Johannesburg", -26.2041, 28.0473, "ZA", "ZAR", 6),
    City("London", 51.5072, -0.1276, "GB", "GBP", 5),
    City("Berlin", 52.5200, 13.4050, "DE", "EUR", 4),
    City("Paris", 48.8566, 2.3522, "FR", "EUR", 4),
    City("New York", 40.7128, -74.0060, "US", "USD", 4),
    City("Dubai", 25.2048, 55.2708, "AE", "AED", 2),
    City("Mumbai", 19.0760, 72.8777, "IN", "INR", 2),
)

_TYPES = {
    "PAYMENT": transaction_pb2.TRANSACTION_TYPE_PAYMENT,
    "TRANSFER": transaction_pb2.TRANSACTION_TYPE_TRANSFER,
    "CASH_OUT": transaction_pb2.TRANSACTION_TYPE_CASH_OUT,
    "CASH_IN": transaction_pb2.TRANSACTION_TYPE_CASH_IN,
    "DEBIT": transaction_pb2.TRANSACTION_TYPE_DEBIT,
}
# Channels each kind of movement plausibly uses, most likely first.
_CHANNELS = {
    "PAYMENT": (
        transaction_pb2.CHANNEL_MOBILE_APP,
        transaction_pb2.CHANNEL_POINT_OF_SALE,
        transaction_pb2.CHANNEL_WEB,
    ),
    "TRANSFER": (transaction_pb2.CHANNEL_MOBILE_APP, transaction_pb2.CHANNEL_WEB),
    "CASH_OUT": (transaction_pb2.CHANNEL_ATM, transaction_pb2.CHANNEL_BRANCH),
    "CASH_IN": (transaction_pb2.CHANNEL_BRANCH, transaction_pb2.CHANNEL_ATM),
    "DEBIT": (transaction_pb2.CHANNEL_API,),
}
_MERCHANT_CATEGORIES = ("5411", "5812", "5541", "4121", "5999", "4814", "5732", "7995")


@dataclass(frozen=True, slots=True)
class PaysimRow:
    """One PaySim record, amounts kept as the exact decimal text of the file."""

    step: int
    type: str
    amount: Decimal
    name_orig: str
    old_balance_orig: Decimal
    new_balance_orig: Decimal
    name_dest: str
    old_balance_dest: Decimal
    new_balance_dest: Decimal


@dataclass(frozen=True, slots=True)
class Account:
    """A simulated customer: where they live and what they pay with."""

    account_id: str
    home: City
    devices: tuple[str, ...]
    ip_prefix: str  # first two octets of the addresses they use at home


def bundled_paysim_path() -> Path:
    """The PaySim cut shipped with the package (CC BY-SA 4.0, see bench/data/README.md)."""
    return Path(str(resources.files("sentinel.bench") / "data" / "paysim_cut.csv"))


def load_paysim(path: Path | None = None) -> list[PaysimRow]:
    """Read PaySim rows from ``path`` (default: the bundled cut)."""
    with (path or bundled_paysim_path()).open(newline="") as handle:
        return [
            PaysimRow(
                step=int(record["step"]),
                type=record["type"],
                amount=Decimal(record["amount"]),
                name_orig=record["nameOrig"],
                old_balance_orig=Decimal(record["oldbalanceOrg"]),
                new_balance_orig=Decimal(record["newbalanceOrig"]),
                name_dest=record["nameDest"],
                old_balance_dest=Decimal(record["oldbalanceDest"]),
                new_balance_dest=Decimal(record["newbalanceDest"]),
            )
            for record in csv.DictReader(handle)
        ]


def _currency_quantum(currency: str) -> Decimal:
    exponent = Currency(currency).exponent or 0
    return Decimal(1).scaleb(-exponent)


def _decimal_text(value: Decimal, quantum: Decimal) -> str:
    return str(value.quantize(quantum, rounding=ROUND_HALF_UP))


class TransactionFactory:
    """Turns PaySim rows into realistic transactions, deterministically for a given seed."""

    def __init__(
        self, rows: list[PaysimRow], seed: int = DEFAULT_SEED, accounts: int = DEFAULT_ACCOUNTS
    ) -> None:
        if not rows:
            raise ValueError("no PaySim rows to build transactions from")
        if accounts < 1:
            raise ValueError("accounts must be at least 1")
        self._rng = random.Random(seed)
        self._rows = list(rows)
        self._rng.shuffle(self._rows)
        weights = [city.weight for city in CITIES]
        self._accounts = [
            self._new_account(index, self._rng.choices(CITIES, weights)[0]) for index in range(accounts)
        ]
        self._quanta = {city.currency: _currency_quantum(city.currency) for city in CITIES}
        self._next_row = 0

    def _new_account(self, index: int, home: City) -> Account:
        devices = tuple(f"dev-{self._rng.getrandbits(48):012x}" for _ in range(self._rng.randint(1, 3)))
        prefix = f"{self._rng.randint(41, 197)}.{self._rng.randint(0, 255)}"
        return Account(f"C{1_000_000_000 + index * 7_919}", home, devices, prefix)

    def transactions(self, count: int, id_prefix: str) -> list[transaction_pb2.Transaction]:
        """The next ``count`` transactions, with ids ``<id_prefix>-<n>`` unique within the factory."""
        return [self._next_transaction(id_prefix) for _ in range(count)]

    def _next_transaction(self, id_prefix: str) -> transaction_pb2.Transaction:
        rng = self._rng
        number = self._next_row
        row = self._rows[number % len(self._rows)]
        self._next_row += 1
        account = self._accounts[rng.randrange(len(self._accounts))]
        at_home = rng.random() < HOME_SHARE
        city = account.home if at_home else rng.choice(CITIES)
        quantum = self._quanta[account.home.currency]
        amount = max(row.amount.quantize(quantum, rounding=ROUND_HALF_UP), quantum)
        if rng.random() < KNOWN_DEVICE_SHARE:
            device = rng.choice(account.devices)
        else:
            device = f"dev-{rng.getrandbits(48):012x}"
        ip_prefix = account.ip_prefix if at_home else f"{rng.randint(41, 197)}.{rng.randint(0, 255)}"
        transaction = transaction_pb2.Transaction(
            transaction_id=f"{id_prefix}-{number:08d}",
            account_id=account.account_id,
            counterparty_id=row.name_dest,
            type=_TYPES[row.type],
            amount=transaction_pb2.Money(amount=str(amount), currency=account.home.currency),
            geo=transaction_pb2.GeoLocation(
                latitude=round(city.latitude + rng.uniform(-GEO_JITTER_DEGREES, GEO_JITTER_DEGREES), 5),
                longitude=round(city.longitude + rng.uniform(-GEO_JITTER_DEGREES, GEO_JITTER_DEGREES), 5),
                country=city.country,
            ),
            channel=rng.choice(_CHANNELS[row.type]),
            device_id=device,
            ip_address=f"{ip_prefix}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            balances=transaction_pb2.BalanceSnapshot(
                origin_before=_decimal_text(row.old_balance_orig, Decimal("0.01")),
                origin_after=_decimal_text(row.new_balance_orig, Decimal("0.01")),
                destination_before=_decimal_text(row.old_balance_dest, Decimal("0.01")),
                destination_after=_decimal_text(row.new_balance_dest, Decimal("0.01")),
            ),
        )
        transaction.event_time.FromSeconds(SIMULATION_START + row.step * 3600 + rng.randrange(3600))
        if row.type == "PAYMENT":
            transaction.attributes["merchant_category"] = rng.choice(_MERCHANT_CATEGORIES)
        return transaction


def grpc_frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, bytes."""
    return GRPC_FRAME_HEADER.pack(0, len(message)) + message


def grpc_frames(messages: Iterable[bytes]) -> bytes:
    """Several gRPC messages back to back, as a client-streaming request body carries them."""
    return b"".join(grpc_frame(message) for message in messages)


def split_grpc_frames(body: bytes) -> Iterator[bytes]:
    """The messages of a gRPC body; ValueError on a truncated or compressed frame."""
    offset = 0
    while offset < len(body):
        if len(body) - offset < GRPC_FRAME_HEADER.size:
            raise ValueError(f"truncated gRPC frame header at byte {offset}")
        compressed, length = GRPC_FRAME_HEADER.unpack_from(body, offset)
        if compressed:
            raise ValueError(f"compressed gRPC frame at byte {offset}")
        start = offset + GRPC_FRAME_HEADER.size
        if start + length > len(body):
            raise ValueError(f"gRPC frame at byte {offset} announces {length} bytes, body is shorter")
        yield body[start : start + length]
        offset = start + length
