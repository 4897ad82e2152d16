# cython: language_level=3, cdivision=True
"""Compiled feature builder: decode states, compute features, update and encode states.

The exact specification is ``reference_features`` (same operations in the same order, so the
results are identical). Per batch this allocates the feature matrix, one C array of states and one
bytes object per account touched; per transaction it allocates nothing, and the row loop runs
without the GIL.
"""

import numpy as np

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.math cimport asin, cos, exp, floor, fmod, log1p, sin, sqrt
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from _checks cimport row_problem
from _constants cimport (
    DEGREES_TO_RADIANS, DESTINATION_BALANCES_KNOWN, EARTH_RADIUS_KM, FEATURE_COUNT,
    F_AMOUNT_EXCEEDS_ORIGIN_BALANCE, F_AMOUNT_OVER_ORIGIN_BALANCE, F_AWAY_FROM_HOME, F_COUNTRY_CHANGED,
    F_DESTINATION_BALANCES_KNOWN, F_DESTINATION_BALANCES_ZERO, F_DESTINATION_BALANCE_ERROR,
    F_DISTANCE_KM, F_FIRST_TRANSACTION, F_GEO_KNOWN, F_HOUR_OF_DAY, F_LOG_AMOUNT, F_LOG_AMOUNT_ZSCORE,
    F_NEW_COUNTERPARTY, F_NEW_DEVICE, F_ORIGIN_BALANCES_KNOWN, F_ORIGIN_BALANCE_ERROR, F_ORIGIN_DRAINED,
    F_SECONDS_SINCE_LAST, F_SPEED_KMH, F_STATE_KNOWN, F_TRAVEL_KNOWN, F_TYPE_PAYMENT,
    F_VELOCITY_AMOUNT_1M, F_VELOCITY_COUNT_1M, LN2, MAX_LOG_AMOUNT_M2, MAX_TRANSACTION_COUNT,
    MAX_VELOCITY_AMOUNT, MAX_VELOCITY_COUNT, MIN_LOG_AMOUNT_STD, MIN_TRAVEL_SECONDS,
    NO_PREVIOUS_SECONDS, ORIGIN_BALANCES_KNOWN, ORIGIN_BEFORE_KNOWN, RING_SIZE, STATE_SIZE,
    TYPE_PAYMENT, VELOCITY_WINDOWS,
)
from _state cimport AccountStateC, decode_into, encode_into, reset_state

from sentinel.hotpath.columns import ROW_PROBLEMS
from sentinel.hotpath.errors import InvalidTransactionValue, StateDecodeError
from sentinel.hotpath.schema import VELOCITY_HALF_LIVES_S
from sentinel.hotpath.state import DECODE_ERRORS

cdef double DECAY_RATES[VELOCITY_WINDOWS]
for _window in range(VELOCITY_WINDOWS):
    DECAY_RATES[_window] = LN2 / VELOCITY_HALF_LIVES_S[_window]


cdef struct Columns:
    const int32_t* slot
    const double* amount
    const uint8_t* kind
    const double* event_time
    const uint8_t* geo_known
    const double* latitude
    const double* longitude
    const uint16_t* country
    const uint64_t* counterparty
    const uint64_t* device
    const uint8_t* known
    const double* origin_before
    const double* origin_after
    const double* destination_before
    const double* destination_after
    uint16_t* home_country


