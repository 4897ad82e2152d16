"""The compiled ledger half of the request path (``sentinel.hotpath._ledger``) against its references:
the records are exactly what the checked ``LedgerRecord`` constructor builds from the row's values, and
the entry rows' hashes are the chain that ``sentinel ledger verify`` recomputes with ``entry_hash``."""

from __future__ import annotations

import time
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import make_record

from sentinel.hotpath import DecodedTransactions, WireDecoder, entry_rows, ledger_records
from sentinel.ledger.chain import entry_hash, genesis_hash
from sentinel.ledger.records import LedgerRecord
from sentinel.server.outcome import OUTCOME_NAMES
from sentinel.server.requests import Decided
from sentinel.server.validate import CURRENCY_EXPONENTS
from sentinel.v1 import scoring_pb2, transaction_pb2

PARITY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = time.time()


def decoded_call(prefix: str, count: int) -> DecodedTransactions:
    """``count`` valid transactions of one call, decoded by the compiled decoder."""
    request = scoring_pb2.ScoreBatchRequest()
    # EUR with two fraction digits, JPY with none, BHD with three
    amounts = (lambda n: f"{n + 1}.{n % 100:02d}", lambda n: str(n + 1), lambda n: f"{n + 1}.{n % 1000:03d}")
    for n in range(count):
        transaction = request.transactions.add(
            transaction_id=f"{prefix}-{n}",
            idempotency_key=f"key-{prefix}-{n}" if n % 2 else "",
            account_id=f"C{n % 3}",
            counterparty_id="" if n % 4 == 3 else f"M{n}",
            type=transaction_pb2.TRANSACTION_TYPE_PAYMENT,
            amount=transaction_pb2.Money(amount=amounts[n % 3](n), currency=("EUR", "JPY", "BHD")[n % 3]),
        )
        transaction.event_time.FromSeconds(int(NOW) - 5)
    decoded = WireDecoder(CURRENCY_EXPONENTS, 300).decode_batch(request.SerializeToString(), NOW)
    assert not decoded.errors
    return decoded


@PARITY
@given(
    st.lists(st.integers(1, 12), min_size=1, max_size=4),  # the calls of a batch and their sizes
    st.data(),
)
def test_records_are_the_checked_records_of_their_rows(sizes: list[int], data: st.DataObject) -> None:
    """A batch mixes rows of several calls; only the rows asked for get a record, in the order asked."""
    calls = [decoded_call(f"c{index}", size) for index, size in enumerate(sizes)]
    block_of_row = np.concatenate(
        [np.full(len(call.transaction_ids), index, dtype=np.int32) for index, call in enumerate(calls)]
    )
    block_rows = np.concatenate([np.arange(len(call.transaction_ids), dtype=np.intp) for call in calls])
    rows = data.draw(st.lists(st.sampled_from(range(len(block_rows))), unique=True), label="rows")
    results: list[Decided | None] = [None] * len(block_rows)
    for i in rows:
        outcome = data.draw(st.sampled_from(sorted(OUTCOME_NAMES)), label="outcome")
        score = data.draw(st.floats(0, 1), label="risk score")
        results[i] = Decided(f"decision-{i}".encode(), outcome, score, False, "v1")

    records = ledger_records(LedgerRecord, calls, block_of_row, block_rows, rows, results, OUTCOME_NAMES)

    expected = []
    for i in rows:
        block, row = calls[block_of_row[i]], int(block_rows[i])
        decided = results[i]
        assert decided is not None
        expected.append(
            LedgerRecord(  # every check of the record runs here
                transaction_id=block.transaction_ids[row],
                idempotency_key=block.idempotency_keys[row],
                fingerprint=block.fingerprints[row],
                account_id=block.account_ids[row],
                counterparty_id=block.counterparty_ids[row],
                amount=Decimal(block.amounts[row]),
                currency=block.currencies[row],
                outcome=OUTCOME_NAMES[decided.outcome],
                risk_score=decided.risk_score,
                transaction_bytes=block.transaction_bytes[row],
                decision_bytes=decided.decision,
            )
        )
    assert records == expected
    for record, want in zip(records, expected, strict=True):  # the same types, not just equal values
        assert type(record.amount) is Decimal and str(record.amount) == str(want.amount)


def test_records_read_the_positions_the_decision_type_declares() -> None:
    """The compiled builder reads ``Decided`` by position."""
    assert Decided._fields[:3] == ("decision", "outcome", "risk_score")


texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@st.composite
def records(draw: st.DrawFn) -> LedgerRecord:
    return make_record(
        draw(texts.filter(lambda text: "\x00" not in text), label="transaction id"),
        account=draw(st.sampled_from(["C1", "C-ü-2", "C3"])),
        counterparty=draw(st.sampled_from(["", "M1", "M-€"])),
        amount=draw(st.sampled_from(["0.01", "10.00", "123456789.99", "7"])),
        key=draw(st.sampled_from(["", "k-1", "k-\U0001f600", "x" * 200])),
    )


@PARITY
@given(
    st.lists(records(), max_size=8),
    st.integers(1, 2**63 - 1000),
    st.integers(1, 2**63 - 1),
    st.integers(0, 2**62),
)
def test_entry_rows_chain_exactly_as_verify_recomputes(
    group: list[LedgerRecord], first_sequence: int, chain_id: int, recorded_at_us: int
) -> None:
    entries = [(first_sequence + 7 * n, record) for n, record in enumerate(group)]
    head = genesis_hash(chain_id)

    rows, new_head = entry_rows(entries, head, chain_id, recorded_at_us)

    expected_head = head
    assert len(rows) == len(entries)
    for (sequence, record), row in zip(entries, rows, strict=True):
        expected_head = entry_hash(expected_head, sequence, chain_id, recorded_at_us, record)
        assert row == (
            sequence,
            record.idempotency_key,
            record.transaction_id,
            record.fingerprint,
            record.account_id,
            record.counterparty_id,
            str(record.amount),
            record.currency,
            record.outcome,
            record.risk_score,
            record.transaction_bytes,
            record.decision_bytes,
            expected_head,
        )
    assert new_head == expected_head


def test_entry_rows_refuse_what_the_chain_cannot_hold() -> None:
    record = make_record("t-1")
    with pytest.raises(ValueError, match="sha256 digest of 32 bytes"):
        entry_rows([(1, record)], b"short", 1, 0)
    with pytest.raises(OverflowError):
        entry_rows([(2**63, record)], genesis_hash(1), 1, 0)
