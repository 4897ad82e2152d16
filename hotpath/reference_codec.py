"""Pure-Python reference of the state codec and of stable_hash (the specification the compiled
``_codec``/``_columns`` modules are tested against; see ``state`` for the layout)."""

from __future__ import annotations

import math

from sentinel.hotpath._constants import (
    FLAG_LAST_GEO_KNOWN,
    MAX_EVENT_TIME,
    MAX_LOG_AMOUNT_M2,
    MAX_LOG_AMOUNT_MEAN,
    MAX_VELOCITY_AMOUNT,
    MAX_VELOCITY_COUNT,
    RING_SIZE,
    STATE_BAD_COUNTRY,
    STATE_BAD_FLAGS,
    STATE_BAD_LOCATION,
    STATE_BAD_RING_INDEX,
    STATE_NOT_FINITE,
    STATE_OUT_OF_RANGE,
    STATE_SIZE,
    STATE_UNKNOWN_VERSION,
    STATE_VERSION,
    STATE_WRONG_LENGTH,
    STATE_ZERO_COUNT,
    VELOCITY_WINDOWS,
)
from sentinel.hotpath.errors import StateDecodeError
from sentinel.hotpath.state import DECODE_ERRORS, STATE_FORMAT, AccountState

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
# Positions in STATE_FORMAT's values: 8 integers, 6 floats, the velocity windows, the two rings.
_FLOATS = slice(8, 14 + 2 * VELOCITY_WINDOWS)
_COUNTERPARTIES = slice(_FLOATS.stop, _FLOATS.stop + RING_SIZE)
_DEVICES = slice(_COUNTERPARTIES.stop, _COUNTERPARTIES.stop + RING_SIZE)


def fnv1a_64(text: str) -> int:
    """stable_hash: FNV-1a 64 of the UTF-8 bytes; "" is 0, a non-empty id hashing to 0 is 1."""
    if not text:
        return 0
    value = _FNV_OFFSET
    for byte in text.encode():
        value = ((value ^ byte) * _FNV_PRIME) & _MASK64
    return value or 1


def valid_country(code: int) -> bool:
    """True for 0 (unknown) and two ASCII letters A-Z packed as in ``country_code``."""
    return code == 0 or (65 <= code >> 8 <= 90 and 65 <= code & 0xFF <= 90)


def decode_state(blob: bytes, slot: int | None = None) -> AccountState:
    """Parse a state blob; StateDecodeError (with DECODE_ERRORS' message) when it is not valid."""

    def fail(code: int) -> StateDecodeError:
        return StateDecodeError(DECODE_ERRORS[code], slot)

    if len(blob) != STATE_SIZE:
        raise fail(STATE_WRONG_LENGTH)
    values = STATE_FORMAT.unpack(blob)
    (version, flags, last_country, home_country, count, cp_next, dev_next, reserved) = values[:8]
    floats = values[_FLOATS]
    if version != STATE_VERSION:
        raise fail(STATE_UNKNOWN_VERSION)
    if flags & ~FLAG_LAST_GEO_KNOWN or reserved:
        raise fail(STATE_BAD_FLAGS)
    if cp_next >= RING_SIZE or dev_next >= RING_SIZE:
        raise fail(STATE_BAD_RING_INDEX)
    if count == 0:
        raise fail(STATE_ZERO_COUNT)
    if not (valid_country(last_country) and valid_country(home_country)):
        raise fail(STATE_BAD_COUNTRY)
    mean, m2, last_time, geo_time, latitude, longitude = floats[:6]
    if not all(math.isfinite(value) for value in floats) or not (
        0.0 <= last_time <= MAX_EVENT_TIME and 0.0 <= geo_time <= MAX_EVENT_TIME
    ):
        raise fail(STATE_NOT_FINITE)
    velocity_count = list(floats[6 : 6 + VELOCITY_WINDOWS])
    velocity_amount = list(floats[6 + VELOCITY_WINDOWS :])
    if not (
        0.0 <= mean <= MAX_LOG_AMOUNT_MEAN
        and 0.0 <= m2 <= MAX_LOG_AMOUNT_M2
        and all(0.0 <= value <= MAX_VELOCITY_COUNT for value in velocity_count)
        and all(0.0 <= value <= MAX_VELOCITY_AMOUNT for value in velocity_amount)
    ):
        raise fail(STATE_OUT_OF_RANGE)
    geo_known = bool(flags & FLAG_LAST_GEO_KNOWN)
    if geo_known:
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
            raise fail(STATE_BAD_LOCATION)
    elif geo_time != 0.0 or latitude != 0.0 or longitude != 0.0:
        raise fail(STATE_BAD_LOCATION)
    return AccountState(
        count=count,
        last_country=last_country,
        home_country=home_country,
        last_geo_known=geo_known,
        counterparty_next=cp_next,
        device_next=dev_next,
        log_amount_mean=mean,
        log_amount_m2=m2,
        last_time=last_time,
        last_geo_time=geo_time,
        last_latitude=latitude,
        last_longitude=longitude,
        velocity_count=velocity_count,
        velocity_amount=velocity_amount,
        counterparties=list(values[_COUNTERPARTIES]),
        devices=list(values[_DEVICES]),
    )


def encode_state(state: AccountState) -> bytes:
    """The blob of ``state`` (the inverse of decode_state for every valid blob)."""
    return STATE_FORMAT.pack(
        STATE_VERSION,
        FLAG_LAST_GEO_KNOWN if state.last_geo_known else 0,
        state.last_country,
        state.home_country,
        state.count,
        state.counterparty_next,
        state.device_next,
        0,
        state.log_amount_mean,
        state.log_amount_m2,
        state.last_time,
        state.last_geo_time,
        state.last_latitude,
        state.last_longitude,
        *state.velocity_count,
        *state.velocity_amount,
        *state.counterparties,
        *state.devices,
    )
