"""Validated wire transactions as hot-path columns: the input of the *features* stage.

The scoring pipeline, TestRule and the ledger backtest all start from a validated ``Transaction`` and
append it to a ``TransactionColumnsBuilder`` here, so every path feeds the hot path identically.
"""

from __future__ import annotations

from typing import Any

from sentinel.hotpath import TransactionColumnsBuilder
from sentinel.server.validate import ValidatedTransaction

_BALANCES = ("origin_before", "origin_after", "destination_before", "destination_after")


def _optional(message: Any, name: str) -> float | None:
    return float(getattr(message, name)) if message.HasField(name) else None


def append_transaction(builder: TransactionColumnsBuilder, slot: int, txn: ValidatedTransaction) -> None:
    """Append a validated transaction as a row of account slot ``slot``."""
    message = txn.message
    geo, balances = message.geo, message.balances
    has_balances = message.HasField("balances")
    builder.append(
        slot,
        float(txn.amount),
        message.type,
        txn.event_time,
        geo.latitude if geo.HasField("latitude") else None,
        geo.longitude if geo.HasField("longitude") else None,
        geo.country,
        message.channel,
        message.counterparty_id,
        message.device_id,
        *(_optional(balances, name) if has_balances else None for name in _BALANCES),
    )
