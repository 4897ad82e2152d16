"""Feature builder: known values of each feature, ordering inside a batch, bad input, the builder."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel.hotpath import (
    FEATURE_DOCS,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURE_SCHEMA_HASH,
    FEATURE_SCHEMA_VERSION,
    TRANSACTION_TYPES,
    InvalidTransactionValue,
    StateDecodeError,
    TransactionColumnsBuilder,
    build_features,
    build_features_stateless,
    country_code,
    decode_state,
    stable_hash,
)
from sentinel.hotpath.reference_codec import fnv1a_64

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
TRANSFER = TRANSACTION_TYPES["TRANSFER"]
BERLIN = (52.5200, 13.4050)
NEW_YORK = (40.7128, -74.0060)


def batch(*rows: dict[str, object]) -> TransactionColumnsBuilder:
    builder = TransactionColumnsBuilder(2)
    for row in rows:
        arguments = {"account_slot": 0, "amount": 100.0, "type_code": TRANSFER, "event_time": T0, **row}
        builder.append(**arguments)
    return builder


def features_of(*rows: dict[str, object], states: list[bytes | None] | None = None):
    columns = batch(*rows).build()
    n_slots = max(int(columns.account_slot.max()) + 1, len(states or []))
    features, new_states = build_features(columns, states or [None] * n_slots)
    return {name: features[:, index].tolist() for name, index in FEATURE_INDEX.items()}, new_states, columns


def test_schema_is_documented_and_pinned() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == len(FEATURE_DOCS)
    assert all(FEATURE_DOCS[name] for name in FEATURE_NAMES)
    # Changing names, order, the schema version or the state version changes this hash: bump
    # FEATURE_SCHEMA_VERSION (models and rule programs carry it) and update the pin deliberately.
    assert FEATURE_SCHEMA_VERSION == 1
    assert "c824a9d29d31" + FEATURE_SCHEMA_HASH[12:] == FEATURE_SCHEMA_HASH
    assert len(FEATURE_SCHEMA_HASH) == 64


def test_balance_consistency_and_drained_account() -> None:
    f, _, _ = features_of(
        {
            "amount": 100.0,
            "origin_before": 500.0,
            "origin_after": 400.0,
            "destination_before": 0.0,
            "destination_after": 100.0,
        },
        {"amount": 100.0, "origin_before": 500.0, "origin_after": 500.0},
        {
            "amount": 1_000.0,
            "origin_before": 1_000.0,
            "origin_after": 0.0,
            "destination_before": 0.0,
            "destination_after": 0.0,
        },
        {"amount": 2_000.0, "origin_before": 0.5},
    )
    assert f["origin_balances_known"] == [1, 1, 1, 0]
    assert f["origin_balance_error"] == [0.0, 100.0, 0.0, 0.0]
    assert f["destination_balances_known"] == [1, 0, 1, 0]
    assert f["destination_balance_error"] == [0.0, 0.0, 1_000.0, 0.0]
    assert f["destination_balances_zero"] == [0, 0, 1, 0]
    assert f["origin_drained"] == [0, 0, 1, 0]
    assert f["amount_over_origin_balance"] == pytest.approx([0.2, 0.2, 1.0, 2_000.0])
    assert f["amount_exceeds_origin_balance"] == [0, 0, 0, 1]


def test_stateless_basics() -> None:
    f, _, _ = features_of(
        {"amount": math.e - 1, "type_code": TRANSACTION_TYPES["CASH_OUT"], "event_time": T0}
    )
    assert f["log_amount"] == pytest.approx([1.0])
    assert f["type_cash_out"] == [1.0] and f["type_transfer"] == [0.0]
    assert f["hour_of_day"] == [22.0]
    assert f["geo_known"] == [0.0] and f["travel_known"] == [0.0]


def test_first_transaction_then_history_in_the_same_batch() -> None:
    f, new_states, _ = features_of({"event_time": T0}, {"event_time": T0 + 60.0, "amount": 300.0})
    assert f["first_transaction"] == [1, 0]
    assert f["state_known"] == [1, 1]
    assert f["seconds_since_last"] == [-1.0, 60.0]
    assert f["velocity_count_1m"] == [1.0, 1.5]
    assert f["velocity_count_1h"][1] == pytest.approx(1 + 2 ** (-1 / 60))
    assert f["velocity_amount_1m"] == [100.0, 350.0]
    state = decode_state(new_states[0])
    assert state.count == 2 and state.last_time == T0 + 60.0
    assert state.log_amount_mean == pytest.approx((math.log1p(100) + math.log1p(300)) / 2)


def test_amount_zscore_uses_the_floored_standard_deviation() -> None:
    f, _, _ = features_of(
        *({"amount": 100.0, "event_time": T0 + i} for i in range(3)),
        {"amount": 10_000.0, "event_time": T0 + 3},
    )
    assert f["log_amount_zscore"][:3] == [0.0, 0.0, 0.0]
    assert f["log_amount_zscore"][3] == pytest.approx((math.log1p(10_000) - math.log1p(100)) / 0.1, rel=1e-6)


def test_impossible_travel() -> None:
    f, _, _ = features_of(
        {"latitude": BERLIN[0], "longitude": BERLIN[1], "event_time": T0},
        {"event_time": T0 + 600.0},  # no location: the Berlin fix stays the reference point
        {"latitude": NEW_YORK[0], "longitude": NEW_YORK[1], "event_time": T0 + 3_600.0},
        {"latitude": NEW_YORK[0], "longitude": NEW_YORK[1], "event_time": T0 + 3_600.0},
    )
    assert f["travel_known"] == [0, 0, 1, 1]
    assert f["distance_km"][2] == pytest.approx(6_385, rel=2e-3)
    assert f["speed_kmh"][2] == pytest.approx(f["distance_km"][2])  # one hour
    assert f["distance_km"][3] == 0.0 and f["speed_kmh"][3] == 0.0


def test_simultaneous_locations_give_a_finite_speed() -> None:
    f, _, _ = features_of({"latitude": 0.0, "longitude": 0.0}, {"latitude": 0.0, "longitude": 1.0})
    assert f["speed_kmh"][1] == pytest.approx(f["distance_km"][1] * 60)  # gap floored at 1 minute


def test_home_country_and_country_change() -> None:
    f, _, columns = features_of({"country": "DE"}, {"country": ""}, {"country": "FR"}, {"country": "FR"})
    assert columns.home_country.tolist() == [0, country_code("DE"), country_code("DE"), country_code("DE")]
    assert f["away_from_home"] == [0, 0, 1, 1]
    assert f["country_changed"] == [0, 0, 1, 0]


def test_counterparty_and_device_rings_remember_the_last_eight() -> None:
    rows = [{"counterparty_id": f"C{n}", "device_id": "phone", "event_time": T0 + n} for n in range(9)]
    rows += [
        {"counterparty_id": "C0", "event_time": T0 + 9},
        {"counterparty_id": "C8", "event_time": T0 + 10},
    ]
    f, _, _ = features_of(*rows)
    assert f["new_counterparty"] == [1] * 9 + [1, 0]
    assert f["new_device"] == [1] + [0] * 8 + [0, 0]  # no device given: never new


def test_rows_of_one_account_see_each_other_and_other_accounts_do_not() -> None:
    rows = [{"account_slot": n % 2, "event_time": T0 + n, "amount": 10.0 * (n + 1)} for n in range(6)]
    f, states, columns = features_of(*rows)
    assert f["first_transaction"] == [1, 1, 0, 0, 0, 0]
    # Applying the rows one batch at a time gives the same features and states.
    sequential = [None, None]
    for row in range(len(columns)):
        one = columns.take([row])
        slot = int(one.account_slot[0])
        one.account_slot[0] = 0
        row_features, (sequential[slot],) = build_features(one, [sequential[slot]])
        assert row_features[0].tolist() == [f[name][row] for name in FEATURE_NAMES]
    assert states == sequential


def test_late_event_does_not_move_the_clock() -> None:
    f, states, _ = features_of({"event_time": T0}, {"event_time": T0 - 60.0})
    assert f["seconds_since_last"][1] == 0.0
    assert f["velocity_count_1m"][1] == 1.5  # the late one counts with weight 2**(-60/60)
    assert decode_state(states[0]).last_time == T0


def test_stateless_mode_is_neutral_and_flagged() -> None:
    columns = batch(
        {"counterparty_id": "C1", "device_id": "d", "country": "DE"},
        {"counterparty_id": "C1", "amount": 50.0},
    ).build()
    columns.home_country[:] = 7
    features = build_features_stateless(columns)
    f = {name: features[:, index].tolist() for name, index in FEATURE_INDEX.items()}
    assert f["state_known"] == [0, 0]
    assert f["first_transaction"] == [0, 0]
    assert f["new_counterparty"] == [0, 0] and f["new_device"] == [0, 0]
    assert f["seconds_since_last"] == [-1, -1]
    assert f["velocity_amount_24h"] == [100.0, 50.0]
    assert columns.home_country.tolist() == [0, 0]


def test_slots_without_rows_keep_their_state() -> None:
    _, (blob,), _ = features_of({})
    _, states, _ = features_of({"account_slot": 1}, states=[None, None, blob])
    assert states[0] is None and states[2] is blob and states[1] is not None


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"amount": math.nan}, "amount"),
        ({"amount": math.inf}, "amount"),
        ({"amount": -1.0}, "amount"),
        ({"event_time": math.nan}, "event_time"),
        ({"latitude": 91.0, "longitude": 0.0}, "latitude"),
        ({"latitude": 0.0, "longitude": -180.5}, "longitude"),
        ({"latitude": 0.0}, "latitude"),
        ({"country": "de"}, "country"),
        ({"country": "DEU"}, "country"),
        ({"type_code": 9}, "type"),
        ({"origin_before": math.inf}, "origin_before"),
        ({"account_slot": -1}, "account_slot"),
    ],
)
def test_builder_names_the_bad_field(row: dict[str, object], field: str) -> None:
    builder = batch()
    with pytest.raises(InvalidTransactionValue) as caught:
        builder.append(**{"account_slot": 0, "amount": 1.0, "type_code": 1, "event_time": T0, **row})
    assert caught.value.field == field and caught.value.row is None
    assert len(builder) == 0


def test_build_features_names_the_bad_row() -> None:
    columns = batch({}, {}, {}).build()
    columns.latitude[1], columns.geo_known[1] = math.nan, 1
    with pytest.raises(InvalidTransactionValue) as caught:
        build_features(columns, [None])
    assert (caught.value.field, caught.value.row) == ("latitude", 1)
    columns.geo_known[1] = 0
    columns.account_slot[2] = 1
    with pytest.raises(InvalidTransactionValue, match="row 2: account_slot"):
        build_features(columns, [None])


def test_bad_states_in_a_batch() -> None:
    columns = batch({"account_slot": 1}).build()
    with pytest.raises(StateDecodeError) as caught:
        build_features(columns, [None, b"\x02\x00" + bytes(238)])
    assert caught.value.slot == 1 and "version" in str(caught.value)
    with pytest.raises(TypeError):
        build_features(columns, [None, "text"])  # type: ignore[list-item]


def test_builder_grows_and_clears() -> None:
    builder = batch(*({"event_time": T0 + n} for n in range(5)))
    columns = builder.build()
    assert len(columns) == 5 and columns.event_time.tolist() == [T0 + n for n in range(5)]
    builder.clear()
    builder.append(0, 1.0, 1, T0, counterparty_id="x")
    rebuilt = builder.build()
    assert len(rebuilt) == 1 and rebuilt.counterparty[0] == stable_hash("x")
    assert columns.event_time[0] == T0  # built columns own their arrays


def test_stable_hash_is_fnv1a_64() -> None:
    assert stable_hash("") == 0
    assert stable_hash("a") == 0xAF63DC4C8601EC8C  # published FNV-1a test vector


@given(st.text(max_size=40))
def test_stable_hash_matches_the_reference(text: str) -> None:
    assert stable_hash(text) == fnv1a_64(text)


def test_empty_batch() -> None:
    features, states = build_features(batch().build(), [None])
    assert features.shape == (0, len(FEATURE_NAMES)) and states == [None]
    assert np.array_equal(build_features_stateless(batch().build()), features)


def test_statistics_saturate_so_new_states_always_decode() -> None:
    from sentinel.hotpath import AccountState, encode_state
    from sentinel.hotpath._constants import (
        MAX_LOG_AMOUNT_M2,
        MAX_VELOCITY_AMOUNT,
        MAX_VELOCITY_COUNT,
        VELOCITY_WINDOWS,
    )

    extreme = AccountState(
        count=1,
        log_amount_mean=24.0,
        log_amount_m2=MAX_LOG_AMOUNT_M2,
        last_time=T0,
        velocity_count=[MAX_VELOCITY_COUNT] * VELOCITY_WINDOWS,
        velocity_amount=[MAX_VELOCITY_AMOUNT] * VELOCITY_WINDOWS,
    )
    f, (blob,), _ = features_of({"amount": 0.0, "event_time": T0}, states=[encode_state(extreme)])
    state = decode_state(blob)
    assert state.log_amount_m2 == MAX_LOG_AMOUNT_M2
    assert state.velocity_count == [MAX_VELOCITY_COUNT] * VELOCITY_WINDOWS
    assert f["velocity_count_1h"] == [MAX_VELOCITY_COUNT]
