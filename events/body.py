"""The versioned JSON body of a ``decision.recorded`` event, built at delivery time from the ledger entry.

The outbox keeps only a pointer to the entry (its sequence, account and time); the body is made from
the entry's stored Decision and Transaction when the event is sent, so it is the same bytes for every
destination and every redelivery (the fields come from immutable ledger columns and blobs). The schema
is documented in the README ("Decision events"); ``api_version`` changes only when a field changes
meaning or disappears: receivers must ignore fields they do not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from sentinel.events.model import OutboundEvent
from sentinel.v1 import decision_pb2, transaction_pb2

EVENT_TYPE = "decision.recorded"
API_VERSION = "v1"
EVENT_ID_PREFIX = "evt_"


def event_id(sequence: int) -> str:
    """The stable id of the event of ledger entry ``sequence``."""
    return f"{EVENT_ID_PREFIX}{sequence}"


def sequence_of(identifier: str) -> int:
    """The ledger sequence an event id stands for; ValueError for anything that is not an event id."""
    digits = identifier.removeprefix(EVENT_ID_PREFIX)
    if digits == identifier or not digits.isascii() or not digits.isdigit() or int(digits) < 1:
        raise ValueError(f"not an event id (evt_<ledger sequence>): {identifier!r}")
    return int(digits)


def rfc3339(moment: datetime) -> str:
    """UTC, microseconds, ``Z``: ``2025-01-31T12:00:00.123456Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


def build_event(entry: Mapping[str, Any]) -> OutboundEvent:
    """The event of one ``ledger.decisions`` row (columns sequence, recorded_at, account_id,
    counterparty_id, amount (text), currency, outcome, risk_score, transaction_bytes, decision_bytes)."""
    decision = decision_pb2.Decision.FromString(entry["decision_bytes"])
    transaction = transaction_pb2.Transaction.FromString(entry["transaction_bytes"])
    recorded_at: datetime = entry["recorded_at"]
    sequence: int = entry["sequence"]
    identifier = event_id(sequence)
    data = {
        "ledger_sequence": sequence,
        "transaction_id": decision.transaction_id,
        "idempotency_key": decision.idempotency_key,
        "account_id": entry["account_id"],
        "counterparty_id": entry["counterparty_id"],
        "amount": entry["amount"],
        "currency": entry["currency"],
        "transaction_type": _enum_name(
            transaction_pb2.TransactionType, transaction.type, "TRANSACTION_TYPE_"
        ),
        "event_time": rfc3339(transaction.event_time.ToDatetime(UTC)),
        "outcome": entry["outcome"],
        "risk_score": entry["risk_score"],
        "model_score": decision.model_score,
        "model_version": decision.model_version,
        "degraded": decision.degraded,
        "reasons": [{"code": reason.code, "description": reason.description} for reason in decision.reasons],
        "rules": [
            {
                "rule_id": hit.rule_id,
                "rule_version": hit.rule_version,
                "action": _enum_name(decision_pb2.RuleAction, hit.action, "RULE_ACTION_"),
            }
            for hit in decision.rules_fired
            if not hit.shadow  # a shadow rule never changes a decision: not the receiver's business
        ],
        "decided_at": rfc3339(decision.decided_at.ToDatetime(UTC)),
        "recorded_at": rfc3339(recorded_at),
    }
    body = {
        "id": identifier,
        "type": EVENT_TYPE,
        "api_version": API_VERSION,
        "created": rfc3339(recorded_at),
        "data": data,
    }
    return OutboundEvent(
        event_id=identifier,
        event_type=EVENT_TYPE,
        outcome=entry["outcome"],
        account_id=entry["account_id"],
        occurred_at=recorded_at.astimezone(UTC),
        body=orjson.dumps(body),
    )
