"""Per-account state: what the hot path remembers about an account between transactions.

One state is one fixed-size little-endian binary value (STATE_SIZE bytes) stored in Redis under a key
hash-tagged by account. The layout (docs/decisions/0003-account-state-and-features.md) is:

====== ==== ========================= ==============================================================
offset type field                     meaning
====== ==== ========================= ==============================================================
0      u16  version                   STATE_VERSION; any other value is refused
2      u16  flags                     bit 0: last_geo_known; other bits must be 0
4      u16  last_country              country code of the latest transaction that had one (0 none)
6      u16  home_country              first known country of the account (0 none)
8      u32  count                     transactions applied (saturates at 2**32 - 1), >= 1
12     u8   counterparty_next         next slot of the counterparty ring to overwrite (< RING_SIZE)
13     u8   device_next               next slot of the device ring to overwrite (< RING_SIZE)
14     u16  reserved                  0
16     f64  log_amount_mean           Welford mean of log1p(amount)
24     f64  log_amount_m2             Welford sum of squared deviations (>= 0)
32     f64  last_time                 latest event_time seen (seconds since the epoch)
40     f64  last_geo_time             event_time of the latest located transaction (0 if none)
48     f64  last_latitude             its latitude (0 if none)
56     f64  last_longitude            its longitude (0 if none)
64     f64  velocity_count[3]         decayed transaction counts at last_time (half-lives 1m,1h,24h)
88     f64  velocity_amount[3]        decayed amount sums at last_time
112    u64  counterparties[8]         stable_hash of recent distinct counterparties (0 = empty)
176    u64  devices[8]                stable_hash of recent distinct devices (0 = empty)
====== ==== ========================= ==============================================================

Every float must be finite, both times within 0 to 1e11 (MAX_EVENT_TIME), and the statistics
within what 2**32 transactions of at most 1e18 can produce (MAX_LOG_AMOUNT_MEAN ...), so that no decoded
state can turn a feature into inf; the update saturates at these bounds (never reached in practice) so
the encoder never writes a state the decoder refuses. The sizes and bounds are defined once, in
``_constants.pxd``. This module holds the Python view of a state; the codec lives in the compiled
``_codec`` module and in ``reference_codec``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from types import MappingProxyType

from sentinel.hotpath._constants import (
    RING_SIZE,
    STATE_BAD_COUNTRY,
    STATE_BAD_FLAGS,
    STATE_BAD_LOCATION,
    STATE_BAD_RING_INDEX,
    STATE_NOT_FINITE,
    STATE_OUT_OF_RANGE,
    STATE_SIZE,
    STATE_UNKNOWN_VERSION,
    STATE_VERSION,
    STATE_WRONG_LENGTH,
    STATE_ZERO_COUNT,
    VELOCITY_WINDOWS,
)

STATE_FORMAT = struct.Struct(f"<HHHHIBBH6d{VELOCITY_WINDOWS}d{VELOCITY_WINDOWS}d{RING_SIZE}Q{RING_SIZE}Q")
if STATE_FORMAT.size != STATE_SIZE:
    raise ImportError(f"the state layout takes {STATE_FORMAT.size} bytes, STATE_SIZE is {STATE_SIZE}")


@dataclass(slots=True)
class AccountState:
    """Decoded state of one account (the Python view of the binary layout above)."""

    count: int = 0
    last_country: int = 0
    home_country: int = 0
    last_geo_known: bool = False
    counterparty_next: int = 0
    device_next: int = 0
    log_amount_mean: float = 0.0
    log_amount_m2: float = 0.0
    last_time: float = 0.0
    last_geo_time: float = 0.0
    last_latitude: float = 0.0
    last_longitude: float = 0.0
    velocity_count: list[float] = field(default_factory=lambda: [0.0] * VELOCITY_WINDOWS)
    velocity_amount: list[float] = field(default_factory=lambda: [0.0] * VELOCITY_WINDOWS)
    counterparties: list[int] = field(default_factory=lambda: [0] * RING_SIZE)
    devices: list[int] = field(default_factory=lambda: [0] * RING_SIZE)


# Why a blob was refused, by the code both codecs (compiled and reference) report; they check in the
# same order so the same blob gives the same message.
DECODE_ERRORS: MappingProxyType[int, str] = MappingProxyType(
    {
        STATE_WRONG_LENGTH: f"wrong length (expected {STATE_SIZE} bytes)",
        STATE_UNKNOWN_VERSION: f"unknown state version (this build reads version {STATE_VERSION})",
        STATE_BAD_FLAGS: "unknown flag bits or non-zero reserved field",
        STATE_BAD_RING_INDEX: "ring index out of range",
        STATE_ZERO_COUNT: "transaction count is 0",
        STATE_BAD_COUNTRY: "invalid country code",
        STATE_NOT_FINITE: "non-finite number or time outside 0 to 1e11",
        STATE_OUT_OF_RANGE: "amount statistics or velocity out of range",
        STATE_BAD_LOCATION: "last location out of range or set without the geo flag",
    }
)
