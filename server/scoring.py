"""ScoringService: the gRPC face of the pipeline (validate -> ... -> respond).

The servicer owns only what is about the wire: validating each transaction, turning failures into
statuses or per-item errors, logging one event per decision. Deciding is the job of a
``DecisionMaker``, so the pipeline behind it can change without touching the contract.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import grpc
import structlog

from sentinel.server import metrics
from sentinel.server.batching import Coalescer
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
from sentinel.v1 import decision_pb2, errors_pb2, scoring_pb2, scoring_pb2_grpc, transaction_pb2

log = structlog.get_logger("sentinel.decisions")


class DecisionMaker(Protocol):
    """Decides a list of validated transactions, in order."""

    async def decide(
        self, transactions: list[ValidatedTransaction], deadline: float | None = None
    ) -> list[Result]:
        """One decision (or a rejection with its status) per transaction, same order; ``deadline``
        (``time.monotonic()``): when the caller gives up, which bounds how long the ledger may take."""
        ...


# What a ScoreBatch item or ScoreStream message is answered with.
Answer = decision_pb2.Decision | errors_pb2.ItemError


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
        stream_chunk_max: int = 256,
        stream_chunk_wait_s: float = 0.001,
        stream_chunks_in_flight: int = 4,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self._decision_maker = decision_maker
        self._max_skew_s = max_clock_skew_s
        self._max_batch_items = max_batch_items
        self._log_sample_rate = log_sample_rate
        self._stream_window = stream_window
        self._stream_chunk_max = stream_chunk_max
        self._stream_chunk_wait_s = stream_chunk_wait_s
        self._stream_chunks_in_flight = stream_chunks_in_flight
        self._dead_letters = dead_letters

    def _reject(self, method: str, error: InvalidTransaction, message: transaction_pb2.Transaction) -> None:
        """Log, count and dead-letter a transaction that failed validation."""
        log.warning("invalid_transaction", method=method, error=str(error))
        metrics.INVALID.labels(method).inc()
        if self._dead_letters is not None:
            self._dead_letters.record(method, error.violations, message)

    def _log_decisions(self, answers: Sequence[Answer], started: float, waits: Sequence[float] = ()) -> None:
        """One ``decision`` event per decision (a ``log_sample_rate`` share of them); latency counts from
        ``started``, plus the item's wait before it when ``waits`` are given."""
        elapsed = time.perf_counter() - started
        rate = self._log_sample_rate
        info = log.info
        for index, answer in enumerate(answers):
            if not isinstance(answer, decision_pb2.Decision) or (rate < 1.0 and random.random() >= rate):
                continue
            latency = elapsed + waits[index] if waits else elapsed
            info(
                "decision",
                transaction_id=answer.transaction_id,
                outcome=OUTCOME_NAMES[answer.outcome],
                risk_score=round(answer.risk_score, 4),
                model_version=answer.model_version,
                degraded=answer.degraded,
                replayed=answer.replayed,
                latency_ms=round(latency * 1000, 3),
            )

    async def _answer(
        self,
        method: str,
        messages: Sequence[transaction_pb2.Transaction],
        item_paths: bool,
        deadline: float | None,
    ) -> list[Answer]:
        """Validate every message and decide the valid ones in one call; one answer per message, in order.
        ``item_paths``: violations name ``transactions[i]`` (ScoreBatch) instead of ``transaction``."""
        now = time.time()
        answers: list[Answer | None] = []  # None: valid, decided below
        valid: list[ValidatedTransaction] = []
        for index, message in enumerate(messages):
            try:
                path = f"transactions[{index}]" if item_paths else "transaction"
                valid.append(validate_transaction(message, now, self._max_skew_s, path))
            except InvalidTransaction as exc:
                self._reject(method, exc, message)
                answers.append(item_error(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.violations))
            else:
                answers.append(None)
        decided = iter(await self._decision_maker.decide(valid, deadline) if valid else ())
        return [_answer_of(next(decided)) if answer is None else answer for answer in answers]

    async def Score(
        self, request: scoring_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreResponse:
        started = time.perf_counter()
        try:
            txn = validate_transaction(request.transaction, time.time(), self._max_skew_s)
        except InvalidTransaction as exc:
            self._reject("Score", exc, request.transaction)
            await abort_invalid(context, exc)
        (result,) = await self._decision_maker.decide([txn], _deadline(context))
        if isinstance(result, Rejection):
            log.warning("transaction_rejected", method="Score", code=result.code.name, error=result.message)
            await abort(context, result.code, result.message)
        self._log_decisions((result,), started)
        response = scoring_pb2.ScoreResponse()
        response.decision.CopyFrom(result)  # measured cheaper than ScoreResponse(decision=result)
        return response

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
        answers = await self._answer("ScoreBatch", request.transactions, True, _deadline(context))
        self._log_decisions(answers, started)
        response = scoring_pb2.ScoreBatchResponse()
        add = response.results.add
        for answer in answers:
            # into the added result: about half the cost of building results and copying them in
            _fill(add(), answer)
        return response

    async def ScoreStream(
        self,
        request_iterator: AsyncIterator[scoring_pb2.ScoreStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[scoring_pb2.ScoreStreamResponse]:
        """Messages are decided in chunks, cut the way micro-batches are (at once while no chunk of this
        stream is being decided, else when full or after the chunk wait), several chunks in flight so they
        share micro-batches; each chunk is answered in order as soon as it is decided. At most
        ``stream_window`` messages are read ahead of their answers."""
        responses: asyncio.Queue[list[scoring_pb2.ScoreStreamResponse] | Exception | None] = asyncio.Queue()
        window = asyncio.Semaphore(self._stream_window)
        deadline = _deadline(context)

        async def answer(messages: list[transaction_pb2.Transaction], waits: list[float]) -> None:
            try:
                responses.put_nowait(await self._stream_chunk(messages, waits, deadline))
            except Exception as exc:  # the pipeline failed: the stream fails with it
                responses.put_nowait(exc)
            finally:
                for _ in messages:
                    window.release()

        chunks: Coalescer[transaction_pb2.Transaction] = Coalescer(
            answer,
            max_size=self._stream_chunk_max,
            max_wait_s=self._stream_chunk_wait_s,
            max_in_flight=self._stream_chunks_in_flight,
        )

        async def read_requests() -> None:
            try:
                async for request in request_iterator:
                    await window.acquire()
                    chunks.add_many((request.transaction,))
                await chunks.close()
            finally:
                responses.put_nowait(None)

        chunks.start()
        reader = asyncio.get_running_loop().create_task(read_requests())
        try:
            while (chunk := await responses.get()) is not None:
                if isinstance(chunk, Exception):
                    raise chunk
                for response in chunk:
                    yield response
            await reader  # re-raise a failure of the request stream
        finally:
            reader.cancel()
            chunks.cancel()

    async def _stream_chunk(
        self, messages: list[transaction_pb2.Transaction], waits: list[float], deadline: float | None
    ) -> list[scoring_pb2.ScoreStreamResponse]:
        started = time.perf_counter()
        answers = await self._answer("ScoreStream", messages, False, deadline)
        self._log_decisions(answers, started, waits)
        responses = []
        for message, answer in zip(messages, answers, strict=True):
            response = scoring_pb2.ScoreStreamResponse(transaction_id=message.transaction_id)
            _fill(response, answer)
            responses.append(response)
        return responses


def _fill(target: scoring_pb2.ScoreBatchResult | scoring_pb2.ScoreStreamResponse, answer: Answer) -> None:
    """Set the decision-or-error of a batch result or stream response to ``answer``."""
    if isinstance(answer, decision_pb2.Decision):
        target.decision.CopyFrom(answer)
    else:
        target.error.CopyFrom(answer)


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline on the ``time.monotonic()`` clock (None: the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _answer_of(result: Result) -> Answer:
    return item_error(result.code, result.message) if isinstance(result, Rejection) else result
