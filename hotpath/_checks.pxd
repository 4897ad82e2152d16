# cython: language_level=3
"""Checks and hashing shared by the compiled builder (``_columns``) and feature builder.

A C "header": inline so the modules need no import of each other at run time. The row checks are the ones of
reference_features.row_problem, in the same order, returning the same ROW_PROBLEMS codes.
"""

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint64_t

cdef extern from *:
    """
    #define SENTINEL_MAX_AMOUNT 1e18
    #define SENTINEL_MAX_ROW_EVENT_TIME 1e11
    """
    double MAX_AMOUNT "SENTINEL_MAX_AMOUNT"
    double MAX_ROW_EVENT_TIME "SENTINEL_MAX_ROW_EVENT_TIME"


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
    """Index in ROW_PROBLEMS of the first thing wrong with a row (0 when usable); ``n_states`` < 0
    skips the account_slot check."""
    if n_states >= 0 and not (0 <= slot < n_states):
        return 1
    if not (0.0 <= amount <= MAX_AMOUNT):
        return 2
    if not (1 <= kind <= 5):
        return 3
    if not (0.0 <= event_time <= MAX_ROW_EVENT_TIME):
        return 4
    if geo_known > 1:
        return 5
    if geo_known:
        if not (-90.0 <= latitude <= 90.0):
            return 6
        if not (-180.0 <= longitude <= 180.0):
            return 7
    if not valid_country(country):
        return 8
    if known & ~15:
        return 9
    if known & 1 and not (-MAX_AMOUNT <= origin_before <= MAX_AMOUNT):
        return 10
    if known & 2 and not (-MAX_AMOUNT <= origin_after <= MAX_AMOUNT):
        return 11
    if known & 4 and not (-MAX_AMOUNT <= destination_before <= MAX_AMOUNT):
        return 12
    if known & 8 and not (-MAX_AMOUNT <= destination_after <= MAX_AMOUNT):
        return 13
    return 0
