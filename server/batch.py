"""One micro-batch on its way through the stages: the spans of submissions it holds, their columns, and
by row what each stage found.

The micro-batcher hands the pipeline spans of submissions from several calls; each call's transactions
were decoded into columns already. The batch joins those columns once (one numpy concatenate and one
take per column) and gives every distinct account one slot, so the stages see one batch, not the calls
it came from. Who asked for each row is known per call (block) too: the batch keeps one caller per
block and each row's index into them, for the decisions to record.
"""

from __future__ import annotations

import itertools
import math
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from sentinel.hotpath import DecodedTransactions, TransactionColumns
from sentinel.hotpath.respond import Callers
from sentinel.hotpath.rows import Records
from sentinel.server.batching import Span
from sentinel.server.requests import BatchResult, Rejection, Submission
from sentinel.server.state_store import Fold

T = TypeVar("T")
_COLUMNS = TransactionColumns.__slots__
_TRANSACTION_IDS = operator.attrgetter("transaction_ids")
_IDEMPOTENCY_KEYS = operator.attrgetter("idempotency_keys")
_FINGERPRINTS = operator.attrgetter("fingerprints")


class BatchRows(NamedTuple):
    """A batch's rows as the stages read them: one set of columns, the accounts (``account_slot``
    indexes them; an account of several calls has one slot), each row's caller (one per block), and
    where each row came from: ``blocks[callers.rows[i]]`` row ``block_rows[i]``."""

    columns: TransactionColumns
    accounts: list[str]
    callers: Callers
    blocks: list[DecodedTransactions]
    block_rows: npt.NDArray[np.intp]


def batch_columns(spans: Sequence[Span[Submission]]) -> BatchRows:
    """The spans' rows joined, in span order. One whole call, the usual case, gets that call's own
    columns and accounts (the same objects). Python steps here are per span and per block, not per row."""
    if len(spans) == 1:
        whole, start, stop = spans[0]
        block = whole.block
        if whole.rows is None and start == 0 and stop == len(block.columns):  # one whole call
            one_caller = Callers([whole.caller], np.zeros(stop, dtype=np.int32))
            return BatchRows(
                block.columns, block.accounts, one_caller, [block], np.arange(stop, dtype=np.intp)
            )
    block_index: dict[int, int] = {}  # id(block) -> its index in blocks
    blocks: list[DecodedTransactions] = []
    callers: list[str] = []
    starts: list[int] = []  # each block's first row in the join of whole blocks
    offset = 0
    span_blocks: list[int] = []
    for span in spans:
        block = span.item.block
        index = block_index.get(id(block))
        if index is None:
            index = block_index[id(block)] = len(blocks)
            blocks.append(block)
            callers.append(span.item.caller)
            starts.append(offset)
            offset += len(block.columns)
        span_blocks.append(index)
    parts = [span.item.block_rows(span.start, span.stop) for span in spans]
    block_rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
    lengths = [len(part) for part in parts]
    block_of_row = np.repeat(np.asarray(span_blocks, dtype=np.int32), lengths)
    rows_callers = Callers(callers, block_of_row)
    if len(blocks) == 1:  # rows of one call (a whole call was taken as it is above)
        (block,) = blocks
        columns, accounts = _compact(block.columns.take(block_rows), block.accounts)
        return BatchRows(columns, accounts, rows_callers, blocks, block_rows)
    # One slot per distinct account, in order of first appearance; dict and map steps run in C.
    distinct = dict.fromkeys(itertools.chain.from_iterable(block.accounts for block in blocks))
    account_slots = dict(zip(distinct, range(len(distinct)), strict=True))
    remapped = [
        np.fromiter(map(account_slots.__getitem__, block.accounts), np.int32, len(block.accounts))[
            block.columns.account_slot
        ]
        for block in blocks
    ]
    joined = {
        name: np.concatenate([getattr(block.columns, name) for block in blocks])
        for name in _COLUMNS
        if name != "account_slot"
    }
    joined["account_slot"] = np.concatenate(remapped)
    rows = np.asarray(starts, dtype=np.intp)[block_of_row] + block_rows
    columns = TransactionColumns(**{name: array[rows] for name, array in joined.items()})
    columns, accounts = _compact(columns, list(account_slots))
    return BatchRows(columns, accounts, rows_callers, blocks, block_rows)


