"""ScoringService: the gRPC face of the pipeline (validate -> ... -> respond), bytes in, bytes out.

The handlers receive the request bytes (identity deserializers, see ``request_wire``) and return the
response bytes: the compiled decoder (``sentinel.hotpath.WireDecoder``) validates a whole call into
columns in one step, and the compiled response builders (``sentinel.hotpath.respond``) write the
answers around the Decision bytes the pipeline made. No protobuf message of a transaction or a
decision is built on the way, except for the rare invalid or undecodable item (logged, dead-lettered,
answered with its error). Deciding is the job of a ``DecisionMaker``, so the pipeline behind it can
change without touching the contract.

Calls of one transaction are decoded, decided and logged in groups: concurrent Score calls of a caller
(``score_calls``) and a ScoreStream's messages (its chunks) are cut by the same policy (``group_max``,
``group_wait_s``, ``groups_in_flight``) and pay the decoder, the pipeline's submission and the
decision log's write once per group. A ScoreBatch call is such a group already.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import NoReturn, Protocol

import grpc
import numpy as np
import structlog
from google.protobuf.message import DecodeError

from sentinel.hotpath import (
    KIND_DECISION,
    KIND_ERROR,
    DecodedTransactions,
    WireDecodeError,
    WireDecoder,
    score_batch_response,
    score_response,
    stream_responses,
)
from sentinel.hotpath.wire import UNDECODABLE
from sentinel.server import metrics
from sentinel.server.admission import Admission
from sentinel.server.batching import Coalescer
from sentinel.server.deadletter import DeadLetters
from sentinel.server.decision_log import DecisionLog
from sentinel.server.errors import (
    FieldViolation,
    InvalidTransaction,
    Refusal,
    abort,
    abort_invalid,
    item_error,
)
from sentinel.server.identity import current_caller
from sentinel.server.requests import Decided, Rejection, Result
from sentinel.server.result_size import ResultSizes, result_size
from sentinel.server.rules.compiler import RuleSource
from sentinel.server.score_calls import Answer, Invalid, ScoreCalls, ScoreGroup
from sentinel.server.validate import CURRENCY_EXPONENTS, MAX_ID_LENGTH
from sentinel.v1 import errors_pb2, scoring_pb2, transaction_pb2

log = structlog.get_logger("sentinel.decisions")


class DecisionMaker(Protocol):
    """Decides the valid rows of a call's decoded transactions, in order."""

    async def decide(
        self, transactions: DecodedTransactions, deadline: float | None = None, *, caller: str
    ) -> list[Result]:
        """One decision (or a rejection with its status) per valid row, same order; ``deadline``
        (``time.monotonic()``): when the caller gives up, which bounds how long the ledger may take;
        ``caller``: who asked (the subject of ``current_caller()``), recorded in each decision."""
        ...


def _invalid(violations: list[tuple[str, str]]) -> InvalidTransaction:
    """The decoder's violations of an item as the error the servicer answers and dead-letters."""
    return InvalidTransaction([FieldViolation(field, description) for field, description in violations])


def _undecodable(violations: list[tuple[str, str]]) -> str | None:
    """The decoder's reason when an item's bytes were no message at all (None: an invalid transaction)."""
    if len(violations) == 1 and violations[0][1].startswith(UNDECODABLE):
        return violations[0][1]
    return None