cdef class _ColumnViews:
    """Typed views of a TransactionColumns (checks dtypes, contiguity and lengths once per batch)."""

    cdef Columns c
    cdef Py_ssize_t n
    cdef const int32_t[::1] slot
    cdef const double[::1] amount
    cdef const uint8_t[::1] kind
    cdef const double[::1] event_time
    cdef const uint8_t[::1] geo_known
    cdef const double[::1] latitude
    cdef const double[::1] longitude
    cdef const uint16_t[::1] country
    cdef const uint64_t[::1] counterparty
    cdef const uint64_t[::1] device
    cdef const uint8_t[::1] known
    cdef const double[::1] origin_before
    cdef const double[::1] origin_after
    cdef const double[::1] destination_before
    cdef const double[::1] destination_after
    cdef uint16_t[::1] home_country

    def __init__(self, columns):
        self.slot = columns.account_slot
        self.amount = columns.amount
        self.kind = columns.type
        self.event_time = columns.event_time
        self.geo_known = columns.geo_known
        self.latitude = columns.latitude
        self.longitude = columns.longitude
        self.country = columns.country
        self.counterparty = columns.counterparty
        self.device = columns.device
        self.known = columns.balances_known
        self.origin_before = columns.origin_before
        self.origin_after = columns.origin_after
        self.destination_before = columns.destination_before
        self.destination_after = columns.destination_after
        self.home_country = columns.home_country
        self.n = self.slot.shape[0]
        for length in (self.amount.shape[0], self.kind.shape[0], self.event_time.shape[0],
                       self.geo_known.shape[0], self.latitude.shape[0], self.longitude.shape[0],
                       self.country.shape[0], self.counterparty.shape[0], self.device.shape[0],
                       self.known.shape[0], self.origin_before.shape[0], self.origin_after.shape[0],
                       self.destination_before.shape[0], self.destination_after.shape[0],
                       self.home_country.shape[0]):
            if length != self.n:
                raise ValueError("the columns of a TransactionColumns must all have the same length")
        if self.n:
            self.c.slot = &self.slot[0]
            self.c.amount = &self.amount[0]
            self.c.kind = &self.kind[0]
            self.c.event_time = &self.event_time[0]
            self.c.geo_known = &self.geo_known[0]
            self.c.latitude = &self.latitude[0]
            self.c.longitude = &self.longitude[0]
            self.c.country = &self.country[0]
            self.c.counterparty = &self.counterparty[0]
            self.c.device = &self.device[0]
            self.c.known = &self.known[0]
            self.c.origin_before = &self.origin_before[0]
            self.c.origin_after = &self.origin_after[0]
            self.c.destination_before = &self.destination_before[0]
            self.c.destination_after = &self.destination_after[0]
            self.c.home_country = &self.home_country[0]

    cdef void check(self, Py_ssize_t n_states) except *:
        """Raise InvalidTransactionValue for the first unusable row (n_states < 0: ignore slots)."""
        cdef Py_ssize_t i
        cdef int problem = 0
        cdef const Columns* c = &self.c
        with nogil:
            for i in range(self.n):
                problem = row_problem(
                    c.slot[i], n_states, c.amount[i], c.kind[i], c.event_time[i], c.geo_known[i],
                    c.latitude[i], c.longitude[i], c.country[i], c.known[i], c.origin_before[i],
                    c.origin_after[i], c.destination_before[i], c.destination_after[i],
                )
                if problem:
                    break
        if problem:
            field, description = ROW_PROBLEMS[problem]
            raise InvalidTransactionValue(field, description, i)


cdef inline void stateless_row(const Columns* c, Py_ssize_t i, float* out) noexcept nogil:
    """Stateless columns of row i, stateful ones at their no-history values (out is zeroed)."""
    cdef double amount = c.amount[i]
    cdef double hour = fmod(floor(c.event_time[i] / 3600.0), 24.0)
    cdef uint8_t known = c.known[i]
    cdef double origin_before = c.origin_before[i]
    cdef double origin_after = c.origin_after[i]
    cdef double destination_before, destination_after
    cdef int w
    out[F_LOG_AMOUNT] = <float>log1p(amount)
    out[F_TYPE_PAYMENT + c.kind[i] - TYPE_PAYMENT] = 1.0
    out[F_HOUR_OF_DAY] = <float>(hour + 24.0 if hour < 0.0 else hour)
    if known & ORIGIN_BALANCES_KNOWN == ORIGIN_BALANCES_KNOWN:
        out[F_ORIGIN_BALANCES_KNOWN] = 1.0
        out[F_ORIGIN_BALANCE_ERROR] = <float>(origin_after + amount - origin_before)
        out[F_ORIGIN_DRAINED] = 1.0 if origin_before > 0.0 and origin_after <= 0.0 else 0.0
    if known & ORIGIN_BEFORE_KNOWN:
        out[F_AMOUNT_OVER_ORIGIN_BALANCE] = <float>(amount / (origin_before if origin_before > 1.0 else 1.0))
        out[F_AMOUNT_EXCEEDS_ORIGIN_BALANCE] = 1.0 if amount > origin_before else 0.0
    if known & DESTINATION_BALANCES_KNOWN == DESTINATION_BALANCES_KNOWN:
        destination_before = c.destination_before[i]
        destination_after = c.destination_after[i]
        out[F_DESTINATION_BALANCES_KNOWN] = 1.0
        out[F_DESTINATION_BALANCE_ERROR] = <float>(destination_before + amount - destination_after)
        out[F_DESTINATION_BALANCES_ZERO] = (
            1.0 if destination_before == 0.0 and destination_after == 0.0 else 0.0
        )
    out[F_GEO_KNOWN] = 1.0 if c.geo_known[i] else 0.0
    out[F_SECONDS_SINCE_LAST] = NO_PREVIOUS_SECONDS
    for w in range(VELOCITY_WINDOWS):
        out[F_VELOCITY_COUNT_1M + w] = 1.0
        out[F_VELOCITY_AMOUNT_1M + w] = <float>amount


