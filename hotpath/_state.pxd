# cython: language_level=3
"""C view of an account state and the codec between it and the binary layout of ``state.py``.

A C "header": inline so every compiled module that needs them (``_codec``, ``_features``) gets them
without importing another extension at run time. Byte-by-byte little-endian loads/stores make the layout independent of the host's
byte order (gcc -O3 turns them into single moves on x86-64 and aarch64).
"""

from libc.math cimport isfinite
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from _checks cimport valid_country
from _constants cimport (
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
    STATE_VALID,
    STATE_VERSION,
    STATE_WRONG_LENGTH,
    STATE_ZERO_COUNT,
    VELOCITY_WINDOWS,
)

ctypedef struct AccountStateC:
    uint32_t count
    uint16_t last_country
    uint16_t home_country
    uint8_t last_geo_known
    uint8_t counterparty_next
    uint8_t device_next
    double log_amount_mean
    double log_amount_m2
    double last_time
    double last_geo_time
    double last_latitude
    double last_longitude
    double velocity_count[VELOCITY_WINDOWS]
    double velocity_amount[VELOCITY_WINDOWS]
    uint64_t counterparties[RING_SIZE]
    uint64_t devices[RING_SIZE]


cdef inline uint64_t load_le(const uint8_t* p, int width) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    for i in range(width - 1, -1, -1):
        value = (value << 8) | p[i]
    return value


cdef inline void store_le(uint8_t* p, uint64_t value, int width) noexcept nogil:
    cdef int i
    for i in range(width):
        p[i] = <uint8_t>(value & 0xFF)
        value >>= 8


cdef inline double load_f64(const uint8_t* p) noexcept nogil:
    cdef uint64_t bits = load_le(p, 8)
    cdef double value
    memcpy(&value, &bits, 8)
    return value


cdef inline void store_f64(uint8_t* p, double value) noexcept nogil:
    cdef uint64_t bits
    memcpy(&bits, &value, 8)
    store_le(p, bits, 8)


cdef inline void reset_state(AccountStateC* s) noexcept nogil:
    """The state of an account never seen (count 0): what a transaction of a new account starts from."""
    memset(s, 0, sizeof(AccountStateC))


cdef inline int decode_into(const uint8_t* p, Py_ssize_t size, AccountStateC* s) noexcept nogil:
    """Parse a blob into ``s``; returns STATE_VALID or why it is refused (the index of its message in
    DECODE_ERRORS; same checks, same order as reference_codec.decode_state)."""
    cdef int i
    cdef uint64_t flags, reserved
    if size != STATE_SIZE:
        return STATE_WRONG_LENGTH
    if load_le(p, 2) != STATE_VERSION:
        return STATE_UNKNOWN_VERSION
    flags = load_le(p + 2, 2)
    reserved = load_le(p + 14, 2)
    if (flags & ~(<uint64_t>FLAG_LAST_GEO_KNOWN)) or reserved:
        return STATE_BAD_FLAGS
    s.counterparty_next = p[12]
    s.device_next = p[13]
    if s.counterparty_next >= RING_SIZE or s.device_next >= RING_SIZE:
        return STATE_BAD_RING_INDEX
    s.count = <uint32_t>load_le(p + 8, 4)
    if s.count == 0:
        return STATE_ZERO_COUNT
    s.last_country = <uint16_t>load_le(p + 4, 2)
    s.home_country = <uint16_t>load_le(p + 6, 2)
    if not (valid_country(s.last_country) and valid_country(s.home_country)):
        return STATE_BAD_COUNTRY
    s.log_amount_mean = load_f64(p + 16)
    s.log_amount_m2 = load_f64(p + 24)
    s.last_time = load_f64(p + 32)
    s.last_geo_time = load_f64(p + 40)
    s.last_latitude = load_f64(p + 48)
    s.last_longitude = load_f64(p + 56)
    for i in range(VELOCITY_WINDOWS):
        s.velocity_count[i] = load_f64(p + 64 + 8 * i)
        s.velocity_amount[i] = load_f64(p + 88 + 8 * i)
    for i in range(6):
        if not isfinite(load_f64(p + 16 + 8 * i)):
            return STATE_NOT_FINITE
    for i in range(2 * VELOCITY_WINDOWS):
        if not isfinite(load_f64(p + 64 + 8 * i)):
            return STATE_NOT_FINITE
    if not (0.0 <= s.last_time <= MAX_EVENT_TIME and 0.0 <= s.last_geo_time <= MAX_EVENT_TIME):
        return STATE_NOT_FINITE
    if not (0.0 <= s.log_amount_mean <= MAX_LOG_AMOUNT_MEAN and 0.0 <= s.log_amount_m2 <= MAX_LOG_AMOUNT_M2):
        return STATE_OUT_OF_RANGE
    for i in range(VELOCITY_WINDOWS):
        if not (0.0 <= s.velocity_count[i] <= MAX_VELOCITY_COUNT
                and 0.0 <= s.velocity_amount[i] <= MAX_VELOCITY_AMOUNT):
            return STATE_OUT_OF_RANGE
    s.last_geo_known = flags & FLAG_LAST_GEO_KNOWN
    if s.last_geo_known:
        if not (-90.0 <= s.last_latitude <= 90.0 and -180.0 <= s.last_longitude <= 180.0):
            return STATE_BAD_LOCATION
    elif s.last_geo_time != 0.0 or s.last_latitude != 0.0 or s.last_longitude != 0.0:
        return STATE_BAD_LOCATION
    for i in range(RING_SIZE):
        s.counterparties[i] = load_le(p + 112 + 8 * i, 8)
        s.devices[i] = load_le(p + 176 + 8 * i, 8)
    return STATE_VALID


cdef inline void encode_into(const AccountStateC* s, uint8_t* p) noexcept nogil:
    """Write the blob of ``s`` (STATE_SIZE bytes) to ``p``."""
    cdef int i
    store_le(p, STATE_VERSION, 2)
    store_le(p + 2, FLAG_LAST_GEO_KNOWN if s.last_geo_known else 0, 2)
    store_le(p + 4, s.last_country, 2)
    store_le(p + 6, s.home_country, 2)
    store_le(p + 8, s.count, 4)
    p[12] = s.counterparty_next
    p[13] = s.device_next
    store_le(p + 14, 0, 2)
    store_f64(p + 16, s.log_amount_mean)
    store_f64(p + 24, s.log_amount_m2)
    store_f64(p + 32, s.last_time)
    store_f64(p + 40, s.last_geo_time)
    store_f64(p + 48, s.last_latitude)
    store_f64(p + 56, s.last_longitude)
    for i in range(VELOCITY_WINDOWS):
        store_f64(p + 64 + 8 * i, s.velocity_count[i])
        store_f64(p + 88 + 8 * i, s.velocity_amount[i])
    for i in range(RING_SIZE):
        store_le(p + 112 + 8 * i, s.counterparties[i], 8)
        store_le(p + 176 + 8 * i, s.devices[i], 8)
