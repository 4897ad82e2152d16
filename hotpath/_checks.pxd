# cython: language_level=3
"""Checks and hashing shared by the compiled builder (``_columns``) and feature builder.

A C "header": inline so the modules need no import of each other at run time. The row checks are the ones of
reference_features.row_problem, in the same order, returning the same ROW_PROBLEMS codes.
"""

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint64_t

from _constants cimport (
    ALL_BALANCES_KNOWN,
    DESTINATION_AFTER_KNOWN,
    DESTINATION_BEFORE_KNOWN,
    MAX_AMOUNT,
    MAX_EVENT_TIME,
    ORIGIN_AFTER_KNOWN,
    ORIGIN_BEFORE_KNOWN,
    ROW_BAD_ACCOUNT_SLOT,
    ROW_BAD_AMOUNT,
    ROW_BAD_BALANCES_KNOWN,
    ROW_BAD_COUNTRY,
    ROW_BAD_DESTINATION_AFTER,
    ROW_BAD_DESTINATION_BEFORE,
    ROW_BAD_EVENT_TIME,
    ROW_BAD_GEO_KNOWN,
    ROW_BAD_LATITUDE,
    ROW_BAD_LONGITUDE,
    ROW_BAD_ORIGIN_AFTER,
    ROW_BAD_ORIGIN_BEFORE,
    ROW_BAD_TYPE,
    ROW_USABLE,
    TYPE_DEBIT,
    TYPE_PAYMENT,
)


cdef inline uint64_t fnv1a_64(const char* data, Py_ssize_t size) noexcept nogil:
    """stable_hash of ``size`` UTF-8 bytes: FNV-1a 64; empty is 0, a hash of 0 becomes 1."""
    cdef uint64_t value = 0xCBF29CE484222325ULL
    cdef Py_ssize_t i
    if size == 0:
        return 0
    for i in range(size):
        value = (value ^ <uint8_t>data[i]) * 0x100000001B3ULL
    return value if value else 1


cdef inline bint valid_country(uint16_t code) noexcept nogil:
    """0 (unknown) or two ASCII letters A-Z packed as ``c0 << 8 | c1``."""
    return code == 0 or (65 <= (code >> 8) <= 90 and 65 <= (code & 0xFF) <= 90)


cdef inline int row_problem(
    int32_t slot, Py_ssize_t n_states, double amount, uint8_t kind, double event_time,
    uint8_t geo_known, double latitude, double longitude, uint16_t country, uint8_t known,
    double origin_before, double origin_after, double destination_before, double destination_after,
) noexcept nogil:
    """The first thing wrong with a row (its index in ROW_PROBLEMS; ROW_USABLE when there is none);
    ``n_states`` < 0 skips the account_slot check."""
    if n_states >= 0 and not (0 <= slot < n_states):
        return ROW_BAD_ACCOUNT_SLOT
    if not (0.0 <= amount <= MAX_AMOUNT):
        return ROW_BAD_AMOUNT
    if not (TYPE_PAYMENT <= kind <= TYPE_DEBIT):
        return ROW_BAD_TYPE
    if not (0.0 <= event_time <= MAX_EVENT_TIME):
        return ROW_BAD_EVENT_TIME
    if geo_known > 1:
        return ROW_BAD_GEO_KNOWN
    if geo_known:
        if not (-90.0 <= latitude <= 90.0):
            return ROW_BAD_LATITUDE
        if not (-180.0 <= longitude <= 180.0):
            return ROW_BAD_LONGITUDE
    if not valid_country(country):
        return ROW_BAD_COUNTRY
    if known & ~ALL_BALANCES_KNOWN:
        return ROW_BAD_BALANCES_KNOWN
    if known & ORIGIN_BEFORE_KNOWN and not (-MAX_AMOUNT <= origin_before <= MAX_AMOUNT):
        return ROW_BAD_ORIGIN_BEFORE
    if known & ORIGIN_AFTER_KNOWN and not (-MAX_AMOUNT <= origin_after <= MAX_AMOUNT):
        return ROW_BAD_ORIGIN_AFTER
    if known & DESTINATION_BEFORE_KNOWN and not (-MAX_AMOUNT <= destination_before <= MAX_AMOUNT):
        return ROW_BAD_DESTINATION_BEFORE
    if known & DESTINATION_AFTER_KNOWN and not (-MAX_AMOUNT <= destination_after <= MAX_AMOUNT):
        return ROW_BAD_DESTINATION_AFTER
    return ROW_USABLE