cdef inline double haversine_km(double lat1, double lon1, double lat2, double lon2) noexcept nogil:
    cdef double sin_dlat = sin((lat2 - lat1) * DEGREES_TO_RADIANS * 0.5)
    cdef double sin_dlon = sin((lon2 - lon1) * DEGREES_TO_RADIANS * 0.5)
    cdef double a = (sin_dlat * sin_dlat
                     + cos(lat1 * DEGREES_TO_RADIANS) * cos(lat2 * DEGREES_TO_RADIANS) * sin_dlon * sin_dlon)
    if a > 1.0:
        a = 1.0
    return 2.0 * EARTH_RADIUS_KM * asin(sqrt(a))


cdef inline bint in_ring(const uint64_t* ring, uint64_t value) noexcept nogil:
    cdef int k
    for k in range(RING_SIZE):
        if ring[k] == value:
            return True
    return False


cdef inline void apply_row(AccountStateC* s, const Columns* c, Py_ssize_t i, float* out) noexcept nogil:
    """Stateful columns of row i from state s, then update s (reference_features.apply_transaction)."""
    cdef double amount = c.amount[i]
    cdef double t = c.event_time[i]
    cdef double x = log1p(amount)
    cdef uint32_t previous = s.count
    cdef double dt = t - s.last_time
    cdef bint is_latest = previous == 0 or dt >= 0.0
    cdef double std, decay, weight, count, total, distance, gap, delta, previous_dt
    cdef int w
    cdef bint geo = c.geo_known[i] != 0
    cdef double latitude = c.latitude[i]
    cdef double longitude = c.longitude[i]
    cdef uint16_t country = c.country[i]
    cdef uint16_t home = s.home_country
    cdef uint64_t counterparty = c.counterparty[i]
    cdef uint64_t device = c.device[i]
    cdef bint new_counterparty, new_device
    out[F_STATE_KNOWN] = 1.0
    out[F_FIRST_TRANSACTION] = 1.0 if previous == 0 else 0.0
    if previous >= 2:
        std = sqrt(s.log_amount_m2 / <double>(previous - 1))
        if std < MIN_LOG_AMOUNT_STD:
            std = MIN_LOG_AMOUNT_STD
        out[F_LOG_AMOUNT_ZSCORE] = <float>((x - s.log_amount_mean) / std)
    if previous:
        out[F_SECONDS_SINCE_LAST] = <float>(dt if dt > 0.0 else 0.0)
        for w in range(VELOCITY_WINDOWS):
            if dt >= 0.0:
                decay = exp(-dt * DECAY_RATES[w])
                count = s.velocity_count[w] * decay + 1.0
                total = s.velocity_amount[w] * decay + amount
            else:
                weight = exp(dt * DECAY_RATES[w])
                count = s.velocity_count[w] + weight
                total = s.velocity_amount[w] + amount * weight
            if count > MAX_VELOCITY_COUNT:  # saturate: the decoder's bounds stay true
                count = MAX_VELOCITY_COUNT
            if total > MAX_VELOCITY_AMOUNT:
                total = MAX_VELOCITY_AMOUNT
            s.velocity_count[w] = count
            s.velocity_amount[w] = total
            out[F_VELOCITY_COUNT_1M + w] = <float>count
            out[F_VELOCITY_AMOUNT_1M + w] = <float>total
    else:
        for w in range(VELOCITY_WINDOWS):
            s.velocity_count[w] = 1.0
            s.velocity_amount[w] = amount
    if geo and s.last_geo_known:
        distance = haversine_km(s.last_latitude, s.last_longitude, latitude, longitude)
        gap = t - s.last_geo_time
        if gap < 0.0:
            gap = -gap
        if gap < MIN_TRAVEL_SECONDS:
            gap = MIN_TRAVEL_SECONDS
        out[F_TRAVEL_KNOWN] = 1.0
        out[F_DISTANCE_KM] = <float>distance
        out[F_SPEED_KMH] = <float>(distance / (gap / 3600.0))
    c.home_country[i] = home
    if country and home and country != home:
        out[F_AWAY_FROM_HOME] = 1.0
    if country and s.last_country and country != s.last_country:
        out[F_COUNTRY_CHANGED] = 1.0
    new_counterparty = counterparty != 0 and not in_ring(s.counterparties, counterparty)
    new_device = device != 0 and not in_ring(s.devices, device)
    out[F_NEW_COUNTERPARTY] = 1.0 if new_counterparty else 0.0
    out[F_NEW_DEVICE] = 1.0 if new_device else 0.0

    if previous < MAX_TRANSACTION_COUNT:
        s.count = previous + 1
        delta = x - s.log_amount_mean
        s.log_amount_mean += delta / <double>s.count
        s.log_amount_m2 = s.log_amount_m2 + delta * (x - s.log_amount_mean)
        if s.log_amount_m2 > MAX_LOG_AMOUNT_M2:
            s.log_amount_m2 = MAX_LOG_AMOUNT_M2
    if is_latest:
        s.last_time = t
        if country:
            s.last_country = country
    if country and not home:
        s.home_country = country
    if geo and (not s.last_geo_known or t >= s.last_geo_time):
        s.last_geo_known = 1
        s.last_geo_time = t
        s.last_latitude = latitude
        s.last_longitude = longitude
    if new_counterparty:
        s.counterparties[s.counterparty_next] = counterparty
        s.counterparty_next = (s.counterparty_next + 1) % RING_SIZE
    if new_device:
        s.devices[s.device_next] = device
        s.device_next = (s.device_next + 1) % RING_SIZE


