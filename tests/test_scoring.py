"""The ScoringService servicer over a fake DecisionMaker: answers in order, per-item errors, stream chunks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import grpc
import pytest
from redis.asyncio import Redis

from sentinel.hotpath import DecodedTransactions
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
    scoring = servicer(decider, stream_chunk_wait_s=5.0)
    replies = await asyncio.wait_for(stream(scoring, ["lone-1"]), timeout=1.0)
    assert [r.transaction_id for r in replies] == ["lone-1"]


async def test_stream_reads_at_most_the_window_ahead() -> None:
    decider = FakeDecisionMaker(delay=0.01)
    replies = await stream(
        servicer(decider, stream_window=16, stream_chunk_max=4), [f"w-{i}" for i in range(200)]
    )
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
