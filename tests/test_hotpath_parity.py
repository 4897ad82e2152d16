"""The compiled hot path gives exactly the reference's results on random and adversarial batches.

Tolerance: none. Both implementations do the same float64 operations in the same order with the
same libm functions (and the extension is built with -ffp-contract=off), so states must be
byte-identical and float32 features bit-identical; any difference is a semantic divergence.
"""

from __future__ import annotations

import numpy as np
import pytest
from hotpath_strategies import account_states, batches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.hotpath import (
    FEATURE_INDEX,
    STATE_SIZE,
    STATE_VERSION,
    InvalidTransactionValue,
    StateDecodeError,
    TransactionColumns,
    build_features,
    build_features_stateless,
)
from sentinel.hotpath import reference_features as reference
from sentinel.hotpath.reference_codec import encode_state

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
PARITY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _both(columns: TransactionColumns, states: list[bytes | None]):
    compiled_columns, reference_columns = columns.take(slice(None)), columns.take(slice(None))
    compiled = build_features(compiled_columns, states)
    expected = reference.build_features(reference_columns, states)
    np.testing.assert_array_equal(compiled_columns.home_country, reference_columns.home_country)
    return compiled, expected


@PARITY
@given(batches())
def test_features_and_states_match_the_reference(
    batch: tuple[TransactionColumns, list[bytes | None]],
) -> None:
    columns, states = batch
    (features, new_states), (expected_features, expected_states) = _both(columns, states)
    assert features.dtype == np.float32 and features.shape == expected_features.shape
    np.testing.assert_array_equal(features, expected_features)
    assert np.isfinite(features).all()
    assert new_states == expected_states


@PARITY
@given(batches(max_rows=12))
def test_a_second_batch_on_the_new_states_still_matches(
    batch: tuple[TransactionColumns, list[bytes | None]],
) -> None:
    columns, states = batch
    (_, new_states), _ = _both(columns, states)
    (features, newer), (expected_features, expected_newer) = _both(columns, new_states)
    np.testing.assert_array_equal(features, expected_features)
    assert newer == expected_newer


@PARITY
@given(batches())
def test_stateless_features_match_the_reference(batch: tuple[TransactionColumns, list[bytes | None]]) -> None:
    columns, _ = batch
    compiled_columns, reference_columns = columns.take(slice(None)), columns.take(slice(None))
    np.testing.assert_array_equal(
        build_features_stateless(compiled_columns), reference.build_features_stateless(reference_columns)
    )


@PARITY
@given(batches(max_rows=8), st.data())
def test_bad_values_raise_the_same_error(
    batch: tuple[TransactionColumns, list[bytes | None]], data: st.DataObject
) -> None:
    columns, states = batch
    if not len(columns):
        return
    row = data.draw(st.integers(0, len(columns) - 1))
    column = data.draw(
        st.sampled_from(
            [
                "amount",
                "event_time",
                "latitude",
                "longitude",
                "type",
                "country",
                "balances_known",
                "origin_before",
                "destination_after",
                "account_slot",
                "geo_known",
            ]
        )
    )
    value = data.draw(st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 1e19, 91.0, 200.0, 7, 16, 99]))
    array = getattr(columns, column)
    try:
        array[row] = value
    except (OverflowError, ValueError):  # e.g. NaN into an integer column
        return
    columns.geo_known[row] = 1 if column in ("latitude", "longitude") else columns.geo_known[row]
    columns.balances_known[row] |= 9 if column in ("origin_before", "destination_after") else 0
    errors = []
    for implementation in (build_features, reference.build_features):
        try:
            implementation(columns.take(slice(None)), states)
            errors.append(None)
        except InvalidTransactionValue as exc:
            errors.append((exc.field, exc.row, str(exc)))
    assert errors[0] == errors[1]


def _other_version(blob: bytes) -> bytes:
    return (STATE_VERSION + 1).to_bytes(2, "little") + blob[2:]


bad_blobs = st.one_of(
    st.binary(min_size=0, max_size=300),
    st.binary(min_size=STATE_SIZE, max_size=STATE_SIZE),
    account_states().map(encode_state).map(_other_version),  # a state written by another version
)


@PARITY
@given(batches(max_rows=4), bad_blobs, st.integers(0, 5))
def test_corrupt_states_fail_the_same_way(
    batch: tuple[TransactionColumns, list[bytes | None]], blob: bytes, slot: int
) -> None:
    columns, states = batch
    states[slot % len(states)] = blob
    outcomes = []
    for implementation in (build_features, reference.build_features):
        try:
            outcomes.append(implementation(columns.take(slice(None)), states)[1])
        except StateDecodeError as exc:
            outcomes.append((exc.slot, str(exc)))
    assert outcomes[0] == outcomes[1]


def test_one_account_hundreds_of_times_in_one_batch() -> None:
    rng = np.random.default_rng(3)
    n = 600
    columns = TransactionColumns.empty(n)
    columns.amount[:] = rng.choice([0.0, 1.0, 1e18, 250.0], n)
    columns.type[:] = rng.integers(1, 6, n)
    columns.event_time[:] = 1.7e9 + np.repeat(np.arange(n // 20), 20) * rng.choice([-1.0, 0.0, 30.0], n)
    columns.geo_known[:] = 1
    columns.latitude[:] = rng.uniform(-90, 90, n)
    columns.longitude[:] = rng.uniform(-180, 180, n)
    columns.counterparty[:] = rng.integers(1, 40, n, dtype=np.uint64)
    (features, states), (expected, expected_states) = _both(columns, [None])
    np.testing.assert_array_equal(features, expected)
    assert states == expected_states
    assert features[-1, FEATURE_INDEX["velocity_count_1m"]] > 1.0  # kept growing inside the batch
