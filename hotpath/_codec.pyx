# cython: language_level=3, cdivision=True
"""Compiled state codec: Python-level encode/decode over the inline C codec of ``_state.pxd``.

The hot path itself never builds an AccountState object: ``_features`` decodes blobs straight into
C structs. These two functions exist for tools, tests and the server's diagnostics.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t

from _constants cimport RING_SIZE, STATE_SIZE, VELOCITY_WINDOWS
from _state cimport AccountStateC, decode_into, encode_into, reset_state

from sentinel.hotpath.errors import StateDecodeError
from sentinel.hotpath.state import DECODE_ERRORS, AccountState


def decode_state(const uint8_t[::1] blob, slot=None):
    """Parse a state blob (bytes-like); StateDecodeError when it is not a valid current-version blob."""
    cdef AccountStateC s
    cdef int code
    reset_state(&s)
    code = decode_into(&blob[0] if blob.shape[0] else NULL, blob.shape[0], &s)
    if code:
        raise StateDecodeError(DECODE_ERRORS[code], slot)
    return AccountState(
        count=s.count,
        last_country=s.last_country,
        home_country=s.home_country,
        last_geo_known=bool(s.last_geo_known),
        counterparty_next=s.counterparty_next,
        device_next=s.device_next,
        log_amount_mean=s.log_amount_mean,
        log_amount_m2=s.log_amount_m2,
        last_time=s.last_time,
        last_geo_time=s.last_geo_time,
        last_latitude=s.last_latitude,
        last_longitude=s.last_longitude,
        velocity_count=[s.velocity_count[i] for i in range(VELOCITY_WINDOWS)],
        velocity_amount=[s.velocity_amount[i] for i in range(VELOCITY_WINDOWS)],
        counterparties=[s.counterparties[i] for i in range(RING_SIZE)],
        devices=[s.devices[i] for i in range(RING_SIZE)],
    )


def encode_state(state):
    """The blob of an AccountState (values are converted to the layout's C types)."""
    cdef AccountStateC s
    cdef int i
    reset_state(&s)
    s.count = state.count
    s.last_country = state.last_country
    s.home_country = state.home_country
    s.last_geo_known = 1 if state.last_geo_known else 0
    s.counterparty_next = state.counterparty_next
    s.device_next = state.device_next
    s.log_amount_mean = state.log_amount_mean
    s.log_amount_m2 = state.log_amount_m2
    s.last_time = state.last_time
    s.last_geo_time = state.last_geo_time
    s.last_latitude = state.last_latitude
    s.last_longitude = state.last_longitude
    for i in range(VELOCITY_WINDOWS):
        s.velocity_count[i] = state.velocity_count[i]
        s.velocity_amount[i] = state.velocity_amount[i]
    for i in range(RING_SIZE):
        s.counterparties[i] = state.counterparties[i]
        s.devices[i] = state.devices[i]
    blob = PyBytes_FromStringAndSize(NULL, STATE_SIZE)
    encode_into(&s, <uint8_t*>PyBytes_AS_STRING(blob))
    return blob
