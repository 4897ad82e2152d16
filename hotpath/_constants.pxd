# cython: language_level=3
"""Every number the compiled hot path and its Python side share, defined here and nowhere else.

The compiled modules cimport them as C compile-time constants; Python reads them from the compiled
``sentinel.hotpath._constants`` module (``state``, ``columns``, ``schema``, ``program`` and the
pure-Python references import them from there). Integers are ``cpdef enum`` members, which Cython
exports to Python by itself; floats are C macros, exported by ``_constants.pyx``.
"""

from libc.stdint cimport uint32_t

# --- Account state (layout: state.py) ----------------------------------------------------------------
cpdef enum:
    STATE_VERSION = 1
    STATE_SIZE = 240
    RING_SIZE = 8  # distinct counterparties (and devices) an account remembers
    VELOCITY_WINDOWS = 3  # decayed velocity counters, one per schema.VELOCITY_HALF_LIVES_S
    FLAG_LAST_GEO_KNOWN = 1

# Why a state blob is refused: the index of its message in state.DECODE_ERRORS (both codecs check in
# this order).
cpdef enum:
    STATE_VALID
    STATE_WRONG_LENGTH
    STATE_UNKNOWN_VERSION
    STATE_BAD_FLAGS
    STATE_BAD_RING_INDEX
    STATE_ZERO_COUNT
    STATE_BAD_COUNTRY
    STATE_NOT_FINITE
    STATE_OUT_OF_RANGE
    STATE_BAD_LOCATION

# --- Decisions (respond.py) ----------------------------------------------------------------------------
# Outcome numbers: sentinel.v1.Outcome.
cpdef enum:
    OUTCOME_APPROVE = 1
    OUTCOME_REVIEW
    OUTCOME_DECLINE

# Rule action numbers: sentinel.v1.RuleAction.
cpdef enum:
    ACTION_DECLINE = 1
    ACTION_REVIEW
    ACTION_ALLOW
    ACTION_TAG

# What an item of a scoring response is (the kinds of respond.score_batch_response and stream_responses).
cpdef enum:
    KIND_DECISION = 1
    KIND_ERROR

# --- Transactions (columns.py) -------------------------------------------------------------------------
# Transaction type codes: the numbers of sentinel.v1.TransactionType.
cpdef enum:
    TYPE_PAYMENT = 1
    TYPE_TRANSFER
    TYPE_CASH_OUT
    TYPE_CASH_IN
    TYPE_DEBIT

# Bits of TransactionColumns.balances_known.
cpdef enum:
    ORIGIN_BEFORE_KNOWN = 1
    ORIGIN_AFTER_KNOWN = 2
    DESTINATION_BEFORE_KNOWN = 4
    DESTINATION_AFTER_KNOWN = 8
    ORIGIN_BALANCES_KNOWN = ORIGIN_BEFORE_KNOWN | ORIGIN_AFTER_KNOWN
    DESTINATION_BALANCES_KNOWN = DESTINATION_BEFORE_KNOWN | DESTINATION_AFTER_KNOWN
    ALL_BALANCES_KNOWN = ORIGIN_BALANCES_KNOWN | DESTINATION_BALANCES_KNOWN

# Why a row is refused: the index of its field and description in columns.ROW_PROBLEMS (both
# implementations check in this order). The four balance problems follow the order of their bits.
cpdef enum:
    ROW_USABLE
    ROW_BAD_ACCOUNT_SLOT
    ROW_BAD_AMOUNT
    ROW_BAD_TYPE
    ROW_BAD_EVENT_TIME
    ROW_BAD_GEO_KNOWN
    ROW_BAD_LATITUDE
    ROW_BAD_LONGITUDE
    ROW_BAD_COUNTRY
    ROW_BAD_BALANCES_KNOWN
    ROW_BAD_ORIGIN_BEFORE
    ROW_BAD_ORIGIN_AFTER
    ROW_BAD_DESTINATION_BEFORE
    ROW_BAD_DESTINATION_AFTER

# --- Features (names and meanings: schema.FEATURE_DOCS) ---------------------------------------------
# Column of each feature in the feature matrix. Any change bumps schema.FEATURE_SCHEMA_VERSION.
cpdef enum:
    F_LOG_AMOUNT
    F_TYPE_PAYMENT  # F_TYPE_PAYMENT .. F_TYPE_DEBIT follow the order of the type codes
    F_TYPE_TRANSFER
    F_TYPE_CASH_OUT
    F_TYPE_CASH_IN
    F_TYPE_DEBIT
    F_HOUR_OF_DAY
    F_ORIGIN_BALANCES_KNOWN
    F_ORIGIN_BALANCE_ERROR
    F_ORIGIN_DRAINED
    F_AMOUNT_OVER_ORIGIN_BALANCE
    F_AMOUNT_EXCEEDS_ORIGIN_BALANCE
    F_DESTINATION_BALANCES_KNOWN
    F_DESTINATION_BALANCE_ERROR
    F_DESTINATION_BALANCES_ZERO
    F_GEO_KNOWN
    F_STATE_KNOWN
    F_FIRST_TRANSACTION
    F_LOG_AMOUNT_ZSCORE
    F_SECONDS_SINCE_LAST
    F_VELOCITY_COUNT_1M  # F_VELOCITY_COUNT_* and F_VELOCITY_AMOUNT_*: one per velocity window
    F_VELOCITY_COUNT_1H
    F_VELOCITY_COUNT_24H
    F_VELOCITY_AMOUNT_1M
    F_VELOCITY_AMOUNT_1H
    F_VELOCITY_AMOUNT_24H
    F_TRAVEL_KNOWN
    F_DISTANCE_KM
    F_SPEED_KMH
    F_AWAY_FROM_HOME
    F_COUNTRY_CHANGED
    F_NEW_COUNTERPARTY
    F_NEW_DEVICE
    FEATURE_COUNT

