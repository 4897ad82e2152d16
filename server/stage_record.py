"""The *ledger* stage: durably record a batch's decisions before any is answered.

Every decision made now is recorded with the bytes the outcome stage serialized; so is every replay
whose claim does not yet say it is durable (no ledger sequence), which the ledger's unique key makes
safe. The ledger's answer can still change a row: a key it holds for another transaction is refused
(ALREADY_EXISTS), a key it holds for this one is answered with the stored decision.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import grpc
import structlog

from sentinel.hotpath import ledger_records
from sentinel.ledger.records import LedgerAck, LedgerRecord
from sentinel.server import metrics
from sentinel.server.batch import ScoringBatch
from sentinel.server.outcome import OUTCOME_NAMES
from sentinel.server.requests import BatchResult, Decided, Rejection, key_reused
from sentinel.server.stored_decisions import stored_decision

log = structlog.get_logger("sentinel.pipeline")


class LedgerSink(Protocol):
    """The ledger writer's interface as the record stage uses it."""

    async def submit(
        self,
        records: Sequence[LedgerRecord],
        ack: str | None = None,
        deadline: float | None = None,
        *,
        keys_checked: bool = True,
    ) -> list[LedgerAck]:
        """Durably record ``records``; one ack per record, same order; Postgres gets less time than
        the commit timeout when ``deadline`` (``time.monotonic()``) needs the spool to answer first;
        ``keys_checked=False``: no Redis claim holds the keys, so only Postgres may acknowledge them."""
        ...


class RecordStage:
    """Hands batches to the ledger writer and applies its answers."""

    def __init__(self, ledger: LedgerSink) -> None:
        self._ledger = ledger

    async def record(self, batch: ScoringBatch) -> list[BatchResult]:
        """Record the batch's decisions; the batch's answers (UNAVAILABLE for every decision when the
        ledger cannot record them durably: retry with the same key)."""
        rows: list[int] = []
        for i, result in enumerate(batch.results):
            if not isinstance(result, Decided):
                continue
            if i in batch.replays:
                if result.ledger_sequence:
                    metrics.REPLAYS.inc()
                    continue
                batch.resubmitted.add(i)
            rows.append(i)
        records = ledger_records(
            LedgerRecord,
            batch.blocks,
            batch.callers.rows,
            batch.block_rows,
            rows,
            batch.results,
            OUTCOME_NAMES,
        )
        started = time.perf_counter()
        try:
            acks = (
                await self._ledger.submit(
                    records, deadline=batch.deadline_or_none, keys_checked=batch.keys_claimed
                )
                if records
                else []
            )
        except Exception as exc:  # every ledger failure means "not durable: retry"
            log.error("ledger_unavailable", error=repr(exc), batch=len(records))
            rejection = Rejection(
                grpc.StatusCode.UNAVAILABLE,
                "the decision could not be recorded durably; retry with the same idempotency key",
            )
            return [rejection if isinstance(r, Decided) else r for r in batch.answers()]
        finally:
            metrics.STAGE_SECONDS.labels("ledger").observe(time.perf_counter() - started)
        outcomes: dict[int, int] = {}
        replays = 0
        for i, record, ack in zip(rows, records, acks, strict=True):
            if ack.conflict:
                batch.results[i] = key_reused(batch.idempotency_keys[i])
                batch.owners[i] = (ack.stored_fingerprint, ack.stored_decision)
                continue
            decided = batch.results[i]
            assert isinstance(decided, Decided)
            if ack.existed and ack.stored_decision not in (None, record.decision_bytes):
                assert ack.stored_decision is not None
                decided = stored_decision(ack.stored_decision, ack.sequence)
            else:
                decided = decided.recorded_as(ack.sequence)
            batch.results[i] = decided
            replays += decided.replayed
            outcomes[decided.outcome] = outcomes.get(decided.outcome, 0) + 1
        for outcome, count in outcomes.items():
            metrics.DECISIONS.labels(OUTCOME_NAMES[outcome]).inc(count)
        if replays:
            metrics.REPLAYS.inc(replays)
        batch.durable = True
        return batch.answers()
