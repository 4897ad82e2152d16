"""Transaction rows as fixed-size binary records: the form the account-state journal stores them in.

The state stage keeps, per account, the rows admitted since the account's state was last folded
(docs/decisions/0011-account-state-journal.md). A batch reads those rows back and applies them
before its own, so every row's features see every row Redis admitted before it. A record is a format
byte followed by every input column of ``TransactionColumns`` (the outputs ``account_slot`` and
``home_country`` are the reader's business), little-endian and packed, so a record written by one
worker decodes to exactly the same columns in another. Encoding and decoding are whole-array numpy
operations: one call per batch, never a Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from sentinel.hotpath.columns import TransactionColumns

# The first byte of every record; a new record layout is a new byte.
ROWS_FORMAT = 1

ROW_DTYPE = np.dtype(
    [
        ("format", "u1"),
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
ROW_FIELDS: tuple[str, ...] = tuple(name for name in ROW_DTYPE.names or () if name != "format")

Records = npt.NDArray[np.void]


def encode_rows(columns: TransactionColumns) -> Records:
    """The batch's rows as records (one per row, same order); ``records.tobytes()`` is their bytes."""
    records = np.empty(len(columns), dtype=ROW_DTYPE)
    records["format"] = ROWS_FORMAT
    for name in ROW_FIELDS:
        records[name] = getattr(columns, name)
    return records


def decode_journals(journals: Iterable[bytes]) -> tuple[Records, npt.NDArray[np.intp], dict[int, str]]:
    """The records of several journals, decoded together (one join, one view: a batch reads as many
    journals as it has rows), the index of the journal each record came from, and why each journal
    that is not whole records of format ``ROWS_FORMAT`` was left out."""
    data = list(journals)
    counts, partial = np.divmod(np.fromiter(map(len, data), dtype=np.intp, count=len(data)), ROW_SIZE)
    unreadable = {
        int(j): f"{len(data[j])} bytes are not whole {ROW_SIZE}-byte records" for j in np.flatnonzero(partial)
    }
    for j in unreadable:
        counts[j], data[j] = 0, b""
    records = np.frombuffer(b"".join(data), dtype=ROW_DTYPE)
    owner = np.repeat(np.arange(len(data)), counts)
    foreign = np.unique(owner[records["format"] != ROWS_FORMAT])
    if not len(foreign):
        return records, owner, unreadable
    for j in foreign.tolist():
        unreadable[j] = f"records of another format than {ROWS_FORMAT}"
    kept = ~np.isin(owner, foreign)
    return records[kept], owner[kept], unreadable


def columns_of(records: Records, account_slot: npt.NDArray[np.int32]) -> TransactionColumns:
    """Hot-path columns of ``records``, row i belonging to account slot ``account_slot[i]``."""
    return TransactionColumns(account_slot=account_slot, **{name: records[name] for name in ROW_FIELDS})
