# cython: language_level=3, cdivision=True
"""Compiled output half of the request path: Decision bytes and the scoring responses around them.

``encode_decisions`` applies the outcome policy of ``sentinel.server.outcome.outcome_of`` to a batch and
writes each row's ``sentinel.v1.Decision`` straight to protobuf bytes, identical byte for byte to
``Decision(...).SerializeToString(deterministic=True)`` under the upb backend: fields in number order,
proto3 defaults left out (an empty string, a false bool, an integer 0, a double whose bits are all 0,
so -0.0 IS written), ``decided_at`` always written (as ``62 00`` when it is the epoch), doubles as
little-endian fixed64, negative integers as 10-byte varints. The risk score is computed with the same
float operations in the same order, so the doubles are identical too. Given a shadow model's scores,
each Decision also gets field 13 (``ShadowScore``: that model's version, score, and the risk score and
outcome the same policy gives with its scores and thresholds, the same matched rules and degraded mode),
written after ``decided_at`` as the generated classes write it. Given the batch's callers (a few names and
each row's index into them), each Decision ends with field 14, ``caller``.

The ``score_*``/``stream_*`` functions wrap serialized Decision and ItemError bytes into the responses
of Score, ScoreBatch and ScoreStream, splicing the answer-time fields of a decision (``ledger_sequence``
= 8, ``replayed`` = 10) into their field-number places: the result equals ``SerializeToString`` of the
response built with the generated classes whenever the decision bytes are a deterministic
serialization (any fields 8 and 10 already in them are dropped: the given values replace them).

No Python-level protobuf: this module knows the wire format and the field numbers of decision.proto,
scoring.proto and errors.proto (tests/test_decision_encoding.py checks them against the generated
classes). Thresholds are formatted once per call by Python's ``format(x, ".3f")``; model scores (float32)
by an exact integer rounding (round half to even on the exact binary value, as Python does) or, for
NaN, infinities and magnitudes >= 1e15, by Python's format.
"""

import numpy as np

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport fabs, floor, signbit
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from _constants cimport (
    ACTION_ALLOW,
    ACTION_DECLINE,
    ACTION_REVIEW,
    ACTION_TAG,
    KIND_DECISION,
    KIND_ERROR,
    OUTCOME_APPROVE,
    OUTCOME_DECLINE,
    OUTCOME_REVIEW,
)
from _protowire cimport put_varint, scan_varint, varint_size

cdef enum:
    # reasons that are not a rule's own (negative entries of a row's reason list)
    R_MODEL_HIGH = -1
    R_MODEL_ELEVATED = -2
    R_LOW_RISK = -3
    R_FAIL_CLOSED = -4
    R_DEGRADED = -5
    # the longest model score text: float32 values below 1e15 take at most 1 + 15 + 1 + 3 characters,
    # and Python's format of a larger float32 at most 1 + 39 + 1 + 3
    SCORE_TEXT_MAX = 64


# ---------------------------------------------------------------------------------------- wire helpers
cdef inline uint8_t* put_bytes(uint8_t* p, const void* data, Py_ssize_t size) noexcept nogil:
    if size:
        memcpy(p, data, size)
    return p + size


cdef inline uint8_t* put_len_field(uint8_t* p, uint8_t tag, const void* data, Py_ssize_t size) noexcept nogil:
    """A length-delimited field (tag < 128), written even when empty."""
    p[0] = tag
    p = put_varint(p + 1, <uint64_t>size)
    return put_bytes(p, data, size)


cdef inline uint8_t* put_double(uint8_t* p, uint8_t tag, double value) noexcept nogil:
    """A double field unless all its bits are 0 (+0.0): -0.0 is written, as upb does."""
    cdef uint64_t bits
    cdef int k
    memcpy(&bits, &value, 8)
    if bits == 0:
        return p
    p[0] = tag
    for k in range(8):
        p[1 + k] = <uint8_t>(bits >> (8 * k))
    return p + 9


cdef inline Py_ssize_t field_end(const uint8_t* data, Py_ssize_t size, Py_ssize_t at, uint64_t* number) noexcept nogil:
    """The end of the top-level field starting at ``at`` (its number in ``number``); -1 when malformed."""
    cdef uint64_t tag, value, wire_type
    at = scan_varint(data, size, at, &tag)
    if at < 0:
        return -1
    number[0] = tag >> 3
    if number[0] == 0 or number[0] > 536870911:
        return -1
    wire_type = tag & 7
    if wire_type == 0:
        return scan_varint(data, size, at, &value)
    if wire_type == 1:
        return at + 8 if at + 8 <= size else -1
    if wire_type == 5:
        return at + 4 if at + 4 <= size else -1
    if wire_type == 2:
        at = scan_varint(data, size, at, &value)
        if at < 0:
            return -1
        return at + <Py_ssize_t>value if value <= <uint64_t>(size - at) else -1
    return -1  # groups (3, 4) and the unused wire types 6, 7


