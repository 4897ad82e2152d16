"""The ScoringService servicer over a fake DecisionMaker: answers in order, per-item errors, stream chunks."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import grpc
import pytest
import structlog
from redis.asyncio import Redis

import sentinel.server.decision_log as decision_log
from sentinel.hotpath import DecodedTransactions
from sentinel.hotpath.wire import UNDECODABLE
from sentinel.server.deadletter import STREAM_KEY, DeadLetters, read_dead_letters
from sentinel.server.identity import CALLER, Caller
from sentinel.server.requests import Decided, Rejection, Result
from sentinel.server.rules.compiler import build_rule_set
from sentinel.server.scoring import ScoringServicer
from sentinel.v1 import decision_pb2, scoring_pb2, transaction_pb2

INVALID_ID = "bad id!"  # not an allowed transaction id
REJECTED_PREFIX = "reject-"  # the fake decision maker answers these with ALREADY_EXISTS


def transaction(transaction_id: str) -> transaction_pb2.Transaction:
    txn = transaction_pb2.Transaction(
        transaction_id=transaction_id,
        account_id="C1",
        type=transaction_pb2.TRANSACTION_TYPE_PAYMENT,
        amount=transaction_pb2.Money(amount="10.00", currency="EUR"),
    )
    txn.event_time.FromSeconds(int(time.time()) - 5)
    return txn


class FakeDecisionMaker:
    """Decides after ``delay``; records every call and how many transactions were being decided at once."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[list[str]] = []
        self.callers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def decide(
        self, decoded: DecodedTransactions, deadline: float | None = None, *, caller: str
    ) -> list[Result]:
        transactions = decoded.transaction_ids
        self.calls.append(list(transactions))
        self.callers.append(caller)
        self.in_flight += len(transactions)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                raise RuntimeError("pipeline exploded")
        finally:
            self.in_flight -= len(transactions)
        return [self._result(t) for t in transactions]

    @staticmethod
    def _result(transaction_id: str) -> Result:
        if transaction_id.startswith(REJECTED_PREFIX):
            return Rejection(grpc.StatusCode.ALREADY_EXISTS, "key reused")
        decision = decision_pb2.Decision(transaction_id=transaction_id, outcome=decision_pb2.OUTCOME_APPROVE)
        return Decided(decision.SerializeToString(deterministic=True), decision.outcome, 0.0, False, "m1")


class NoDeadline:
    """The one part of a call's context the servicer reads when it does not abort: no deadline set."""

    def time_remaining(self) -> float | None:
        return None


CONTEXT = cast(grpc.aio.ServicerContext, NoDeadline())


class NoRules:
    """A rule source whose rule set is empty."""

    current = build_rule_set([], generation=0)


def servicer(decision_maker: FakeDecisionMaker, **options: Any) -> ScoringServicer:
    return ScoringServicer(
        decision_maker,
        max_clock_skew_s=300,
        max_batch_items=1000,
        max_response_bytes=8 * 1024 * 1024,
        rules=NoRules(),
        log_sample_rate=1.0,
        **options,
    )


async def requests(ids: Iterable[str], pause_every: int = 0) -> AsyncIterator[bytes]:
    """ScoreStream request bytes, as grpc hands them to the servicer."""
    for index, transaction_id in enumerate(ids):
        if pause_every and index % pause_every == 0:
            await asyncio.sleep(0.001)
        yield scoring_pb2.ScoreStreamRequest(transaction=transaction(transaction_id)).SerializeToString()


async def stream(scoring: ScoringServicer, ids: Iterable[str], pause_every: int = 0) -> list[Any]:
    return [
        scoring_pb2.ScoreStreamResponse.FromString(response)
        async for response in scoring.ScoreStream(requests(ids, pause_every), CONTEXT)
    ]


async def score_batch(scoring: ScoringServicer, request: scoring_pb2.ScoreBatchRequest) -> Any:
    """ScoreBatch on the request's bytes, its response parsed."""
    return scoring_pb2.ScoreBatchResponse.FromString(
        await scoring.ScoreBatch(request.SerializeToString(), CONTEXT)
    )


async def test_stream_decides_in_chunks_and_answers_every_message_once() -> None:
    decider = FakeDecisionMaker(delay=0.005)
    ids = [f"s-{i}" for i in range(500)]
    replies = await stream(servicer(decider), ids, pause_every=10)
    assert sorted(r.transaction_id for r in replies) == sorted(ids)
    assert all(r.decision.transaction_id == r.transaction_id for r in replies)
    assert len(decider.calls) < len(ids) / 4  # one call per message would be 500
    # each chunk is answered in the order its messages arrived
    position = {
        transaction_id: index for index, transaction_id in enumerate(r.transaction_id for r in replies)
    }
    for call in decider.calls:
        assert [position[t] for t in call] == sorted(position[t] for t in call)


