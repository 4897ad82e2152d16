"""LedgerService over a real grpc.aio server and a real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from ledger_helpers import ledger_settings, make_record

from sentinel.ledger import LedgerWriter
from sentinel.server.ledger_service import LedgerServicer, encode_page_token
from sentinel.system import free_port
from sentinel.v1 import decision_pb2, ledger_pb2, ledger_pb2_grpc


@pytest.fixture
async def ledger_stub(database_url: str, tmp_path: Path) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceStub]:
    settings = ledger_settings(database_url, tmp_path)
    writer = LedgerWriter(settings, name="service")
    await writer.start()
    await writer.submit(
        [
            make_record("tx-1", account="alice", counterparty="bob", amount="100.50"),
            make_record("tx-2", account="bob", counterparty="alice", amount="0.25"),
            make_record("tx-3", account="alice", counterparty="carol", amount="7", outcome="DECLINE"),
            make_record("tx-4", account="alice", counterparty="bob", amount="1000", currency="JPY"),
            make_record("tx-5", account="dave", counterparty="alice", amount="3.10", outcome="REVIEW"),
            make_record("tx-6", account="erin", counterparty="frank", amount="1.00", outcome="DECLINE"),
        ]
    )
    await writer.close()
    servicer = await LedgerServicer.open(settings)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield ledger_pb2_grpc.LedgerServiceStub(channel)
    await channel.close()
    await server.stop(None)
    await servicer.close()


def _field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return []
    fields = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        fields.extend(violation.field for violation in bad_request.field_violations)
    return fields


async def test_get_balance_per_currency(ledger_stub: ledger_pb2_grpc.LedgerServiceStub) -> None:
    response = await ledger_stub.GetBalance(ledger_pb2.GetBalanceRequest(account_id="alice"))
    assert {b.currency: b.amount for b in response.balances} == {"EUR": "-100.25", "JPY": "-1000"}
    assert response.as_of_sequence > 0
    bob = await ledger_stub.GetBalance(ledger_pb2.GetBalanceRequest(account_id="bob"))
    assert {b.currency: b.amount for b in bob.balances} == {"EUR": "100.25", "JPY": "1000"}
    erin = await ledger_stub.GetBalance(ledger_pb2.GetBalanceRequest(account_id="erin"))
    assert list(erin.balances) == []  # seen, but nothing approved


async def test_get_balance_errors_name_the_field(ledger_stub: ledger_pb2_grpc.LedgerServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await ledger_stub.GetBalance(ledger_pb2.GetBalanceRequest(account_id="nobody"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "account_id" in (unknown.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await ledger_stub.GetBalance(ledger_pb2.GetBalanceRequest(account_id=""))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field_violations(invalid.value) == ["account_id"]


async def test_list_history_pages_newest_first(ledger_stub: ledger_pb2_grpc.LedgerServiceStub) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        response = await ledger_stub.ListHistory(
            ledger_pb2.ListHistoryRequest(account_id="alice", page_size=2, page_token=token)
        )
        pages += 1
        seen.extend(entry.transaction.transaction_id for entry in response.entries)
        for entry in response.entries:
            assert entry.decision.ledger_sequence == entry.sequence
            assert len(entry.entry_hash) == 64 and entry.recorded_at.seconds > 0
        token = response.next_page_token
        if not token:
            break
    assert seen == ["tx-5", "tx-4", "tx-3", "tx-2", "tx-1"]
    assert pages == 3


async def test_list_history_rejects_bad_requests(ledger_stub: ledger_pb2_grpc.LedgerServiceStub) -> None:
    for request, field in (
        (ledger_pb2.ListHistoryRequest(account_id="alice", page_size=1001), "page_size"),
        (ledger_pb2.ListHistoryRequest(account_id="alice", page_token="not-a-token"), "page_token"),
        (
            ledger_pb2.ListHistoryRequest(account_id="alice", page_token=encode_page_token("bob", 5)),
            "page_token",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await ledger_stub.ListHistory(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _field_violations(error.value) == [field]


async def test_get_decision(ledger_stub: ledger_pb2_grpc.LedgerServiceStub) -> None:
    response = await ledger_stub.GetDecision(ledger_pb2.GetDecisionRequest(transaction_id="tx-3"))
    assert response.entry.decision.outcome == decision_pb2.OUTCOME_DECLINE
    assert response.entry.decision.ledger_sequence == response.entry.sequence
    assert response.entry.transaction.amount.amount == "7"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await ledger_stub.GetDecision(ledger_pb2.GetDecisionRequest(transaction_id="tx-404"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "transaction_id" in (missing.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await ledger_stub.GetDecision(ledger_pb2.GetDecisionRequest(transaction_id="bad id!"))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field_violations(invalid.value) == ["transaction_id"]
