# cython: language_level=3
"""Protobuf wire-format primitives shared by the request decoder (``_wire``), the response writer
(``_respond``) and the claim writer (``_claims``).

A C "header" like ``_checks.pxd``: inline, so neither module imports the other at run time.
"""

from libc.stdint cimport uint8_t, uint64_t


cdef inline Py_ssize_t varint_size(uint64_t value) noexcept nogil:
    """Bytes of ``value`` as a minimal varint."""
    cdef Py_ssize_t size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


cdef inline uint8_t* put_varint(uint8_t* p, uint64_t value) noexcept nogil:
    """Write ``value`` as a minimal varint at ``p``; the position after it."""
    while value >= 0x80:
        p[0] = <uint8_t>(value | 0x80)
        value >>= 7
        p += 1
    p[0] = <uint8_t>value
    return p + 1


cdef inline Py_ssize_t scan_varint(
    const uint8_t* data, Py_ssize_t size, Py_ssize_t at, uint64_t* value
) noexcept nogil:
    """The index after the varint at ``at`` (its value in ``value``, bits past 64 dropped); -1 when it
    runs past ``size`` or over 10 bytes."""
    cdef int shift = 0
    cdef uint8_t byte
    value[0] = 0
    while True:
        if at >= size or shift > 63:
            return -1
        byte = data[at]
        at += 1
        value[0] |= <uint64_t>(byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return at
