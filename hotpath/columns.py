"""The columnar batch the hot path computes on: one numpy array per transaction field.

The server fills a batch with ``TransactionColumnsBuilder.append`` (one call per validated
transaction, compiled, no numpy per-element assignment); the model's training code can build one
directly from whole-data-set arrays with ``TransactionColumns(...)``. Rows refer to their account
through ``account_slot``: an index into the ``states`` list handed to ``build_features`` alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from sentinel.hotpath._constants import (
    ROW_BAD_ACCOUNT_SLOT,
    ROW_BAD_AMOUNT,
    ROW_BAD_BALANCES_KNOWN,
    ROW_BAD_COUNTRY,
    ROW_BAD_DESTINATION_AFTER,
    ROW_BAD_DESTINATION_BEFORE,
    ROW_BAD_EVENT_TIME,
    ROW_BAD_GEO_KNOWN,
    ROW_BAD_LATITUDE,
    ROW_BAD_LONGITUDE,
    ROW_BAD_ORIGIN_AFTER,
    ROW_BAD_ORIGIN_BEFORE,
    ROW_BAD_TYPE,
)

# Why a row was refused, by the code both implementations report (ROW_BAD_*; the bounds are
# MAX_AMOUNT and MAX_EVENT_TIME, which keep every sum, difference and float32 feature finite): the field
# named in InvalidTransactionValue and the description.
ROW_PROBLEMS: MappingProxyType[int, tuple[str, str]] = MappingProxyType(
    {
        ROW_BAD_ACCOUNT_SLOT: ("account_slot", "is not an index of the states list"),
        ROW_BAD_AMOUNT: ("amount", "must be a number from 0 to 1e18"),
        ROW_BAD_TYPE: ("type", "is not a known transaction type code (1 to 5)"),
        ROW_BAD_EVENT_TIME: ("event_time", "must be a number of seconds since the epoch from 0 to 1e11"),
        ROW_BAD_GEO_KNOWN: ("geo_known", "must be 0 or 1"),
        ROW_BAD_LATITUDE: ("latitude", "must be a finite number from -90 to 90"),
        ROW_BAD_LONGITUDE: ("longitude", "must be a finite number from -180 to 180"),
        ROW_BAD_COUNTRY: ("country", "must be 0 or two ASCII letters A-Z (see country_code)"),
        ROW_BAD_BALANCES_KNOWN: ("balances_known", "has bits other than the four balance bits"),
        ROW_BAD_ORIGIN_BEFORE: ("origin_before", "must be a number from -1e18 to 1e18"),
        ROW_BAD_ORIGIN_AFTER: ("origin_after", "must be a number from -1e18 to 1e18"),
        ROW_BAD_DESTINATION_BEFORE: ("destination_before", "must be a number from -1e18 to 1e18"),
        ROW_BAD_DESTINATION_AFTER: ("destination_after", "must be a number from -1e18 to 1e18"),
    }
)

_DTYPES: dict[str, type[np.generic]] = {
    "account_slot": np.int32,
    "amount": np.float64,
    "type": np.uint8,
    "event_time": np.float64,
    "geo_known": np.uint8,
    "latitude": np.float64,
    "longitude": np.float64,
    "country": np.uint16,
    "channel": np.uint8,
    "counterparty": np.uint64,
    "device": np.uint64,
    "balances_known": np.uint8,
    "origin_before": np.float64,
    "origin_after": np.float64,
    "destination_before": np.float64,
    "destination_after": np.float64,
    "home_country": np.uint16,
}


@dataclass(slots=True)
class TransactionColumns:
    """A batch of transactions, one C-contiguous numpy array of length n per field.

    - ``account_slot`` int32: index of the row's account in the ``states`` list.
    - ``amount`` float64 (major unit, 0 to MAX_AMOUNT); ``type`` uint8 (TRANSACTION_TYPES code);
      ``event_time`` float64 seconds since the epoch (0 to MAX_EVENT_TIME).
    - ``geo_known`` uint8 0/1; ``latitude``/``longitude`` float64 degrees (ignored when 0).
    - ``country`` uint16 (``country_code``: two ASCII letters, 0 = unknown); ``channel`` uint8.
    - ``counterparty``/``device`` uint64 ``stable_hash`` of the id (0 = not given).
    - ``balances_known`` uint8 bit mask (ORIGIN_BEFORE_KNOWN ...) telling which of
      ``origin_before``, ``origin_after``, ``destination_before``, ``destination_after`` (float64)
      were given; unknown ones are ignored.
    - ``home_country`` uint16: an OUTPUT column. ``build_features`` writes each row's home country
      as the account's state knew it before the row (0 when unknown or stateless); rule programs
      read it as the ``home_country`` field. Pass zeros (the default).

    The constructor converts every array to its dtype (no copy when it already has it).
    """

    account_slot: npt.NDArray[np.int32]
    amount: npt.NDArray[np.float64]
    type: npt.NDArray[np.uint8]
    event_time: npt.NDArray[np.float64]
    geo_known: npt.NDArray[np.uint8]
    latitude: npt.NDArray[np.float64]
    longitude: npt.NDArray[np.float64]
    country: npt.NDArray[np.uint16]
    channel: npt.NDArray[np.uint8]
    counterparty: npt.NDArray[np.uint64]
    device: npt.NDArray[np.uint64]
    balances_known: npt.NDArray[np.uint8]
    origin_before: npt.NDArray[np.float64]
    origin_after: npt.NDArray[np.float64]
    destination_before: npt.NDArray[np.float64]
    destination_after: npt.NDArray[np.float64]
    home_country: npt.NDArray[np.uint16] = None  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        n = len(self.account_slot)
        if self.home_country is None:
            self.home_country = np.zeros(n, dtype=np.uint16)
        for name, dtype in _DTYPES.items():
            array = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            if array.shape != (n,):
                raise ValueError(f"column {name} has shape {array.shape}, expected ({n},)")
            setattr(self, name, array)

    def __len__(self) -> int:
        return len(self.account_slot)

    @classmethod
    def empty(cls, n: int) -> TransactionColumns:
        """A batch of n zeroed rows (type 0 is invalid: fill every row before using it)."""
        return cls(**{name: np.zeros(n, dtype=dtype) for name, dtype in _DTYPES.items()})

    def take(self, rows: Any) -> TransactionColumns:
        """A new batch with the given rows (an index array or a slice), copied."""
        return TransactionColumns(**{name: getattr(self, name)[rows].copy() for name in _DTYPES})
