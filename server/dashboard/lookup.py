"""The dashboard's reads of the ledger: one decision by transaction id, with its hash chain checked.

The row comes from the query LedgerService.GetDecision runs and is rendered as its LedgerEntry (the
Transaction and Decision as stored); the chain is checked by ``sentinel.ledger.verify`` from the last
checkpoint before the entry (``verify_entry_chain``). A check that takes longer than
CHAIN_CHECK_TIMEOUT_S (a chain with very many entries since its last checkpoint) is reported as not
done, never as failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from google.protobuf import json_format

from sentinel.config import Settings
from sentinel.ledger.verify import verify_entry_chain
from sentinel.postgres import writer_pool
from sentinel.server.ledger_service import decision_row, ledger_entry

CHAIN_CHECK_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0


class LedgerReads:
    """A small pool on the ledger (as the writer role, reads only), opened at first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                assert self._settings.database_url is not None  # sentinel serve requires it
                self._pool = await writer_pool(
                    self._settings.database_url,
                    connect_timeout_s=self._settings.ledger_connect_timeout_s,
                    max_size=2,
                    application_name="sentinel-dashboard",
                )
            return self._pool

    async def ping(self) -> None:
        """One round trip to Postgres (raises when it cannot be made within PROBE_TIMEOUT_S)."""
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            pool = await self.pool()
            await pool.fetchval("SELECT 1")

    async def decision(self, transaction_id: str) -> dict[str, Any] | None:
        """The transaction's ledger entry and chain check as JSON-ready data; None when not recorded."""
        pool = await self.pool()
        async with pool.acquire() as connection:
            row = await decision_row(connection, transaction_id)
            if row is None:
                return None
            try:
                async with asyncio.timeout(CHAIN_CHECK_TIMEOUT_S):
                    check = await verify_entry_chain(connection, row["sequence"], row["recorded_at"])
            except TimeoutError:
                check = None
        entry = json_format.MessageToDict(
            ledger_entry(row), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        if check is None:
            chain: dict[str, Any] = {
                "verified": None,
                "detail": f"not checked within {CHAIN_CHECK_TIMEOUT_S:g} s: run `sentinel ledger verify`",
            }
        else:
            chain = {
                "verified": check.ok,
                "chain_id": check.chain_id,
                "from": check.anchor,
                "entries_checked": check.entries,
                "detail": None if check.broken is None else check.broken.reason,
                "broken_sequence": None if check.broken is None else check.broken.sequence,
            }
        return {"entry": entry, "chain": chain}
