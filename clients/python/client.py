"""A small typed Python client for SentinelStream.

It builds transactions from Python values (``Decimal`` amounts, aware ``datetime`` event times) and
retries ``Score`` calls answered UNAVAILABLE through gRPC's own retry policy (at most 3 attempts, back-off
0.05 s doubling up to 0.5 s, within the call's deadline); ``ScoreBatch`` and ``ScoreStream`` are not
retried. Retrying is safe because every transaction carries an idempotency key: the server answers a
retry with the original decision (``replayed``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from types import TracebackType

import grpc

from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc, transaction_pb2

_RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "sentinel.v1.ScoringService", "method": "Score"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def make_transaction(
    *,
    transaction_id: str,
    account_id: str,
    amount: Decimal | str,
    currency: str,
    event_time: datetime,
    type: str = "PAYMENT",
    counterparty_id: str = "",
    idempotency_key: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    country: str = "",
    device_id: str = "",
    ip_address: str = "",
    attributes: Mapping[str, str] | None = None,
) -> transaction_pb2.Transaction:
    """A sentinel.v1.Transaction from Python values; ``type`` is e.g. "TRANSFER" or "CASH_OUT"."""
    if event_time.tzinfo is None:
        raise ValueError("event_time must be timezone-aware")
    message = transaction_pb2.Transaction(
        transaction_id=transaction_id,
        idempotency_key=idempotency_key,
        account_id=account_id,
        counterparty_id=counterparty_id,
        type=f"TRANSACTION_TYPE_{type}",
        amount=transaction_pb2.Money(amount=str(amount), currency=currency),
        device_id=device_id,
        ip_address=ip_address,
        attributes=dict(attributes or {}),
    )
    message.event_time.FromDatetime(event_time)
    if latitude is not None or longitude is not None or country:
        geo = message.geo
        geo.country = country
        if latitude is not None:
            geo.latitude = latitude
        if longitude is not None:
            geo.longitude = longitude
    return message


def outcome_name(decision: decision_pb2.Decision) -> str:
    """The decision's outcome as a word: "APPROVE", "REVIEW" or "DECLINE" ("UNSPECIFIED" if unset)."""
    return decision_pb2.Outcome.Name(decision.outcome).removeprefix("OUTCOME_")


class SentinelClient:
    """Synchronous client of sentinel.v1.ScoringService; use as a context manager."""

    def __init__(self, target: str, *, timeout_s: float = 1.0, channel: grpc.Channel | None = None) -> None:
        self._channel = channel or grpc.insecure_channel(
            target, options=[("grpc.service_config", _RETRY_SERVICE_CONFIG), ("grpc.enable_retries", 1)]
        )
        self._stub = scoring_pb2_grpc.ScoringServiceStub(self._channel)
        self._timeout_s = timeout_s

    def score(self, transaction: transaction_pb2.Transaction) -> decision_pb2.Decision:
        """The decision for one transaction (raises grpc.RpcError with the server's status)."""
        request = scoring_pb2.ScoreRequest(transaction=transaction)
        return self._stub.Score(request, timeout=self._timeout_s).decision

    def score_batch(
        self, transactions: Iterable[transaction_pb2.Transaction]
    ) -> list[scoring_pb2.ScoreBatchResult]:
        """One result (decision or item error) per transaction, in order."""
        request = scoring_pb2.ScoreBatchRequest(transactions=list(transactions))
        return list(self._stub.ScoreBatch(request, timeout=self._timeout_s * 10).results)

    def score_stream(
        self, transactions: Iterable[transaction_pb2.Transaction]
    ) -> Iterator[scoring_pb2.ScoreStreamResponse]:
        """Stream transactions and yield responses as they come (matched by transaction_id)."""
        requests = (scoring_pb2.ScoreStreamRequest(transaction=t) for t in transactions)
        yield from self._stub.ScoreStream(requests)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> SentinelClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
