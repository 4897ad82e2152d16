"""State codec: round trips, and every kind of bad blob refused with the same message by both codecs."""

from __future__ import annotations

import struct

import pytest
from hotpath_strategies import account_states
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.hotpath import (
    STATE_SIZE,
    STATE_VERSION,
    AccountState,
    StateDecodeError,
    decode_state,
    encode_state,
)
from sentinel.hotpath import _constants as c
from sentinel.hotpath import reference_codec as reference
from sentinel.hotpath.state import DECODE_ERRORS, STATE_FORMAT


@settings(max_examples=300)
@given(account_states())
def test_round_trip_is_identical_in_both_codecs(state: AccountState) -> None:
    blob = encode_state(state)
    assert len(blob) == STATE_SIZE
    assert blob == reference.encode_state(state)
    assert decode_state(blob) == reference.decode_state(blob) == state


@settings(max_examples=500)
@given(account_states(), st.integers(0, STATE_SIZE - 1), st.integers(0, 255))
def test_a_changed_byte_is_decoded_or_refused_the_same_way(
    state: AccountState, offset: int, byte: int
) -> None:
    blob = bytearray(encode_state(state))
    blob[offset] = byte
    outcomes = []
    for decode in (decode_state, reference.decode_state):
        try:
            outcomes.append(decode(bytes(blob)))
        except StateDecodeError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


def _valid() -> AccountState:
    return AccountState(
        count=3,
        log_amount_mean=4.0,
        log_amount_m2=0.5,
        last_time=1.7e9,
        velocity_count=[1.0, 2.0, 3.0],
        velocity_amount=[10.0, 20.0, 30.0],
    )


def _with(**changes: object) -> bytes:
    """A valid blob with some raw fields (by struct position name) replaced."""
    names = [
        "version",
        "flags",
        "last_country",
        "home_country",
        "count",
        "counterparty_next",
        "device_next",
        "reserved",
        "mean",
        "m2",
        "last_time",
        "geo_time",
        "latitude",
        "longitude",
    ]
    values = list(STATE_FORMAT.unpack(reference.encode_state(_valid())))
    for name, value in changes.items():
        values[names.index(name)] = value
    return STATE_FORMAT.pack(*values)


@pytest.mark.parametrize(
    ("blob", "code"),
    [
        (b"", c.STATE_WRONG_LENGTH),
        (reference.encode_state(_valid())[:-1], c.STATE_WRONG_LENGTH),
        (reference.encode_state(_valid()) + b"\0", c.STATE_WRONG_LENGTH),
        (_with(version=STATE_VERSION + 1), c.STATE_UNKNOWN_VERSION),
        (_with(version=0), c.STATE_UNKNOWN_VERSION),
        (_with(flags=2), c.STATE_BAD_FLAGS),
        (_with(reserved=1), c.STATE_BAD_FLAGS),
        (_with(counterparty_next=c.RING_SIZE), c.STATE_BAD_RING_INDEX),
        (_with(count=0), c.STATE_ZERO_COUNT),
        (_with(home_country=0x4164), c.STATE_BAD_COUNTRY),  # "Ad": lower case
        (_with(mean=float("nan")), c.STATE_NOT_FINITE),
        (_with(m2=float("inf")), c.STATE_NOT_FINITE),
        (_with(last_time=-1.0), c.STATE_NOT_FINITE),
        (_with(last_time=2e11), c.STATE_NOT_FINITE),
        (_with(m2=-1e-9), c.STATE_OUT_OF_RANGE),
        (_with(mean=43.0), c.STATE_OUT_OF_RANGE),
        (_with(flags=1, latitude=91.0), c.STATE_BAD_LOCATION),
        (_with(latitude=10.0), c.STATE_BAD_LOCATION),  # location without the geo flag
    ],
)
def test_bad_blobs_name_the_problem(blob: bytes, code: int) -> None:
    for decode in (decode_state, reference.decode_state):
        with pytest.raises(StateDecodeError, match=DECODE_ERRORS[code].split(" (")[0]):
            decode(blob)


def test_velocity_out_of_range_is_refused() -> None:
    values = list(STATE_FORMAT.unpack(reference.encode_state(_valid())))
    values[14 + c.VELOCITY_WINDOWS] = 1e29  # velocity_amount[0]
    for decode in (decode_state, reference.decode_state):
        with pytest.raises(StateDecodeError, match="velocity"):
            decode(STATE_FORMAT.pack(*values))


def test_layout_is_little_endian_and_documented_offsets_hold() -> None:
    blob = encode_state(_valid())
    assert struct.unpack_from("<H", blob, 0)[0] == STATE_VERSION
    assert struct.unpack_from("<I", blob, 8)[0] == 3
    assert struct.unpack_from("<d", blob, 32)[0] == 1.7e9
    assert struct.unpack_from("<3d", blob, 88) == (10.0, 20.0, 30.0)


def test_state_decode_error_carries_the_slot() -> None:
    with pytest.raises(StateDecodeError) as caught:
        decode_state(b"junk", slot=4)
    assert caught.value.slot == 4
    assert "slot 4" in str(caught.value)
