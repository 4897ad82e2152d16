"""``LedgerService`` (sentinel.v1): balances, an account's history, the decision of a transaction.

Reads go through a small pool of connections acting as the writer role (SELECT is all they need).
History is keyset-paginated on the sequence number (``sequence < last seen``, newest first) through
the (account_id, sequence) and (counterparty_id, sequence) indexes, so page 1,000 costs what page 1
costs. The page token is opaque to clients: a version, the last sequence and a digest of the account,
base64url-encoded, so a token cannot be replayed against another account.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import NoReturn

import asyncpg
import grpc

from sentinel.config import Settings
from sentinel.postgres import writer_pool
from sentinel.server import metrics
from sentinel.server.errors import FieldViolation, InvalidTransaction, abort_invalid
from sentinel.v1 import decision_pb2, ledger_pb2, ledger_pb2_grpc, transaction_pb2

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000
_ACCOUNT = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
_TRANSACTION_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
TRANSACTION_ID_RULE = "must be 1 to 128 characters of [A-Za-z0-9._:-]"
_TOKEN_VERSION = "h1"

_ENTRY_COLUMNS = "sequence, transaction_bytes, decision_bytes, recorded_at, entry_hash"

_BALANCES = """
SELECT currency, amount, last_sequence FROM ledger.balances WHERE account_id = $1 ORDER BY currency
"""
_ACCOUNT_SEEN = """
SELECT EXISTS (SELECT 1 FROM ledger.decisions WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM ledger.decisions WHERE counterparty_id = $1)
"""
_HISTORY = f"""
SELECT {_ENTRY_COLUMNS} FROM (
    (SELECT {_ENTRY_COLUMNS} FROM ledger.decisions
     WHERE account_id = $1 AND sequence < $2 ORDER BY sequence DESC LIMIT $3)
    UNION ALL
    (SELECT {_ENTRY_COLUMNS} FROM ledger.decisions
     WHERE counterparty_id = $1 AND account_id <> $1 AND sequence < $2 ORDER BY sequence DESC LIMIT $3)
) AS history
ORDER BY sequence DESC
LIMIT $3
"""
_DECISION = f"""
SELECT {_ENTRY_COLUMNS} FROM ledger.decisions WHERE transaction_id = $1 ORDER BY sequence LIMIT 1
"""


def _account_digest(account_id: str) -> str:
    return hashlib.sha256(account_id.encode()).hexdigest()[:16]


def encode_page_token(account_id: str, last_sequence: int) -> str:
    """The token that continues an account's history after ``last_sequence``."""
    raw = f"{_TOKEN_VERSION}:{last_sequence}:{_account_digest(account_id)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(account_id: str, token: str) -> int:
    """The last sequence a token stands for; ValueError when it is not a token of this account."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, sequence, digest = raw.split(":")
        last_sequence = int(sequence)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a page token returned by ListHistory") from None
    if version != _TOKEN_VERSION or last_sequence < 1:
        raise ValueError("not a page token returned by ListHistory")
    if digest != _account_digest(account_id):
        raise ValueError("the page token belongs to another account_id")
    return last_sequence


def valid_transaction_id(transaction_id: str) -> bool:
    """Whether ``transaction_id`` can be a stored transaction's id (checked before any query)."""
    return _TRANSACTION_ID.fullmatch(transaction_id) is not None


async def decision_row(connection: asyncpg.Connection, transaction_id: str) -> asyncpg.Record | None:
    """The stored entry of a transaction's decision (its first, should the id have been reused under
    another idempotency key), or None."""
    return await connection.fetchrow(_DECISION, transaction_id)


