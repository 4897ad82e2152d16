"""The append-only, idempotent, tamper-evident Postgres ledger and its group-commit writer.

The server records every decision through ``LedgerWriter.submit`` (records built with
``record_from_messages``) and serves the ledger's reads over gRPC from ``sentinel.server.ledger_service``.
See docs/decisions/0005-ledger.md for the design.
"""

from sentinel.ledger.records import AckStatus, LedgerAck, LedgerRecord, record_from_messages
from sentinel.ledger.spool import SpoolFullError
from sentinel.ledger.writer import LedgerUnavailableError, LedgerWriteError, LedgerWriter

__all__ = [
    "AckStatus",
    "LedgerAck",
    "LedgerRecord",
    "LedgerUnavailableError",
    "LedgerWriteError",
    "LedgerWriter",
    "SpoolFullError",
    "record_from_messages",
]
