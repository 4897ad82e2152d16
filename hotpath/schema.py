"""The feature schema and the codes shared by the columns, the features and the rule programs.

Everything here is part of the public contract: the Isolation Forest is trained on columns named by
FEATURE_NAMES, analysts write rules over those names and over TRANSACTION_FIELDS, and compiled rule
programs address features by index. Any change to a name, its order or its meaning bumps
FEATURE_SCHEMA_VERSION, which changes FEATURE_SCHEMA_HASH; a model or a rule program carries the hash
(or version) it was built for and is refused when it does not match.
"""

from __future__ import annotations

import hashlib
import math
from types import MappingProxyType

from sentinel.hotpath.state import STATE_VERSION

FEATURE_SCHEMA_VERSION = 1

# Half-lives of the decayed velocity counters, in seconds (1 minute, 1 hour, 24 hours).
VELOCITY_HALF_LIVES_S: tuple[float, ...] = (60.0, 3_600.0, 86_400.0)
# Floor of the standard deviation of log1p(amount) used by the z-score: an account that always paid
# the same amount would otherwise turn a cent's difference into an infinite z-score.
MIN_LOG_AMOUNT_STD = 0.1
# Floor of the time between two located transactions for the implied speed: simultaneous events
# give a large but finite speed instead of infinity.
MIN_TRAVEL_SECONDS = 60.0
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
DEGREES_TO_RADIANS = math.pi / 180.0
# seconds_since_last when the account has no previous transaction (or no state).
NO_PREVIOUS_SECONDS = -1.0

# Documentation of every feature, in column order. "Neutral" is the value used when the input it
# needs is missing (the matching *_known indicator is 0) or, for stateful features, when the batch is
# computed without state (state_known = 0).
FEATURE_DOCS: MappingProxyType[str, str] = MappingProxyType(
    {
        "log_amount": "log1p(amount).",
        "type_payment": "1 if type is PAYMENT else 0.",
        "type_transfer": "1 if type is TRANSFER else 0.",
        "type_cash_out": "1 if type is CASH_OUT else 0.",
        "type_cash_in": "1 if type is CASH_IN else 0.",
        "type_debit": "1 if type is DEBIT else 0.",
        "hour_of_day": "Hour of event_time in UTC, 0 to 23.",
        "origin_balances_known": "1 if origin_before and origin_after are both given, else 0.",
        "origin_balance_error": "origin_after + amount - origin_before (0 = consistent); neutral 0.",
        "origin_drained": "1 if origin_before > 0 and origin_after <= 0 (account emptied); neutral 0.",
        "amount_over_origin_balance": "amount / max(origin_before, 1); needs origin_before; neutral 0.",
        "amount_exceeds_origin_balance": "1 if amount > origin_before; needs origin_before; neutral 0.",
        "destination_balances_known": "1 if destination_before and destination_after are both given.",
        "destination_balance_error": "destination_before + amount - destination_after; neutral 0.",
        "destination_balances_zero": "1 if destination_before and destination_after are both 0.",
        "geo_known": "1 if the transaction has latitude and longitude, else 0.",
        "state_known": "1 if the account's state took part; 0 in stateless (degraded) mode.",
        "first_transaction": "1 if the account had no state before this transaction; stateless 0.",
        "log_amount_zscore": "(log1p(amount) - mean) / max(std, 0.1) over the account's previous "
        "log1p(amount) (Welford); 0 with fewer than 2 previous transactions or stateless.",
        "seconds_since_last": "Seconds since the account's latest earlier transaction (0 if this one "
        "is older); -1 for the first transaction or stateless.",
        "velocity_count_1m": "Transactions of the account, this one included, decayed with a 1 minute "
        "half-life; 1 for the first transaction or stateless.",
        "velocity_count_1h": "As velocity_count_1m with a 1 hour half-life.",
        "velocity_count_24h": "As velocity_count_1m with a 24 hour half-life.",
        "velocity_amount_1m": "Sum of amounts, this one included, decayed with a 1 minute half-life; "
        "amount for the first transaction or stateless.",
        "velocity_amount_1h": "As velocity_amount_1m with a 1 hour half-life.",
        "velocity_amount_24h": "As velocity_amount_1m with a 24 hour half-life.",
        "travel_known": "1 if this and an earlier transaction of the account both have geo, else 0.",
        "distance_km": "Great-circle (haversine) km from the latest earlier located transaction; "
        "neutral 0.",
        "speed_kmh": "distance_km / hours between the two located transactions (at least 1 minute); "
        "impossible travel is > ~1000; neutral 0.",
        "away_from_home": "1 if country and the account's home country (its first known country) are "
        "both known and differ; neutral 0.",
        "country_changed": "1 if country and the country of the latest earlier transaction that had "
        "one are both known and differ; neutral 0.",
        "new_counterparty": "1 if the counterparty is given and not among the account's last 8 "
        "distinct counterparties; stateless 0.",
        "new_device": "1 if the device is given and not among the account's last 8 distinct devices; "
        "stateless 0.",
    }
)
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURE_DOCS)
FEATURE_COUNT = len(FEATURE_NAMES)
FEATURE_INDEX: MappingProxyType[str, int] = MappingProxyType(
    {name: index for index, name in enumerate(FEATURE_NAMES)}
)
FEATURE_SCHEMA_HASH: str = hashlib.sha256(
    "\n".join([f"features v{FEATURE_SCHEMA_VERSION}", f"state v{STATE_VERSION}", *FEATURE_NAMES]).encode()
).hexdigest()

