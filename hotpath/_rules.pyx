# cython: language_level=3, cdivision=True
"""Compiled rule evaluator: runs every program of a RuleSet on every row, without the GIL.

The exact specification is ``reference_rules`` and the semantics are in ``program``'s docstring.
Programs reach this module only through RuleSet, which validates them (operands in range, stack
depth at most MAX_STACK_DEPTH) and freezes its arrays, so the interpreter needs no bounds checks.
"""

import numpy as np

from libc.math cimport NAN, fabs, isnan
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

from _constants cimport (
    DESTINATION_AFTER_KNOWN, DESTINATION_BEFORE_KNOWN, FEATURE_COUNT, FIELD_AMOUNT, FIELD_CHANNEL,
    FIELD_COUNTERPARTY, FIELD_COUNTRY, FIELD_DESTINATION_AFTER, FIELD_DESTINATION_BEFORE, FIELD_DEVICE,
    FIELD_EVENT_TIME, FIELD_HOME_COUNTRY, FIELD_LATITUDE, FIELD_LONGITUDE, FIELD_ORIGIN_AFTER,
    FIELD_ORIGIN_BEFORE, FIELD_TYPE, MAX_STACK_DEPTH, OP_ABS, OP_ADD, OP_AND, OP_DIV, OP_EQ, OP_GE, OP_GT,
    OP_IN_SET, OP_IS_MISSING, OP_LE, OP_LOAD_CONST, OP_LOAD_FEATURE, OP_LOAD_FIELD, OP_LT, OP_MUL, OP_NE,
    OP_NEG, OP_NOT, OP_OR, OP_SUB, ORIGIN_AFTER_KNOWN, ORIGIN_BEFORE_KNOWN, TRANSACTION_FIELD_COUNT,
)

from sentinel.hotpath.program import RuleSet


cdef inline bint truthy(double value) noexcept nogil:
    return value != 0.0 and not isnan(value)