def _compact(columns: TransactionColumns, accounts: list[str]) -> tuple[TransactionColumns, list[str]]:
    """Only the accounts the rows use, renumbered (a call's duplicates of keys in flight are not in the
    batch, and neither may their accounts be: the state stage reads every account of the batch)."""
    used, slots = np.unique(columns.account_slot, return_inverse=True)
    columns.account_slot = slots.astype(np.int32)
    return columns, list(map(accounts.__getitem__, used.tolist()))


def _per_row(
    spans: Sequence[Span[Submission]], values_of: Callable[[DecodedTransactions], list[T]]
) -> list[T]:
    """One of the blocks' per-row lists (e.g. transaction ids) for the spans' rows, in order: list
    slices and C-level maps, not a Python step per row."""
    joined: list[T] = []
    for span in spans:
        values = values_of(span.item.block)
        if span.item.rows is None:
            joined += values[span.start : span.stop]
        else:
            joined += map(values.__getitem__, span.item.rows[span.start : span.stop].tolist())
    return joined


@dataclass(slots=True)
class ScoringBatch:
    """One micro-batch: the spans of submissions it holds and, by row, what each stage found."""

    spans: list[Span[Submission]]
    size: int = field(init=False)  # rows
    transaction_ids: list[str] = field(init=False)  # by row, as are the next three
    idempotency_keys: list[str] = field(init=False)
    fingerprints: list[bytes] = field(init=False)
    takeovers: npt.NDArray[np.bool_] = field(init=False)
    columns: TransactionColumns = field(init=False)
    accounts: list[str] = field(init=False)  # account_slot -> account id
    callers: Callers = field(init=False)  # who asked for each row (callers.rows: its block)
    blocks: list[DecodedTransactions] = field(init=False)  # the calls the rows come from
    block_rows: npt.NDArray[np.intp] = field(init=False)  # each row's number in its block
    records: Records = field(init=False)  # the rows as journal records (set when state is admitted)
    decided_at_ns: int = field(init=False)  # time.time_ns() of the batch's decisions
    results: list[BatchResult | None] = field(init=False)
    replays: set[int] = field(default_factory=set)  # rows answered from a decided claim
    resubmitted: set[int] = field(default_factory=set)  # replays whose claim had no ledger sequence
    owners: dict[int, tuple[bytes | None, bytes | None]] = field(default_factory=dict)  # ledger conflicts
    folds: list[Fold] = field(default_factory=list)
    keys_claimed: bool = False  # Redis claimed its keys (admitted): the ledger's spool may acknowledge it
    durable: bool = False  # the ledger acknowledged the batch's records
    deadline: float = field(init=False)  # the earliest of its callers' deadlines

    def __post_init__(self) -> None:
        spans = self.spans
        self.columns, self.accounts, self.callers, self.blocks, self.block_rows = batch_columns(spans)
        self.size = size = len(self.block_rows)
        block = spans[0].item.block
        if self.columns is block.columns:  # one whole call, the usual case: its lists are the batch's
            self.transaction_ids, self.idempotency_keys = block.transaction_ids, block.idempotency_keys
            self.fingerprints = block.fingerprints
        else:
            self.transaction_ids = _per_row(spans, _TRANSACTION_IDS)
            self.idempotency_keys = _per_row(spans, _IDEMPOTENCY_KEYS)
            self.fingerprints = _per_row(spans, _FINGERPRINTS)
        takeovers = [span.item.takeover for span in spans]
        self.takeovers = (
            np.repeat(np.asarray(takeovers), [span.stop - span.start for span in spans])
            if any(takeovers)
            else np.zeros(size, dtype=np.bool_)
        )
        self.results = [None] * size
        self.decided_at_ns = time.time_ns()
        self.deadline = min(span.item.deadline for span in spans)

    @property
    def deadline_or_none(self) -> float | None:
        return None if math.isinf(self.deadline) else self.deadline

    def answers(self) -> list[BatchResult]:
        """Every row's result (a row no stage answered is an internal error, never silence)."""
        results = self.results
        if None not in results:  # a C-level scan: the usual case
            return results  # type: ignore[return-value]  # no row is None
        missing = Rejection(grpc.StatusCode.INTERNAL, "no decision")
        return [r if r is not None else missing for r in results]