# Transaction type codes: the numbers of sentinel.v1.TransactionType.
TRANSACTION_TYPES: MappingProxyType[str, int] = MappingProxyType(
    {"PAYMENT": 1, "TRANSFER": 2, "CASH_OUT": 3, "CASH_IN": 4, "DEBIT": 5}
)
# Channel codes: the numbers of sentinel.v1.Channel (0 = not reported).
CHANNELS: MappingProxyType[str, int] = MappingProxyType(
    {"UNSPECIFIED": 0, "WEB": 1, "MOBILE_APP": 2, "POINT_OF_SALE": 3, "ATM": 4, "API": 5, "BRANCH": 6}
)

# Transaction fields a rule program can load, with their number (the LOAD_FIELD operand). A field
# is missing (NaN on the evaluator's stack) where the doc says so; ids are the top 53 bits of their
# stable_hash (see sentinel.hotpath.hashing.id_value) so that they are exact float64 numbers.
TRANSACTION_FIELD_DOCS: MappingProxyType[str, str] = MappingProxyType(
    {
        "amount": "The amount, in the currency's major unit.",
        "type": "Transaction type code (TRANSACTION_TYPES).",
        "channel": "Channel code (CHANNELS); missing when 0 (not reported).",
        "event_time": "Seconds since the epoch.",
        "latitude": "Degrees; missing without geo.",
        "longitude": "Degrees; missing without geo.",
        "country": "Country code (hashing.country_code); missing when unknown.",
        "home_country": "The account's home country code; missing when unknown or stateless.",
        "counterparty": "id_value of the counterparty id; missing when not given.",
        "device": "id_value of the device id; missing when not given.",
        "origin_before": "PaySim oldbalanceOrg; missing when not given.",
        "origin_after": "PaySim newbalanceOrig; missing when not given.",
        "destination_before": "PaySim oldbalanceDest; missing when not given.",
        "destination_after": "PaySim newbalanceDest; missing when not given.",
    }
)
TRANSACTION_FIELDS: tuple[str, ...] = tuple(TRANSACTION_FIELD_DOCS)
TRANSACTION_FIELD_INDEX: MappingProxyType[str, int] = MappingProxyType(
    {name: index for index, name in enumerate(TRANSACTION_FIELDS)}
)