cdef inline bint in_sorted(const double* members, int64_t size, double value) noexcept nogil:
    cdef int64_t lo = 0, hi = size, mid
    if isnan(value):
        return False
    while lo < hi:
        mid = (lo + hi) >> 1
        if members[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo < size and members[lo] == value


cdef inline bint run(
    const int32_t* code, int64_t length, const double* constants, const double* members,
    const int64_t* set_offsets, const float* feature_row, const double* fields,
) noexcept nogil:
    cdef double stack[MAX_STACK_DEPTH]
    cdef int top = -1
    cdef int64_t k
    cdef int op, operand
    for k in range(length):
        # One flat if/elif on the opcode, which Cython emits as a C switch. Binary operators pop
        # the right operand (stack[top + 1] after the decrement). C comparisons with NaN are
        # already false except !=, which tests for missing operands explicitly.
        op = code[2 * k]
        operand = code[2 * k + 1]
        if op == OP_LOAD_FEATURE:
            top += 1
            stack[top] = feature_row[operand]
        elif op == OP_LOAD_FIELD:
            top += 1
            stack[top] = fields[operand]
        elif op == OP_LOAD_CONST:
            top += 1
            stack[top] = constants[operand]
        elif op == OP_NEG:
            stack[top] = -stack[top]
        elif op == OP_ABS:
            stack[top] = fabs(stack[top])
        elif op == OP_NOT:
            stack[top] = 0.0 if truthy(stack[top]) else 1.0
        elif op == OP_IS_MISSING:
            stack[top] = 1.0 if isnan(stack[top]) else 0.0
        elif op == OP_IN_SET:
            stack[top] = 1.0 if in_sorted(
                members + set_offsets[operand], set_offsets[operand + 1] - set_offsets[operand], stack[top]
            ) else 0.0
        elif op == OP_ADD:
            top -= 1
            stack[top] = stack[top] + stack[top + 1]
        elif op == OP_SUB:
            top -= 1
            stack[top] = stack[top] - stack[top + 1]
        elif op == OP_MUL:
            top -= 1
            stack[top] = stack[top] * stack[top + 1]
        elif op == OP_DIV:
            top -= 1
            stack[top] = NAN if stack[top + 1] == 0.0 else stack[top] / stack[top + 1]
        elif op == OP_LT:
            top -= 1
            stack[top] = 1.0 if stack[top] < stack[top + 1] else 0.0
        elif op == OP_LE:
            top -= 1
            stack[top] = 1.0 if stack[top] <= stack[top + 1] else 0.0
        elif op == OP_GT:
            top -= 1
            stack[top] = 1.0 if stack[top] > stack[top + 1] else 0.0
        elif op == OP_GE:
            top -= 1
            stack[top] = 1.0 if stack[top] >= stack[top + 1] else 0.0
        elif op == OP_EQ:
            top -= 1
            stack[top] = 1.0 if stack[top] == stack[top + 1] else 0.0
        elif op == OP_NE:
            top -= 1
            stack[top] = 1.0 if (stack[top] != stack[top + 1] and not isnan(stack[top])
                                 and not isnan(stack[top + 1])) else 0.0
        elif op == OP_AND:
            top -= 1
            stack[top] = 1.0 if truthy(stack[top]) and truthy(stack[top + 1]) else 0.0
        elif op == OP_OR:
            top -= 1
            stack[top] = 1.0 if truthy(stack[top]) or truthy(stack[top + 1]) else 0.0
    return truthy(stack[top])


cdef inline double id_value(uint64_t hash_value) noexcept nogil:
    return <double>(hash_value >> 11)


def evaluate_rules(rules, const float[:, ::1] features, columns):
    """matches[row, rule] (uint8 0/1) of every rule of a RuleSet (see sentinel.hotpath.evaluate_rules)."""
    if type(rules) is not RuleSet:
        raise TypeError("rules must be a RuleSet (build it once when the rules change)")
    cdef const int32_t[:, ::1] code = rules.code
    cdef const int64_t[::1] code_offsets = rules.code_offsets
    cdef const double[::1] constants = rules.constants
    cdef const double[::1] members = rules.set_members
    cdef const int64_t[::1] set_offsets = rules.set_offsets
    cdef const double[::1] amount = columns.amount
    cdef const uint8_t[::1] kind = columns.type
    cdef const uint8_t[::1] channel = columns.channel
    cdef const double[::1] event_time = columns.event_time
    cdef const uint8_t[::1] geo_known = columns.geo_known
    cdef const double[::1] latitude = columns.latitude
    cdef const double[::1] longitude = columns.longitude
    cdef const uint16_t[::1] country = columns.country
    cdef const uint16_t[::1] home_country = columns.home_country
    cdef const uint64_t[::1] counterparty = columns.counterparty
    cdef const uint64_t[::1] device = columns.device
    cdef const uint8_t[::1] known = columns.balances_known
    cdef const double[::1] origin_before = columns.origin_before
    cdef const double[::1] origin_after = columns.origin_after
    cdef const double[::1] destination_before = columns.destination_before
    cdef const double[::1] destination_after = columns.destination_after
    cdef Py_ssize_t n = features.shape[0]
    cdef Py_ssize_t n_rules = code_offsets.shape[0] - 1
    cdef Py_ssize_t i, r
    cdef double fields[TRANSACTION_FIELD_COUNT]
    cdef uint8_t[:, ::1] out
    cdef const double* constants_ptr = &constants[0] if constants.shape[0] else NULL
    cdef const double* members_ptr = &members[0] if members.shape[0] else NULL
    cdef const int32_t* code_ptr = &code[0, 0] if code.shape[0] else NULL
    if features.shape[1] != FEATURE_COUNT:
        raise ValueError(f"features must have {FEATURE_COUNT} columns, not {features.shape[1]}")
    for length in (amount.shape[0], kind.shape[0], channel.shape[0], event_time.shape[0],
                   geo_known.shape[0], latitude.shape[0], longitude.shape[0], country.shape[0],
                   home_country.shape[0], counterparty.shape[0], device.shape[0], known.shape[0],
                   origin_before.shape[0], origin_after.shape[0], destination_before.shape[0],
                   destination_after.shape[0]):
        if length != n:
            raise ValueError("features and every column must have the same number of rows")
    matches = np.zeros((n, n_rules), dtype=np.uint8)
    out = matches
    if n == 0 or n_rules == 0:
        return matches
    with nogil:
        for i in range(n):
            fields[FIELD_AMOUNT] = amount[i]
            fields[FIELD_TYPE] = kind[i]
            fields[FIELD_CHANNEL] = channel[i] if channel[i] else NAN
            fields[FIELD_EVENT_TIME] = event_time[i]
            fields[FIELD_LATITUDE] = latitude[i] if geo_known[i] else NAN
            fields[FIELD_LONGITUDE] = longitude[i] if geo_known[i] else NAN
            fields[FIELD_COUNTRY] = country[i] if country[i] else NAN
            fields[FIELD_HOME_COUNTRY] = home_country[i] if home_country[i] else NAN
            fields[FIELD_COUNTERPARTY] = id_value(counterparty[i]) if counterparty[i] else NAN
            fields[FIELD_DEVICE] = id_value(device[i]) if device[i] else NAN
            fields[FIELD_ORIGIN_BEFORE] = origin_before[i] if known[i] & ORIGIN_BEFORE_KNOWN else NAN
            fields[FIELD_ORIGIN_AFTER] = origin_after[i] if known[i] & ORIGIN_AFTER_KNOWN else NAN
            fields[FIELD_DESTINATION_BEFORE] = (
                destination_before[i] if known[i] & DESTINATION_BEFORE_KNOWN else NAN
            )
            fields[FIELD_DESTINATION_AFTER] = (
                destination_after[i] if known[i] & DESTINATION_AFTER_KNOWN else NAN
            )
            for r in range(n_rules):
                out[i, r] = run(
                    code_ptr + 2 * code_offsets[r], code_offsets[r + 1] - code_offsets[r], constants_ptr,
                    members_ptr, &set_offsets[0], &features[i, 0], fields,
                )
    return matches
