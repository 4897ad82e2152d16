"""PLACEHOLDER decision policy of the first end-to-end path: approves everything, says so.

It exists so that the contract, validation, logging and the worker setup can be exercised end to
end before the hot path, the model and the ledger land. Every decision it makes is marked: model
version "none", risk 0 and the reason code PLACEHOLDER_POLICY. The scoring pipeline replaces it.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from sentinel.server.validate import ValidatedTransaction
from sentinel.v1 import decision_pb2

PLACEHOLDER_MODEL_VERSION = "none"


def placeholder_decisions(
    transactions: list[ValidatedTransaction], now: float
) -> list[decision_pb2.Decision]:
    """Approve every transaction, clearly marked as not scored."""
    decided_at = timestamp_pb2.Timestamp()
    decided_at.FromNanoseconds(int(now * 1e9))
    return [
        decision_pb2.Decision(
            transaction_id=txn.transaction_id,
            outcome=decision_pb2.OUTCOME_APPROVE,
            risk_score=0.0,
            model_score=0.0,
            model_version=PLACEHOLDER_MODEL_VERSION,
            idempotency_key=txn.idempotency_key,
            decided_at=decided_at,
            reasons=[
                decision_pb2.Reason(
                    code="PLACEHOLDER_POLICY",
                    description="not scored: placeholder policy approves every valid transaction",
                )
            ],
        )
        for txn in transactions
    ]
