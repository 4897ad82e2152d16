from collections.abc import Mapping
from typing import Any, TypeVar

Record = TypeVar("Record")

def ledger_records(
    record_type: type[Record],
    requests: list[Any],
    rows: list[int],
    results: list[Any],
    outcome_names: Mapping[int, str],
) -> list[Record]: ...
def entry_rows(
    entries: list[tuple[int, Any]], head: bytes, chain_id: int, recorded_at_us: int
) -> tuple[list[tuple[object, ...]], bytes]: ...