class ScoringServicer:
    """Implements sentinel.v1.ScoringService over a DecisionMaker, on request and response bytes.

    ``group_max``, ``group_wait_s`` and ``groups_in_flight`` cut Score calls into groups and a
    ScoreStream's messages into chunks (the server passes ``batch_max_size`` and ``batch_max_wait_ms``);
    ``stream_window``: how many messages a stream may read ahead of their answers."""

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
        group_max: int = 256,
        group_wait_s: float = 0.001,
        groups_in_flight: int = 4,
        dead_letters: DeadLetters | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._decision_maker = decision_maker
        self._admission = admission if admission is not None else Admission.unbounded()
        self._decoder = WireDecoder(CURRENCY_EXPONENTS, max_clock_skew_s)
        self._max_batch_items = max_batch_items
        self._max_response_bytes = max_response_bytes
        self._result_sizes = ResultSizes(rules)
        self._decision_log = DecisionLog(log_sample_rate)
        self._score_calls = ScoreCalls(
            self._score_group,
            max_size=group_max,
            max_wait_s=group_wait_s,
            max_in_flight=groups_in_flight,
        )
        self._stream_window = stream_window
        self._group_max = group_max
        self._group_wait_s = group_wait_s
        self._groups_in_flight = groups_in_flight
        self._dead_letters = dead_letters

    async def close(self) -> None:
        """Answer the Score calls still queued (after the server stopped taking calls)."""
        await self._score_calls.close()

    # ------------------------------------------------------------------------------- refusals
    def _note_undecodable(self, method: str, error: str) -> None:
        """Log and count request bytes that could not be parsed (there is no transaction to dead-letter)."""
        log.warning("undecodable_request", method=method, error=error)
        metrics.INVALID.labels(method).inc()

    def _reject(self, method: str, error: InvalidTransaction, message: transaction_pb2.Transaction) -> None:
        """Log, count and dead-letter a transaction that failed validation."""
        log.warning("invalid_transaction", method=method, error=str(error))
        metrics.INVALID.labels(method).inc()
        if self._dead_letters is not None:
            self._dead_letters.record(method, error.violations, message)

    def _item_errors(
        self,
        method: str,
        decoded: DecodedTransactions,
        messages: Mapping[int, transaction_pb2.Transaction | None] | Sequence[transaction_pb2.Transaction],
    ) -> dict[int, errors_pb2.ItemError]:
        """The item error of each invalid or undecodable item (logged, counted, dead-lettered);
        ``messages[item]``: the item parsed by protobuf, for the dead letter (None: not parseable)."""
        errors: dict[int, errors_pb2.ItemError] = {}
        for item, violations in decoded.errors:
            reason = _undecodable(violations)
            if reason is not None:
                self._note_undecodable(method, reason)
                errors[item] = item_error(grpc.StatusCode.INVALID_ARGUMENT, reason)
                continue
            error = _invalid(violations)
            message = messages[item]
            self._reject(method, error, message if message is not None else transaction_pb2.Transaction())
            errors[item] = item_error(grpc.StatusCode.INVALID_ARGUMENT, str(error), error.violations)
        return errors

    def _oversized(self, decoded: DecodedTransactions, errors: dict[int, errors_pb2.ItemError]) -> str | None:
        """Why the answer to a batch might not fit in one message (None when it surely fits): decided
        transactions are recorded, so this is known before any of them is decided."""
        largest = self._result_sizes.largest()
        bound = sum(result_size(scoring_pb2.ScoreBatchResult(error=error)) for error in errors.values())
        bound += len(decoded.transaction_ids) * (largest - 2 * MAX_ID_LENGTH)
        bound += sum(map(len, decoded.transaction_ids)) + sum(map(len, decoded.idempotency_keys))
        limit = self._max_response_bytes
        if bound <= limit:
            return None
        return (
            f"the answer to these {decoded.count} items could take {bound} bytes, over the {limit}-byte "
            f"message limit; at most {limit // largest} items fit in one batch under the rules in force"
        )

    # ------------------------------------------------------------------------------- methods
    async def Score(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        async with self._admission.admit(context, "Score", 1, len(request)):
            answer = await self._score_calls.decide(request, _deadline(context), current_caller().subject)
        if not isinstance(answer, Decided):
            await self._refuse_score(answer, request, context)
        return score_response(answer.decision, answer.ledger_sequence, answer.replayed)

    async def _refuse_score(
        self, answer: Invalid | Rejection, request: bytes, context: grpc.aio.ServicerContext
    ) -> NoReturn:
        """End a Score call whose transaction could not be decoded, was invalid or was rejected."""
        if isinstance(answer, Rejection):
            log.warning("transaction_rejected", method="Score", code=answer.code.name, error=answer.message)
            await abort(context, answer.code, answer.message)
        reason = _undecodable(answer.violations)
        if reason is not None:
            self._note_undecodable("Score", reason)
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, reason)
        error = _invalid(answer.violations)
        self._reject("Score", error, scoring_pb2.ScoreRequest.FromString(request).transaction)
        await abort_invalid(context, error)

    async def _score_group(self, group: ScoreGroup) -> list[Answer]:
        """validate -> decide -> log for a group of Score calls: one decode, one submission, one write."""
        started = time.perf_counter()
        decoded = self._decoder.decode_singles(group.bodies, time.time())
        results: list[Result] = []
        if decoded.transaction_ids:
            results = await self._decision_maker.decide(decoded, group.deadline, caller=group.caller)
        answers: list[Answer]
        if not decoded.errors:  # the usual case: one result per call, in order
            answers = results  # type: ignore[assignment]
            waits = group.waits
        else:
            answers = [Invalid([])] * decoded.count
            for item, violations in decoded.errors:
                answers[item] = Invalid(violations)
            rows = decoded.items.tolist()
            for item, result in zip(rows, results, strict=True):
                answers[item] = result
            waits = [group.waits[item] for item in rows]
        group.context.run(self._decision_log.write, decoded.transaction_ids, results, started, waits)
        return answers

    async def ScoreBatch(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            decoded = self._decoder.decode_batch(request, time.time())
        except WireDecodeError as exc:
            await self._abort_undecodable("ScoreBatch", f"{UNDECODABLE}{exc}", context)
        count = decoded.count
        if not 1 <= count <= self._max_batch_items:
            violation = FieldViolation(
                "transactions", f"must hold 1 to {self._max_batch_items} items, got {count}"
            )
            await abort_invalid(context, InvalidTransaction([violation]))
        errors: dict[int, errors_pb2.ItemError] = {}
        if decoded.errors:
            messages = scoring_pb2.ScoreBatchRequest.FromString(request).transactions
            errors = self._item_errors("ScoreBatch", decoded, messages)
        oversized = self._oversized(decoded, errors)
        if oversized is not None:
            await abort_invalid(context, InvalidTransaction([FieldViolation("transactions", oversized)]))
        results: list[Result] = []
        if rows := len(decoded.transaction_ids):
            async with self._admission.admit(context, "ScoreBatch", rows, len(request)):
                results = await self._decision_maker.decide(
                    decoded, _deadline(context), caller=current_caller().subject
                )
        self._decision_log.write(decoded.transaction_ids, results, started)
        return score_batch_response(*_answers(count, decoded.items, results, errors))

    async def _abort_undecodable(
        self, method: str, reason: str, context: grpc.aio.ServicerContext
    ) -> NoReturn:
        """End a unary call whose request could not be parsed: there is nothing to answer item by item."""
        self._note_undecodable(method, reason)
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, reason)

    async def ScoreStream(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Messages are decided in chunks, cut the way micro-batches are (at once while no chunk of this
        stream is being decided, else when full or after the chunk wait), several chunks in flight so they
        share micro-batches; each chunk is answered in order as soon as it is decided. At most
        ``stream_window`` messages are read ahead of their answers. A message that cannot be parsed is
        answered in its place with an item error (and no transaction id). A chunk waits for room under the
        worker's in-flight bound (the stream is slowed, not refused); a chunk past the caller's rate limit
        is answered with RESOURCE_EXHAUSTED item errors, and the stream goes on."""
        responses: asyncio.Queue[list[bytes] | Exception | None] = asyncio.Queue()
        window = asyncio.Semaphore(self._stream_window)
        deadline = _deadline(context)
        caller = current_caller().subject  # the call's, read in its own task

        async def answer(bodies: list[bytes], waits: list[float]) -> None:
            try:
                responses.put_nowait(await self._stream_chunk(bodies, waits, deadline, caller))
            except Exception as exc:  # the pipeline failed: the stream fails with it
                responses.put_nowait(exc)
            finally:
                for _ in bodies:
                    window.release()

        chunks: Coalescer[bytes] = Coalescer(
            answer,
            max_size=self._group_max,
            max_wait_s=self._group_wait_s,
            max_in_flight=self._groups_in_flight,
        )

        async def read_requests() -> None:
            try:
                async for body in request_iterator:
                    await window.acquire()
                    chunks.add_many((body,))
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
        self, bodies: list[bytes], waits: list[float], deadline: float | None, caller: str
    ) -> list[bytes]:
        started = time.perf_counter()
        decoded = self._decoder.decode_singles(bodies, time.time())
        errors: dict[int, errors_pb2.ItemError] = {}
        items = decoded.items.tolist()
        ids = [""] * decoded.count
        for row, item in enumerate(items):
            ids[item] = decoded.transaction_ids[row]
        if decoded.errors:  # only the invalid messages are parsed, for their ids and dead letters
            messages = {item: _parsed_transaction(bodies[item]) for item, _ in decoded.errors}
            errors = self._item_errors("ScoreStream", decoded, messages)
            for item, message in messages.items():
                ids[item] = message.transaction_id if message is not None else ""
        results: list[Result] = []
        if rows := len(decoded.transaction_ids):
            admitted = await self._admission.enter_stream_chunk(rows, sum(map(len, bodies)))
            if isinstance(admitted, Refusal):  # rate-limited: each message is refused, the stream goes on
                results = [Rejection(grpc.StatusCode.RESOURCE_EXHAUSTED, admitted.message)] * rows
            else:
                with admitted:
                    results = await self._decision_maker.decide(decoded, deadline, caller=caller)
        row_waits = [waits[item] for item in items]
        self._decision_log.write(decoded.transaction_ids, results, started, row_waits)
        return stream_responses(ids, *_answers(decoded.count, decoded.items, results, errors))


def _parsed_transaction(body: bytes) -> transaction_pb2.Transaction | None:
    """A stream message's transaction parsed by protobuf (for its id and the dead letter), if it parses."""
    try:
        return scoring_pb2.ScoreStreamRequest.FromString(body).transaction
    except DecodeError:
        return None


def _answers(
    count: int, items: np.ndarray, results: list[Result], errors: dict[int, errors_pb2.ItemError]
) -> tuple[np.ndarray, list[bytes], np.ndarray, np.ndarray]:
    """The kinds, payloads, ledger sequences and replay flags of a call's answers, by item."""
    if not errors and all(result.__class__ is Decided for result in results):  # the usual case
        decided: list[Decided] = results  # type: ignore[assignment]
        return (
            np.full(count, KIND_DECISION, dtype=np.uint8),
            [result.decision for result in decided],
            np.fromiter((result.ledger_sequence for result in decided), dtype=np.int64, count=count),
            np.fromiter((result.replayed for result in decided), dtype=np.uint8, count=count),
        )
    kinds = np.full(count, KIND_ERROR, dtype=np.uint8)
    payloads = [b""] * count
    sequences = np.zeros(count, dtype=np.int64)
    replayed = np.zeros(count, dtype=np.uint8)
    for item, error in errors.items():
        payloads[item] = error.SerializeToString()
    for item, result in zip(items.tolist(), results, strict=True):
        if isinstance(result, Decided):
            kinds[item] = KIND_DECISION
            payloads[item] = result.decision
            sequences[item] = result.ledger_sequence
            replayed[item] = result.replayed
        else:
            payloads[item] = item_error(result.code, result.message).SerializeToString()
    return kinds, payloads, sequences, replayed


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline on the ``time.monotonic()`` clock (None: the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
