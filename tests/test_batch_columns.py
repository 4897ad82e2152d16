"""A micro-batch joins the decoded columns of several calls: rows in request order, one slot per account
across calls, only the accounts its rows use, and each row's caller (one per call)."""

from __future__ import annotations

import time

import numpy as np
from server_helpers import transaction

from sentinel.hotpath import WireDecoder
from sentinel.server.batch import batch_columns
from sentinel.server.batching import Span
from sentinel.server.requests import Submission
from sentinel.server.validate import CURRENCY_EXPONENTS
from sentinel.v1 import scoring_pb2

DECODER = WireDecoder(CURRENCY_EXPONENTS, 300.0)


def rows(block, *numbers: int, caller: str = "anonymous") -> Span[Submission]:  # type: ignore[no-untyped-def]
    """A span of the given rows of ``block``, as the micro-batcher hands them over."""
    return Span(Submission(block, np.asarray(numbers, dtype=np.intp), caller=caller), 0, len(numbers))


def decoded(*pairs: tuple[str, str]):  # type: ignore[no-untyped-def]
    request = scoring_pb2.ScoreBatchRequest(transactions=[transaction(t, a) for t, a in pairs])
    return DECODER.decode_batch(request.SerializeToString(), time.time())


def test_rows_of_several_calls_share_account_slots_in_request_order() -> None:
    first = decoded(("a-0", "A"), ("a-1", "B"), ("a-2", "A"))
    second = decoded(("b-0", "C"), ("b-1", "A"))
    spans = [
        rows(second, 1, caller="svc-b"),
        rows(first, 0, 1, caller="svc-a"),
        rows(second, 0, caller="svc-b"),
    ]
    columns, accounts, callers, _, _ = batch_columns(spans)
    assert [callers.names[i] for i in callers.rows] == ["svc-b", "svc-a", "svc-a", "svc-b"]
    assert [accounts[slot] for slot in columns.account_slot] == ["A", "A", "B", "C"]
    assert len(set(accounts)) == len(accounts) == 3
    expected = [
        second.columns.amount[1],
        first.columns.amount[0],
        first.columns.amount[1],
        second.columns.amount[0],
    ]
    assert columns.amount.tolist() == expected


def test_accounts_of_rows_left_out_are_not_in_the_batch() -> None:
    block = decoded(("c-0", "A"), ("c-1", "B"), ("c-2", "C"))
    columns, accounts, callers, _, _ = batch_columns([rows(block, 2, 0)])
    assert [callers.names[i] for i in callers.rows] == ["anonymous", "anonymous"]
    assert [accounts[slot] for slot in columns.account_slot] == ["C", "A"]
    assert sorted(accounts) == ["A", "C"]
    other = decoded(("d-0", "D"))
    columns, accounts, _, _, _ = batch_columns([rows(block, 1), rows(other, 0)])
    assert [accounts[slot] for slot in columns.account_slot] == ["B", "D"]
    assert sorted(accounts) == ["B", "D"]


def test_one_whole_call_is_taken_as_decoded() -> None:
    block = decoded(("e-0", "A"), ("e-1", "B"))
    columns, accounts, callers, _, _ = batch_columns([Span(Submission(block, caller="svc-e"), 0, 2)])
    assert columns is block.columns and accounts == block.accounts
    assert callers.names == ["svc-e"] and callers.rows.tolist() == [0, 0]
