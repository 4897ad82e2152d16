# cython: language_level=3
"""Compiled ledger half of the request path: a batch's ledger records and a group's chained entry rows,
one call each per batch instead of a Python loop over its decisions.

``ledger_records`` builds the ``sentinel.ledger.records.LedgerRecord`` of each decided row from what the
compiled decoder (the row's ``DecodedTransactions``) and the outcome stage (its ``Decided``) computed. It
does not check the fields a second time: the decoder's checks are stricter than the record's (non-empty
printable ids of strict UTF-8, an ISO 4217 code, a positive amount within the currency's digits, the
sha256 fingerprint) and the outcome stage's outcomes and scores are finite by construction. The records
equal ``LedgerRecord(...)`` built with every check (tests/test_ledger_compiled.py holds them to that).

``entry_rows`` turns a group's (sequence, record) pairs into the ``ledger.entry_row`` values the lane's
statement inserts, each with its link of the hash chain: exactly ``sentinel.ledger.chain.entry_hash``
(what ``sentinel ledger verify`` recomputes), with the amount as exact decimal text.

The caller's tuples are read by position: a decision is ``(decision bytes, outcome number, risk score,
...)`` (``Decided``); a block's fields are found by name in ``DecodedTransactions`` when the module
loads.
"""

import hashlib
from decimal import Decimal

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8String
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy

from sentinel.hotpath.wire import DecodedTransactions

cdef extern from "Python.h":
    # object.__setattr__: a frozen dataclass's own __setattr__ refuses
    int PyObject_GenericSetAttr(object o, object name, object value) except -1

cdef object _new = object.__new__
cdef object _sha256 = hashlib.sha256
cdef object _decimal = Decimal

cdef Py_ssize_t _TRANSACTION_IDS = DecodedTransactions._fields.index("transaction_ids")
cdef Py_ssize_t _IDEMPOTENCY_KEYS = DecodedTransactions._fields.index("idempotency_keys")
cdef Py_ssize_t _FINGERPRINTS = DecodedTransactions._fields.index("fingerprints")
cdef Py_ssize_t _ACCOUNT_IDS = DecodedTransactions._fields.index("account_ids")
cdef Py_ssize_t _COUNTERPARTY_IDS = DecodedTransactions._fields.index("counterparty_ids")
cdef Py_ssize_t _AMOUNTS = DecodedTransactions._fields.index("amounts")
cdef Py_ssize_t _CURRENCIES = DecodedTransactions._fields.index("currencies")
cdef Py_ssize_t _TRANSACTION_BYTES = DecodedTransactions._fields.index("transaction_bytes")

# the sequence, chain id and recorded_at (big-endian int64), then the lengths of key, transaction and
# decision (big-endian uint32): chain._HEADER
cdef enum:
    HEADER_SIZE = 36
    DIGEST_SIZE = 32


def ledger_records(
    type record_type,
    list blocks,
    const int32_t[:] block_of_row,
    const Py_ssize_t[:] block_rows,
    list rows,
    list results,
    outcome_names,
):
    """The records of ``rows``: row i's transaction is row ``block_rows[i]`` of
    ``blocks[block_of_row[i]]`` (a ``DecodedTransactions``) and ``results[i]`` is its decision;
    ``outcome_names`` maps an outcome number to the record's name."""
    cdef list records = []
    cdef tuple block, decided
    cdef Py_ssize_t i, row
    cdef object record
    for i in rows:
        block = <tuple>blocks[block_of_row[i]]
        row = block_rows[i]
        decided = <tuple>results[i]
        record = _new(record_type)
        PyObject_GenericSetAttr(record, "transaction_id", (<list>block[_TRANSACTION_IDS])[row])
        PyObject_GenericSetAttr(record, "idempotency_key", (<list>block[_IDEMPOTENCY_KEYS])[row])
        PyObject_GenericSetAttr(record, "fingerprint", (<list>block[_FINGERPRINTS])[row])
        PyObject_GenericSetAttr(record, "account_id", (<list>block[_ACCOUNT_IDS])[row])
        PyObject_GenericSetAttr(record, "counterparty_id", (<list>block[_COUNTERPARTY_IDS])[row])
        PyObject_GenericSetAttr(record, "amount", _decimal((<list>block[_AMOUNTS])[row]))
        PyObject_GenericSetAttr(record, "currency", (<list>block[_CURRENCIES])[row])
        PyObject_GenericSetAttr(record, "outcome", outcome_names[decided[1]])
        PyObject_GenericSetAttr(record, "risk_score", decided[2])
        PyObject_GenericSetAttr(record, "transaction_bytes", (<list>block[_TRANSACTION_BYTES])[row])
        PyObject_GenericSetAttr(record, "decision_bytes", decided[0])
        records.append(record)
    return records


cdef inline void _put_int64(char* out, uint64_t value) noexcept:
    cdef int i
    for i in range(8):
        out[i] = <char>((value >> (56 - 8 * i)) & 0xFF)


cdef inline void _put_uint32(char* out, uint32_t value) noexcept:
    cdef int i
    for i in range(4):
        out[i] = <char>((value >> (24 - 8 * i)) & 0xFF)


def entry_rows(list entries, bytes head not None, int64_t chain_id, int64_t recorded_at_us):
    """The ``ledger.entry_row`` values of ``entries`` ((sequence, record), ascending sequence numbers),
    each chained to the one before (the first to ``head``), and the chain's new head."""
    cdef list rows = []
    cdef tuple entry
    cdef int64_t sequence
    cdef bytes key, transaction, decision, message
    cdef Py_ssize_t key_size, transaction_size, decision_size
    cdef char* out
    if PyBytes_GET_SIZE(head) != DIGEST_SIZE:
        raise ValueError(f"a chain's head is a sha256 digest of {DIGEST_SIZE} bytes (got {len(head)})")
    for entry in entries:
        sequence = entry[0]
        record = entry[1]
        key_text = record.idempotency_key
        key = PyUnicode_AsUTF8String(key_text)
        transaction = record.transaction_bytes
        decision = record.decision_bytes
        key_size, transaction_size = PyBytes_GET_SIZE(key), PyBytes_GET_SIZE(transaction)
        decision_size = PyBytes_GET_SIZE(decision)
        message = PyBytes_FromStringAndSize(
            NULL, DIGEST_SIZE + HEADER_SIZE + key_size + transaction_size + decision_size
        )
        out = PyBytes_AS_STRING(message)
        memcpy(out, PyBytes_AS_STRING(head), DIGEST_SIZE)
        out += DIGEST_SIZE
        _put_int64(out, <uint64_t>sequence)
        _put_int64(out + 8, <uint64_t>chain_id)
        _put_int64(out + 16, <uint64_t>recorded_at_us)
        _put_uint32(out + 24, <uint32_t>key_size)
        _put_uint32(out + 28, <uint32_t>transaction_size)
        _put_uint32(out + 32, <uint32_t>decision_size)
        out += HEADER_SIZE
        memcpy(out, PyBytes_AS_STRING(key), key_size)
        out += key_size
        memcpy(out, PyBytes_AS_STRING(transaction), transaction_size)
        out += transaction_size
        memcpy(out, PyBytes_AS_STRING(decision), decision_size)
        head = _sha256(message).digest()
        rows.append(
            (
                sequence,
                key_text,
                record.transaction_id,
                record.fingerprint,
                record.account_id,
                record.counterparty_id,
                str(record.amount),
                record.currency,
                record.outcome,
                record.risk_score,
                transaction,
                decision,
                head,
            )
        )
    return rows, head
