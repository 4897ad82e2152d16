"""Transaction rows as fixed-size binary records: the form the account-state journal stores them in.

The state stage keeps, per account, the rows admitted since the account's state was last folded
(docs/decisions/0011-account-state-journal.md). A batch reads those rows back and applies them
before its own, so every row's features see every row Redis admitted before it. Records hold every
input column of ``TransactionColumns`` (the outputs ``account_slot`` and ``home_country`` are the
reader's business), little-endian and packed, so a record written by one worker decodes to exactly
the same columns in another. Encoding and decoding are whole-array numpy operations: one call per
batch, never a Python loop over rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sentinel.hotpath.columns import TransactionColumns

# A journal entry is this byte followed by whole records; a new record layout is a new byte.
ROWS_FORMAT = b"\x01"

ROW_DTYPE = np.dtype(
    [
        ("amount", "<f8"),
        ("type", "u1"),
        ("event_time", "<f8"),
        ("geo_known", "u1"),
        ("latitude", "<f8"),
        ("longitude", "<f8"),
        ("country", "<u2"),
        ("channel", "u1"),
        ("counterparty", "<u8"),
        ("device", "<u8"),
        ("balances_known", "u1"),
        ("origin_before", "<f8"),
        ("origin_after", "<f8"),
        ("destination_before", "<f8"),
        ("destination_after", "<f8"),
    ]
)
ROW_SIZE = ROW_DTYPE.itemsize
ROW_FIELDS: tuple[str, ...] = tuple(ROW_DTYPE.names or ())

Records = npt.NDArray[np.void]


class RowsDecodeError(ValueError):
    """A journal entry that is not ``ROWS_FORMAT`` followed by whole records."""


def encode_rows(columns: TransactionColumns) -> Records:
    """The batch's rows as records (one per row, same order); ``bytes(records[i])`` is row i's record."""
    records = np.empty(len(columns), dtype=ROW_DTYPE)
    for name in ROW_FIELDS:
        records[name] = getattr(columns, name)
    return records


def entry_records(entry: bytes) -> Records:
    """The records of one journal entry (``ROWS_FORMAT`` + records), without copying."""
    if entry[:1] != ROWS_FORMAT or (len(entry) - 1) % ROW_SIZE:
        raise RowsDecodeError(
            f"journal entry of {len(entry)} bytes is not format {ROWS_FORMAT!r} + {ROW_SIZE}-byte records"
        )
    return np.frombuffer(entry, dtype=ROW_DTYPE, offset=1)


def columns_of(records: Records, account_slot: npt.NDArray[np.int32]) -> TransactionColumns:
    """Hot-path columns of ``records``, row i belonging to account slot ``account_slot[i]``."""
    return TransactionColumns(account_slot=account_slot, **{name: records[name] for name in ROW_FIELDS})
