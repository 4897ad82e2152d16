"""ScoringService: the gRPC face of the pipeline (validate -> ... -> respond).

The servicer owns only what is about the wire: validating each transaction, turning failures into
statuses or per-item errors, logging one event per decision. Deciding is the job of a
``DecisionMaker``, so the pipeline behind it can change without touching the contract.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Protocol

import grpc
import structlog

from sentinel.server import metrics
from sentinel.server.deadletter import DeadLetters
from sentinel.server.decide import OUTCOME_NAMES
from sentinel.server.errors import abort, abort_invalid, item_error
from sentinel.server.pipeline import Rejection, Result
from sentinel.server.validate import (
    FieldViolation,
    InvalidTransaction,
    ValidatedTransaction,
    validate_transaction,
)
from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc, transaction_pb2

log = structlog.get_logger("sentinel.decisions")


class DecisionMaker(Protocol):
    """Decides a list of validated transactions, in order."""

    async def decide(self, transactions: list[ValidatedTransaction]) -> list[Result]:
        """One decision (or a rejection with its status) per transaction, same order."""
        ...


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    """Implements sentinel.v1.ScoringService over a DecisionMaker."""

    def __init__(
        self,
        decision_maker: DecisionMaker,
        *,
        max_clock_skew_s: float,
        max_batch_items: int,
        log_sample_rate: float,
        stream_window: int = 1024,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self._decision_maker = decision_maker
        self._max_skew_s = max_clock_skew_s
        self._max_batch_items = max_batch_items
        self._log_sample_rate = log_sample_rate
        self._stream_window = stream_window
        self._dead_letters = dead_letters

    def _reject(self, method: str, error: InvalidTransaction, message: transaction_pb2.Transaction) -> None:
        """Log, count and dead-letter a transaction that failed validation."""
        log.warning("invalid_transaction", method=method, error=str(error))
        metrics.INVALID.labels(method).inc()
        if self._dead_letters is not None:
            self._dead_letters.record(method, error.violations, message)

    def _log_decision(self, decision: decision_pb2.Decision, started: float) -> None:
        if self._log_sample_rate < 1.0 and random.random() >= self._log_sample_rate:
            return
        log.info(
            "decision",
            transaction_id=decision.transaction_id,
            outcome=OUTCOME_NAMES[decision.outcome],
            risk_score=round(decision.risk_score, 4),
            model_version=decision.model_version,
            degraded=decision.degraded,
            replayed=decision.replayed,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def Score(
        self, request: scoring_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreResponse:
        started = time.perf_counter()
        try:
            txn = validate_transaction(request.transaction, time.time(), self._max_skew_s)
        except InvalidTransaction as exc:
            self._reject("Score", exc, request.transaction)
            await abort_invalid(context, exc)
        (result,) = await self._decision_maker.decide([txn])
        if isinstance(result, Rejection):
            log.warning("transaction_rejected", method="Score", code=result.code.name, error=result.message)
            await abort(context, result.code, result.message)
        self._log_decision(result, started)
        return scoring_pb2.ScoreResponse(decision=result)

    async def ScoreBatch(
        self, request: scoring_pb2.ScoreBatchRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreBatchResponse:
        started = time.perf_counter()
        count = len(request.transactions)
        if not 1 <= count <= self._max_batch_items:
            await abort_invalid(
                context,
                InvalidTransaction(
                    [
                        FieldViolation(
                            "transactions", f"must hold 1 to {self._max_batch_items} items, got {count}"
                        )
                    ]
                ),
            )
        now = time.time()
        results: list[scoring_pb2.ScoreBatchResult] = [scoring_pb2.ScoreBatchResult() for _ in range(count)]
        valid: list[ValidatedTransaction] = []
        positions: list[int] = []
        for index, message in enumerate(request.transactions):
            try:
                valid.append(validate_transaction(message, now, self._max_skew_s, f"transactions[{index}]"))
                positions.append(index)
            except InvalidTransaction as exc:
                self._reject("ScoreBatch", exc, message)
                results[index].error.CopyFrom(
                    item_error(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.violations)
                )
        if valid:
            for position, result in zip(positions, await self._decision_maker.decide(valid), strict=True):
                if isinstance(result, Rejection):
                    results[position].error.CopyFrom(item_error(result.code, result.message))
                else:
                    results[position].decision.CopyFrom(result)
                    self._log_decision(result, started)
        return scoring_pb2.ScoreBatchResponse(results=results)

    async def ScoreStream(
        self,
        request_iterator: AsyncIterator[scoring_pb2.ScoreStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[scoring_pb2.ScoreStreamResponse]:
        """Messages are decided concurrently (so they share micro-batches) and answered as decided."""
        responses: asyncio.Queue[scoring_pb2.ScoreStreamResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(self._stream_window)
        tasks: set[asyncio.Task[None]] = set()

        async def answer(message: transaction_pb2.Transaction) -> None:
            try:
                responses.put_nowait(await self._stream_answer(message))
            finally:
                window.release()

        async def read_requests() -> None:
            try:
                async for request in request_iterator:
                    await window.acquire()
                    task = asyncio.get_running_loop().create_task(answer(request.transaction))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*tasks)
            finally:
                responses.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read_requests())
        try:
            while (response := await responses.get()) is not None:
                yield response
            await reader  # re-raise a failure of the request stream
        finally:
            reader.cancel()

    async def _stream_answer(self, message: transaction_pb2.Transaction) -> scoring_pb2.ScoreStreamResponse:
        started = time.perf_counter()
        transaction_id = message.transaction_id
        try:
            txn = validate_transaction(message, time.time(), self._max_skew_s)
        except InvalidTransaction as exc:
            self._reject("ScoreStream", exc, message)
            return scoring_pb2.ScoreStreamResponse(
                transaction_id=transaction_id,
                error=item_error(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.violations),
            )
        (result,) = await self._decision_maker.decide([txn])
        if isinstance(result, Rejection):
            return scoring_pb2.ScoreStreamResponse(
                transaction_id=transaction_id, error=item_error(result.code, result.message)
            )
        self._log_decision(result, started)
        return scoring_pb2.ScoreStreamResponse(transaction_id=transaction_id, decision=result)
