# cython: language_level=3, cdivision=True
"""Compiled request path: scoring request bytes to a validated batch in one call per request.

``WireDecoder.decode_batch`` reads a ScoreBatchRequest body, ``decode_singles`` ScoreRequest /
ScoreStreamRequest bodies, without Python protobuf, and gives what the Python path computes per
transaction with upb + ``server.validate.validate_transaction`` + ``server.wire_columns.append_transaction``
+ the deterministic serialization and its sha256 (the fingerprint): the same violations (fields,
descriptions, order; see "attributes" below), the same columns, the same canonical bytes. The Python path
is the reference twin that tests/test_wire_decode.py compares this module against.

The wire format is checked the way upb checks it, so that exactly the bodies ``FromString`` refuses are
refused (tests compare both directions on random, truncated and hand-built bodies):

- a tag is a varint of at most 5 bytes and at most 32 bits; field number 0 is refused in a message,
  but not inside an unknown group; wire types 6 and 7 are refused everywhere;
- a varint has at most 10 bytes (bits past the 64th are dropped); a length prefix at most 5 bytes, and
  what it announces must lie inside the enclosing message;
- an end-group tag must close the innermost open group with the same field number: in a message (not
  inside a group) it is refused, and a group must be closed before its message ends;
- a known field with another wire type than its own is an unknown field (skipped, not refused);
- every known string field (map keys and values included) must be valid UTF-8, unknown fields are not
  looked into;
- each sub-message and each group takes one level from a budget of MAX_WIRE_DEPTH for the request;
  exhausting it is refused.

Canonical bytes. The ledger stores (and fingerprints) ``DiscardUnknownFields()`` +
``SerializeToString(deterministic=True)`` of each transaction. When the transaction's bytes in the
request are already exactly that, they are used as they are (no re-encoding). They are when: every
field has its own wire type and a one-byte tag, fields come in ascending field-number order and each
once (map entries excepted), varints and length prefixes are minimal (an int32 below zero as the
10-byte sign extension), implicit-presence fields (proto3 strings and enums, Timestamp's numbers) are
left out when they are zero or empty while explicit-presence ones (sub-messages, ``optional`` fields)
are written whenever set, even when empty or 0.0, and sub-messages are canonical themselves. Map
entries are written by upb as key (1) then value (2), both always present, even when empty, and
ordered by key as upb's deterministic sorter does: the first differing byte decides (bytewise,
ascending), and when one key is a prefix of the other, the LONGER key comes first ('ab' before 'a',
every key before ''). That is what the generated Python classes' deterministic serialization (the
clients) gives. Anything else (unknown fields, reordered or repeated fields to merge, non-deterministic
map order) takes the slow path: ``wire.canonical_transaction`` (protobuf itself) produces the canonical
bytes, which are then read as above. So upb's own rules for such input hold without being restated here:
the last of repeated scalars wins, repeated sub-messages merge, and a map entry holding an unknown field
is not an entry at all (upb keeps it as an unknown field of the Transaction, which is then dropped).

Attributes: the reference reports attribute violations in the iteration order of the upb map, which is
a hash order that changes from process to process. Here they come in the canonical (deterministic
serialization) order; everything else is in the reference's order.

Per valid transaction this allocates only the result objects (ids, amount and currency text, the
canonical bytes and the fingerprint); the messages of violations, the rare ``repr`` of a bad value and
IP addresses other than dotted-quad IPv4 (``ipaddress.ip_address``) are computed in Python.
"""

import hashlib
import ipaddress

import numpy as np

cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.ref cimport PyObject
from libc.math cimport floor
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from _checks cimport fnv1a_64, row_problem
from _constants cimport (
    DESTINATION_AFTER_KNOWN,
    DESTINATION_BEFORE_KNOWN,
    ORIGIN_AFTER_KNOWN,
    ORIGIN_BEFORE_KNOWN,
    TYPE_DEBIT,
    TYPE_PAYMENT,
)
from _protowire cimport varint_size

from sentinel.hotpath import wire
from sentinel.hotpath.columns import _DTYPES as COLUMN_DTYPES
from sentinel.hotpath.columns import ROW_PROBLEMS, TransactionColumns
from sentinel.hotpath.errors import InvalidTransactionValue
from sentinel.hotpath.schema import CHANNELS
from sentinel.hotpath.wire import UNDECODABLE, DecodedTransactions, WireDecodeError, canonical_transaction

cnp.import_array()

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object text)
    double PyOS_string_to_double(const char* text, char** end, PyObject* overflow) except? -1.0

# The limits of wire.py (the Python side defines them; here they are C numbers).
cdef Py_ssize_t MAX_ID_LENGTH = wire.MAX_ID_LENGTH
cdef Py_ssize_t MAX_PRINTABLE_ID_LENGTH = wire.MAX_PRINTABLE_ID_LENGTH
cdef Py_ssize_t MAX_DEVICE_ID_LENGTH = wire.MAX_DEVICE_ID_LENGTH
cdef Py_ssize_t MAX_ATTRIBUTES = wire.MAX_ATTRIBUTES
cdef Py_ssize_t MAX_ATTRIBUTE_KEY_LENGTH = wire.MAX_ATTRIBUTE_KEY_LENGTH
cdef Py_ssize_t MAX_ATTRIBUTE_VALUE = wire.MAX_ATTRIBUTE_VALUE
cdef Py_ssize_t MAX_TRANSACTION_BYTES = wire.MAX_TRANSACTION_BYTES
cdef int64_t EARLIEST_EVENT_TIME = wire.EARLIEST_EVENT_TIME
cdef int MAX_WIRE_DEPTH = wire.MAX_WIRE_DEPTH
cdef int64_t MAX_CHANNEL = max(CHANNELS.values())

_sha256 = hashlib.sha256
_ip_address = ipaddress.ip_address

cdef enum:
    # protobuf wire types
    VARINT = 0
    FIXED64 = 1
    LENGTH = 2
    START_GROUP = 3
    END_GROUP = 4
    FIXED32 = 5
    # what is wrong with a body (the index of its text in WIRE_ERRORS)
    WIRE_OK = 0
    WIRE_TRUNCATED
    WIRE_LONG_VARINT
    WIRE_BAD_TAG
    WIRE_BAD_LENGTH
    WIRE_FIELD_ZERO
    WIRE_BAD_WIRE_TYPE
    WIRE_STRAY_END_GROUP
    WIRE_OPEN_GROUP
    WIRE_TOO_DEEP
    WIRE_BAD_UTF8
    # currency codes of three letters A-Z index a table of 26**3 exponents
    CURRENCY_TABLE_SIZE = 26 * 26 * 26
    NO_EXPONENT = -1

