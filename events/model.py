"""The event handed to every transport: built once per delivery batch, identical for every destination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """One event ready to send: its stable id, what it is, and its versioned JSON body."""

    event_id: str  # stable across redeliveries: "evt_" + the ledger entry's sequence number
    event_type: str  # "decision.recorded"
    outcome: str  # "APPROVE" | "REVIEW" | "DECLINE"
    account_id: str
    occurred_at: datetime  # when the decision was recorded (UTC)
    body: bytes  # the versioned JSON body (UTF-8), identical for every destination

    @property
    def routing_key(self) -> str:
        """RabbitMQ topic routing key, e.g. ``decision.recorded.decline``."""
        return f"{self.event_type}.{self.outcome.lower()}"
