# cython: language_level=3
"""The shared numbers of ``_constants.pxd`` as Python values.

The compiled modules cimport ``_constants.pxd``; this module includes its text, which makes Cython
export the ``cpdef enum`` members as module attributes. The floating-point macros are added here.
"""

include "_constants.pxd"

globals().update(
    MAX_AMOUNT=MAX_AMOUNT,
    MAX_EVENT_TIME=MAX_EVENT_TIME,
    MAX_LOG_AMOUNT_MEAN=MAX_LOG_AMOUNT_MEAN,
    MAX_LOG_AMOUNT_M2=MAX_LOG_AMOUNT_M2,
    MAX_VELOCITY_COUNT=MAX_VELOCITY_COUNT,
    MAX_VELOCITY_AMOUNT=MAX_VELOCITY_AMOUNT,
    MAX_TRANSACTION_COUNT=MAX_TRANSACTION_COUNT,
    LN2=LN2,
    DEGREES_TO_RADIANS=DEGREES_TO_RADIANS,
    EARTH_RADIUS_KM=EARTH_RADIUS_KM,
    MIN_LOG_AMOUNT_STD=MIN_LOG_AMOUNT_STD,
    MIN_TRAVEL_SECONDS=MIN_TRAVEL_SECONDS,
    NO_PREVIOUS_SECONDS=NO_PREVIOUS_SECONDS,
)