WIRE_ERRORS = (
    "",
    "truncated data",
    "a varint longer than 10 bytes",
    "a field tag longer than 5 bytes or over 32 bits",
    "a length prefix longer than 5 bytes",
    "field number 0",
    "wire type 6 or 7",
    "an end-group tag without its start-group tag",
    "a group without its end-group tag",
    f"messages and groups nested deeper than {wire.MAX_WIRE_DEPTH} levels",
    "invalid UTF-8 in a string field",
)


# ---------------------------------------------------------------------------------------- wire reading
cdef struct Wire:
    const uint8_t* base  # the start of the body: error positions are offsets from it
    int error
    Py_ssize_t error_at


# A string field as it is on the wire (UTF-8, checked).
cdef struct Text:
    const uint8_t* data
    Py_ssize_t size
    Py_ssize_t chars  # code points
    bint printable  # no C0 control character and no DEL


# The fields of one Transaction; the values are meaningful when ``canonical`` (each field once).
cdef struct Txn:
    bint canonical
    Text transaction_id
    Text idempotency_key
    Text account_id
    Text counterparty_id
    Text device_id
    Text ip_address
    int32_t kind
    int32_t channel
    bint has_amount
    Text amount
    Text currency
    bint has_event_time
    int64_t seconds
    int32_t nanos
    bint has_geo
    bint has_latitude
    bint has_longitude
    double latitude
    double longitude
    Text country
    bint has_balances
    uint8_t balances_known  # ORIGIN_BEFORE_KNOWN ... bits: which balances are present
    Text balances[4]
    Py_ssize_t attribute_count
    const uint8_t* attributes  # the first map entry's tag; in canonical bytes the entries ...
    const uint8_t* attributes_end  # ... run to the end of the transaction


cdef inline const uint8_t* fail(Wire* w, int error, const uint8_t* at) noexcept nogil:
    if w.error == WIRE_OK:
        w.error = error
        w.error_at = at - w.base
    return NULL


