# cython: language_level=3
"""Compiled Redis claim payloads of a batch: the keys and values the state stage's two scripts write, one
call per batch instead of a Python loop over its rows.

A claim's key is ``prefix + idempotency key + suffix`` (``sentinel.server.state_store.claim_key``, whose
parts the caller passes, encoded) and its value the request's fingerprint, a mark, then either the
admission time (``pending_claims``: admitted, not decided) or the serialized Decision (``settle_claims``),
with its ``ledger_sequence`` field appended once the ledger has it (``stored_decisions.sequence_field``:
protobuf keeps the last value of a field, so the appended field sets it without a new serialization).
tests/test_claims_compiled.py holds both to those Python definitions.

``settle_claims`` reads a decision by position, as ``Decided`` declares it: ``(decision bytes, ...)``
with the ledger sequence at ``SEQUENCE_INDEX``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from _protowire cimport put_varint, varint_size

SEQUENCE_INDEX = 5  # Decided.ledger_sequence
cdef enum:
    LEDGER_SEQUENCE_TAG = 0x40  # sentinel.v1.Decision field 8, wire type 0 (varint)


cdef bytes _claim_key(str key, bytes prefix, bytes suffix):
    cdef Py_ssize_t size
    cdef const char* text = PyUnicode_AsUTF8AndSize(key, &size)
    cdef Py_ssize_t prefix_size = PyBytes_GET_SIZE(prefix), suffix_size = PyBytes_GET_SIZE(suffix)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, prefix_size + size + suffix_size)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(prefix), prefix_size)
    memcpy(p + prefix_size, text, size)
    memcpy(p + prefix_size + size, PyBytes_AS_STRING(suffix), suffix_size)
    return out


cdef bytes _claim_value(bytes fingerprint, bytes mark, bytes payload, int64_t sequence):
    """fingerprint + mark + payload, then the ledger_sequence field when ``sequence`` is not 0."""
    cdef Py_ssize_t fingerprint_size = PyBytes_GET_SIZE(fingerprint), mark_size = PyBytes_GET_SIZE(mark)
    cdef Py_ssize_t payload_size = PyBytes_GET_SIZE(payload)
    cdef Py_ssize_t size = fingerprint_size + mark_size + payload_size
    if sequence:
        size += 1 + varint_size(<uint64_t>sequence)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, size)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(fingerprint), fingerprint_size)
    p += fingerprint_size
    memcpy(p, PyBytes_AS_STRING(mark), mark_size)
    p += mark_size
    memcpy(p, PyBytes_AS_STRING(payload), payload_size)
    p += payload_size
    if sequence:
        p[0] = LEDGER_SEQUENCE_TAG
        put_varint(p + 1, <uint64_t>sequence)
    return out


def pending_claims(
    list keys, list fingerprints, list rows, bytes prefix not None, bytes suffix not None,
    bytes tail not None,
):
    """The claim keys and values of ``rows`` being admitted: ``fingerprints[i] + tail`` under the claim
    key of ``keys[i]`` (``tail``: the pending mark and the admission time)."""
    cdef list claim_keys = [], values = []
    cdef Py_ssize_t i
    for i in rows:
        claim_keys.append(_claim_key(keys[i], prefix, suffix))
        values.append(<bytes>fingerprints[i] + tail)
    return claim_keys, values


def settle_claims(
    list keys, list fingerprints, list results, type decided, dict owners, set replays,
    set resubmitted, bint durable, bytes prefix not None, bytes suffix not None, bytes mark not None,
):
    """The decided claims a batch writes after the ledger, in row order:

    - a row whose key the ledger holds for another transaction (``owners[i]``: the stored fingerprint and
      decision, when known) gets the ledger's entry;
    - a row decided now (``results[i]`` a ``decided``) gets its decision, with its ledger sequence when
      ``durable``;
    - a replay gets nothing (its claim is decided already), unless its claim had no ledger sequence and
      it was recorded again (``resubmitted``): then, once ``durable``, its decision with the sequence;
    - anything else (a rejection, a request another worker decides) gets nothing.
    """
    cdef list claim_keys = [], values = []
    cdef Py_ssize_t i, n = len(results)
    cdef tuple result
    cdef int64_t sequence
    for i in range(n):
        if owners and i in owners:
            stored_fingerprint, stored_decision = owners[i]
            if stored_fingerprint is not None and stored_decision is not None:
                claim_keys.append(_claim_key(keys[i], prefix, suffix))
                values.append(_claim_value(stored_fingerprint, mark, stored_decision, 0))
            continue
        if not isinstance(results[i], decided):
            continue
        if replays and i in replays and i not in resubmitted:
            continue  # answered from its claim, which holds the decision already
        if resubmitted and i in resubmitted and not durable:
            continue
        result = <tuple>results[i]
        sequence = result[SEQUENCE_INDEX] if durable else 0
        claim_keys.append(_claim_key(keys[i], prefix, suffix))
        values.append(_claim_value(fingerprints[i], mark, result[0], sequence))
    return claim_keys, values
