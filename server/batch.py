"""One micro-batch on its way through the stages: its requests, their columns, and by row what each
stage found.

The micro-batcher hands the pipeline requests from several calls; each call's transactions were
decoded into columns already. The batch joins those columns once (one numpy concatenate and one take per
column) and gives every distinct account one slot, so the stages see one batch, not the calls it came
from. Who asked for each row is known per call (block) too: the batch keeps one caller per block and
each row's index into them, for the decisions to record.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import grpc
import numpy as np
import numpy.typing as npt

from sentinel.hotpath import DecodedTransactions, TransactionColumns
from sentinel.hotpath.respond import Callers
from sentinel.hotpath.rows import Records
from sentinel.server.requests import BatchResult, Rejection, ScoringRequest
from sentinel.server.state_store import Fold

_COLUMNS = TransactionColumns.__slots__


def batch_columns(requests: list[ScoringRequest]) -> tuple[TransactionColumns, list[str], Callers]:
    """The requests' rows as one TransactionColumns, in request order, the batch's accounts (the
    ``account_slot`` column indexes them; an account of several calls has one slot) and the rows' callers
    (one name per block: its requests come from one call). Requests that are one whole call, in order,
    get that call's own columns and accounts (the same objects)."""
    # id -> (block, its first row in the join, its caller)
    blocks: dict[int, tuple[DecodedTransactions, int, str]] = {}
    offset = 0
    for request in requests:
        if id(request.block) not in blocks:
            blocks[id(request.block)] = (request.block, offset, request.caller)
            offset += len(request.block.columns)
    callers = [caller for _, _, caller in blocks.values()]
    if len(blocks) == 1:
        ((block, _, _),) = blocks.values()
        one_caller = Callers(callers, np.zeros(len(requests), dtype=np.int32))
        rows = np.fromiter((request.row for request in requests), dtype=np.intp, count=len(requests))
        if len(rows) == len(block.columns) and (rows == np.arange(len(rows))).all():
            return block.columns, block.accounts, one_caller  # one whole call: nothing to join
        return (*_compact(block.columns.take(rows), block.accounts), one_caller)
    accounts: dict[str, int] = {}
    remapped = []
    for block, _, _ in blocks.values():
        remap = np.fromiter(
            (accounts.setdefault(account, len(accounts)) for account in block.accounts),
            dtype=np.int32,
            count=len(block.accounts),
        )
        remapped.append(remap[block.columns.account_slot])
    joined = {
        name: np.concatenate([getattr(block.columns, name) for block, _, _ in blocks.values()])
        for name in _COLUMNS
        if name != "account_slot"
    }
    joined["account_slot"] = np.concatenate(remapped)
    rows = np.fromiter(
        (blocks[id(request.block)][1] + request.row for request in requests),
        dtype=np.intp,
        count=len(requests),
    )
    columns = TransactionColumns(**{name: array[rows] for name, array in joined.items()})
    starts = np.fromiter((start for _, start, _ in blocks.values()), dtype=np.intp, count=len(blocks))
    block_of_row = (np.searchsorted(starts, rows, side="right") - 1).astype(np.int32)
    return (*_compact(columns, list(accounts)), Callers(callers, block_of_row))


def _compact(columns: TransactionColumns, accounts: list[str]) -> tuple[TransactionColumns, list[str]]:
    """Only the accounts the rows use, renumbered (a call's duplicates of keys in flight are not in the
    batch, and neither may their accounts be: the state stage reads every account of the batch)."""
    used, slots = np.unique(columns.account_slot, return_inverse=True)
    columns.account_slot = slots.astype(np.int32)
    return columns, [accounts[slot] for slot in used.tolist()]


@dataclass(slots=True)
class ScoringBatch:
    """One micro-batch: the requests and, by row, what each stage found."""

    requests: list[ScoringRequest]
    transaction_ids: list[str] = field(init=False)  # by row, as are the next three
    idempotency_keys: list[str] = field(init=False)
    fingerprints: list[bytes] = field(init=False)
    takeovers: npt.NDArray[np.bool_] = field(init=False)
    columns: TransactionColumns = field(init=False)
    accounts: list[str] = field(init=False)  # account_slot -> account id
    callers: Callers = field(init=False)  # who asked for each row
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
        requests = self.requests
        self.columns, self.accounts, self.callers = batch_columns(requests)
        block = requests[0].block
        if self.columns is block.columns:  # one whole call, the usual case: its lists are the batch's
            self.transaction_ids, self.idempotency_keys = block.transaction_ids, block.idempotency_keys
            self.fingerprints = block.fingerprints
        else:
            self.transaction_ids = [request.transaction_id for request in requests]
            self.idempotency_keys = [request.idempotency_key for request in requests]
            self.fingerprints = [request.fingerprint for request in requests]
        self.takeovers = np.fromiter(
            (request.takeover for request in requests), dtype=np.bool_, count=len(requests)
        )
        self.results = [None] * len(self.requests)
        self.decided_at_ns = time.time_ns()
        self.deadline = min(request.deadline for request in self.requests)

    @property
    def deadline_or_none(self) -> float | None:
        return None if math.isinf(self.deadline) else self.deadline

    def answers(self) -> list[BatchResult]:
        """Every row's result (a row no stage answered is an internal error, never silence)."""
        missing = Rejection(grpc.StatusCode.INTERNAL, "no decision")
        return [r if r is not None else missing for r in self.results]