cdef inline const uint8_t* read_varint(
    Wire* w, const uint8_t* p, const uint8_t* end, uint64_t* value, Py_ssize_t* size
) noexcept nogil:
    """A varint of at most 10 bytes (bits past the 64th dropped, as upb does)."""
    cdef uint64_t result = 0
    cdef uint8_t byte
    cdef int i
    for i in range(10):
        if p + i >= end:
            return fail(w, WIRE_TRUNCATED, p)
        byte = p[i]
        result |= <uint64_t>(byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            value[0] = result
            size[0] = i + 1
            return p + i + 1
    return fail(w, WIRE_LONG_VARINT, p)


cdef inline const uint8_t* read_tag(
    Wire* w, const uint8_t* p, const uint8_t* end, uint32_t* field, uint32_t* wire_type, bint* one_byte
) noexcept nogil:
    """The next field's tag in a message: NULL for an end-group tag, field number 0, wire type 6 or 7."""
    cdef uint64_t tag
    cdef Py_ssize_t size
    cdef const uint8_t* start = p
    if p < end and p[0] < 0x80:  # every field this module knows has a one-byte tag
        tag = p[0]
        p += 1
        one_byte[0] = True
    else:
        p = read_varint(w, p, end, &tag, &size)
        if p == NULL:
            return NULL
        if size > 5 or tag > 0xFFFFFFFFULL:
            return fail(w, WIRE_BAD_TAG, start)
        one_byte[0] = False
    field[0] = <uint32_t>(tag >> 3)
    wire_type[0] = <uint32_t>(tag & 7)
    if wire_type[0] == END_GROUP:
        return fail(w, WIRE_STRAY_END_GROUP, start)
    if wire_type[0] > FIXED32:
        return fail(w, WIRE_BAD_WIRE_TYPE, start)
    if field[0] == 0:
        return fail(w, WIRE_FIELD_ZERO, start)
    return p


cdef inline const uint8_t* read_length(
    Wire* w, const uint8_t* p, const uint8_t* end, Py_ssize_t* length, bint* minimal
) noexcept nogil:
    """A length prefix (at most 5 bytes) whose data lies before ``end``."""
    cdef uint64_t value
    cdef Py_ssize_t size
    cdef const uint8_t* start = p
    if p < end and p[0] < 0x80:
        length[0] = p[0]
        minimal[0] = True
        p += 1
    else:
        p = read_varint(w, p, end, &value, &size)
        if p == NULL:
            return NULL
        if size > 5:
            return fail(w, WIRE_BAD_LENGTH, start)
        if value > <uint64_t>(end - p):
            return fail(w, WIRE_TRUNCATED, start)
        length[0] = <Py_ssize_t>value
        minimal[0] = size == varint_size(value)
    if length[0] > end - p:
        return fail(w, WIRE_TRUNCATED, start)
    return p


cdef inline bint scan_utf8(const uint8_t* s, Py_ssize_t size, Text* text) noexcept nogil:
    """Check strict UTF-8 (as upb and Python's decoder: no overlong forms, surrogates or code points
    past U+10FFFF), count the code points and note whether a C0 control or DEL occurs."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t chars = 0
    cdef bint printable = True
    cdef uint8_t c, c1
    while i < size:
        c = s[i]
        if c < 0x80:
            if c < 0x20 or c == 0x7F:
                printable = False
            i += 1
        elif c < 0xC2:
            return False
        elif c < 0xE0:
            if i + 1 >= size or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= size:
                return False
            c1 = s[i + 1]
            if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F) or (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80:
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= size:
                return False
            c1 = s[i + 1]
            if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F) or (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
                return False
            i += 4
        else:
            return False
        chars += 1
    text.data = s
    text.size = size
    text.chars = chars
    text.printable = printable
    return True


cdef inline const uint8_t* read_text(
    Wire* w, const uint8_t* p, const uint8_t* end, Text* text, bint* minimal
) noexcept nogil:
    cdef Py_ssize_t length
    p = read_length(w, p, end, &length, minimal)
    if p == NULL:
        return NULL
    if not scan_utf8(p, length, text):
        return fail(w, WIRE_BAD_UTF8, p)
    return p + length


cdef inline const uint8_t* next_field(
    Wire* w, const uint8_t* p, const uint8_t* end, uint32_t* field, uint32_t* wire_type, uint32_t* last, Txn* t
) noexcept nogil:
    """The next field's tag in a sub-message of ``t``: one out of ascending order, or with a tag longer
    than a byte, makes the transaction non-canonical."""
    cdef bint one_byte
    p = read_tag(w, p, end, field, wire_type, &one_byte)
    if p != NULL:
        if field[0] <= last[0] or not one_byte:
            t.canonical = False
        last[0] = field[0]
    return p


cdef inline const uint8_t* read_implicit_text(
    Wire* w, const uint8_t* p, const uint8_t* end, Text* text, Txn* t
) noexcept nogil:
    """A proto3 string without presence: written empty, or with a longer length than needed, it is not
    what the deterministic serializer writes."""
    cdef bint minimal
    p = read_text(w, p, end, text, &minimal)
    if p != NULL and (text.size == 0 or not minimal):
        t.canonical = False
    return p


cdef const uint8_t* skip_group(
    Wire* w, const uint8_t* p, const uint8_t* end, uint32_t group, int depth
) noexcept nogil:
    """Past the end-group tag of an unknown group (``depth``: its budget, already taken)."""
    cdef uint64_t tag
    cdef Py_ssize_t size
    cdef const uint8_t* start
    cdef uint32_t field, wire_type
    while True:
        if p >= end:
            return fail(w, WIRE_OPEN_GROUP, p)
        start = p
        p = read_varint(w, p, end, &tag, &size)
        if p == NULL:
            return NULL
        if size > 5 or tag > 0xFFFFFFFFULL:
            return fail(w, WIRE_BAD_TAG, start)
        field = <uint32_t>(tag >> 3)
        wire_type = <uint32_t>(tag & 7)
        if wire_type == END_GROUP:
            if field != group:
                return fail(w, WIRE_STRAY_END_GROUP, start)
            return p
        if wire_type > FIXED32:
            return fail(w, WIRE_BAD_WIRE_TYPE, start)
        # field number 0 is accepted here: upb only refuses it in a message
        p = skip_value(w, p, end, field, wire_type, depth)
        if p == NULL:
            return NULL


cdef const uint8_t* skip_value(
    Wire* w, const uint8_t* p, const uint8_t* end, uint32_t field, uint32_t wire_type, int depth
) noexcept nogil:
    """Past the value of an unknown field whose tag has been read (wire types 0, 1, 2, 3 and 5)."""
    cdef uint64_t value
    cdef Py_ssize_t size
    cdef bint minimal
    if wire_type == VARINT:
        return read_varint(w, p, end, &value, &size)
    if wire_type == FIXED64:
        return p + 8 if end - p >= 8 else fail(w, WIRE_TRUNCATED, p)
    if wire_type == FIXED32:
        return p + 4 if end - p >= 4 else fail(w, WIRE_TRUNCATED, p)
    if wire_type == LENGTH:
        p = read_length(w, p, end, &size, &minimal)
        if p == NULL:
            return NULL
        return p + size
    # START_GROUP
    if depth == 0:
        return fail(w, WIRE_TOO_DEEP, p)
    return skip_group(w, p, end, field, depth - 1)


cdef inline const uint8_t* read_int32(
    Wire* w, const uint8_t* p, const uint8_t* end, int32_t* value, bint* canonical
) noexcept nogil:
    """An int32/enum varint; canonical when minimal and the 64-bit sign extension of its value."""
    cdef uint64_t raw
    cdef Py_ssize_t size
    p = read_varint(w, p, end, &raw, &size)
    if p == NULL:
        return NULL
    value[0] = <int32_t>raw
    if raw == 0 or size != varint_size(raw) or raw != <uint64_t><int64_t>value[0]:
        canonical[0] = False
    return p


cdef inline const uint8_t* enter(Wire* w, const uint8_t* p, const uint8_t* end, int depth,
                                 Py_ssize_t* length, bint* canonical) noexcept nogil:
    """The length prefix of a known sub-message (which takes one level of ``depth``)."""
    cdef bint minimal
    if depth == 0:
        return fail(w, WIRE_TOO_DEEP, p)
    p = read_length(w, p, end, length, &minimal)
    if p != NULL and not minimal:
        canonical[0] = False
    return p


cdef const uint8_t* read_money(
    Wire* w, const uint8_t* p, const uint8_t* end, int depth, Txn* t
) noexcept nogil:
    cdef uint32_t field, wire_type, last = 0
    while p < end:
        p = next_field(w, p, end, &field, &wire_type, &last, t)
        if p == NULL:
            return NULL
        if field == 1 and wire_type == LENGTH:
            p = read_implicit_text(w, p, end, &t.amount, t)
        elif field == 2 and wire_type == LENGTH:
            p = read_implicit_text(w, p, end, &t.currency, t)
        else:
            p = skip_value(w, p, end, field, wire_type, depth)
            t.canonical = False
        if p == NULL:
            return NULL
    return p


cdef const uint8_t* read_timestamp(
    Wire* w, const uint8_t* p, const uint8_t* end, int depth, Txn* t
) noexcept nogil:
    cdef uint32_t field, wire_type, last = 0
    cdef uint64_t raw
    cdef Py_ssize_t size
    while p < end:
        p = next_field(w, p, end, &field, &wire_type, &last, t)
        if p == NULL:
            return NULL
        if field == 1 and wire_type == VARINT:
            p = read_varint(w, p, end, &raw, &size)
            if p != NULL:
                t.seconds = <int64_t>raw
                if raw == 0 or size != varint_size(raw):
                    t.canonical = False
        elif field == 2 and wire_type == VARINT:
            p = read_int32(w, p, end, &t.nanos, &t.canonical)
        else:
            p = skip_value(w, p, end, field, wire_type, depth)
            t.canonical = False
        if p == NULL:
            return NULL
    return p


cdef inline double read_double(const uint8_t* p) noexcept nogil:
    cdef uint64_t bits = 0
    cdef double value
    cdef int i
    for i in range(8):
        bits |= <uint64_t>p[i] << (8 * i)
    memcpy(&value, &bits, 8)
    return value


cdef const uint8_t* read_geo(
    Wire* w, const uint8_t* p, const uint8_t* end, int depth, Txn* t
) noexcept nogil:
    cdef uint32_t field, wire_type, last = 0
    while p < end:
        p = next_field(w, p, end, &field, &wire_type, &last, t)
        if p == NULL:
            return NULL
        if field <= 2 and wire_type == FIXED64:
            if end - p < 8:
                return fail(w, WIRE_TRUNCATED, p)
            if field == 1:
                t.has_latitude = True
                t.latitude = read_double(p)
            else:
                t.has_longitude = True
                t.longitude = read_double(p)
            p += 8
        elif field == 3 and wire_type == LENGTH:
            p = read_implicit_text(w, p, end, &t.country, t)
        else:
            p = skip_value(w, p, end, field, wire_type, depth)
            t.canonical = False
        if p == NULL:
            return NULL
    return p


cdef const uint8_t* read_balances(
    Wire* w, const uint8_t* p, const uint8_t* end, int depth, Txn* t
) noexcept nogil:
    cdef uint32_t field, wire_type, last = 0
    cdef bint minimal
    while p < end:
        p = next_field(w, p, end, &field, &wire_type, &last, t)
        if p == NULL:
            return NULL
        if field <= 4 and wire_type == LENGTH:  # optional strings: written even when empty
            p = read_text(w, p, end, &t.balances[field - 1], &minimal)
            t.balances_known |= 1 << (field - 1)
            if p != NULL and not minimal:
                t.canonical = False
        else:
            p = skip_value(w, p, end, field, wire_type, depth)
            t.canonical = False
        if p == NULL:
            return NULL
    return p


cdef const uint8_t* read_entry(
    Wire* w, const uint8_t* p, const uint8_t* end, int depth, Text* key, Text* value, bint* canonical
) noexcept nogil:
    """A map entry; canonical as upb writes it: key (1) then value (2), both present, nothing else."""
    cdef uint32_t field, wire_type
    cdef bint one_byte
    cdef bint minimal = False
    cdef int seen = 0  # 1: the key came first, 2: then the value
    key.size = 0
    value.size = 0
    while p < end:
        p = read_tag(w, p, end, &field, &wire_type, &one_byte)
        if p == NULL:
            return NULL
        if field == 1 and wire_type == LENGTH:
            p = read_text(w, p, end, key, &minimal)
            seen = 1 if seen == 0 and one_byte and minimal else 3
        elif field == 2 and wire_type == LENGTH:
            p = read_text(w, p, end, value, &minimal)
            seen = 2 if seen == 1 and one_byte and minimal else 3
        else:
            p = skip_value(w, p, end, field, wire_type, depth)
            seen = 3
        if p == NULL:
            return NULL
    if seen != 2:
        canonical[0] = False
    return p


cdef inline bint key_before(const Text* a, const Text* b) noexcept nogil:
    """Whether upb's deterministic serialization writes key ``a`` before key ``b``: bytewise on the
    common prefix, else the longer key first."""
    cdef Py_ssize_t common = a.size if a.size < b.size else b.size
    cdef int order = memcmp(a.data, b.data, common) if common else 0
    if order:
        return order < 0
    return a.size > b.size


cdef const uint8_t* read_transaction(
    Wire* w, const uint8_t* p, const uint8_t* end, int depth, Txn* t
) noexcept nogil:
    """Check a Transaction (``depth``: its remaining budget) and, when canonical, read its fields."""
    cdef uint32_t field, wire_type, last = 0
    cdef bint one_byte
    cdef Py_ssize_t length
    cdef const uint8_t* start
    cdef Text key, value, previous_key
    cdef Text* text
    memset(&previous_key, 0, sizeof(Text))
    memset(t, 0, sizeof(Txn))
    t.canonical = True
    while p < end:
        start = p
        p = read_tag(w, p, end, &field, &wire_type, &one_byte)
        if p == NULL:
            return NULL
        if not one_byte or field < last or (field == last and field != 13):
            t.canonical = False
        last = field
        if wire_type == LENGTH and (field <= 4 or field == 10 or field == 11):
            if field == 1:
                text = &t.transaction_id
            elif field == 2:
                text = &t.idempotency_key
            elif field == 3:
                text = &t.account_id
            elif field == 4:
                text = &t.counterparty_id
            elif field == 10:
                text = &t.device_id
            else:
                text = &t.ip_address
            p = read_implicit_text(w, p, end, text, t)
        elif wire_type == VARINT and field == 5:
            p = read_int32(w, p, end, &t.kind, &t.canonical)
        elif wire_type == VARINT and field == 9:
            p = read_int32(w, p, end, &t.channel, &t.canonical)
        elif wire_type == LENGTH and (field == 6 or field == 7 or field == 8 or field == 12 or field == 13):
            p = enter(w, p, end, depth, &length, &t.canonical)
            if p == NULL:
                return NULL
            if field == 6:
                t.has_amount = True
                p = read_money(w, p, p + length, depth - 1, t)
            elif field == 7:
                t.has_event_time = True
                p = read_timestamp(w, p, p + length, depth - 1, t)
            elif field == 8:
                t.has_geo = True
                p = read_geo(w, p, p + length, depth - 1, t)
            elif field == 12:
                t.has_balances = True
                p = read_balances(w, p, p + length, depth - 1, t)
            else:
                p = read_entry(w, p, p + length, depth - 1, &key, &value, &t.canonical)
                if t.attribute_count == 0:
                    t.attributes = start
                    t.attributes_end = end
                elif not key_before(&previous_key, &key):
                    t.canonical = False  # out of order, or a key repeated (the last one counts)
                previous_key = key
                t.attribute_count += 1
        else:
            p = skip_value(w, p, end, field, wire_type, depth)
            t.canonical = False
        if p == NULL:
            return NULL
    return p


cdef const uint8_t* next_entry(const uint8_t* p, const uint8_t* end, Text* key, Text* value) noexcept nogil:
    """The key and value of the canonical map entry at ``p`` (already checked), and the next one."""
    cdef Py_ssize_t size = 0
    cdef const uint8_t* entry_end
    cdef Wire unused
    cdef bint minimal
    unused.base = p
    unused.error = WIRE_OK
    p = read_length(&unused, p + 1, end, &size, &minimal)  # past the tag (0x6a)
    entry_end = p + size
    p = read_text(&unused, p + 1, entry_end, key, &minimal)  # past the key's tag (0x0a) ...
    read_text(&unused, p + 1, entry_end, value, &minimal)  # ... and the value's (0x12)
    return entry_end


cdef struct Span:
    const uint8_t* data
    Py_ssize_t size


cdef struct Spans:
    Span* items
    Py_ssize_t count
    Py_ssize_t capacity


cdef int add_span(Spans* spans, const uint8_t* data, Py_ssize_t size) except -1:
    cdef Py_ssize_t capacity
    cdef Span* grown
    if spans.count == spans.capacity:
        capacity = 2 * spans.capacity if spans.capacity else 64
        grown = <Span*>PyMem_Realloc(spans.items, capacity * sizeof(Span))
        if grown == NULL:
            raise MemoryError()
        spans.items = grown
        spans.capacity = capacity
    spans.items[spans.count].data = data
    spans.items[spans.count].size = size
    spans.count += 1
    return 0


cdef int read_request(Wire* w, const uint8_t* p, const uint8_t* end, Spans* spans) except -1:
    """The top level of a request message whose field 1 is Transaction (repeated in ScoreBatchRequest):
    the spans of field 1, other fields skipped. 1 when the body is well-formed so far, 0 when not
    (``w.error``); the transactions themselves are read afterwards."""
    cdef uint32_t field, wire_type
    cdef bint one_byte, minimal
    cdef Py_ssize_t length
    while p < end:
        p = read_tag(w, p, end, &field, &wire_type, &one_byte)
        if p == NULL:
            return 0
        if field == 1 and wire_type == LENGTH:
            p = read_length(w, p, end, &length, &minimal)
            if p == NULL:
                return 0
            add_span(spans, p, length)
            p += length
        else:
            p = skip_value(w, p, end, field, wire_type, MAX_WIRE_DEPTH)
            if p == NULL:
                return 0
    return 1


cdef str _wire_error(const Wire* w):
    return f"{WIRE_ERRORS[w.error]} at byte {w.error_at}"


# -------------------------------------------------------------------------------------- value checks
cdef inline bint is_id(const Text* t) noexcept nogil:
    """``[A-Za-z0-9._:-]{1,MAX_ID_LENGTH}``."""
    cdef Py_ssize_t i
    cdef uint8_t c
    if t.size == 0 or t.size > MAX_ID_LENGTH:
        return False
    for i in range(t.size):
        c = t.data[i]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 46 or c == 95 or c == 58 or c == 45):
            return False
    return True


cdef inline bint is_attribute_key(const Text* t) noexcept nogil:
    """``[A-Za-z0-9_.-]{1,MAX_ATTRIBUTE_KEY_LENGTH}``."""
    cdef Py_ssize_t i
    cdef uint8_t c
    if t.size == 0 or t.size > MAX_ATTRIBUTE_KEY_LENGTH:
        return False
    for i in range(t.size):
        c = t.data[i]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 46 or c == 95 or c == 45):
            return False
    return True


cdef inline bint is_printable_id(const Text* t) noexcept nogil:
    """``[^\\x00-\\x1f\\x7f]{1,MAX_PRINTABLE_ID_LENGTH}`` (characters, not bytes)."""
    return t.size > 0 and t.printable and t.chars <= MAX_PRINTABLE_ID_LENGTH


cdef inline Py_ssize_t digits(const uint8_t* s, Py_ssize_t at, Py_ssize_t size) noexcept nogil:
    """How many ASCII digits follow ``at``."""
    cdef Py_ssize_t i = at
    while i < size and 48 <= s[i] <= 57:
        i += 1
    return i - at


cdef inline Py_ssize_t amount_fraction(const Text* t) noexcept nogil:
    """``[0-9]{1,18}(?:\\.[0-9]+)?``: -1 when the text does not match, else its fraction digits."""
    cdef Py_ssize_t whole = digits(t.data, 0, t.size)
    cdef Py_ssize_t fraction
    if whole == 0 or whole > 18:
        return -1
    if whole == t.size:
        return 0
    if t.data[whole] != 46:
        return -1
    fraction = digits(t.data, whole + 1, t.size)
    if fraction == 0 or whole + 1 + fraction != t.size:
        return -1
    return fraction


cdef inline bint is_balance(const Text* t) noexcept nogil:
    """``-?[0-9]{1,18}(?:\\.[0-9]{1,8})?``."""
    cdef Py_ssize_t at = 1 if t.size and t.data[0] == 45 else 0
    cdef Py_ssize_t whole = digits(t.data, at, t.size)
    cdef Py_ssize_t fraction
    if whole == 0 or whole > 18:
        return False
    at += whole
    if at == t.size:
        return True
    if t.data[at] != 46:
        return False
    fraction = digits(t.data, at + 1, t.size)
    return 1 <= fraction <= 8 and at + 1 + fraction == t.size


cdef inline bint is_ipv4(const Text* t) noexcept nogil:
    """Dotted-quad IPv4 as ipaddress accepts it: four numbers 0 to 255 without leading zeros."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t start
    cdef int octet, value
    for octet in range(4):
        if octet:
            if i >= t.size or t.data[i] != 46:
                return False
            i += 1
        start = i
        value = 0
        while i < t.size and i - start < 3 and 48 <= t.data[i] <= 57:
            value = 10 * value + t.data[i] - 48
            i += 1
        if i == start or value > 255 or (i - start > 1 and t.data[start] == 48):
            return False
    return i == t.size


cdef inline bint is_zero(const Text* t) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(t.size):
        if 49 <= t.data[i] <= 57:
            return False
    return True


cdef double POWERS_OF_TEN[23]
for _power in range(23):
    POWERS_OF_TEN[_power] = float(10 ** _power)


cdef double decimal_to_double(const Text* t) except? -1.0:
    """``float(text)`` of a text matching ``-?[0-9]+(\\.[0-9]+)?``, correctly rounded: exactly (an
    integer below 10**15 divided by a power of ten up to 10**22, both exact, rounds once) or by
    Python's own string-to-double."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t significant = 0
    cdef Py_ssize_t fraction = -1
    cdef uint64_t mantissa = 0
    cdef bint negative = t.size > 0 and t.data[0] == 45
    cdef uint8_t c
    cdef double value
    cdef char buffer[64]
    cdef bytes copy
    if negative:
        i = 1
    while i < t.size:
        c = t.data[i]
        if c == 46:
            fraction = 0
        else:
            if fraction >= 0:
                fraction += 1
            if mantissa or c != 48:
                significant += 1
                mantissa = 10 * mantissa + (c - 48)
        i += 1
    if fraction < 0:
        fraction = 0
    if significant <= 15 and fraction <= 22:
        value = mantissa / POWERS_OF_TEN[fraction]
        return -value if negative else value
    if t.size < 64:
        memcpy(buffer, t.data, t.size)
        buffer[t.size] = 0
        return PyOS_string_to_double(buffer, NULL, NULL)
    copy = PyBytes_FromStringAndSize(<const char*>t.data, t.size)
    return PyOS_string_to_double(PyBytes_AS_STRING(copy), NULL, NULL)


cdef inline bint later_than(int64_t seconds, double limit) noexcept nogil:
    """``seconds > limit`` compared exactly, as Python compares an int with a float."""
    if limit != limit:  # NaN
        return False
    if limit >= 9223372036854775808.0:
        return False
    if limit < -9223372036854775808.0:
        return True
    return seconds > <int64_t>floor(limit)  # an integer exceeds limit exactly when it exceeds its floor


cdef inline str text_of(const Text* t):
    """The Python str of a checked string field (ASCII copied, anything else decoded)."""
    cdef object result
    if t.size == 0:
        return ""
    if t.chars == t.size:
        result = PyUnicode_New(t.size, 127)
        memcpy(PyUnicode_DATA(result), t.data, t.size)
        return <str>result
    return PyUnicode_DecodeUTF8(<const char*>t.data, t.size, NULL)


# ------------------------------------------------------------------------------------------- results
cdef class _Rows:
    """The decoded request being assembled: the valid rows' columns and values, the item errors.

    The columns are written through raw pointers into arrays of the final dtype and size (the number of
    items, an upper bound of the rows): typed memoryviews would cost more to set up than a small
    request takes to decode."""

    cdef Py_ssize_t count
    cdef Py_ssize_t size
    cdef dict arrays
    cdef dict slots
    cdef list accounts, transaction_ids, idempotency_keys, account_ids, counterparty_ids
    cdef list currencies, amounts, transaction_bytes, fingerprints, errors
    cdef object items_array
    cdef Py_ssize_t* items
    cdef int32_t* slot
    cdef double* amount
    cdef uint8_t* kind
    cdef double* event_time
    cdef uint8_t* geo_known
    cdef double* latitude
    cdef double* longitude
    cdef uint16_t* country
    cdef uint8_t* channel
    cdef uint64_t* counterparty
    cdef uint64_t* device
    cdef uint8_t* known
    cdef double* origin_before
    cdef double* origin_after
    cdef double* destination_before
    cdef double* destination_after

    def __init__(self, Py_ssize_t count):
        self.count = count
        self.size = 0
        # every column but the output column home_country is written for each row
        self.arrays = arrays = {
            name: (np.zeros if name == "home_country" else np.empty)(count, dtype=dtype)
            for name, dtype in COLUMN_DTYPES.items()
        }
        self.items_array = np.empty(count, dtype=np.intp)
        self.items = <Py_ssize_t*>cnp.PyArray_DATA(self.items_array)
        self.slots = {}
        self.accounts = []
        self.transaction_ids = []
        self.idempotency_keys = []
        self.account_ids = []
        self.counterparty_ids = []
        self.currencies = []
        self.amounts = []
        self.transaction_bytes = []
        self.fingerprints = []
        self.errors = []
        self.slot = <int32_t*>cnp.PyArray_DATA(arrays["account_slot"])
        self.amount = <double*>cnp.PyArray_DATA(arrays["amount"])
        self.kind = <uint8_t*>cnp.PyArray_DATA(arrays["type"])
        self.event_time = <double*>cnp.PyArray_DATA(arrays["event_time"])
        self.geo_known = <uint8_t*>cnp.PyArray_DATA(arrays["geo_known"])
        self.latitude = <double*>cnp.PyArray_DATA(arrays["latitude"])
        self.longitude = <double*>cnp.PyArray_DATA(arrays["longitude"])
        self.country = <uint16_t*>cnp.PyArray_DATA(arrays["country"])
        self.channel = <uint8_t*>cnp.PyArray_DATA(arrays["channel"])
        self.counterparty = <uint64_t*>cnp.PyArray_DATA(arrays["counterparty"])
        self.device = <uint64_t*>cnp.PyArray_DATA(arrays["device"])
        self.known = <uint8_t*>cnp.PyArray_DATA(arrays["balances_known"])
        self.origin_before = <double*>cnp.PyArray_DATA(arrays["origin_before"])
        self.origin_after = <double*>cnp.PyArray_DATA(arrays["origin_after"])
        self.destination_before = <double*>cnp.PyArray_DATA(arrays["destination_before"])
        self.destination_after = <double*>cnp.PyArray_DATA(arrays["destination_after"])

    def result(self):
        n = self.size
        columns = TransactionColumns(**{name: array[:n] for name, array in self.arrays.items()})
        return DecodedTransactions(
            self.count,
            columns,
            self.accounts,
            self.items_array[:n],
            self.transaction_ids,
            self.idempotency_keys,
            self.account_ids,
            self.counterparty_ids,
            self.currencies,
            self.amounts,
            self.transaction_bytes,
            self.fingerprints,
            self.errors,
        )


# ------------------------------------------------------------------------------------------- decoder
cdef class WireDecoder:
    """Decodes and validates scoring requests; configured once per worker (see the module docstring).

    ``currency_exponents`` maps each accepted ISO 4217 code to the fraction digits its amounts may
    have (the server's table); ``max_skew_s`` is how far in the future an event time may lie.
    """

    cdef int16_t* _exponents  # by three-letter code A-Z; NO_EXPONENT where not accepted
    cdef list _currency_names  # the str of each table code seen so far (None until then)
    cdef dict _other_exponents  # codes the table cannot hold: their exponent as given
    cdef object _currency_exponents
    cdef double _max_skew_s
    cdef str _skew_description

    def __cinit__(self):
        cdef Py_ssize_t i
        self._exponents = <int16_t*>PyMem_Malloc(CURRENCY_TABLE_SIZE * sizeof(int16_t))
        if self._exponents == NULL:
            raise MemoryError()
        for i in range(CURRENCY_TABLE_SIZE):
            self._exponents[i] = NO_EXPONENT

    def __dealloc__(self):
        PyMem_Free(self._exponents)

    def __init__(self, currency_exponents, double max_skew_s):
        cdef Py_ssize_t index
        self._currency_exponents = currency_exponents
        self._currency_names = [None] * CURRENCY_TABLE_SIZE
        self._other_exponents = {}
        for code, exponent in currency_exponents.items():
            if exponent is None:  # the reference's .get() gives None: not a currency
                continue
            index = _currency_index(code)
            if index >= 0 and 0 <= exponent <= 0x7FFF:
                self._exponents[index] = <int16_t>exponent
            else:
                self._other_exponents[code] = exponent
        self._max_skew_s = max_skew_s
        self._skew_description = f"lies more than {max_skew_s:.0f} s in the future"

    def decode_batch(self, bytes body not None, double now):
        """A ScoreBatchRequest body, its items named ``transactions[i]``; WireDecodeError when protobuf
        could not parse it."""
        cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(body)
        cdef Py_ssize_t i
        cdef Wire w
        cdef Spans spans
        cdef Txn t
        cdef _Rows rows
        w.base = data
        w.error = WIRE_OK
        spans.items = NULL
        spans.count = spans.capacity = 0
        try:
            if not read_request(&w, data, data + PyBytes_GET_SIZE(body), &spans):
                raise WireDecodeError(_wire_error(&w))
            rows = _Rows(spans.count)
            for i in range(spans.count):
                if read_transaction(&w, spans.items[i].data, spans.items[i].data + spans.items[i].size,
                                    MAX_WIRE_DEPTH - 1, &t) == NULL:
                    raise WireDecodeError(_wire_error(&w))
                self._take(rows, i, &t, spans.items[i].data, spans.items[i].size, True, now)
        finally:
            PyMem_Free(spans.items)
        return rows.result()

    def decode_singles(self, bodies, double now):
        """ScoreRequest/ScoreStreamRequest bodies (field 1: the Transaction), one item each, named
        ``transaction``; a body protobuf could not parse is an item error."""
        cdef list messages = list(bodies)
        cdef _Rows rows = _Rows(len(messages))
        cdef Py_ssize_t i, j, size
        cdef const uint8_t* data
        cdef Wire w
        cdef Spans spans
        cdef Txn t
        cdef bint parsed
        cdef bytes body, joined
        spans.items = NULL
        spans.capacity = 0
        try:
            for i in range(len(messages)):
                body = messages[i]
                data = <const uint8_t*>PyBytes_AS_STRING(body)
                w.base = data
                w.error = WIRE_OK
                spans.count = 0
                parsed = read_request(&w, data, data + PyBytes_GET_SIZE(body), &spans)
                j = 0
                while parsed and j < spans.count:  # each occurrence is parsed on its own ...
                    parsed = read_transaction(&w, spans.items[j].data, spans.items[j].data + spans.items[j].size,
                                              MAX_WIRE_DEPTH - 1, &t) != NULL
                    j += 1
                if not parsed:
                    rows.errors.append(
                        (i, [("transaction", UNDECODABLE + _wire_error(&w))])
                    )
                    continue
                if spans.count == 0:  # no transaction: validated as an empty one
                    size = 0
                    read_transaction(&w, data, data, MAX_WIRE_DEPTH - 1, &t)
                elif spans.count == 1:
                    data = spans.items[0].data
                    size = spans.items[0].size
                else:  # ... and several are merged: the message is that of their concatenation
                    joined = b"".join([
                        PyBytes_FromStringAndSize(<const char*>spans.items[j].data, spans.items[j].size)
                        for j in range(spans.count)
                    ])
                    data = <const uint8_t*>PyBytes_AS_STRING(joined)
                    size = PyBytes_GET_SIZE(joined)
                    w.base = data
                    read_transaction(&w, data, data + size, MAX_WIRE_DEPTH - 1, &t)
                try:
                    self._take(rows, i, &t, data, size, False, now)
                except WireDecodeError as exc:  # never: the decoder parses what protobuf parses
                    rows.errors.append((i, [("transaction", f"{UNDECODABLE}{exc}")]))
        finally:
            PyMem_Free(spans.items)
        return rows.result()

    cdef int _take(
        self, _Rows rows, Py_ssize_t item, Txn* t, const uint8_t* data, Py_ssize_t size, bint batch,
        double now,
    ) except -1:
        """Validate one parsed transaction; add it as a row, or its violations as an item error."""
        cdef bytes canonical = None
        cdef Wire w
        cdef Py_ssize_t exponent = NO_EXPONENT
        cdef Py_ssize_t row, fraction
        cdef int currency_index = -1
        cdef int problem
        cdef uint8_t known
        cdef uint16_t country = 0
        cdef double amount, event_time
        cdef str account, transaction_id, currency
        cdef object known_slot
        cdef Py_ssize_t slot
        if not t.canonical:  # the slow path: protobuf itself writes the canonical form
            canonical = canonical_transaction(PyBytes_FromStringAndSize(<const char*>data, size))
            data = <const uint8_t*>PyBytes_AS_STRING(canonical)
            size = PyBytes_GET_SIZE(canonical)
            w.base = data
            w.error = WIRE_OK
            if read_transaction(&w, data, data + size, MAX_WIRE_DEPTH - 1, t) == NULL or not t.canonical:
                raise RuntimeError("protobuf's deterministic serialization is not canonical to the decoder")
        if t.has_amount:
            currency_index = _text_currency_index(&t.currency)
            if currency_index >= 0:
                exponent = self._exponents[currency_index]
            if exponent == NO_EXPONENT and self._other_exponents:
                exponent = self._other_exponent(&t.currency)
        violations = self._violations(t, size, now, exponent)
        if violations is not None:
            path = f"transactions[{item}]" if batch else "transaction"
            rows.errors.append((item, [(f"{path}{field}" if field else path, text) for field, text in violations]))
            return 0

        row = rows.size
        account = text_of(&t.account_id)
        known_slot = rows.slots.get(account)
        if known_slot is None:
            slot = len(rows.accounts)
            rows.slots[account] = slot
            rows.accounts.append(account)
        else:
            slot = known_slot
        amount = decimal_to_double(&t.amount)
        event_time = t.seconds + t.nanos / 1e9
        known = t.balances_known if t.has_balances else 0
        if t.country.size == 2:
            country = (<uint16_t>t.country.data[0] << 8) | t.country.data[1]
        rows.items[row] = item
        rows.slot[row] = <int32_t>slot
        rows.amount[row] = amount
        rows.kind[row] = <uint8_t>t.kind
        rows.event_time[row] = event_time
        rows.geo_known[row] = 1 if t.has_latitude else 0
        rows.latitude[row] = t.latitude if t.has_latitude else 0.0
        rows.longitude[row] = t.longitude if t.has_longitude else 0.0
        rows.country[row] = country
        rows.channel[row] = <uint8_t>t.channel
        rows.counterparty[row] = fnv1a_64(<const char*>t.counterparty_id.data, t.counterparty_id.size)
        rows.device[row] = fnv1a_64(<const char*>t.device_id.data, t.device_id.size)
        rows.known[row] = known
        rows.origin_before[row] = decimal_to_double(&t.balances[0]) if known & ORIGIN_BEFORE_KNOWN else 0.0
        rows.origin_after[row] = decimal_to_double(&t.balances[1]) if known & ORIGIN_AFTER_KNOWN else 0.0
        rows.destination_before[row] = (
            decimal_to_double(&t.balances[2]) if known & DESTINATION_BEFORE_KNOWN else 0.0
        )
        rows.destination_after[row] = (
            decimal_to_double(&t.balances[3]) if known & DESTINATION_AFTER_KNOWN else 0.0
        )
        problem = row_problem(
            <int32_t>slot, -1, amount, rows.kind[row], event_time, rows.geo_known[row], rows.latitude[row],
            rows.longitude[row], country, known, rows.origin_before[row], rows.origin_after[row],
            rows.destination_before[row], rows.destination_after[row],
        )
        if problem:  # never for a valid transaction (kept as in TransactionColumnsBuilder.append)
            raise InvalidTransactionValue(*ROW_PROBLEMS[problem], row)

        transaction_id = text_of(&t.transaction_id)
        if currency_index >= 0:
            currency = self._currency_names[currency_index]
            if currency is None:
                currency = text_of(&t.currency)
                self._currency_names[currency_index] = currency
        else:
            currency = text_of(&t.currency)
        if canonical is None:
            canonical = PyBytes_FromStringAndSize(<const char*>data, size)
        rows.transaction_ids.append(transaction_id)
        rows.idempotency_keys.append(text_of(&t.idempotency_key) if t.idempotency_key.size else transaction_id)
        rows.account_ids.append(account)
        rows.counterparty_ids.append(text_of(&t.counterparty_id))
        rows.currencies.append(currency)
        rows.amounts.append(text_of(&t.amount))
        rows.transaction_bytes.append(canonical)
        rows.fingerprints.append(_sha256(canonical).digest())
        rows.size = row + 1
        return 0

    cdef Py_ssize_t _other_exponent(self, const Text* currency) except? -2:
        """The exponent of a code outside the table (clamped: only its comparison with a digit count
        matters here; the description is written with the value as given)."""
        exponent = self._other_exponents.get(text_of(currency))
        if exponent is None:
            return NO_EXPONENT
        if exponent < 0:
            return -2  # below any digit count, and distinct from NO_EXPONENT
        return min(exponent, 1 << 40)

    cdef object _violations(self, Txn* t, Py_ssize_t size, double now, Py_ssize_t exponent):
        """None when the transaction is valid, else its violations as (field after the item path,
        description), in validate_transaction's order. Only C comparisons when it is valid."""
        cdef list out = None
        cdef Py_ssize_t fraction, i
        cdef const uint8_t* p
        cdef Text key, value
        cdef int bit

        if t.transaction_id.size == 0:
            out = _bad(out, ".transaction_id", "is required")
        elif not is_id(&t.transaction_id):
            out = _bad(out, ".transaction_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
        if t.idempotency_key.size and not is_id(&t.idempotency_key):
            out = _bad(out, ".idempotency_key", "must be 1 to 128 characters of [A-Za-z0-9._:-]")
        if t.account_id.size == 0:
            out = _bad(out, ".account_id", "is required")
        elif not is_printable_id(&t.account_id):
            out = _bad(out, ".account_id", "must be 1 to 128 printable characters")
        if t.counterparty_id.size and not is_printable_id(&t.counterparty_id):
            out = _bad(out, ".counterparty_id", "must be at most 128 printable characters")
        if t.kind == 0:
            out = _bad(out, ".type", "is required")
        elif not TYPE_PAYMENT <= t.kind <= TYPE_DEBIT:
            out = _bad(out, ".type", f"unknown transaction type {t.kind}")
        if not 0 <= t.channel <= MAX_CHANNEL:
            out = _bad(out, ".channel", f"unknown channel {t.channel}")

        if not t.has_amount:
            out = _bad(out, ".amount", "is required")
        else:
            if t.currency.size == 0:
                out = _bad(out, ".amount.currency", "is required")
            elif exponent == NO_EXPONENT:
                out = _bad(
                    out, ".amount.currency", f"unknown ISO 4217 currency code {text_of(&t.currency)[:8]!r}"
                )
            fraction = amount_fraction(&t.amount)
            if fraction < 0:
                out = _bad(
                    out,
                    ".amount.amount",
                    f"must be a non-negative decimal number such as '12.50', got {text_of(&t.amount)[:32]!r}",
                )
            else:
                if is_zero(&t.amount):
                    out = _bad(out, ".amount.amount", "must be greater than zero")
                if fraction and exponent != NO_EXPONENT and fraction > exponent:
                    currency = text_of(&t.currency)
                    out = _bad(
                        out,
                        ".amount.amount",
                        f"{currency} allows at most {self._currency_exponents[currency]} fraction digits, "
                        f"got {fraction}",
                    )

        if not t.has_event_time:
            out = _bad(out, ".event_time", "is required")
        elif not 0 <= t.nanos <= 999_999_999:
            out = _bad(out, ".event_time", "nanos must be between 0 and 999,999,999")
        elif t.seconds < EARLIEST_EVENT_TIME:
            out = _bad(out, ".event_time", "must not be before 2000-01-01T00:00:00Z")
        elif later_than(t.seconds, now + self._max_skew_s):
            out = _bad(out, ".event_time", self._skew_description)

        if t.has_geo:
            if t.has_latitude != t.has_longitude:
                out = _bad(out, ".geo", "latitude and longitude must be set together")
            if t.has_latitude and not -90.0 <= t.latitude <= 90.0:  # false for NaN too
                out = _bad(out, ".geo.latitude", "must be between -90 and 90")
            if t.has_longitude and not -180.0 <= t.longitude <= 180.0:
                out = _bad(out, ".geo.longitude", "must be between -180 and 180")
            if t.country.size and not (
                t.country.size == 2 and 65 <= t.country.data[0] <= 90 and 65 <= t.country.data[1] <= 90
            ):
                out = _bad(out, ".geo.country", "must be an ISO 3166-1 alpha-2 code such as 'DE'")
        if t.device_id.chars > MAX_DEVICE_ID_LENGTH:
            out = _bad(out, ".device_id", "must be at most 128 characters")
        if t.ip_address.size and not is_ipv4(&t.ip_address):
            address = text_of(&t.ip_address)
            try:
                _ip_address(address)
            except ValueError:
                out = _bad(out, ".ip_address", f"not an IPv4 or IPv6 address: {address[:64]!r}")
        if t.has_balances:
            for i, name in enumerate(_BALANCE_FIELDS):
                bit = 1 << i
                if t.balances_known & bit and not is_balance(&t.balances[i]):
                    out = _bad(out, f".balances.{name}", "must be a decimal number such as '-12.50'")
        if t.attribute_count > MAX_ATTRIBUTES:
            out = _bad(
                out, ".attributes", f"at most {MAX_ATTRIBUTES} entries allowed, got {t.attribute_count}"
            )
        elif t.attribute_count:
            p = t.attributes
            for i in range(t.attribute_count):
                p = next_entry(p, t.attributes_end, &key, &value)
                if not is_attribute_key(&key):
                    out = _bad(
                        out, f".attributes[{text_of(&key)[:64]!r}]", "key must be 1 to 64 characters of [A-Za-z0-9_.-]"
                    )
                elif value.chars > MAX_ATTRIBUTE_VALUE:
                    out = _bad(
                        out, f".attributes[{text_of(&key)!r}]", f"value must be at most {MAX_ATTRIBUTE_VALUE} characters"
                    )
        if size > MAX_TRANSACTION_BYTES:
            out = _bad(
                out, "", f"is {size} bytes serialized, over the limit of {MAX_TRANSACTION_BYTES} bytes"
            )
        return out


_BALANCE_FIELDS = ("origin_before", "origin_after", "destination_before", "destination_after")


cdef inline list _bad(list out, str field, str description):
    if out is None:
        out = []
    out.append((field, description))
    return out


cdef inline int _text_currency_index(const Text* t) noexcept nogil:
    """The table index of a three-letter code A-Z, else -1."""
    if t.size != 3:
        return -1
    if not (65 <= t.data[0] <= 90 and 65 <= t.data[1] <= 90 and 65 <= t.data[2] <= 90):
        return -1
    return (t.data[0] - 65) * 676 + (t.data[1] - 65) * 26 + (t.data[2] - 65)


def _currency_index(code):
    """The table index of a currency code given to the constructor, -1 when the table cannot hold it."""
    if not isinstance(code, str) or len(code) != 3 or not all("A" <= c <= "Z" for c in code):
        return -1
    return (ord(code[0]) - 65) * 676 + (ord(code[1]) - 65) * 26 + (ord(code[2]) - 65)


def transaction_is_canonical(bytes data not None):
    """Whether serialized Transaction bytes are canonical (the deterministic serialization of what they
    decode to, without unknown fields), i.e. whether the decoder uses them as they are; False for bytes
    that are no Transaction too. For tests and diagnostics."""
    cdef const uint8_t* start = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Wire w
    cdef Txn t
    w.base = start
    w.error = WIRE_OK
    return read_transaction(&w, start, start + PyBytes_GET_SIZE(data), MAX_WIRE_DEPTH, &t) != NULL and t.canonical