async def test_lone_stream_message_is_not_held_back() -> None:
    decider = FakeDecisionMaker()
    scoring = servicer(decider, group_wait_s=5.0)
    replies = await asyncio.wait_for(stream(scoring, ["lone-1"]), timeout=1.0)
    assert [r.transaction_id for r in replies] == ["lone-1"]


async def test_stream_reads_at_most_the_window_ahead() -> None:
    decider = FakeDecisionMaker(delay=0.01)
    replies = await stream(servicer(decider, stream_window=16, group_max=4), [f"w-{i}" for i in range(200)])
    assert len(replies) == 200
    assert decider.max_in_flight <= 16
    assert max(len(call) for call in decider.calls) <= 4


async def test_stream_item_errors_keep_the_stream_and_the_transaction_id() -> None:
    ids = ["ok-1", INVALID_ID, f"{REJECTED_PREFIX}1", "ok-2"]
    replies = {r.transaction_id: r for r in await stream(servicer(FakeDecisionMaker()), ids)}
    assert set(replies) == set(ids)
    invalid = replies[INVALID_ID]
    assert invalid.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in invalid.error.field_violations] == ["transaction.transaction_id"]
    assert replies[f"{REJECTED_PREFIX}1"].error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert replies["ok-1"].decision.transaction_id == "ok-1" and replies["ok-2"].HasField("decision")


async def test_pipeline_failure_fails_the_stream() -> None:
    with pytest.raises(RuntimeError, match="pipeline exploded"):
        await stream(servicer(FakeDecisionMaker(fail=True)), ["f-1", "f-2"])


async def test_batch_results_in_request_order_with_item_errors() -> None:
    decider = FakeDecisionMaker()
    ids = ["b-0", INVALID_ID, f"{REJECTED_PREFIX}2", "b-3"]
    request = scoring_pb2.ScoreBatchRequest(transactions=[transaction(t) for t in ids])
    response = await score_batch(servicer(decider), request)
    assert decider.calls == [["b-0", f"{REJECTED_PREFIX}2", "b-3"]]  # one decide call, invalid left out
    kinds = [r.WhichOneof("result") for r in response.results]
    assert kinds == ["decision", "error", "error", "decision"]
    assert [v.field for v in response.results[1].error.field_violations] == ["transactions[1].transaction_id"]
    assert response.results[2].error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert [response.results[i].decision.transaction_id for i in (0, 3)] == ["b-0", "b-3"]