def build_features(columns, list states):
    """Features of a batch and the accounts' new states (see sentinel.hotpath.build_features)."""
    cdef _ColumnViews views = _ColumnViews(columns)
    cdef Py_ssize_t n = views.n
    cdef Py_ssize_t n_states = len(states)
    cdef Py_ssize_t i, slot
    cdef int code = 0
    cdef AccountStateC* accounts
    cdef uint8_t* touched
    cdef float[:, ::1] out
    cdef const Columns* c = &views.c
    views.check(n_states)
    features = np.zeros((n, FEATURE_COUNT), dtype=np.float32)
    out = features
    accounts = <AccountStateC*>malloc(max(n_states, 1) * (sizeof(AccountStateC) + 1))
    if accounts == NULL:
        raise MemoryError()
    touched = <uint8_t*>(accounts + max(n_states, 1))
    try:
        memset(touched, 0, n_states)
        for slot in range(n_states):
            blob = states[slot]
            reset_state(&accounts[slot])
            if blob is None:
                continue
            if type(blob) is not bytes:
                raise TypeError(f"states[{slot}] must be bytes or None, not {type(blob).__name__}")
            code = decode_into(<const uint8_t*>PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob),
                               &accounts[slot])
            if code:
                raise StateDecodeError(DECODE_ERRORS[code], slot)
        with nogil:
            for i in range(n):
                slot = c.slot[i]
                stateless_row(c, i, &out[i, 0])
                apply_row(&accounts[slot], c, i, &out[i, 0])
                touched[slot] = 1
        new_states = list(states)
        for slot in range(n_states):
            if touched[slot]:
                blob = PyBytes_FromStringAndSize(NULL, STATE_SIZE)
                encode_into(&accounts[slot], <uint8_t*>PyBytes_AS_STRING(blob))
                new_states[slot] = blob
    finally:
        free(accounts)
    return features, new_states


def build_features_stateless(columns):
    """Features without per-account state (see sentinel.hotpath.build_features_stateless)."""
    cdef _ColumnViews views = _ColumnViews(columns)
    cdef Py_ssize_t n = views.n
    cdef Py_ssize_t i
    cdef float[:, ::1] out
    cdef const Columns* c = &views.c
    views.check(-1)
    features = np.zeros((n, FEATURE_COUNT), dtype=np.float32)
    out = features
    with nogil:
        for i in range(n):
            stateless_row(c, i, &out[i, 0])
            c.home_country[i] = 0
    return features
