"""What flows through the scoring pipeline: a submission (decoded transactions of one call) and what a
batch answers for each of its transactions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import grpc
import numpy as np
import numpy.typing as npt

from sentinel.hotpath import DecodedTransactions
from sentinel.server.identity import ANONYMOUS


@dataclass(frozen=True, slots=True)
class Rejection:
    """A transaction that gets no decision: the gRPC status to answer with, and why."""

    code: grpc.StatusCode
    message: str


class ShadowOpinion(NamedTuple):
    """What the shadow model would have decided (the Decision's ``shadow`` field), for the logs."""

    model_version: str
    model_score: float
    outcome: int  # sentinel.v1.Outcome number
    risk_score: float


class Decided(NamedTuple):
    """A transaction's decision as answered: the serialized Decision as stored (deterministic, no
    ledger sequence, not flagged as a replay) and the answer-time fields the response adds, with what
    logs and metrics read from it (``shadow``: set when a shadow model scored it too)."""

    decision: bytes
    outcome: int  # sentinel.v1.Outcome number
    risk_score: float
    degraded: bool
    model_version: str
    ledger_sequence: int = 0
    replayed: bool = False
    shadow: ShadowOpinion | None = None

    def recorded_as(self, ledger_sequence: int) -> Decided:
        """This decision with its ledger sequence (half the cost of ``_replace``, once per decision)."""
        return Decided(
            self.decision,
            self.outcome,
            self.risk_score,
            self.degraded,
            self.model_version,
            ledger_sequence,
            self.replayed,
            self.shadow,
        )


Result = Decided | Rejection


class AwaitingOriginal(NamedTuple):
    """A batch's answer for a request whose key another worker admitted and has not decided yet."""

    admitted_at: float  # seconds since the epoch


BatchResult = Result | AwaitingOriginal


class Submission(NamedTuple):
    """Rows of one call's decoded transactions, submitted together for decisions.

    A submission does not copy its transactions out of the call: it points at the call's
    ``DecodedTransactions`` (the compiled decoder's output), and the micro-batcher hands the pipeline
    spans of submissions, so a call of a thousand transactions enters the pipeline as one tuple.

    ``rows``: which rows of ``block``, in order (None: all of them, the usual case). ``takeover``:
    decide a request that another worker admitted and never decided (it died): score it without
    appending it to the state a second time. ``deadline``: ``time.monotonic()`` when the caller gives
    up. ``caller``: who asked (recorded in the decisions); one call's, as is the block."""

    block: DecodedTransactions
    rows: npt.NDArray[np.intp] | None = None
    deadline: float = math.inf
    takeover: bool = False
    caller: str = ANONYMOUS.subject

    @property
    def size(self) -> int:
        return len(self.block.transaction_ids) if self.rows is None else len(self.rows)

    def block_rows(self, start: int, stop: int) -> npt.NDArray[np.intp]:
        """The block's row numbers of the submission's rows ``start`` to ``stop`` (exclusive)."""
        return np.arange(start, stop, dtype=np.intp) if self.rows is None else self.rows[start:stop]


def key_reused(key: str) -> Rejection:
    """The answer for an idempotency key already used for a different transaction."""
    return Rejection(
        grpc.StatusCode.ALREADY_EXISTS,
        f"idempotency key {key!r} was already used for a different transaction",
    )
