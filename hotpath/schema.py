"""The feature schema and the codes shared by the columns, the features and the rule programs.

Everything here is part of the public contract: the Isolation Forest is trained on columns named by
FEATURE_NAMES, analysts write rules over those names and over TRANSACTION_FIELDS, and compiled rule
programs address features by index. Any change to a name, its order or its meaning bumps
FEATURE_SCHEMA_VERSION, which changes FEATURE_SCHEMA_HASH; a model or a rule program carries the hash
(or version) it was built for and is refused when it does not match.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType

from sentinel.hotpath import _constants as c

FEATURE_SCHEMA_VERSION = 1

# Half-lives of the decayed velocity counters, in seconds (1 minute, 1 hour, 24 hours).
VELOCITY_HALF_LIVES_S: tuple[float, ...] = (60.0, 3_600.0, 86_400.0)
if len(VELOCITY_HALF_LIVES_S) != c.VELOCITY_WINDOWS:
    raise ImportError(f"{len(VELOCITY_HALF_LIVES_S)} half-lives for {c.VELOCITY_WINDOWS} velocity windows")


def _by_index(entries: dict[int, tuple[str, str]], count: int, what: str) -> MappingProxyType[str, str]:
    """name -> doc in index order; every index 0 .. count - 1 must have exactly one entry."""
    if sorted(entries) != list(range(count)):
        raise ImportError(f"the {what} documented here are not the {count} of _constants.pxd")
    return MappingProxyType(dict(entries[index] for index in range(count)))


# Name and documentation of every feature column. "Neutral" is the value used when the input it
# needs is missing (the matching *_known indicator is 0) or, for stateful features, when the batch is
# computed without state (state_known = 0).
_FEATURES: dict[int, tuple[str, str]] = {
    c.F_LOG_AMOUNT: ("log_amount", "log1p(amount)."),
    c.F_TYPE_PAYMENT: ("type_payment", "1 if type is PAYMENT else 0."),
    c.F_TYPE_TRANSFER: ("type_transfer", "1 if type is TRANSFER else 0."),
    c.F_TYPE_CASH_OUT: ("type_cash_out", "1 if type is CASH_OUT else 0."),
    c.F_TYPE_CASH_IN: ("type_cash_in", "1 if type is CASH_IN else 0."),
    c.F_TYPE_DEBIT: ("type_debit", "1 if type is DEBIT else 0."),
    c.F_HOUR_OF_DAY: ("hour_of_day", "Hour of event_time in UTC, 0 to 23."),
    c.F_ORIGIN_BALANCES_KNOWN: (
        "origin_balances_known",
        "1 if origin_before and origin_after are both given, else 0.",
    ),
    c.F_ORIGIN_BALANCE_ERROR: (
        "origin_balance_error",
        "origin_after + amount - origin_before (0 = consistent); neutral 0.",
    ),
    c.F_ORIGIN_DRAINED: (
        "origin_drained",
        "1 if origin_before > 0 and origin_after <= 0 (account emptied); neutral 0.",
    ),
    c.F_AMOUNT_OVER_ORIGIN_BALANCE: (
        "amount_over_origin_balance",
        "amount / max(origin_before, 1); needs origin_before; neutral 0.",
    ),
    c.F_AMOUNT_EXCEEDS_ORIGIN_BALANCE: (
        "amount_exceeds_origin_balance",
        "1 if amount > origin_before; needs origin_before; neutral 0.",
    ),
    c.F_DESTINATION_BALANCES_KNOWN: (
        "destination_balances_known",
        "1 if destination_before and destination_after are both given.",
    ),
    c.F_DESTINATION_BALANCE_ERROR: (
        "destination_balance_error",
        "destination_before + amount - destination_after; neutral 0.",
    ),
    c.F_DESTINATION_BALANCES_ZERO: (
        "destination_balances_zero",
        "1 if destination_before and destination_after are both 0.",
    ),
    c.F_GEO_KNOWN: ("geo_known", "1 if the transaction has latitude and longitude, else 0."),
    c.F_STATE_KNOWN: ("state_known", "1 if the account's state took part; 0 in stateless (degraded) mode."),
    c.F_FIRST_TRANSACTION: (
        "first_transaction",
        "1 if the account had no state before this transaction; stateless 0.",
    ),
    c.F_LOG_AMOUNT_ZSCORE: (
        "log_amount_zscore",
        "(log1p(amount) - mean) / max(std, 0.1) over the account's previous log1p(amount) (Welford); "
        "0 with fewer than 2 previous transactions or stateless.",
    ),
    c.F_SECONDS_SINCE_LAST: (
        "seconds_since_last",
        "Seconds since the account's latest earlier transaction (0 if this one is older); -1 for the "
        "first transaction or stateless.",
    ),
    c.F_VELOCITY_COUNT_1M: (
        "velocity_count_1m",
        "Transactions of the account, this one included, decayed with a 1 minute half-life; 1 for the "
        "first transaction or stateless.",
    ),
    c.F_VELOCITY_COUNT_1H: ("velocity_count_1h", "As velocity_count_1m with a 1 hour half-life."),
    c.F_VELOCITY_COUNT_24H: ("velocity_count_24h", "As velocity_count_1m with a 24 hour half-life."),
    c.F_VELOCITY_AMOUNT_1M: (
        "velocity_amount_1m",
        "Sum of amounts, this one included, decayed with a 1 minute half-life; amount for the first "
        "transaction or stateless.",
    ),
    c.F_VELOCITY_AMOUNT_1H: ("velocity_amount_1h", "As velocity_amount_1m with a 1 hour half-life."),
    c.F_VELOCITY_AMOUNT_24H: ("velocity_amount_24h", "As velocity_amount_1m with a 24 hour half-life."),
    c.F_TRAVEL_KNOWN: (
        "travel_known",
        "1 if this and an earlier transaction of the account both have geo, else 0.",
    ),
    c.F_DISTANCE_KM: (
        "distance_km",
        "Great-circle (haversine) km from the latest earlier located transaction; neutral 0.",
    ),
    c.F_SPEED_KMH: (
        "speed_kmh",
        "distance_km / hours between the two located transactions (at least 1 minute); impossible "
        "travel is > ~1000; neutral 0.",
    ),
    c.F_AWAY_FROM_HOME: (
        "away_from_home",
        "1 if country and the account's home country (its first known country) are both known and "
        "differ; neutral 0.",
    ),
    c.F_COUNTRY_CHANGED: (
        "country_changed",
        "1 if country and the country of the latest earlier transaction that had one are both known "
        "and differ; neutral 0.",
    ),
    c.F_NEW_COUNTERPARTY: (
        "new_counterparty",
        "1 if the counterparty is given and not among the account's last 8 distinct counterparties; "
        "stateless 0.",
    ),
    c.F_NEW_DEVICE: (
        "new_device",
        "1 if the device is given and not among the account's last 8 distinct devices; stateless 0.",
    ),
}
FEATURE_DOCS: MappingProxyType[str, str] = _by_index(_FEATURES, c.FEATURE_COUNT, "features")
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_DOCS)
FEATURE_INDEX: MappingProxyType[str, int] = MappingProxyType(
    {name: index for index, name in enumerate(FEATURE_NAMES)}
)
# The features that depend on the account's earlier transactions (their neutral value when the
# batch is scored without state). A model can only learn them from data where accounts have a
# history; training leaves them out when its data has too little of it (model_export/training.py).
STATEFUL_FEATURES: tuple[str, ...] = (
    "state_known",
    "first_transaction",
    "log_amount_zscore",
    "seconds_since_last",
    "velocity_count_1m",
    "velocity_count_1h",
    "velocity_count_24h",
    "velocity_amount_1m",
    "velocity_amount_1h",
    "velocity_amount_24h",
    "travel_known",
    "distance_km",
    "speed_kmh",
    "away_from_home",
    "country_changed",
    "new_counterparty",
    "new_device",
)
if not set(STATEFUL_FEATURES) <= set(FEATURE_NAMES):
    raise ImportError("STATEFUL_FEATURES names a feature the schema does not have")
FEATURE_SCHEMA_HASH: str = hashlib.sha256(
    "\n".join([f"features v{FEATURE_SCHEMA_VERSION}", f"state v{c.STATE_VERSION}", *FEATURE_NAMES]).encode()
).hexdigest()

# Transaction type codes: the numbers of sentinel.v1.TransactionType.
TRANSACTION_TYPES: MappingProxyType[str, int] = MappingProxyType(
    {
        "PAYMENT": c.TYPE_PAYMENT,
        "TRANSFER": c.TYPE_TRANSFER,
        "CASH_OUT": c.TYPE_CASH_OUT,
        "CASH_IN": c.TYPE_CASH_IN,
        "DEBIT": c.TYPE_DEBIT,
    }
)
# Channel codes: the numbers of sentinel.v1.Channel (0 = not reported).
CHANNELS: MappingProxyType[str, int] = MappingProxyType(
    {"UNSPECIFIED": 0, "WEB": 1, "MOBILE_APP": 2, "POINT_OF_SALE": 3, "ATM": 4, "API": 5, "BRANCH": 6}
)

# Transaction fields a rule program can load, with their number (the LOAD_FIELD operand). A field
# is missing (NaN on the evaluator's stack) where the doc says so; ids are the top 53 bits of their
# stable_hash (see sentinel.hotpath.hashing.id_value) so that they are exact float64 numbers.
_TRANSACTION_FIELDS: dict[int, tuple[str, str]] = {
    c.FIELD_AMOUNT: ("amount", "The amount, in the currency's major unit."),
    c.FIELD_TYPE: ("type", "Transaction type code (TRANSACTION_TYPES)."),
    c.FIELD_CHANNEL: ("channel", "Channel code (CHANNELS); missing when 0 (not reported)."),
    c.FIELD_EVENT_TIME: ("event_time", "Seconds since the epoch."),
    c.FIELD_LATITUDE: ("latitude", "Degrees; missing without geo."),
    c.FIELD_LONGITUDE: ("longitude", "Degrees; missing without geo."),
    c.FIELD_COUNTRY: ("country", "Country code (hashing.country_code); missing when unknown."),
    c.FIELD_HOME_COUNTRY: (
        "home_country",
        "The account's home country code; missing when unknown or stateless.",
    ),
    c.FIELD_COUNTERPARTY: ("counterparty", "id_value of the counterparty id; missing when not given."),
    c.FIELD_DEVICE: ("device", "id_value of the device id; missing when not given."),
    c.FIELD_ORIGIN_BEFORE: ("origin_before", "PaySim oldbalanceOrg; missing when not given."),
    c.FIELD_ORIGIN_AFTER: ("origin_after", "PaySim newbalanceOrig; missing when not given."),
    c.FIELD_DESTINATION_BEFORE: ("destination_before", "PaySim oldbalanceDest; missing when not given."),
    c.FIELD_DESTINATION_AFTER: ("destination_after", "PaySim newbalanceDest; missing when not given."),
}
TRANSACTION_FIELD_DOCS: MappingProxyType[str, str] = _by_index(
    _TRANSACTION_FIELDS, c.TRANSACTION_FIELD_COUNT, "transaction fields"
)
TRANSACTION_FIELDS: tuple[str, ...] = tuple(TRANSACTION_FIELD_DOCS)
TRANSACTION_FIELD_INDEX: MappingProxyType[str, int] = MappingProxyType(
    {name: index for index, name in enumerate(TRANSACTION_FIELDS)}
)
