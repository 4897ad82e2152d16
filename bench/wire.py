"""``sentinel bench wire``: CPU cost per transaction of the request path's two ends, compiled vs Python.

*decode*: from a ScoreBatchRequest's bytes to the batch's columns, ids, canonical transaction bytes and
fingerprints, as ``WireDecoder.decode_batch`` does it, against the Python path it replaced (protobuf
parse, ``validate_transaction``, ``append_transaction``, deterministic serialization and sha256 per
transaction). *respond*: from model scores and rule matches to the ScoreBatchResponse bytes, as
``encode_decisions`` + ``score_batch_response`` do it, against ``outcome_of``, a ``Decision`` built,
serialized and copied into the response with the generated classes. The batch (default 1,000
transactions over 50 accounts, the shipped default rules, about a third of the rows matching one) is
synthetic and seeded; both paths run on it in the same process and must give the same bytes. The
figures are the best of ``--repeats`` (the machine is shared: the best repeat is the least disturbed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sentinel.hotpath import (
    KIND_DECISION,
    TransactionColumnsBuilder,
    WireDecoder,
    encode_decisions,
    score_batch_response,
)
from sentinel.server.outcome import Thresholds, outcome_of
from sentinel.server.rules.compiler import build_rule_set, compile_rule
from sentinel.server.rules.definitions import Rule
from sentinel.server.rules.rulefiles import default_rule_specs
from sentinel.server.stage_score import rule_table
from sentinel.server.validate import CURRENCY_EXPONENTS, validate_transaction
from sentinel.server.wire_columns import append_transaction
from sentinel.v1 import decision_pb2, scoring_pb2, transaction_pb2

_SKEW_S = 300.0
_REVIEW, _DECLINE = 0.5, 0.9
_MODEL_VERSION = "20261123T111117Z-35a10002"


def _request(transactions: int, accounts: int, now: float) -> bytes:
    """A ScoreBatchRequest as a client sends it (deterministic serialization)."""
    items = []
    for i in range(transactions):
        txn = transaction_pb2.Transaction(
            transaction_id=f"bench-{i}",
            idempotency_key=f"bench-key-{i}",
            account_id=f"C{i % accounts}",
            counterparty_id=f"M{i % 97}",
            type=transaction_pb2.TRANSACTION_TYPE_TRANSFER,
            amount=transaction_pb2.Money(amount=f"{10 + i % 5000}.{i % 100:02d}", currency="EUR"),
            geo=transaction_pb2.GeoLocation(latitude=52.52, longitude=13.40, country="DE"),
            device_id=f"dev-{i % 300}",
        )
        txn.event_time.FromSeconds(int(now) - 10)
        items.append(txn)
    return scoring_pb2.ScoreBatchRequest(transactions=items).SerializeToString(deterministic=True)


def _best_us_per_txn(function: Callable[[], object], transactions: int, repeats: int) -> float:
    return min(timeit.repeat(function, number=1, repeat=repeats)) / transactions * 1e6


def measure(transactions: int, accounts: int, repeats: int) -> dict[str, Any]:
    now = time.time()
    body = _request(transactions, accounts, now)
    decoder = WireDecoder(CURRENCY_EXPONENTS, _SKEW_S)

    def decode_reference() -> list[bytes]:
        messages = scoring_pb2.ScoreBatchRequest.FromString(body).transactions
        builder = TransactionColumnsBuilder(transactions)
        slots: dict[str, int] = {}
        fingerprints: list[bytes] = []
        for index, message in enumerate(messages):
            txn = validate_transaction(message, now, _SKEW_S, f"transactions[{index}]")
            append_transaction(builder, slots.setdefault(txn.account_id, len(slots)), txn)
            fingerprints.append(hashlib.sha256(message.SerializeToString(deterministic=True)).digest())
        builder.build()
        return fingerprints

    if decoder.decode_batch(body, now).fingerprints != decode_reference():
        raise AssertionError("the compiled decoder and the Python path disagree")

    created = datetime.now(UTC)
    rule_set = build_rule_set(
        [
            compile_rule(Rule(spec, version=1, author="bench", created_at=created))
            for spec in default_rule_specs()
        ],
        generation=1,
    )
    table = rule_table(rule_set.rules)
    rng = np.random.default_rng(7)
    scores = rng.random(transactions).astype(np.float32)
    matches = np.zeros((transactions, len(rule_set)), dtype=np.uint8)
    if len(rule_set):
        hit_rows = rng.random(transactions) < 1 / 3
        matches[hit_rows, rng.integers(0, len(rule_set), int(hit_rows.sum()))] = 1
    ids = [f"bench-{i}" for i in range(transactions)]
    keys = [f"bench-key-{i}" for i in range(transactions)]
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    sequences = np.arange(1, transactions + 1, dtype=np.int64)

    def respond_reference() -> bytes:
        thresholds = Thresholds(_REVIEW, _DECLINE)
        response = scoring_pb2.ScoreBatchResponse()
        add = response.results.add
        for i in range(transactions):
            score = float(scores[i])
            matched = [rule_set.rules[j] for j in np.flatnonzero(matches[i])]
            verdict = outcome_of(score, matched, thresholds, degraded=False, fail_closed=False)
            decision = decision_pb2.Decision(
                transaction_id=ids[i],
                outcome=verdict.outcome,
                risk_score=verdict.risk_score,
                model_score=score,
                rules_fired=verdict.rules_fired,
                reasons=verdict.reasons,
                model_version=_MODEL_VERSION,
                idempotency_key=keys[i],
            )
            decision.decided_at.seconds, decision.decided_at.nanos = seconds, nanos
            decision.SerializeToString(deterministic=True)  # what the ledger and the claim store
            decision.ledger_sequence = int(sequences[i])
            add().decision.CopyFrom(decision)
        return response.SerializeToString(deterministic=True)

    def respond_compiled() -> bytes:
        encoded = encode_decisions(
            table, ids, keys, scores, matches, _REVIEW, _DECLINE, degraded=False, fail_closed=False,
            model_version=_MODEL_VERSION, decided_at_seconds=seconds, decided_at_nanos=nanos,
        )  # fmt: skip
        kinds = np.full(transactions, KIND_DECISION, dtype=np.uint8)
        return score_batch_response(
            kinds, encoded.decision_bytes, sequences, np.zeros(transactions, np.uint8)
        )

    if respond_compiled() != respond_reference():
        raise AssertionError("the compiled response and the Python path disagree")
    decode = _best_us_per_txn(lambda: decoder.decode_batch(body, now), transactions, repeats)
    decode_reference_us = _best_us_per_txn(decode_reference, transactions, repeats)
    respond = _best_us_per_txn(respond_compiled, transactions, repeats)
    respond_reference_us = _best_us_per_txn(respond_reference, transactions, repeats)
    return {
        "transactions": transactions,
        "rules": len(rule_set),
        "decode_us_per_txn": round(decode, 3),
        "decode_reference_us_per_txn": round(decode_reference_us, 3),
        "decode_speedup": round(decode_reference_us / decode, 1),
        "respond_us_per_txn": round(respond, 3),
        "respond_reference_us_per_txn": round(respond_reference_us, 3),
        "respond_speedup": round(respond_reference_us / respond, 1),
    }


def _handle(args: argparse.Namespace) -> int:
    result = measure(args.transactions, args.accounts, args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>30}: {value}")
    return 0


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench wire``."""
    parser = bench_subparsers.add_parser(
        "wire",
        help="µs per transaction of decoding requests and encoding responses, compiled vs Python",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--transactions", type=int, default=1000, help="transactions per call (default 1,000)"
    )
    parser.add_argument("--accounts", type=int, default=50, help="accounts they belong to (default 50)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each measurement (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_handle)
