"""Hypothesis strategies for the hot path tests: batches with adversarial values, valid states."""

from __future__ import annotations

from hypothesis import strategies as st

from sentinel.hotpath import TransactionColumns, country_code, stable_hash
from sentinel.hotpath._constants import RING_SIZE
from sentinel.hotpath.state import AccountState

BASE_TIME = 1_700_000_000.0
COUNTRIES = [0, country_code("DE"), country_code("FR"), country_code("US")]
# A small pool so rings overflow and counterparties/devices repeat; 0 = not given.
IDS = [0, *(stable_hash(f"id-{n}") for n in range(12))]

amounts = st.one_of(
    st.floats(0.0, 1e18),
    st.sampled_from([0.0, 5e-324, 0.01, 1.0, 999.99, 1e18]),
    st.floats(0.0, 1e6),
)
balances = st.one_of(st.floats(-1e18, 1e18), st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e18, -1e18]))
offsets = st.one_of(
    st.floats(-1e5, 1e5), st.sampled_from([0.0, 1.0, 59.0, 60.0, 3_600.0]), st.floats(-1e9, 1e9)
)
latitudes = st.one_of(st.floats(-90.0, 90.0), st.sampled_from([-90.0, 90.0, 0.0]))
longitudes = st.one_of(st.floats(-180.0, 180.0), st.sampled_from([-180.0, 180.0, 0.0]))


@st.composite
def rows(draw: st.DrawFn, n_slots: int) -> dict[str, object]:
    """One transaction of one of ``n_slots`` accounts."""
    geo = draw(st.booleans())
    return {
        "account_slot": draw(st.integers(0, n_slots - 1)),
        "amount": draw(amounts),
        "type": draw(st.integers(1, 5)),
        "event_time": min(max(BASE_TIME + draw(offsets), 0.0), 1e11),
        "geo_known": int(geo),
        "latitude": draw(latitudes) if geo else 0.0,
        "longitude": draw(longitudes) if geo else 0.0,
        "country": draw(st.sampled_from(COUNTRIES)),
        "channel": draw(st.integers(0, 6)),
        "counterparty": draw(st.sampled_from(IDS)),
        "device": draw(st.sampled_from(IDS)),
        "balances_known": draw(st.integers(0, 15)),
        "origin_before": draw(balances),
        "origin_after": draw(balances),
        "destination_before": draw(balances),
        "destination_after": draw(balances),
    }


def to_columns(row_dicts: list[dict[str, object]]) -> TransactionColumns:
    """A TransactionColumns holding the given rows."""
    columns = TransactionColumns.empty(len(row_dicts))
    for name in row_dicts[0] if row_dicts else ():
        getattr(columns, name)[:] = [row[name] for row in row_dicts]
    return columns


@st.composite
def account_states(draw: st.DrawFn) -> AccountState:
    """A state the encoder could have written (within every decode bound)."""
    geo = draw(st.booleans())
    count = draw(st.one_of(st.integers(1, 5), st.integers(1, 2**32 - 1)))
    return AccountState(
        count=count,
        last_country=draw(st.sampled_from(COUNTRIES)),
        home_country=draw(st.sampled_from(COUNTRIES)),
        last_geo_known=geo,
        counterparty_next=draw(st.integers(0, RING_SIZE - 1)),
        device_next=draw(st.integers(0, RING_SIZE - 1)),
        log_amount_mean=draw(st.floats(0.0, 42.0)),
        log_amount_m2=draw(st.one_of(st.just(0.0), st.floats(0.0, 1e13))),
        last_time=min(max(BASE_TIME + draw(offsets), 0.0), 1e11),
        last_geo_time=min(max(BASE_TIME + draw(offsets), 0.0), 1e11) if geo else 0.0,
        last_latitude=draw(latitudes) if geo else 0.0,
        last_longitude=draw(longitudes) if geo else 0.0,
        velocity_count=draw(st.lists(st.floats(0.0, 1e6), min_size=3, max_size=3)),
        velocity_amount=draw(st.lists(st.floats(0.0, 1e27), min_size=3, max_size=3)),
        counterparties=draw(st.lists(st.sampled_from(IDS), min_size=RING_SIZE, max_size=RING_SIZE)),
        devices=draw(st.lists(st.sampled_from(IDS), min_size=RING_SIZE, max_size=RING_SIZE)),
    )


@st.composite
def batches(draw: st.DrawFn, max_rows: int = 40) -> tuple[TransactionColumns, list[bytes | None]]:
    """A batch and its states (None or a valid encoded state per slot)."""
    from sentinel.hotpath.reference_codec import encode_state

    n_slots = draw(st.integers(1, 6))
    row_dicts = draw(st.lists(rows(n_slots), min_size=0, max_size=max_rows))
    states = draw(
        st.lists(st.one_of(st.none(), account_states().map(encode_state)), min_size=n_slots, max_size=n_slots)
    )
    return to_columns(row_dicts), states