# --- Rule programs (program.py) ------------------------------------------------------------------------
# Transaction fields a program loads (the LOAD_FIELD operand; names: schema.TRANSACTION_FIELD_DOCS).
cpdef enum:
    FIELD_AMOUNT
    FIELD_TYPE
    FIELD_CHANNEL
    FIELD_EVENT_TIME
    FIELD_LATITUDE
    FIELD_LONGITUDE
    FIELD_COUNTRY
    FIELD_HOME_COUNTRY
    FIELD_COUNTERPARTY
    FIELD_DEVICE
    FIELD_ORIGIN_BEFORE
    FIELD_ORIGIN_AFTER
    FIELD_DESTINATION_BEFORE
    FIELD_DESTINATION_AFTER
    TRANSACTION_FIELD_COUNT

# Opcodes (program.Op gives them their Python names and documents them).
cpdef enum:
    OP_LOAD_FEATURE
    OP_LOAD_FIELD
    OP_LOAD_CONST
    OP_ADD
    OP_SUB
    OP_MUL
    OP_DIV
    OP_NEG
    OP_ABS
    OP_LT
    OP_LE
    OP_GT
    OP_GE
    OP_EQ
    OP_NE
    OP_AND
    OP_OR
    OP_NOT
    OP_IN_SET
    OP_IS_MISSING

cpdef enum:
    MAX_STACK_DEPTH = 64  # values on a program's stack

# --- Floating-point constants --------------------------------------------------------------------------
cdef extern from *:
    """
    #define SENTINEL_MAX_AMOUNT 1e18
    #define SENTINEL_MAX_EVENT_TIME 1e11
    #define SENTINEL_MAX_LOG_AMOUNT_MEAN 42.0
    #define SENTINEL_MAX_LOG_AMOUNT_M2 1e13
    #define SENTINEL_MAX_VELOCITY_COUNT 4294967296.0
    #define SENTINEL_MAX_VELOCITY_AMOUNT 1e28
    #define SENTINEL_LN2 0.6931471805599453
    #define SENTINEL_DEGREES_TO_RADIANS 0.017453292519943295
    #define SENTINEL_EARTH_RADIUS_KM 6371.0088
    #define SENTINEL_MIN_LOG_AMOUNT_STD 0.1
    #define SENTINEL_MIN_TRAVEL_SECONDS 60.0
    #define SENTINEL_NO_PREVIOUS_SECONDS (-1.0)
    """
    # Bounds that keep every sum, difference and float32 feature finite (amounts, balances, event times
    # in seconds since the epoch); the server's validation is stricter.
    const double MAX_AMOUNT "SENTINEL_MAX_AMOUNT"
    const double MAX_EVENT_TIME "SENTINEL_MAX_EVENT_TIME"
    # Upper bounds (lower bound 0) of a state's statistics: what 2**32 transactions of at most
    # MAX_AMOUNT can produce (log1p(1e18) = 41.4; 2**32 * 42**2 = 7.6e12; 2**32 * 1e18 = 4.3e27).
    const double MAX_LOG_AMOUNT_MEAN "SENTINEL_MAX_LOG_AMOUNT_MEAN"
    const double MAX_LOG_AMOUNT_M2 "SENTINEL_MAX_LOG_AMOUNT_M2"
    const double MAX_VELOCITY_COUNT "SENTINEL_MAX_VELOCITY_COUNT"
    const double MAX_VELOCITY_AMOUNT "SENTINEL_MAX_VELOCITY_AMOUNT"
    # A state's transaction count saturates here (its u32 field).
    const uint32_t MAX_TRANSACTION_COUNT "UINT32_MAX"
    # Feature arithmetic. The velocity decay rates are LN2 / schema.VELOCITY_HALF_LIVES_S.
    const double LN2 "SENTINEL_LN2"
    const double DEGREES_TO_RADIANS "SENTINEL_DEGREES_TO_RADIANS"  # pi / 180
    const double EARTH_RADIUS_KM "SENTINEL_EARTH_RADIUS_KM"  # mean Earth radius (IUGG)
    # Floor of the standard deviation of log1p(amount) used by the z-score: an account that always paid
    # the same amount would otherwise turn a cent's difference into an infinite z-score.
    const double MIN_LOG_AMOUNT_STD "SENTINEL_MIN_LOG_AMOUNT_STD"
    # Floor of the time between two located transactions for the implied speed: simultaneous events
    # give a large but finite speed instead of infinity.
    const double MIN_TRAVEL_SECONDS "SENTINEL_MIN_TRAVEL_SECONDS"
    # seconds_since_last when the account has no previous transaction (or no state).
    const double NO_PREVIOUS_SECONDS "SENTINEL_NO_PREVIOUS_SECONDS"