def ledger_entry(row: asyncpg.Record) -> ledger_pb2.LedgerEntry:
    """A stored row as a LedgerEntry; the Decision gets the entry's sequence number."""
    decision = decision_pb2.Decision.FromString(row["decision_bytes"])
    decision.ledger_sequence = row["sequence"]
    entry = ledger_pb2.LedgerEntry(
        sequence=row["sequence"],
        transaction=transaction_pb2.Transaction.FromString(row["transaction_bytes"]),
        decision=decision,
        entry_hash=bytes(row["entry_hash"]).hex(),
    )
    entry.recorded_at.FromDatetime(row["recorded_at"])
    return entry


async def _invalid(context: grpc.aio.ServicerContext, field: str, description: str) -> NoReturn:
    await abort_invalid(context, InvalidTransaction([FieldViolation(field, description)]))


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    """The LedgerService over a pool of read connections (see ``open``).

    With ``primary`` the pool is a read replica's (``ledger_read_url``): GetDecision falls back to
    ``primary`` for a decision the replica has not replayed yet, since a caller asks for one it was
    just given (server/ledger_replica.py)."""

    def __init__(self, pool: asyncpg.Pool, primary: asyncpg.Pool | None = None) -> None:
        self._pool = pool
        self._primary = primary

    @classmethod
    async def open(
        cls, settings: Settings, *, dsn: str | None = None, max_connections: int = 4
    ) -> LedgerServicer:
        """A servicer with its own pool on ``dsn`` (default: ``settings.database_url``)."""
        url = dsn or settings.database_url
        if not url:
            raise ValueError("LedgerService needs a Postgres URL: set database_url (SENTINEL_DATABASE_URL)")
        pool = await writer_pool(
            url,
            connect_timeout_s=settings.ledger_connect_timeout_s,
            max_size=max_connections,
            application_name="sentinel-ledger-service",
        )
        return cls(pool)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def GetBalance(
        self, request: ledger_pb2.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.GetBalanceResponse:
        if not _ACCOUNT.fullmatch(request.account_id):
            await _invalid(context, "account_id", "must be 1 to 128 printable characters")
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(_BALANCES, request.account_id)
            if not rows and not await connection.fetchval(_ACCOUNT_SEEN, request.account_id):
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"account_id {request.account_id!r}: the ledger has never seen it",
                )
        return ledger_pb2.GetBalanceResponse(
            account_id=request.account_id,
            balances=[
                ledger_pb2.Balance(currency=row["currency"], amount=format(row["amount"], "f"))
                for row in rows
            ],
            as_of_sequence=max((row["last_sequence"] for row in rows), default=0),
        )

    async def ListHistory(
        self, request: ledger_pb2.ListHistoryRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.ListHistoryResponse:
        if not _ACCOUNT.fullmatch(request.account_id):
            await _invalid(context, "account_id", "must be 1 to 128 printable characters")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            await _invalid(
                context, "page_size", f"must be 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}"
            )
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        before = 2**63 - 1
        if request.page_token:
            try:
                before = decode_page_token(request.account_id, request.page_token)
            except ValueError as exc:
                await _invalid(context, "page_token", str(exc))
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(_HISTORY, request.account_id, before, page_size + 1)
        response = ledger_pb2.ListHistoryResponse(entries=[ledger_entry(row) for row in rows[:page_size]])
        if len(rows) > page_size:
            response.next_page_token = encode_page_token(request.account_id, rows[page_size - 1]["sequence"])
        return response

    async def GetDecision(
        self, request: ledger_pb2.GetDecisionRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.GetDecisionResponse:
        if not valid_transaction_id(request.transaction_id):
            await _invalid(context, "transaction_id", TRANSACTION_ID_RULE)
        async with self._pool.acquire() as connection:
            row = await decision_row(connection, request.transaction_id)
        if row is None and self._primary is not None:
            async with self._primary.acquire() as connection:
                row = await decision_row(connection, request.transaction_id)
            if row is not None:
                metrics.LEDGER_REPLICA_FALLBACKS.inc()
        if row is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"transaction_id {request.transaction_id!r}: no decision is recorded for it",
            )
        return ledger_pb2.GetDecisionResponse(entry=ledger_entry(row))
