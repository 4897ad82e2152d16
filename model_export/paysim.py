"""PaySim CSV files, read in event order with the event times the hot path needs.

PaySim (E. A. Lopez-Rojas, A. Elmir and S. Axelsson, "PaySim: A financial mobile money simulator for
fraud detection", EMSS 2016; data set "Synthetic Financial Datasets For Fraud Detection", CC BY-SA
4.0) records only the hour of a transaction (``step``, 1 = the first hour of the simulation). The
replay needs timestamps, so each row gets a deterministic one: the start of its hour after
PAYSIM_EPOCH plus an even spread of the hour's rows in file order. Rows are replayed in that order;
PaySim has no geolocation, device or channel, so those stay absent.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sentinel.v1 import transaction_pb2

COLUMNS = (
    "step",
    "type",
    "amount",
    "nameOrig",
    "oldbalanceOrg",
    "newbalanceOrig",
    "nameDest",
    "oldbalanceDest",
    "newbalanceDest",
    "isFraud",
    "isFlaggedFraud",
)
PAYSIM_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z: step 1 starts here
SECONDS_PER_STEP = 3_600
ATTRIBUTION = (
    'PaySim: E. A. Lopez-Rojas, A. Elmir and S. Axelsson, "PaySim: A financial mobile money simulator '
    'for fraud detection", EMSS 2016; data set "Synthetic Financial Datasets For Fraud Detection", '
    "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)."
)


@dataclass(frozen=True, slots=True)
class PaySimRows:
    """The rows of a PaySim file in event order, one array per column."""

    event_time: npt.NDArray[np.float64]
    type: npt.NDArray[np.uint8]  # sentinel.v1.TransactionType numbers
    amount: npt.NDArray[np.float64]
    origin: list[str]
    destination: list[str]
    origin_before: npt.NDArray[np.float64]
    origin_after: npt.NDArray[np.float64]
    destination_before: npt.NDArray[np.float64]
    destination_after: npt.NDArray[np.float64]
    is_fraud: npt.NDArray[np.bool_]
    sha256: str  # of the file's bytes

    def __len__(self) -> int:
        return len(self.amount)


def read_paysim(path: Path) -> PaySimRows:
    """Read a PaySim CSV (original column layout) and order its rows by (step, file position)."""
    raw = path.read_bytes()
    reader = csv.reader(raw.decode("utf-8").splitlines())
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ValueError(f"{path}: not a PaySim CSV (expected the header {','.join(COLUMNS)})")
    rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no rows")
    columns = list(zip(*rows, strict=True))
    step = np.array(columns[0], dtype=np.int64)
    order = np.argsort(step, kind="stable")
    step = step[order]
    # Spread the rows of each hour evenly over it, in file order.
    first_of_step = np.searchsorted(step, step, side="left")
    rows_in_step = np.searchsorted(step, step, side="right") - first_of_step
    position = np.arange(len(step)) - first_of_step
    event_time = PAYSIM_EPOCH + (step - 1) * SECONDS_PER_STEP + position * SECONDS_PER_STEP / rows_in_step
    type_codes = {
        name.removeprefix("TRANSACTION_TYPE_"): number
        for name, number in transaction_pb2.TransactionType.items()
        if number != 0
    }
    try:
        types = np.array([type_codes[name] for name in columns[1]], dtype=np.uint8)
    except KeyError as exc:
        raise ValueError(f"{path}: unknown transaction type {exc.args[0]!r}") from None

    def numbers(index: int) -> npt.NDArray[np.float64]:
        return np.array(columns[index], dtype=np.float64)[order]

    return PaySimRows(
        event_time=event_time.astype(np.float64),
        type=types[order],
        amount=numbers(2),
        origin=[columns[3][i] for i in order],
        destination=[columns[6][i] for i in order],
        origin_before=numbers(4),
        origin_after=numbers(5),
        destination_before=numbers(7),
        destination_after=numbers(8),
        is_fraud=numbers(9) != 0.0,
        sha256=hashlib.sha256(raw).hexdigest(),
    )
