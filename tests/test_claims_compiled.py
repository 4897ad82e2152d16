"""The compiled Redis claim writers (``sentinel.hotpath._claims``) against the claims' Python definitions:
``claim_key``, ``pending_claim`` and ``decided_claim`` of the state store, and ``sequence_field``."""

from __future__ import annotations

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.hotpath import pending_claims, settle_claims
from sentinel.hotpath._claims import SEQUENCE_INDEX
from sentinel.server.requests import AwaitingOriginal, BatchResult, Decided, Rejection
from sentinel.server.state_store import (
    CLAIM_KEY_PARTS,
    DECIDED_MARK,
    admission_time,
    claim_key,
    decided_claim,
    pending_claim,
)
from sentinel.server.stored_decisions import sequence_field

PARITY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
keys = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)
fingerprints = st.binary(min_size=32, max_size=32)


@PARITY
@given(st.lists(st.tuples(keys, fingerprints), max_size=12), st.data())
def test_pending_claims_are_the_claim_keys_and_pending_claims_of_the_rows(
    requests: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    """Only the rows asked for, in the order asked (the state stage asks in account order)."""
    rows = data.draw(
        st.lists(st.sampled_from(range(len(requests))), unique=True) if requests else st.just([])
    )
    admitted_at = admission_time()
    claim_keys, values = pending_claims(
        [key for key, _ in requests],
        [fingerprint for _, fingerprint in requests],
        rows,
        *CLAIM_KEY_PARTS,
        b"P" + admitted_at,
    )
    assert claim_keys == [claim_key(requests[i][0]).encode() for i in rows]
    assert values == [pending_claim(requests[i][1], admitted_at) for i in rows]


def test_the_decision_read_by_position_is_the_ledger_sequence() -> None:
    assert Decided._fields[0] == "decision" and Decided._fields[SEQUENCE_INDEX] == "ledger_sequence"


def results() -> st.SearchStrategy[BatchResult | None]:
    decided = st.builds(
        Decided,
        st.binary(max_size=40),
        st.sampled_from([1, 2, 3]),
        st.floats(0, 1),
        st.booleans(),
        st.just("v1"),
        st.one_of(st.just(0), st.integers(1, 2**63 - 1), st.integers(-(2**63), -1)),
    )
    rejection = st.just(Rejection(grpc.StatusCode.UNAVAILABLE, "not durable"))
    return st.one_of(decided, decided, rejection, st.just(AwaitingOriginal(1.5)), st.none())


@PARITY
@given(st.lists(st.tuples(keys, fingerprints, results()), max_size=12), st.booleans(), st.data())
def test_settle_claims_write_what_each_row_is_owed(
    rows: list[tuple[str, bytes, BatchResult | None]], durable: bool, data: st.DataObject
) -> None:
    """The rules of ``settle_claims``' docstring, spelled out with the Python definitions."""
    indexes = st.sampled_from(range(len(rows))) if rows else st.nothing()
    owners = data.draw(
        st.dictionaries(indexes, st.tuples(st.none() | fingerprints, st.none() | st.binary(max_size=20))),
        label="ledger conflicts",
    )
    replays = data.draw(st.sets(indexes), label="replays")
    resubmitted = data.draw(st.sets(st.sampled_from(sorted(replays))) if replays else st.just(set()))
    keys_, fingerprints_, results_ = [k for k, _, _ in rows], [f for _, f, _ in rows], [r for _, _, r in rows]

    claim_keys, values = settle_claims(
        keys_,
        fingerprints_,
        results_,
        Decided,
        owners,
        replays,
        resubmitted,
        durable,
        *CLAIM_KEY_PARTS,
        DECIDED_MARK,
    )

    expected: list[tuple[bytes, bytes]] = []
    for i, result in enumerate(results_):
        if i in owners:
            fingerprint, decision = owners[i]
            if fingerprint is not None and decision is not None:
                expected.append((claim_key(keys_[i]).encode(), decided_claim(fingerprint, decision)))
            continue
        if not isinstance(result, Decided) or (i in replays and i not in resubmitted):
            continue
        if i in resubmitted and not durable:
            continue
        value = result.decision
        if durable and result.ledger_sequence:
            value += sequence_field(result.ledger_sequence)
        expected.append((claim_key(keys_[i]).encode(), decided_claim(fingerprints_[i], value)))
    assert list(zip(claim_keys, values, strict=True)) == expected
