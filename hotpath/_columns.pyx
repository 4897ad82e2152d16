# cython: language_level=3, cdivision=True
"""Compiled half of ``columns`` and ``hashing``: stable_hash and the per-transaction batch builder.

The server appends one validated transaction at a time; ``append`` writes straight into
preallocated typed arrays (no numpy per-element indexing, no temporary objects) and checks the
row with the same rules as the feature builder, so a bad value fails on the transaction that
carries it.
"""

import numpy as np

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint64_t

from _checks cimport fnv1a_64, row_problem
from _constants cimport (
    DESTINATION_AFTER_KNOWN,
    DESTINATION_BEFORE_KNOWN,
    ORIGIN_AFTER_KNOWN,
    ORIGIN_BEFORE_KNOWN,
    ROW_BAD_ACCOUNT_SLOT,
    ROW_BAD_TYPE,
)

from sentinel.hotpath.columns import ROW_PROBLEMS, TransactionColumns
from sentinel.hotpath.errors import InvalidTransactionValue


def stable_hash(str text):
    """FNV-1a 64 of the UTF-8 bytes of ``text`` (see ``sentinel.hotpath.hashing``); "" is 0."""
    cdef Py_ssize_t size
    cdef const char* data = PyUnicode_AsUTF8AndSize(text, &size)
    return fnv1a_64(data, size)


cdef inline uint64_t _hash_or_zero(str text):
    cdef Py_ssize_t size
    cdef const char* data
    if not text:
        return 0
    data = PyUnicode_AsUTF8AndSize(text, &size)
    return fnv1a_64(data, size)


cdef inline uint16_t _country(str country):
    """country_code, or 1 (never valid, so the row check names the field) for a malformed code."""
    cdef Py_UCS4 first, second
    if not country:
        return 0
    if len(country) != 2:
        return 1
    first, second = country[0], country[1]
    if not (65 <= first <= 90 and 65 <= second <= 90):  # A-Z
        return 1
    return <uint16_t>((<int>first << 8) | <int>second)


cdef class TransactionColumnsBuilder:
    """Fill a TransactionColumns one transaction at a time (grows by doubling when full).

    ``build()`` returns the rows appended so far as a TransactionColumns that owns its arrays;
    ``clear()`` starts a new batch reusing the builder's memory. Not thread-safe: use one builder
    per batch being assembled.
    """

    cdef Py_ssize_t _size
    cdef Py_ssize_t _capacity
    cdef dict _arrays
    cdef int32_t[::1] _slot
    cdef double[::1] _amount
    cdef uint8_t[::1] _type
    cdef double[::1] _event_time
    cdef uint8_t[::1] _geo_known
    cdef double[::1] _latitude
    cdef double[::1] _longitude
    cdef uint16_t[::1] _country
    cdef uint8_t[::1] _channel
    cdef uint64_t[::1] _counterparty
    cdef uint64_t[::1] _device
    cdef uint8_t[::1] _known
    cdef double[::1] _origin_before
    cdef double[::1] _origin_after
    cdef double[::1] _destination_before
    cdef double[::1] _destination_after

    def __init__(self, Py_ssize_t capacity=256):
        self._size = 0
        self._allocate(max(capacity, 1))

    def __len__(self):
        return self._size

    cdef _allocate(self, Py_ssize_t capacity):
        empty = TransactionColumns.empty(capacity)
        arrays = {name: getattr(empty, name) for name in TransactionColumns.__slots__}
        if self._arrays is not None:
            for name, array in arrays.items():
                array[: self._size] = self._arrays[name][: self._size]
        self._arrays = arrays
        self._capacity = capacity
        self._slot = arrays["account_slot"]
        self._amount = arrays["amount"]
        self._type = arrays["type"]
        self._event_time = arrays["event_time"]
        self._geo_known = arrays["geo_known"]
        self._latitude = arrays["latitude"]
        self._longitude = arrays["longitude"]
        self._country = arrays["country"]
        self._channel = arrays["channel"]
        self._counterparty = arrays["counterparty"]
        self._device = arrays["device"]
        self._known = arrays["balances_known"]
        self._origin_before = arrays["origin_before"]
        self._origin_after = arrays["origin_after"]
        self._destination_before = arrays["destination_before"]
        self._destination_after = arrays["destination_after"]

    def append(
        self,
        int account_slot,
        double amount,
        int type_code,
        double event_time,
        latitude=None,
        longitude=None,
        str country="",
        int channel=0,
        str counterparty_id="",
        str device_id="",
        origin_before=None,
        origin_after=None,
        destination_before=None,
        destination_after=None,
    ):
        """Append one transaction; InvalidTransactionValue (row None) names a bad field.

        ``type_code``/``channel`` are TRANSACTION_TYPES/CHANNELS numbers (the sentinel.v1 enum
        values), ``country`` an ISO alpha-2 code or "", ids are hashed with stable_hash, and
        ``None`` means "not given" for the location (both or neither) and each balance.
        """
        cdef Py_ssize_t i = self._size
        cdef uint8_t known = 0
        cdef int problem
        if (latitude is None) != (longitude is None):
            raise InvalidTransactionValue("latitude", "latitude and longitude are given together or not at all")
        if account_slot < 0:
            raise InvalidTransactionValue(*ROW_PROBLEMS[ROW_BAD_ACCOUNT_SLOT])
        if not 0 <= type_code <= 255:
            raise InvalidTransactionValue(*ROW_PROBLEMS[ROW_BAD_TYPE])
        if not 0 <= channel <= 255:
            raise InvalidTransactionValue("channel", "must be a Channel code from 0 to 255")
        if i == self._capacity:
            self._allocate(2 * self._capacity)
        self._slot[i] = account_slot
        self._amount[i] = amount
        self._type[i] = <uint8_t>type_code
        self._event_time[i] = event_time
        if latitude is None:
            self._geo_known[i] = 0
            self._latitude[i] = 0.0
            self._longitude[i] = 0.0
        else:
            self._geo_known[i] = 1
            self._latitude[i] = latitude
            self._longitude[i] = longitude
        self._country[i] = _country(country)
        self._channel[i] = <uint8_t>channel
        self._counterparty[i] = _hash_or_zero(counterparty_id)
        self._device[i] = _hash_or_zero(device_id)
        self._origin_before[i] = 0.0 if origin_before is None else origin_before
        self._origin_after[i] = 0.0 if origin_after is None else origin_after
        self._destination_before[i] = 0.0 if destination_before is None else destination_before
        self._destination_after[i] = 0.0 if destination_after is None else destination_after
        if origin_before is not None:
            known |= ORIGIN_BEFORE_KNOWN
        if origin_after is not None:
            known |= ORIGIN_AFTER_KNOWN
        if destination_before is not None:
            known |= DESTINATION_BEFORE_KNOWN
        if destination_after is not None:
            known |= DESTINATION_AFTER_KNOWN
        self._known[i] = known
        problem = row_problem(
            account_slot, -1, amount, self._type[i], event_time, self._geo_known[i], self._latitude[i],
            self._longitude[i], self._country[i], known, self._origin_before[i], self._origin_after[i],
            self._destination_before[i], self._destination_after[i],
        )
        if problem:
            raise InvalidTransactionValue(*ROW_PROBLEMS[problem])
        self._size = i + 1

    def build(self):
        """The appended rows as a TransactionColumns with its own (copied) arrays."""
        n = self._size
        return TransactionColumns(**{name: array[:n].copy() for name, array in self._arrays.items()})

    def clear(self):
        """Forget the appended rows (the memory is reused)."""
        self._size = 0
