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
from typing import NoReturn, Protocol

import grpc
import structlog

from sentinel.server import metrics
from sentinel.server.batching import Coalescer
from sentinel.server.deadletter import DeadLetters
from sentinel.server.decide import OUTCOME_NAMES
from sentinel.server.errors import abort, abort_invalid, item_error
from sentinel.server.pipeline import Rejection, Result, RuleSource
from sentinel.server.request_wire import Undecodable
from sentinel.server.result_size import ResultSizes, result_size
from sentinel.server.validate import (
    MAX_ID_LENGTH,
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
        max_response_bytes: int,
        rules: RuleSource,
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
        self._max_response_bytes = max_response_bytes
        self._result_sizes = ResultSizes(rules)
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

    def _note_undecodable(self, method: str, request: Undecodable) -> None:
        """Log and count request bytes that could not be parsed (there is no transaction to dead-letter)."""
        log.warning("undecodable_request", method=method, error=request.error)
        metrics.INVALID.labels(method).inc()

    async def _abort_undecodable(
        self, method: str, request: Undecodable, context: grpc.aio.ServicerContext
    ) -> NoReturn:
        """End a unary call whose request could not be parsed: there is nothing to answer item by item."""
        self._note_undecodable(method, request)
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.error)

    def _validate(
        self, method: str, messages: Sequence[transaction_pb2.Transaction | Undecodable], item_paths: bool
    ) -> tuple[list[errors_pb2.ItemError | None], list[ValidatedTransaction]]:
        """Validate every message: the item error of each invalid one, None in the places of the valid
        ones, which come second, in order. ``item_paths``: violations name ``transactions[i]``
        (ScoreBatch) instead of ``transaction``."""
        now = time.time()
        answers: list[errors_pb2.ItemError | None] = []
        valid: list[ValidatedTransaction] = []
        for index, message in enumerate(messages):
            if isinstance(message, Undecodable):
                self._note_undecodable(method, message)
                answers.append(item_error(grpc.StatusCode.INVALID_ARGUMENT, message.error))
                continue
            try:
                path = f"transactions[{index}]" if item_paths else "transaction"
                valid.append(validate_transaction(message, now, self._max_skew_s, path))
            except InvalidTransaction as exc:
                self._reject(method, exc, message)
                answers.append(item_error(grpc.StatusCode.INVALID_ARGUMENT, str(exc), exc.violations))
            else:
                answers.append(None)
        return answers, valid

    def _oversized(
        self, answers: list[errors_pb2.ItemError | None], valid: list[ValidatedTransaction]
    ) -> str | None:
        """Why the answer to a batch might not fit in one message (None when it surely fits): decided
        transactions are recorded, so this is known before any of them is decided."""
        largest = self._result_sizes.largest()
        errors = sum(result_size(scoring_pb2.ScoreBatchResult(error=a)) for a in answers if a is not None)
        ids = sum(len(txn.transaction_id) + len(txn.idempotency_key) for txn in valid)
        bound = errors + len(valid) * (largest - 2 * MAX_ID_LENGTH) + ids
        limit = self._max_response_bytes
        if bound <= limit:
            return None
        return (
            f"the answer to these {len(answers)} items could take {bound} bytes, over the {limit}-byte "
            f"message limit; at most {limit // largest} items fit in one batch under the rules in force"
        )

    async def _answer(
        self,
        answers: list[errors_pb2.ItemError | None],
        valid: list[ValidatedTransaction],
        deadline: float | None,
    ) -> list[Answer]:
        """Decide the valid transactions in one call; the answers with their decisions in their places."""
        decided = iter(await self._decision_maker.decide(valid, deadline) if valid else ())
        return [_answer_of(next(decided)) if answer is None else answer for answer in answers]

    async def Score(
        self, request: scoring_pb2.ScoreRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreResponse:
        started = time.perf_counter()
        if isinstance(request, Undecodable):
            await self._abort_undecodable("Score", request, context)
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
        self, request: scoring_pb2.ScoreBatchRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> scoring_pb2.ScoreBatchResponse:
        started = time.perf_counter()
        if isinstance(request, Undecodable):
            await self._abort_undecodable("ScoreBatch", request, context)
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
        checked, valid = self._validate("ScoreBatch", request.transactions, item_paths=True)
        oversized = self._oversized(checked, valid)
        if oversized is not None:
            await abort_invalid(context, InvalidTransaction([FieldViolation("transactions", oversized)]))
        answers = await self._answer(checked, valid, _deadline(context))
        self._log_decisions(answers, started)
        response = scoring_pb2.ScoreBatchResponse()
        add = response.results.add
        for answer in answers:
            # into the added result: about half the cost of building results and copying them in
            _fill(add(), answer)
        return response

    async def ScoreStream(
        self,
        request_iterator: AsyncIterator[scoring_pb2.ScoreStreamRequest | Undecodable],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[scoring_pb2.ScoreStreamResponse]:
        """Messages are decided in chunks, cut the way micro-batches are (at once while no chunk of this
        stream is being decided, else when full or after the chunk wait), several chunks in flight so they
        share micro-batches; each chunk is answered in order as soon as it is decided. At most
        ``stream_window`` messages are read ahead of their answers. A message that cannot be parsed is
        answered in its place with an item error (and no transaction id)."""
        responses: asyncio.Queue[list[scoring_pb2.ScoreStreamResponse] | Exception | None] = asyncio.Queue()
        window = asyncio.Semaphore(self._stream_window)
        deadline = _deadline(context)

        async def answer(
            messages: list[transaction_pb2.Transaction | Undecodable], waits: list[float]
        ) -> None:
            try:
                responses.put_nowait(await self._stream_chunk(messages, waits, deadline))
            except Exception as exc:  # the pipeline failed: the stream fails with it
                responses.put_nowait(exc)
            finally:
                for _ in messages:
                    window.release()

        chunks: Coalescer[transaction_pb2.Transaction | Undecodable] = Coalescer(
            answer,
            max_size=self._stream_chunk_max,
            max_wait_s=self._stream_chunk_wait_s,
            max_in_flight=self._stream_chunks_in_flight,
        )

        async def read_requests() -> None:
            try:
                async for request in request_iterator:
                    await window.acquire()
                    chunks.add_many((request if isinstance(request, Undecodable) else request.transaction,))
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
        self,
        messages: list[transaction_pb2.Transaction | Undecodable],
        waits: list[float],
        deadline: float | None,
    ) -> list[scoring_pb2.ScoreStreamResponse]:
        started = time.perf_counter()
        answers = await self._answer(*self._validate("ScoreStream", messages, item_paths=False), deadline)
        self._log_decisions(answers, started, waits)
        responses = []
        for message, answer in zip(messages, answers, strict=True):
            transaction_id = "" if isinstance(message, Undecodable) else message.transaction_id
            response = scoring_pb2.ScoreStreamResponse(transaction_id=transaction_id)
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
