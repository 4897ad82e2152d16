"""Pure-Python reference of the feature builder: the specification of ``_features``.

Both implementations do the same float64 operations in the same order with the same libm
functions, so their states are byte-identical and their features equal (see the parity tests).
Feature meanings are in ``schema.FEATURE_DOCS``; the state layout in ``state``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sentinel.hotpath import _constants as c
from sentinel.hotpath._constants import (
    ALL_BALANCES_KNOWN,
    DEGREES_TO_RADIANS,
    DESTINATION_BALANCES_KNOWN,
    EARTH_RADIUS_KM,
    FEATURE_COUNT,
    LN2,
    MAX_AMOUNT,
    MAX_EVENT_TIME,
    MAX_LOG_AMOUNT_M2,
    MAX_TRANSACTION_COUNT,
    MAX_VELOCITY_AMOUNT,
    MAX_VELOCITY_COUNT,
    MIN_LOG_AMOUNT_STD,
    MIN_TRAVEL_SECONDS,
    NO_PREVIOUS_SECONDS,
    ORIGIN_BALANCES_KNOWN,
    ORIGIN_BEFORE_KNOWN,
    RING_SIZE,
    TYPE_DEBIT,
    TYPE_PAYMENT,
    VELOCITY_WINDOWS,
)
from sentinel.hotpath.columns import ROW_PROBLEMS, TransactionColumns
from sentinel.hotpath.errors import InvalidTransactionValue
from sentinel.hotpath.reference_codec import decode_state, encode_state, valid_country
from sentinel.hotpath.schema import VELOCITY_HALF_LIVES_S
from sentinel.hotpath.state import AccountState

DECAY_RATES = tuple(LN2 / half_life for half_life in VELOCITY_HALF_LIVES_S)


def row_problem(columns: TransactionColumns, row: int, n_states: int | None) -> int:
    """The first thing wrong with ``row`` (its ROW_BAD_* code, ROW_USABLE when it is usable).

    ``n_states`` None skips the account_slot check (stateless mode ignores the slots).
    """
    slot = int(columns.account_slot[row])
    if n_states is not None and not 0 <= slot < n_states:
        return c.ROW_BAD_ACCOUNT_SLOT
    amount = float(columns.amount[row])
    if not 0.0 <= amount <= MAX_AMOUNT:  # also false for NaN
        return c.ROW_BAD_AMOUNT
    if not TYPE_PAYMENT <= int(columns.type[row]) <= TYPE_DEBIT:
        return c.ROW_BAD_TYPE
    if not 0.0 <= float(columns.event_time[row]) <= MAX_EVENT_TIME:
        return c.ROW_BAD_EVENT_TIME
    geo = int(columns.geo_known[row])
    if geo > 1:
        return c.ROW_BAD_GEO_KNOWN
    if geo:
        latitude, longitude = float(columns.latitude[row]), float(columns.longitude[row])
        if not -90.0 <= latitude <= 90.0:
            return c.ROW_BAD_LATITUDE
        if not -180.0 <= longitude <= 180.0:
            return c.ROW_BAD_LONGITUDE
    if not valid_country(int(columns.country[row])):
        return c.ROW_BAD_COUNTRY
    known = int(columns.balances_known[row])
    if known & ~ALL_BALANCES_KNOWN:
        return c.ROW_BAD_BALANCES_KNOWN
    balances = (
        columns.origin_before,
        columns.origin_after,
        columns.destination_before,
        columns.destination_after,
    )
    # The balance bits and their ROW_BAD_* codes both follow this order.
    for bit, values in enumerate(balances):
        if known & (c.ORIGIN_BEFORE_KNOWN << bit) and not -MAX_AMOUNT <= float(values[row]) <= MAX_AMOUNT:
            return c.ROW_BAD_ORIGIN_BEFORE + bit
    return c.ROW_USABLE


def check_rows(columns: TransactionColumns, n_states: int | None) -> None:
    """Raise InvalidTransactionValue for the first unusable row."""
    for row in range(len(columns)):
        problem = row_problem(columns, row, n_states)
        if problem:
            field, description = ROW_PROBLEMS[problem]
            raise InvalidTransactionValue(field, description, row)


def _stateless_features(columns: TransactionColumns, row: int, out: list[float]) -> None:
    amount = float(columns.amount[row])
    t = float(columns.event_time[row])
    out[c.F_LOG_AMOUNT] = math.log1p(amount)
    kind = int(columns.type[row])
    out[c.F_TYPE_PAYMENT + kind - TYPE_PAYMENT] = 1.0
    hour = math.fmod(math.floor(t / 3600.0), 24.0)
    out[c.F_HOUR_OF_DAY] = hour + 24.0 if hour < 0.0 else hour
    known = int(columns.balances_known[row])
    origin_before, origin_after = float(columns.origin_before[row]), float(columns.origin_after[row])
    if known & ORIGIN_BALANCES_KNOWN == ORIGIN_BALANCES_KNOWN:
        out[c.F_ORIGIN_BALANCES_KNOWN] = 1.0
        out[c.F_ORIGIN_BALANCE_ERROR] = origin_after + amount - origin_before
        out[c.F_ORIGIN_DRAINED] = 1.0 if origin_before > 0.0 and origin_after <= 0.0 else 0.0
    if known & ORIGIN_BEFORE_KNOWN:
        out[c.F_AMOUNT_OVER_ORIGIN_BALANCE] = amount / max(origin_before, 1.0)
        out[c.F_AMOUNT_EXCEEDS_ORIGIN_BALANCE] = 1.0 if amount > origin_before else 0.0
    if known & DESTINATION_BALANCES_KNOWN == DESTINATION_BALANCES_KNOWN:
        destination_before = float(columns.destination_before[row])
        destination_after = float(columns.destination_after[row])
        out[c.F_DESTINATION_BALANCES_KNOWN] = 1.0
        out[c.F_DESTINATION_BALANCE_ERROR] = destination_before + amount - destination_after
        both_zero = destination_before == 0.0 and destination_after == 0.0
        out[c.F_DESTINATION_BALANCES_ZERO] = 1.0 if both_zero else 0.0
    out[c.F_GEO_KNOWN] = 1.0 if columns.geo_known[row] else 0.0
    # Stateful columns at their "no history" values; the stateful pass overwrites them.
    out[c.F_SECONDS_SINCE_LAST] = NO_PREVIOUS_SECONDS
    for window in range(VELOCITY_WINDOWS):
        out[c.F_VELOCITY_COUNT_1M + window] = 1.0
        out[c.F_VELOCITY_AMOUNT_1M + window] = amount


def haversine_km(latitude1: float, longitude1: float, latitude2: float, longitude2: float) -> float:
    """Great-circle distance on the mean Earth sphere."""
    sin_dlat = math.sin((latitude2 - latitude1) * DEGREES_TO_RADIANS * 0.5)
    sin_dlon = math.sin((longitude2 - longitude1) * DEGREES_TO_RADIANS * 0.5)
    a = (
        sin_dlat * sin_dlat
        + math.cos(latitude1 * DEGREES_TO_RADIANS)
        * math.cos(latitude2 * DEGREES_TO_RADIANS)
        * sin_dlon
        * sin_dlon
    )
    a = min(a, 1.0)
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def apply_transaction(state: AccountState, columns: TransactionColumns, row: int, out: list[float]) -> None:
    """Write the stateful features of ``row`` into ``out`` and update ``state`` in place."""
    amount = float(columns.amount[row])
    t = float(columns.event_time[row])
    x = math.log1p(amount)
    previous = state.count
    out[c.F_STATE_KNOWN] = 1.0
    out[c.F_FIRST_TRANSACTION] = 1.0 if previous == 0 else 0.0
    if previous >= 2:
        std = max(math.sqrt(state.log_amount_m2 / (previous - 1)), MIN_LOG_AMOUNT_STD)
        out[c.F_LOG_AMOUNT_ZSCORE] = (x - state.log_amount_mean) / std
    dt = t - state.last_time
    is_latest = previous == 0 or dt >= 0.0
    if previous:
        out[c.F_SECONDS_SINCE_LAST] = max(dt, 0.0)
        for window, rate in enumerate(DECAY_RATES):
            if dt >= 0.0:
                decay = math.exp(-dt * rate)
                count = state.velocity_count[window] * decay + 1.0
                total = state.velocity_amount[window] * decay + amount
            else:
                weight = math.exp(dt * rate)
                count = state.velocity_count[window] + weight
                total = state.velocity_amount[window] + amount * weight
            count = min(count, MAX_VELOCITY_COUNT)  # saturate: the decoder's bounds stay true
            total = min(total, MAX_VELOCITY_AMOUNT)
            state.velocity_count[window] = count
            state.velocity_amount[window] = total
            out[c.F_VELOCITY_COUNT_1M + window] = count
            out[c.F_VELOCITY_AMOUNT_1M + window] = total
    else:
        state.velocity_count = [1.0] * VELOCITY_WINDOWS
        state.velocity_amount = [amount] * VELOCITY_WINDOWS
    geo = bool(columns.geo_known[row])
    latitude, longitude = float(columns.latitude[row]), float(columns.longitude[row])
    if geo and state.last_geo_known:
        distance = haversine_km(state.last_latitude, state.last_longitude, latitude, longitude)
        gap = max(abs(t - state.last_geo_time), MIN_TRAVEL_SECONDS)
        out[c.F_TRAVEL_KNOWN] = 1.0
        out[c.F_DISTANCE_KM] = distance
        out[c.F_SPEED_KMH] = distance / (gap / 3600.0)
    country = int(columns.country[row])
    home = state.home_country
    columns.home_country[row] = home
    if country and home and country != home:
        out[c.F_AWAY_FROM_HOME] = 1.0
    if country and state.last_country and country != state.last_country:
        out[c.F_COUNTRY_CHANGED] = 1.0
    counterparty, device = int(columns.counterparty[row]), int(columns.device[row])
    new_counterparty = counterparty != 0 and counterparty not in state.counterparties
    new_device = device != 0 and device not in state.devices
    out[c.F_NEW_COUNTERPARTY] = 1.0 if new_counterparty else 0.0
    out[c.F_NEW_DEVICE] = 1.0 if new_device else 0.0

    if previous < MAX_TRANSACTION_COUNT:
        state.count = previous + 1
        delta = x - state.log_amount_mean
        state.log_amount_mean += delta / state.count
        m2 = state.log_amount_m2 + delta * (x - state.log_amount_mean)
        state.log_amount_m2 = min(m2, MAX_LOG_AMOUNT_M2)
    if is_latest:
        state.last_time = t
        if country:
            state.last_country = country
    if country and not home:
        state.home_country = country
    if geo and (not state.last_geo_known or t >= state.last_geo_time):
        state.last_geo_known = True
        state.last_geo_time = t
        state.last_latitude = latitude
        state.last_longitude = longitude
    if new_counterparty:
        state.counterparties[state.counterparty_next] = counterparty
        state.counterparty_next = (state.counterparty_next + 1) % RING_SIZE
    if new_device:
        state.devices[state.device_next] = device
        state.device_next = (state.device_next + 1) % RING_SIZE


def build_features(
    columns: TransactionColumns, states: list[bytes | None]
) -> tuple[npt.NDArray[np.float32], list[bytes | None]]:
    """Reference of ``sentinel.hotpath.build_features`` (same contract)."""
    check_rows(columns, len(states))
    decoded = [None if blob is None else decode_state(blob, slot) for slot, blob in enumerate(states)]
    accounts = [AccountState() if state is None else state for state in decoded]
    touched = [False] * len(states)
    features = np.zeros((len(columns), FEATURE_COUNT), dtype=np.float32)
    row_values = [0.0] * FEATURE_COUNT
    for row in range(len(columns)):
        row_values[:] = [0.0] * FEATURE_COUNT
        _stateless_features(columns, row, row_values)
        slot = int(columns.account_slot[row])
        apply_transaction(accounts[slot], columns, row, row_values)
        touched[slot] = True
        features[row] = row_values
    new_states = [
        encode_state(account) if was_touched else blob
        for account, was_touched, blob in zip(accounts, touched, states, strict=True)
    ]
    return features, new_states


def build_features_stateless(columns: TransactionColumns) -> npt.NDArray[np.float32]:
    """Reference of ``sentinel.hotpath.build_features_stateless`` (no state: degraded mode)."""
    check_rows(columns, n_states=None)
    features = np.zeros((len(columns), FEATURE_COUNT), dtype=np.float32)
    row_values = [0.0] * FEATURE_COUNT
    for row in range(len(columns)):
        row_values[:] = [0.0] * FEATURE_COUNT
        _stateless_features(columns, row, row_values)
        columns.home_country[row] = 0
        features[row] = row_values
    return features
