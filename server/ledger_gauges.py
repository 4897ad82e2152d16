"""The ledger writer's state as gauges: whether it spools and how much waits in its spool.

Sampled once a second by each worker rather than set where the writer changes state, so that the
ledger package stays free of the server's metrics (imports go from server to ledger, never back).
"""

from __future__ import annotations

import asyncio

from sentinel.ledger.writer import LedgerWriter
from sentinel.server import metrics

SAMPLE_INTERVAL_S = 1.0


async def export_ledger_state(writer: LedgerWriter, interval_s: float = SAMPLE_INTERVAL_S) -> None:
    """Set sentinel_ledger_spooling and sentinel_ledger_spool_bytes from ``writer`` until cancelled."""
    while True:
        metrics.LEDGER_SPOOLING.set(1 if writer.spooling else 0)
        metrics.LEDGER_SPOOL_BYTES.set(writer.spool_bytes)
        await asyncio.sleep(interval_s)