# ------------------------------------------------------------------------------------ decision bytes
cdef inline Py_ssize_t score_text(double value, char* out) noexcept nogil:
    """``f"{value:.3f}"`` of a float32 value into ``out``; -1 when Python has to format it (NaN,
    infinities, magnitude >= 1e15, or not a float32).

    A float32 has at most 24 significant bits and 1000 = 125 * 8 has 7, so ``magnitude * 1000`` is
    exact in a double, and so is its fractional part: the rounding below (half to even on the exact
    value) is Python's correctly rounded formatting. The sign is written whenever it is set, also for
    -0.0 and values that round to 0 ("-0.000"), as Python does.
    """
    cdef double magnitude = fabs(value)
    cdef double scaled, whole, fraction
    cdef uint64_t q, integer
    cdef char digits[24]
    cdef int count = 0, k
    cdef Py_ssize_t n = 0
    if not magnitude < 1e15 or <double><float>value != value:
        return -1
    scaled = magnitude * 1000.0
    whole = floor(scaled)
    fraction = scaled - whole
    q = <uint64_t>whole
    if fraction > 0.5 or (fraction == 0.5 and (q & 1)):
        q += 1
    if signbit(value):
        out[n] = b'-'
        n += 1
    integer = q // 1000
    while True:
        digits[count] = <char>(48 + integer % 10)
        count += 1
        integer //= 10
        if integer == 0:
            break
    for k in range(count - 1, -1, -1):
        out[n] = digits[k]
        n += 1
    out[n] = b'.'
    out[n + 1] = <char>(48 + (q // 100) % 10)
    out[n + 2] = <char>(48 + (q // 10) % 10)
    out[n + 3] = <char>(48 + q % 10)
    return n + 4


cdef Py_ssize_t format_score(double value, char* out) except -1:
    cdef Py_ssize_t size = score_text(value, out)
    cdef bytes text
    if size >= 0:
        return size
    text = format(value, ".3f").encode("ascii")
    size = len(text)
    if size > SCORE_TEXT_MAX:
        raise ValueError(f"model score {value!r} is not a float32")
    memcpy(out, PyBytes_AS_STRING(text), size)
    return size


cdef uint8_t* put_model_reason(
    uint8_t* p, const char* code, Py_ssize_t code_size, const char* score, Py_ssize_t score_size,
    const char* suffix, Py_ssize_t suffix_size,
) noexcept nogil:
    """Reason{code, description="model score <score><suffix>"} as a ``reasons`` entry (field 6)."""
    cdef Py_ssize_t description = 12 + score_size + suffix_size
    cdef Py_ssize_t inner = (
        1 + varint_size(<uint64_t>code_size) + code_size + 1 + varint_size(<uint64_t>description) + description
    )
    p[0] = 0x32
    p = put_varint(p + 1, <uint64_t>inner)
    p = put_len_field(p, 0x0A, code, code_size)
    p[0] = 0x12
    p = put_varint(p + 1, <uint64_t>description)
    p = put_bytes(p, b"model score ", 12)
    p = put_bytes(p, score, score_size)
    return put_bytes(p, suffix, suffix_size)


cdef bytes entry(int number, bytes inner):
    """A length-delimited field (number < 16) around ``inner``, as Python bytes."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(inner)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 1 + varint_size(<uint64_t>size) + size)
    put_len_field(<uint8_t*>PyBytes_AS_STRING(out), <uint8_t>(number << 3 | 2), PyBytes_AS_STRING(inner), size)
    return out


cdef bytes string_field(int number, str value):
    """A string field (number < 16), empty when the string is (proto3 leaves it out)."""
    data = value.encode("utf-8")
    return entry(number, data) if data else b""


cdef bytes varint_field(int number, uint64_t value):
    """A varint field (number < 16), empty when 0."""
    cdef uint8_t buffer[11]
    if value == 0:
        return b""
    buffer[0] = <uint8_t>(number << 3)
    return PyBytes_FromStringAndSize(<char*>buffer, put_varint(buffer + 1, value) - buffer)


def reason_entry(str code, str description):
    """``Reason(code=code, description=description)`` serialized as a Decision ``reasons`` entry
    (field 6: tag, length, message)."""
    return entry(6, string_field(1, code) + string_field(2, description))


def rule_hit_entry(str rule_id, int64_t rule_version, int action, bint shadow):
    """``RuleHit(rule_id=..., rule_version=..., action=..., shadow=...)`` serialized as a Decision
    ``rules_fired`` entry (field 5: tag, length, message)."""
    if not 0 <= action <= 0x7FFFFFFF:
        raise ValueError(f"action must be a RuleAction number, got {action}")
    return entry(
        5,
        string_field(1, rule_id)
        + varint_field(2, <uint64_t>rule_version)
        + varint_field(3, <uint64_t>action)
        + varint_field(4, 1 if shadow else 0),
    )


_FAIL_CLOSED_REASON = reason_entry("DEGRADED_FAIL_CLOSED", "account state unavailable: fail-closed to REVIEW")
_DEGRADED_REASON = reason_entry("DEGRADED", "account state unavailable: scored on stateless inputs")


cdef struct Rules:
    Py_ssize_t count
    const int64_t* order
    const uint8_t* actions
    const int64_t* priorities
    const double* severities
    const uint8_t* shadow
    const char** hits
    Py_ssize_t* hit_sizes
    const char** reasons
    Py_ssize_t* reason_sizes


cdef inline Py_ssize_t apply_policy(
    const Rules* rules,
    const Py_ssize_t* selected,
    Py_ssize_t hits,
    double model_score,
    double review_threshold,
    double decline_threshold,
    bint degraded,
    bint fail_closed,
    Py_ssize_t* row_reasons,
    int* outcome_out,
    double* risk_out,
) noexcept nogil:
    """``outcome_of`` for one row: the outcome, the risk score and the reasons (indices of rules, or R_*
    for the others, policy order; their count is returned) given the row's matched rules ``selected``
    (in the table's order) and a model score with its thresholds."""
    cdef Py_ssize_t t, j, reasons = 0, allow = -1
    cdef bint blocked = False
    cdef int64_t top_blocking = 0
    cdef double complement, risk, risk_clamped
    cdef int outcome = OUTCOME_APPROVE
    cdef uint8_t action

    # Noisy-OR over the active ones, in that order; then min(1.0, max(0.0, x)) as Python does it (NaN
    # gives 0.0).
    complement = 1.0 - model_score
    for t in range(hits):
        j = selected[t]
        if not rules.shadow[j]:
            complement *= 1.0 - rules.severities[j]
    risk = 1.0 - complement
    risk_clamped = 0.0
    if risk > risk_clamped:
        risk_clamped = risk
    risk = 1.0
    if risk_clamped < risk:
        risk = risk_clamped

    for t in range(hits):
        j = selected[t]
        if rules.shadow[j]:
            continue
        action = rules.actions[j]
        if action == ACTION_ALLOW:
            if allow < 0:
                allow = j
        elif action == ACTION_DECLINE or action == ACTION_REVIEW:
            if not blocked or rules.priorities[j] > top_blocking:
                top_blocking = rules.priorities[j]
            blocked = True
    if allow >= 0 and (not blocked or top_blocking <= rules.priorities[allow]):
        row_reasons[reasons] = allow
        reasons += 1
    else:
        for t in range(hits):
            j = selected[t]
            action = rules.actions[j]
            if rules.shadow[j] or not (action == ACTION_DECLINE or action == ACTION_REVIEW):
                continue
            if action == ACTION_DECLINE:
                outcome = OUTCOME_DECLINE
            elif outcome == OUTCOME_APPROVE:
                outcome = OUTCOME_REVIEW
            row_reasons[reasons] = j
            reasons += 1
        if model_score >= decline_threshold:
            outcome = OUTCOME_DECLINE
            row_reasons[reasons] = R_MODEL_HIGH
            reasons += 1
        elif model_score >= review_threshold:
            if outcome == OUTCOME_APPROVE:
                outcome = OUTCOME_REVIEW
            row_reasons[reasons] = R_MODEL_ELEVATED
            reasons += 1
    for t in range(hits):
        j = selected[t]
        if not rules.shadow[j] and rules.actions[j] == ACTION_TAG:
            row_reasons[reasons] = j
            reasons += 1
    if degraded:
        if fail_closed and outcome == OUTCOME_APPROVE:
            outcome = OUTCOME_REVIEW
            row_reasons[reasons] = R_FAIL_CLOSED
        else:
            row_reasons[reasons] = R_DEGRADED
        reasons += 1
    if reasons == 0:
        row_reasons[reasons] = R_LOW_RISK
        reasons += 1
    outcome_out[0] = outcome
    risk_out[0] = risk
    return reasons


cdef inline Py_ssize_t double_size(double value) noexcept nogil:
    """Bytes ``put_double`` writes for ``value`` (a tag and 8 bytes, none for +0.0)."""
    cdef uint64_t bits
    memcpy(&bits, &value, 8)
    return 9 if bits else 0


cdef inline uint8_t* put_shadow(
    uint8_t* p, const char* version, Py_ssize_t version_size, double model_score, double risk, int outcome
) noexcept nogil:
    """Decision field 13, ShadowScore{model_version = 1, model_score = 2, risk_score = 3, outcome = 4}."""
    cdef Py_ssize_t inner = 2 + double_size(model_score) + double_size(risk)
    if version_size:
        inner += 1 + varint_size(<uint64_t>version_size) + version_size
    p[0] = 0x6A
    p = put_varint(p + 1, <uint64_t>inner)
    if version_size:
        p = put_len_field(p, 0x0A, version, version_size)
    p = put_double(p, 0x11, model_score)
    p = put_double(p, 0x19, risk)
    p[0] = 0x20
    p[1] = <uint8_t>outcome
    return p + 2


def encode_decisions(
    table,
    list transaction_ids,
    list idempotency_keys,
    const float[:] model_scores,
    const uint8_t[:, :] matches,
    double review_threshold,
    double decline_threshold,
    bint degraded,
    bint fail_closed,
    str model_version,
    int64_t decided_at_seconds,
    int32_t decided_at_nanos,
    str shadow_version=None,
    const float[:] shadow_scores=None,
    double shadow_review_threshold=0.0,
    double shadow_decline_threshold=0.0,
    list caller_names=None,
    const int32_t[:] caller_rows=None,
):
    """(outcomes uint8 [n], risk_scores float64 [n], decision_bytes list[bytes], shadow_outcomes uint8 [n]
    or None, shadow_risk_scores float64 [n] or None); see respond.py."""
    cdef Py_ssize_t n = model_scores.shape[0]
    cdef Py_ssize_t r = table.size
    if len(transaction_ids) != n or len(idempotency_keys) != n or matches.shape[0] != n:
        raise ValueError(
            f"{len(transaction_ids)} transaction ids, {len(idempotency_keys)} idempotency keys, "
            f"{n} model scores and {matches.shape[0]} match rows: they must be as many"
        )
    cdef bint with_shadow = shadow_version is not None
    if with_shadow != (shadow_scores is not None):
        raise ValueError("a shadow model needs both its version and its scores")
    if with_shadow and shadow_scores.shape[0] != n:
        raise ValueError(f"{shadow_scores.shape[0]} shadow model scores for {n} rows: they must be as many")
    if matches.shape[1] != r:
        raise ValueError(f"matches has {matches.shape[1]} columns, the rule table {r} rules")
    cdef bint with_callers = caller_names is not None
    if with_callers != (caller_rows is not None):
        raise ValueError("callers need both their names and each row's index into them")
    if with_callers and caller_rows.shape[0] != n:
        raise ValueError(f"{caller_rows.shape[0]} caller indices for {n} rows: they must be as many")

    cdef const int64_t[::1] order = table.order
    cdef const uint8_t[::1] actions = table.actions
    cdef const int64_t[::1] priorities = table.priorities
    cdef const double[::1] severities = table.severities
    cdef const uint8_t[::1] shadow = table.shadow
    cdef tuple hit_entries = table.hit_entries
    cdef tuple reason_entries = table.reason_entries
    if not (
        order.shape[0] == actions.shape[0] == priorities.shape[0] == severities.shape[0] == shadow.shape[0]
        == len(hit_entries) == len(reason_entries) == r
    ):
        raise ValueError("the rule table's columns are not all as long as its size")

    # Texts of the call: thresholds as Python formats them, the constant parts of the model reasons.
    cdef bytes high_suffix = f" >= decline threshold {decline_threshold:.3f}".encode("ascii")
    cdef bytes elevated_suffix = f" >= review threshold {review_threshold:.3f}".encode("ascii")
    cdef bytes low_suffix = f" below review threshold {review_threshold:.3f}".encode("ascii")
    cdef bytes fail_closed_reason = _FAIL_CLOSED_REASON
    cdef bytes degraded_reason = _DEGRADED_REASON
    cdef Py_ssize_t version_size
    cdef const char* version = PyUnicode_AsUTF8AndSize(model_version, &version_size)
    cdef uint8_t stamp[24]
    cdef uint8_t* stamp_end = stamp
    if decided_at_seconds:
        stamp_end[0] = 0x08
        stamp_end = put_varint(stamp_end + 1, <uint64_t>decided_at_seconds)
    if decided_at_nanos:
        stamp_end[0] = 0x10
        stamp_end = put_varint(stamp_end + 1, <uint64_t><int64_t>decided_at_nanos)
    cdef Py_ssize_t stamp_size = stamp_end - stamp
    cdef Py_ssize_t shadow_version_size = 0
    cdef const char* shadow_version_text = NULL
    if with_shadow:
        shadow_version_text = PyUnicode_AsUTF8AndSize(shadow_version, &shadow_version_size)

    # Every row's bytes are at most `fixed` plus its two ids.
    cdef Py_ssize_t fixed = (
        (1 + 10) * 3 + version_size + 2 + 9 + 9 + 2 + 2 + stamp_size
        + (1 + 10) + 2 * (1 + 10) + 20 + 12 + SCORE_TEXT_MAX
        + max(len(high_suffix), len(elevated_suffix), len(low_suffix))
        + max(len(fail_closed_reason), len(degraded_reason))
    )
    if with_shadow:  # field 13: tag, length, version (tag, length, text), two doubles, outcome
        fixed += (1 + 10) + (1 + 10 + shadow_version_size) + 9 + 9 + 2
    # The callers' names as UTF-8, once per call (the list keeps the bytes alive); field 14 of a row is at
    # most the longest of them.
    cdef Py_ssize_t caller_count = len(caller_names) if with_callers else 0
    cdef list caller_texts = [name.encode("utf-8") for name in caller_names] if with_callers else []
    cdef Py_ssize_t caller_size, caller_index
    cdef Py_ssize_t caller_max = max([len(text) for text in caller_texts], default=0)
    if with_callers:
        fixed += 1 + 10 + caller_max
    cdef Rules rules
    cdef Py_ssize_t j, t
    rules.count = r
    rules.order = &order[0] if r else NULL
    rules.actions = &actions[0] if r else NULL
    rules.priorities = &priorities[0] if r else NULL
    rules.severities = &severities[0] if r else NULL
    rules.shadow = &shadow[0] if r else NULL
    for j in range(r):
        if not 0 <= order[j] < r:
            raise ValueError("the rule table's order is not a permutation of its columns")
        if not PyBytes_Check(hit_entries[j]) or not PyBytes_Check(reason_entries[j]):
            raise TypeError("the rule table's entries must be bytes")
        fixed += PyBytes_GET_SIZE(hit_entries[j]) + PyBytes_GET_SIZE(reason_entries[j])

    outcomes = np.empty(n, dtype=np.uint8)
    risks = np.empty(n, dtype=np.float64)
    cdef uint8_t[::1] outcome_out = outcomes
    cdef double[::1] risk_out = risks
    cdef list encoded = [None] * n
    shadow_outcomes = np.empty(n, dtype=np.uint8) if with_shadow else None
    shadow_risks = np.empty(n, dtype=np.float64) if with_shadow else None
    cdef uint8_t[::1] shadow_outcome_out
    cdef double[::1] shadow_risk_out
    if with_shadow:
        shadow_outcome_out = shadow_outcomes
        shadow_risk_out = shadow_risks

    cdef Py_ssize_t capacity = 0
    cdef uint8_t* buffer = NULL
    cdef Py_ssize_t* selected = NULL
    cdef Py_ssize_t* row_reasons = NULL
    cdef const char** callers = NULL
    cdef Py_ssize_t* caller_sizes = NULL
    cdef const char* transaction_id
    cdef const char* key
    cdef Py_ssize_t id_size, key_size, needed, hits, reasons, score_size
    cdef char score[SCORE_TEXT_MAX]
    cdef bint has_score
    cdef double model_score, risk, shadow_score, shadow_risk
    cdef int outcome, shadow_outcome
    cdef uint8_t* p
    cdef Py_ssize_t i, k, reason
    try:
        rules.hits = <const char**>PyMem_Malloc((r + 1) * sizeof(char*))
        rules.hit_sizes = <Py_ssize_t*>PyMem_Malloc((r + 1) * sizeof(Py_ssize_t))
        rules.reasons = <const char**>PyMem_Malloc((r + 1) * sizeof(char*))
        rules.reason_sizes = <Py_ssize_t*>PyMem_Malloc((r + 1) * sizeof(Py_ssize_t))
        selected = <Py_ssize_t*>PyMem_Malloc((r + 1) * sizeof(Py_ssize_t))
        row_reasons = <Py_ssize_t*>PyMem_Malloc((r + 4) * sizeof(Py_ssize_t))
        callers = <const char**>PyMem_Malloc((caller_count + 1) * sizeof(char*))
        caller_sizes = <Py_ssize_t*>PyMem_Malloc((caller_count + 1) * sizeof(Py_ssize_t))
        if (
            rules.hits is NULL or rules.hit_sizes is NULL or rules.reasons is NULL
            or rules.reason_sizes is NULL or selected is NULL or row_reasons is NULL
            or callers is NULL or caller_sizes is NULL
        ):
            raise MemoryError()
        for k in range(caller_count):
            callers[k] = PyBytes_AS_STRING(caller_texts[k])
            caller_sizes[k] = PyBytes_GET_SIZE(caller_texts[k])
        for j in range(r):
            rules.hits[j] = PyBytes_AS_STRING(hit_entries[j])
            rules.hit_sizes[j] = PyBytes_GET_SIZE(hit_entries[j])
            rules.reasons[j] = PyBytes_AS_STRING(reason_entries[j])
            rules.reason_sizes[j] = PyBytes_GET_SIZE(reason_entries[j])

        for i in range(n):
            transaction_id = PyUnicode_AsUTF8AndSize(transaction_ids[i], &id_size)
            key = PyUnicode_AsUTF8AndSize(idempotency_keys[i], &key_size)
            needed = fixed + id_size + key_size
            if needed > capacity:
                PyMem_Free(buffer)
                buffer = <uint8_t*>PyMem_Malloc(needed)
                if buffer is NULL:
                    capacity = 0
                    raise MemoryError()
                capacity = needed
            model_score = <double>model_scores[i]

            # The matched rules in the table's order (descending priority, stable).
            hits = 0
            for t in range(r):
                j = rules.order[t]
                if matches[i, j]:
                    selected[hits] = j
                    hits += 1

            # The outcome, the risk score and the reasons, policy order.
            reasons = apply_policy(
                &rules, selected, hits, model_score, review_threshold, decline_threshold, degraded,
                fail_closed, row_reasons, &outcome, &risk,
            )

            has_score = False
            for k in range(reasons):
                if row_reasons[k] < 0 and row_reasons[k] >= R_LOW_RISK:
                    has_score = True
            score_size = format_score(model_score, score) if has_score else 0

            # Decision fields 1-7, 9, 11, 12, then 13 with a shadow model and 14 with callers (8 and 10
            # are set when the decision is answered).
            p = buffer
            if id_size:
                p = put_len_field(p, 0x0A, transaction_id, id_size)
            p[0] = 0x10
            p[1] = <uint8_t>outcome
            p += 2
            p = put_double(p, 0x19, risk)
            p = put_double(p, 0x21, model_score)
            for t in range(hits):
                j = selected[t]
                p = put_bytes(p, rules.hits[j], rules.hit_sizes[j])
            for k in range(reasons):
                reason = row_reasons[k]
                if reason >= 0:
                    p = put_bytes(p, rules.reasons[reason], rules.reason_sizes[reason])
                elif reason == R_MODEL_HIGH:
                    p = put_model_reason(
                        p, b"MODEL_SCORE_HIGH", 16, score, score_size,
                        PyBytes_AS_STRING(high_suffix), PyBytes_GET_SIZE(high_suffix),
                    )
                elif reason == R_MODEL_ELEVATED:
                    p = put_model_reason(
                        p, b"MODEL_SCORE_ELEVATED", 20, score, score_size,
                        PyBytes_AS_STRING(elevated_suffix), PyBytes_GET_SIZE(elevated_suffix),
                    )
                elif reason == R_LOW_RISK:
                    p = put_model_reason(
                        p, b"LOW_RISK", 8, score, score_size,
                        PyBytes_AS_STRING(low_suffix), PyBytes_GET_SIZE(low_suffix),
                    )
                elif reason == R_FAIL_CLOSED:
                    p = put_bytes(p, PyBytes_AS_STRING(fail_closed_reason), PyBytes_GET_SIZE(fail_closed_reason))
                else:
                    p = put_bytes(p, PyBytes_AS_STRING(degraded_reason), PyBytes_GET_SIZE(degraded_reason))
            if version_size:
                p = put_len_field(p, 0x3A, version, version_size)
            if degraded:
                p[0] = 0x48
                p[1] = 1
                p += 2
            if key_size:
                p = put_len_field(p, 0x5A, key, key_size)
            p = put_len_field(p, 0x62, stamp, stamp_size)
            if with_shadow:
                # The shadow model's opinion: the same policy, matched rules and mode, its score and
                # thresholds (its reasons are not written: row_reasons is reused as scratch).
                shadow_score = <double>shadow_scores[i]
                apply_policy(
                    &rules, selected, hits, shadow_score, shadow_review_threshold, shadow_decline_threshold,
                    degraded, fail_closed, row_reasons, &shadow_outcome, &shadow_risk,
                )
                p = put_shadow(p, shadow_version_text, shadow_version_size, shadow_score, shadow_risk, shadow_outcome)
                shadow_outcome_out[i] = <uint8_t>shadow_outcome
                shadow_risk_out[i] = shadow_risk
            if with_callers:
                caller_index = caller_rows[i]
                if not 0 <= caller_index < caller_count:
                    raise ValueError(f"row {i}: caller index {caller_index} is not one of {caller_count} names")
                caller_size = caller_sizes[caller_index]
                if caller_size:
                    p = put_len_field(p, 0x72, callers[caller_index], caller_size)

            outcome_out[i] = <uint8_t>outcome
            risk_out[i] = risk
            encoded[i] = PyBytes_FromStringAndSize(<char*>buffer, p - buffer)
    finally:
        PyMem_Free(buffer)
        PyMem_Free(selected)
        PyMem_Free(row_reasons)
        PyMem_Free(rules.hits)
        PyMem_Free(rules.hit_sizes)
        PyMem_Free(rules.reasons)
        PyMem_Free(rules.reason_sizes)
        PyMem_Free(callers)
        PyMem_Free(caller_sizes)
    return outcomes, risks, encoded, shadow_outcomes, shadow_risks


# ------------------------------------------------------------------------------------------ responses
cdef struct Answered:
    # A decision's bytes with its answer-time fields spliced in: the payload up to `at_sequence`, field 8,
    # the payload up to `at_replayed`, field 10, the rest; fields 8 and 10 of the payload itself dropped
    # (`clean`: it has none, so the three parts are plain copies).
    const uint8_t* data
    Py_ssize_t size
    Py_ssize_t at_sequence
    Py_ssize_t at_replayed
    Py_ssize_t kept
    bint clean
    uint64_t sequence
    bint replayed
    Py_ssize_t answered_size


cdef int scan_decision(const uint8_t* data, Py_ssize_t size, int64_t sequence, bint replayed, Answered* a) except -1:
    cdef Py_ssize_t at = 0, end
    cdef uint64_t number
    a.data = data
    a.size = size
    a.at_sequence = -1
    a.at_replayed = -1
    a.kept = 0
    a.clean = True
    a.sequence = <uint64_t>sequence
    a.replayed = replayed
    while at < size:
        end = field_end(data, size, at, &number)
        if end < 0:
            raise ValueError("a decision payload is not a valid protobuf message")
        if number > 8 and a.at_sequence < 0:
            a.at_sequence = at
        if number > 10 and a.at_replayed < 0:
            a.at_replayed = at
        if number == 8 or number == 10:
            a.clean = False
        else:
            a.kept += end - at
        at = end
    if a.at_sequence < 0:
        a.at_sequence = size
    if a.at_replayed < 0:
        a.at_replayed = size
    a.answered_size = a.kept
    if a.sequence:
        a.answered_size += 1 + varint_size(a.sequence)
    if a.replayed:
        a.answered_size += 2
    return 0


cdef inline uint8_t* put_answer_fields(uint8_t* p, const Answered* a, Py_ssize_t at) noexcept nogil:
    if at == a.at_sequence and a.sequence:
        p[0] = 0x40
        p = put_varint(p + 1, a.sequence)
    if at == a.at_replayed and a.replayed:
        p[0] = 0x50
        p[1] = 1
        p += 2
    return p


cdef uint8_t* put_answered(uint8_t* p, const Answered* a) noexcept nogil:
    """The decision bytes of ``a`` with its answer-time fields in place (``a.answered_size`` bytes)."""
    cdef Py_ssize_t at = 0, end
    cdef uint64_t number = 0
    if a.clean:
        p = put_bytes(p, a.data, a.at_sequence)
        p = put_answer_fields(p, a, a.at_sequence)
        p = put_bytes(p, a.data + a.at_sequence, a.at_replayed - a.at_sequence)
        if a.at_replayed != a.at_sequence:
            p = put_answer_fields(p, a, a.at_replayed)
        return put_bytes(p, a.data + a.at_replayed, a.size - a.at_replayed)
    while at < a.size:
        p = put_answer_fields(p, a, at)
        end = field_end(a.data, a.size, at, &number)  # scanned before: valid
        if number != 8 and number != 10:
            p = put_bytes(p, a.data + at, end - at)
        at = end
    return put_answer_fields(p, a, a.size)


cdef inline Py_ssize_t len_field_size(Py_ssize_t size) noexcept nogil:
    return 1 + varint_size(<uint64_t>size) + size


cdef const uint8_t* payload_data(object payload, Py_ssize_t* size) except NULL:
    if not PyBytes_Check(payload):
        raise TypeError(f"payloads must be bytes, got {type(payload).__name__}")
    size[0] = PyBytes_GET_SIZE(payload)
    return <const uint8_t*>PyBytes_AS_STRING(payload)


cdef int check_kind(uint8_t kind) except -1:
    if kind != KIND_DECISION and kind != KIND_ERROR:
        raise ValueError(f"item kind must be 1 (decision) or 2 (error), got {kind}")
    return 0


def score_response(bytes payload, int64_t ledger_sequence, bint replayed):
    """ScoreResponse{decision = payload with ledger_sequence and replayed set}, serialized."""
    cdef Answered a
    cdef Py_ssize_t size
    cdef const uint8_t* data = payload_data(payload, &size)
    scan_decision(data, size, ledger_sequence, replayed, &a)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, len_field_size(a.answered_size))
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    p[0] = 0x0A
    put_answered(put_varint(p + 1, <uint64_t>a.answered_size), &a)
    return out


cdef Answered* scan_items(
    const uint8_t[:] kinds, list payloads, const int64_t[:] ledger_sequences, const uint8_t[:] replayed,
) except NULL:
    """Every item's payload scanned (errors: only data and size set), in a PyMem array to free."""
    cdef Py_ssize_t n = kinds.shape[0], i, size
    cdef const uint8_t* data
    if len(payloads) != n or ledger_sequences.shape[0] != n or replayed.shape[0] != n:
        raise ValueError(
            f"{n} kinds, {len(payloads)} payloads, {ledger_sequences.shape[0]} ledger sequences and "
            f"{replayed.shape[0]} replayed flags: they must be as many"
        )
    cdef Answered* items = <Answered*>PyMem_Malloc((n + 1) * sizeof(Answered))
    if items is NULL:
        raise MemoryError()
    try:
        for i in range(n):
            check_kind(kinds[i])
            data = payload_data(payloads[i], &size)
            if kinds[i] == KIND_DECISION:
                scan_decision(data, size, ledger_sequences[i], replayed[i] != 0, &items[i])
            else:
                memset(&items[i], 0, sizeof(Answered))
                items[i].data = data
                items[i].size = size
                items[i].answered_size = size
    except BaseException:
        PyMem_Free(items)
        raise
    return items


def score_batch_response(
    const uint8_t[:] kinds, list payloads, const int64_t[:] ledger_sequences, const uint8_t[:] replayed
):
    """ScoreBatchResponse{results: one ScoreBatchResult{decision | error} per item}, serialized."""
    cdef Py_ssize_t n = kinds.shape[0], i, total = 0, result
    cdef Answered* items = scan_items(kinds, payloads, ledger_sequences, replayed)
    cdef bytes out
    cdef uint8_t* p
    try:
        for i in range(n):
            total += len_field_size(len_field_size(items[i].answered_size))
        out = PyBytes_FromStringAndSize(NULL, total)
        p = <uint8_t*>PyBytes_AS_STRING(out)
        for i in range(n):
            result = len_field_size(items[i].answered_size)
            p[0] = 0x0A
            p = put_varint(p + 1, <uint64_t>result)
            if kinds[i] == KIND_DECISION:
                p[0] = 0x0A
                p = put_answered(put_varint(p + 1, <uint64_t>items[i].answered_size), &items[i])
            else:
                p = put_len_field(p, 0x12, items[i].data, items[i].size)
    finally:
        PyMem_Free(items)
    return out


def stream_responses(
    list transaction_ids,
    const uint8_t[:] kinds,
    list payloads,
    const int64_t[:] ledger_sequences,
    const uint8_t[:] replayed,
):
    """One serialized ScoreStreamResponse{transaction_id, decision | error} per item."""
    cdef Py_ssize_t n = kinds.shape[0], i, id_size
    cdef const char* transaction_id
    if len(transaction_ids) != n:
        raise ValueError(f"{len(transaction_ids)} transaction ids for {n} items")
    cdef Answered* items = scan_items(kinds, payloads, ledger_sequences, replayed)
    cdef list responses = [None] * n
    cdef bytes out
    cdef uint8_t* p
    try:
        for i in range(n):
            transaction_id = PyUnicode_AsUTF8AndSize(transaction_ids[i], &id_size)
            out = PyBytes_FromStringAndSize(
                NULL, (len_field_size(id_size) if id_size else 0) + len_field_size(items[i].answered_size)
            )
            p = <uint8_t*>PyBytes_AS_STRING(out)
            if id_size:
                p = put_len_field(p, 0x0A, transaction_id, id_size)
            if kinds[i] == KIND_DECISION:
                p[0] = 0x12
                put_answered(put_varint(p + 1, <uint64_t>items[i].answered_size), &items[i])
            else:
                put_len_field(p, 0x1A, items[i].data, items[i].size)
            responses[i] = out
    finally:
        PyMem_Free(items)
    return responses
