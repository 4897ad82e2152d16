"""Input a real server must answer without failing anything else: request bytes that are no protobuf
message (INVALID_ARGUMENT, never UNKNOWN; a bad stream message gets its own item error) and a ScoreBatch
whose answer could not fit in one message (refused before anything is decided or recorded)."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from server_helpers import ledger_ids, open_channels, stubs, transaction

from sentinel.serverprocess import ServerProcess
from sentinel.v1 import scoring_pb2

pytestmark = pytest.mark.slow

MAX_MESSAGE_BYTES = 64 * 1024  # the smallest the settings allow: a few hundred decisions exceed it
SERVICE = "/sentinel.v1.ScoringService"
# Score and ScoreBatch requests both hold their transaction(s) in field 1.
MALFORMED = {
    "garbage": b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    "truncated field": b"\x0a",
    "length past the end": b"\x0a\x05ab",
    "field number 0": b"\x00\x01",
    "end group without start": b"\x0c",
    "wire type 7": b"\x0f",
    "invalid UTF-8 in transaction_id": b"\x0a\x03\x0a\x01\xff",
}


@pytest.fixture
def server(tmp_path: Path, redis_url: str, database_url: str):  # type: ignore[no-untyped-def]
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=redis_url,
        database_url=database_url,
        max_message_bytes=MAX_MESSAGE_BYTES,
        redis_budget_ms=2000,
        ledger_commit_timeout_s=20,
    ) as process:
        yield process


def raw_channel(address: str) -> grpc.Channel:
    """A channel the test sends bytes on as they are (no serializer on either side)."""
    channel = grpc.insecure_channel(address)
    open_channels.append(channel)
    return channel


def test_malformed_bytes_are_invalid_argument_and_the_worker_keeps_serving(server: ServerProcess) -> None:
    channel = raw_channel(server.address)
    for method in ("Score", "ScoreBatch"):
        call = channel.unary_unary(f"{SERVICE}/{method}")
        for name, body in MALFORMED.items():
            with pytest.raises(grpc.RpcError) as caught:
                call(body, timeout=10)
            assert (method, name, caught.value.code()) == (method, name, grpc.StatusCode.INVALID_ARGUMENT)
            assert "could not be parsed" in caught.value.details()

    good = [
        scoring_pb2.ScoreStreamRequest(transaction=transaction(f"raw-{i}")).SerializeToString()
        for i in (1, 2)
    ]
    replies = channel.stream_stream(f"{SERVICE}/ScoreStream")(
        iter([good[0], MALFORMED["invalid UTF-8 in transaction_id"], good[1]]), timeout=10
    )
    # answers are matched by transaction id, possibly out of order; an unparsed message has none
    answers = {a.transaction_id: a for a in map(scoring_pb2.ScoreStreamResponse.FromString, replies)}
    assert sorted(answers) == ["", "raw-1", "raw-2"]
    assert answers["raw-1"].HasField("decision") and answers["raw-2"].HasField("decision")
    assert answers[""].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "could not be parsed" in answers[""].error.message

    (stub,) = stubs(server.address, 1)
    reply = stub.Score(scoring_pb2.ScoreRequest(transaction=transaction("after-garbage")), timeout=10)
    assert reply.decision.transaction_id == "after-garbage"


def test_batch_whose_answer_cannot_fit_is_refused_before_anything_is_recorded(
    server: ServerProcess, database_url: str
) -> None:
    (stub,) = stubs(server.address, 1)
    # long ids: each decision echoes the id twice (transaction id and idempotency key)
    ids = [f"too-big-{index:03d}-{'x' * 100}" for index in range(250)]
    request = scoring_pb2.ScoreBatchRequest(transactions=[transaction(i) for i in ids])
    assert request.ByteSize() < MAX_MESSAGE_BYTES  # the request fits, its answer would not
    with pytest.raises(grpc.RpcError) as caught:
        stub.ScoreBatch(request, timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{MAX_MESSAGE_BYTES}-byte message limit" in caught.value.details()
    assert ledger_ids(database_url, ids) == {}

    match = re.search(r"at most (\d+) items", caught.value.details())
    assert match is not None
    fitting = ids[: int(match.group(1))]
    reply = stub.ScoreBatch(
        scoring_pb2.ScoreBatchRequest(transactions=[transaction(i) for i in fitting]), timeout=20
    )
    assert [result.decision.transaction_id for result in reply.results] == fitting