async def test_out_of_range_timestamps_are_item_errors_and_still_dead_lettered(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    await client.delete(STREAM_KEY)
    dead_letters = DeadLetters(client, max_entries=100)
    far_future, negative_nanos = transaction("far-future"), transaction("negative-nanos")
    far_future.event_time.seconds = 10**12  # beyond what JSON timestamps can show
    negative_nanos.event_time.nanos = -1
    batch = [far_future, transaction("fine"), negative_nanos]
    request = scoring_pb2.ScoreBatchRequest(transactions=batch)
    scoring = servicer(FakeDecisionMaker(), dead_letters=dead_letters)
    response = await score_batch(scoring, request)
    assert [r.WhichOneof("result") for r in response.results] == ["error", "decision", "error"]
    assert response.results[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    stream_replies = await stream(scoring, ["s-fine"])  # the worker keeps answering
    assert stream_replies[0].HasField("decision")
    await dead_letters.drain()
    letters = await read_dead_letters(client, 10)
    assert [letter["transaction_id"] for letter in letters] == ["negative-nanos", "far-future"]
    assert letters[1]["transaction"]["eventTime"] == {"seconds": str(10**12), "nanos": 0}
    await client.aclose()


async def test_each_call_is_decided_for_its_own_caller() -> None:
    """The servicer passes on the caller the authentication interceptor made current in the call's task
    (the default, without authentication: anonymous)."""
    decider = FakeDecisionMaker()
    scoring = servicer(decider)

    async def as_caller(subject: str, ids: list[str]) -> None:
        CALLER.set(Caller(subject=subject, roles=frozenset({"scorer"}), source="jwt"))
        await score_batch(scoring, scoring_pb2.ScoreBatchRequest(transactions=[transaction(i) for i in ids]))
        await stream(scoring, [f"{i}-s" for i in ids])

    await asyncio.gather(
        asyncio.create_task(as_caller("svc-a", ["a-1"])), asyncio.create_task(as_caller("svc-b", ["b-1"]))
    )
    await score_batch(scoring, scoring_pb2.ScoreBatchRequest(transactions=[transaction("c-1")]))
    by_call = dict(zip((ids[0] for ids in decider.calls), decider.callers, strict=True))
    assert by_call == {"a-1": "svc-a", "a-1-s": "svc-a", "b-1": "svc-b", "b-1-s": "svc-b", "c-1": "anonymous"}


class Aborted(Exception):
    """What a call's context raises when the servicer ends the call with an error status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class RecordingContext(NoDeadline):
    """A call's context whose aborts raise ``Aborted`` with the status, as grpc's raise AbortError."""

    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> None:
        raise Aborted(code, details)

    async def abort_with_status(self, status: Any) -> None:
        raise Aborted(status.code, status.details)


def score_body(transaction_id: str) -> bytes:
    return scoring_pb2.ScoreRequest(transaction=transaction(transaction_id)).SerializeToString()


async def score(scoring: ScoringServicer, body: bytes) -> str | tuple[grpc.StatusCode, str]:
    """The transaction id a Score call was answered for, or the status it ended with."""
    try:
        response = await scoring.Score(body, cast(grpc.aio.ServicerContext, RecordingContext()))
    except Aborted as aborted:
        return aborted.code, aborted.details
    return scoring_pb2.ScoreResponse.FromString(response).decision.transaction_id


async def test_concurrent_score_calls_are_decided_in_groups_and_answered_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 Score calls at once from two callers, valid ones mixed with invalid, undecodable and rejected
    ones: every call gets its own answer or status, the pipeline decides them in a few groups of one
    caller each, and each decision log line carries the context (the caller) of the call it answers."""
    decider = FakeDecisionMaker(delay=0.005)
    scoring = servicer(decider)
    out = io.BytesIO()
    monkeypatch.setattr(decision_log, "json_lines_out", lambda: out)

    async def call(subject: str, index: int) -> str | tuple[grpc.StatusCode, str]:
        CALLER.set(Caller(subject=subject, roles=frozenset({"scorer"}), source="jwt"))
        structlog.contextvars.bind_contextvars(caller=subject)
        name = f"{subject}-{index}"
        body = {
            0: score_body(name),
            1: score_body(name),
            2: score_body(INVALID_ID),
            3: score_body(name)[:-3],  # truncated: not a message
            4: score_body(f"{REJECTED_PREFIX}{name}"),
        }[index % 5]
        return await score(scoring, body)

    calls = [(subject, index) for index in range(150) for subject in ("svc-a", "svc-b")]
    answers = await asyncio.gather(*(asyncio.create_task(call(*c)) for c in calls))

    for (subject, index), answer in zip(calls, answers, strict=True):
        kind = index % 5
        if kind < 2:
            assert answer == f"{subject}-{index}"
        elif kind == 2:
            assert answer[0] == grpc.StatusCode.INVALID_ARGUMENT and "transaction_id" in answer[1]
        elif kind == 3:
            assert answer[0] == grpc.StatusCode.INVALID_ARGUMENT and answer[1].startswith(UNDECODABLE)
        else:
            assert answer == (grpc.StatusCode.ALREADY_EXISTS, "key reused")
    assert len(decider.calls) <= len(calls) / 10
    for ids, caller in zip(decider.calls, decider.callers, strict=True):
        assert all(i.removeprefix(REJECTED_PREFIX).startswith(f"{caller}-") for i in ids)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(line["transaction_id"] for line in lines) == sorted(
        a for a in answers if isinstance(a, str)
    )
    assert all(line["transaction_id"].startswith(f"{line['caller']}-") for line in lines)


async def test_a_score_call_that_gives_up_leaves_its_group_answered() -> None:
    decider = FakeDecisionMaker(delay=0.02)
    scoring = servicer(decider)
    first = asyncio.create_task(score(scoring, score_body("g-0")))  # decided at once, alone
    await asyncio.sleep(0.005)
    group = [asyncio.create_task(score(scoring, score_body(f"g-{i}"))) for i in range(1, 6)]
    await asyncio.sleep(0.005)  # cut while the first is decided, after the 1 ms wait
    group[0].cancel()
    assert await asyncio.gather(first, *group[1:]) == [f"g-{i}" for i in (0, 2, 3, 4, 5)]
    assert group[0].cancelled()
    assert decider.calls == [["g-0"], [f"g-{i}" for i in range(1, 6)]]


async def test_pipeline_failure_fails_each_score_call_of_the_group() -> None:
    scoring = servicer(FakeDecisionMaker(fail=True))
    calls = [score(scoring, score_body(f"f-{i}")) for i in range(3)]
    failures = await asyncio.gather(*calls, return_exceptions=True)
    assert [str(failure) for failure in failures] == ["pipeline exploded"] * 3
