from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

Record = TypeVar("Record")

def ledger_records(
    record_type: type[Record],
    blocks: list[Any],
    block_of_row: npt.NDArray[np.int32],
    block_rows: npt.NDArray[np.intp],
    rows: list[int],
    results: list[Any],
    outcome_names: Mapping[int, str],
) -> list[Record]: ...
def entry_rows(
    entries: list[tuple[int, Any]], head: bytes, chain_id: int, recorded_at_us: int
) -> tuple[list[tuple[object, ...]], bytes]: ...
