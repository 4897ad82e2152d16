"""Builders shared by the ledger tests: real sentinel.v1 messages turned into ledger records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sentinel.config import Settings
from sentinel.ledger import LedgerRecord, record_from_messages
from sentinel.v1 import decision_pb2, transaction_pb2

OUTCOMES = {
    "APPROVE": decision_pb2.OUTCOME_APPROVE,
    "REVIEW": decision_pb2.OUTCOME_REVIEW,
    "DECLINE": decision_pb2.OUTCOME_DECLINE,
}


def make_record(
    transaction_id: str,
    *,
    account: str = "C-origin",
    counterparty: str = "M-merchant",
    amount: str = "10.00",
    currency: str = "EUR",
    outcome: str = "APPROVE",
    key: str = "",
) -> LedgerRecord:
    """The ledger record of a scored transaction, built the way the server builds it."""
    transaction = transaction_pb2.Transaction(
        transaction_id=transaction_id,
        idempotency_key=key,
        account_id=account,
        counterparty_id=counterparty,
        type=transaction_pb2.TRANSACTION_TYPE_TRANSFER,
        amount=transaction_pb2.Money(amount=amount, currency=currency),
    )
    transaction.event_time.FromDatetime(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    decision = decision_pb2.Decision(
        transaction_id=transaction_id,
        outcome=OUTCOMES[outcome],
        risk_score=0.25,
        model_score=0.5,
        model_version="iforest-test",
        rules_fired=[
            decision_pb2.RuleHit(rule_id="velocity", rule_version=2, action=decision_pb2.RULE_ACTION_TAG)
        ],
        reasons=[decision_pb2.Reason(code="MODEL_SCORE_LOW", description="low")],
        idempotency_key=key or transaction_id,
    )
    decision.decided_at.FromDatetime(datetime.now(UTC))
    return record_from_messages(transaction, decision)


def ledger_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings for a writer on ``database_url`` with its spool under ``data_dir``."""
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "ledger_retry_interval_s": 0.1,
        "ledger_commit_timeout_s": 2.0,
        "ledger_connect_timeout_s": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


def total(amounts: list[Decimal]) -> Decimal:
    """Exact sum (Decimal, starting from 0)."""
    return sum(amounts, Decimal(0))
