"""Account state recomputed from the ledger and written back to Redis (``sentinel state rebuild``).

Redis may lose acknowledged writes (a failover to a replica that lagged, a restart without persistence),
and with them the state every later transaction's features are computed on. The ledger holds every
decided transaction, so an account's state is its ledger transactions in sequence order applied to an
empty state, through the code the service scores with (``validate_recorded``, ``append_transaction``,
``build_features``). Every recorded decision counts, degraded ones included (the service could not
apply those while Redis was out of reach; the rebuilt state has them); refused transactions were never
recorded.

It runs while the service scores, in batches of accounts: per batch one ledger query and one hot-path
call (per CHUNK_ROWS rows), per account three Redis calls, up to REDIS_CONCURRENCY at a time. Whatever
the service admits meanwhile must be neither lost nor counted twice, and journal rows carry no id. Per
account:

1. read the base version and the journal (``AccountStateStore.read``);
2. replay the ledger's transactions of the account;
3. read again: the version must still be the one of step 1 (no fold since, so the base holds only
   transactions folded before the ledger was read), and every journal row must be in the ledger. A row is
   found there by its bytes: the replay encodes a recorded transaction into exactly the record that the
   service appended for it (``encode_rows``);
4. compare-and-set: if the base is still that version, the ledger's state becomes the base and the
   journal rows of step 3 are dropped (``settle`` with a ``Fold`` of the ledger state over those rows).
   Rows admitted after step 3 stay in the journal and are applied on top, as the service does.

A journal row that is not in the ledger belongs to a transaction in flight (admitted, not recorded yet),
and a new version means a fold in between: the account is tried again from step 1 every RETRY_PAUSE_S
until ``wait_s`` has passed, then reported as not rebuilt (its state is left as it was; run the command
again). So is an account whose journal holds the row of a transaction the ledger refused or never got
(``UNAVAILABLE``, not retried), until the account's next transaction folds that row away. Journal rows
that are all in the ledger do not hold an account up: they are common (a batch whose fold lost to an
earlier batch's leaves its rows in the journal until the account's next transaction). Accounts of which
the ledger holds nothing are left untouched.

Limitations. A transaction counts if the ledger holds it when step 2 reads it. One whose row another
batch folded into the base (a fold carries the rows admitted before its own) while its own ledger commit
was still running, or one waiting in a worker's ledger spool (Postgres out of reach), is missing from the
rebuilt state: rebuild when Redis has lost data (then its state is wrong anyway), with the spools
drained. A transaction in flight whose record is byte-identical to a recorded one of the same account
(same amount, event time to the nanosecond, counterparty, device, place and balances) counts as recorded
and is missing too. The order is the ledger's: two concurrent transactions of one account may have been
admitted the other way round, which changes float rounding and, where order matters, the result (the
home country is the first country seen; each ring keeps the latest 8 distinct counterparties or devices).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

import asyncpg
import numpy as np
import structlog
from google.protobuf.message import DecodeError

from sentinel.hotpath import InvalidTransactionValue, TransactionColumnsBuilder, build_features
from sentinel.hotpath.rows import ROW_SIZE, Records, encode_rows
from sentinel.server.errors import InvalidTransaction
from sentinel.server.state_store import AccountStateStore, ClaimWrites, Fold, journal_rows
from sentinel.server.validate import validate_recorded
from sentinel.server.wire_columns import append_transaction

log = structlog.get_logger("sentinel.state.rebuild")

CHUNK_ROWS = 65_536  # ledger rows per hot-path call: bounds the memory a long history takes
REDIS_CONCURRENCY = 32
RETRY_PAUSE_S = 0.05

_ACCOUNTS_AFTER = (
    "SELECT DISTINCT account_id FROM ledger.decisions WHERE account_id > $1 ORDER BY account_id LIMIT $2"
)
_HISTORIES = (
    "SELECT account_id, sequence, transaction_bytes FROM ledger.decisions "
    "WHERE account_id = ANY($1::text[]) ORDER BY account_id, sequence"
)

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild did (``to_json`` is what ``--json`` prints)."""

    accounts_rebuilt: int = 0
    transactions_applied: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # account -> why it was left untouched
    not_rebuilt: dict[str, str] = field(default_factory=dict)  # account -> why (run again)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.not_rebuilt,
            "accounts_rebuilt": self.accounts_rebuilt,
            "transactions_applied": self.transactions_applied,
            "skipped": self.skipped,
            "not_rebuilt": self.not_rebuilt,
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class _History:
    """An account's ledger transactions, replayed: the state they make and how many there are, how often
    the ledger holds each record asked about (the account's journal rows), and what stopped the replay."""

    state: bytes | None = None
    transactions: int = 0
    recorded: Counter[bytes] = field(default_factory=Counter)
    problem: str = ""


class _Outcome(NamedTuple):
    kind: Literal["rebuilt", "skipped", "failed", "retry"]
    why: str = ""


async def rebuild_states(
    connection: asyncpg.Connection,
    store: AccountStateStore,
    accounts: Sequence[str] | None = None,
    *,
    batch_size: int,
    wait_s: float,
) -> RebuildReport:
    """Rebuild ``accounts`` (None: every account in the ledger) from the ledger, ``batch_size`` accounts at
    a time, trying an account with transactions in flight again for ``wait_s``; see the module docstring."""
    started = time.perf_counter()
    report = RebuildReport()
    async for batch in _batches(connection, accounts, batch_size):
        await _rebuild_batch(connection, store, batch, wait_s, report)
        log.info(
            "state_rebuild_batch",
            accounts=len(batch),
            accounts_rebuilt=report.accounts_rebuilt,
            transactions_applied=report.transactions_applied,
        )
    report.seconds = time.perf_counter() - started
    log.info(
        "state_rebuild_finished",
        accounts_rebuilt=report.accounts_rebuilt,
        transactions_applied=report.transactions_applied,
        skipped=len(report.skipped),
        not_rebuilt=len(report.not_rebuilt),
        seconds=round(report.seconds, 3),
    )
    return report


async def _batches(
    connection: asyncpg.Connection, accounts: Sequence[str] | None, size: int
) -> AsyncIterator[list[str]]:
    """The given accounts (once each), or every account of the ledger in keyset pages, ``size`` at a time."""
    if accounts is not None:
        unique = list(dict.fromkeys(accounts))
        for start in range(0, len(unique), size):
            yield unique[start : start + size]
        return
    last = ""
    while rows := await connection.fetch(_ACCOUNTS_AFTER, last, size):
        batch = [row["account_id"] for row in rows]
        yield batch
        last = batch[-1]


async def _rebuild_batch(
    connection: asyncpg.Connection,
    store: AccountStateStore,
    accounts: list[str],
    wait_s: float,
    report: RebuildReport,
) -> None:
    """Steps 1 to 4 for ``accounts``, again for the ones with transactions in flight until ``wait_s``."""
    deadline = time.monotonic() + wait_s
    pending = accounts
    while True:
        firsts = await _each(pending, store.read)
        versions = [first.version for first in firsts]
        asked = [
            {record.tobytes() for record in _records(account, first.journal)}
            for account, first in zip(pending, firsts, strict=True)
        ]
        histories = await _replay(connection, pending, asked)
        candidates = list(zip(pending, versions, histories, strict=True))
        outcomes = await _each(candidates, lambda candidate: _settle_account(store, *candidate))
        retry: dict[str, str] = {}
        for account, history, outcome in zip(pending, histories, outcomes, strict=True):
            if outcome.kind == "rebuilt":
                report.accounts_rebuilt += 1
                report.transactions_applied += history.transactions
            elif outcome.kind == "skipped":
                report.skipped[account] = outcome.why
            elif outcome.kind == "failed":
                report.not_rebuilt[account] = outcome.why
                log.error("state_account_not_rebuilt", account_id=account, reason=outcome.why)
            else:
                retry[account] = outcome.why
        if not retry:
            return
        if time.monotonic() >= deadline:
            for account, why in retry.items():
                report.not_rebuilt[account] = why
                log.warning("state_account_not_rebuilt", account_id=account, reason=why, waited_s=wait_s)
            return
        pending = list(retry)
        await asyncio.sleep(RETRY_PAUSE_S)


async def _settle_account(
    store: AccountStateStore, account: str, first_version: bytes, history: _History
) -> _Outcome:
    """Steps 3 and 4 for one account whose ledger ``history`` was read after a base of ``first_version``."""
    if history.problem:
        return _Outcome("failed", history.problem)
    if not history.transactions:
        return _Outcome("skipped", "no transactions in the ledger")
    version, _, journal = await store.read(account)
    if version != first_version:
        return _Outcome("retry", "its state was folded while the ledger was read (transactions in flight)")
    in_flight = Counter(record.tobytes() for record in _records(account, journal)) - history.recorded
    if in_flight:
        rows = in_flight.total()
        return _Outcome("retry", f"{rows} journal row(s) not in the ledger (transactions in flight)")
    assert history.state is not None  # at least one transaction was applied
    if not await store.settle(
        ClaimWrites([], []), [Fold(account, version, history.state, len(journal) // ROW_SIZE)]
    ):
        return _Outcome("retry", "its state was folded while it was written (transactions in flight)")
    return _Outcome("rebuilt")


def _records(account: str, journal: bytes) -> Records:
    """The rows of an account's ``journal`` (an unreadable journal is skipped, as the service does)."""
    records, _ = journal_rows([journal], [account])
    return records


async def _replay(
    connection: asyncpg.Connection, accounts: list[str], asked: list[set[bytes]]
) -> list[_History]:
    """Step 2 for ``accounts`` (slot i is ``accounts[i]``) with one query: their ledger transactions in
    sequence order through the hot path, counting the records of ``asked[i]`` among account i's."""
    slot_of = {account: slot for slot, account in enumerate(accounts)}
    histories = [_History() for _ in accounts]
    states: list[bytes | None] = [None] * len(accounts)
    builder = TransactionColumnsBuilder(1024)
    async with connection.transaction(readonly=True):
        async for row in connection.cursor(_HISTORIES, accounts, prefetch=1024):
            slot = slot_of[row["account_id"]]
            history = histories[slot]
            if history.problem:
                continue
            try:
                append_transaction(builder, slot, validate_recorded(row["transaction_bytes"]))
            except (DecodeError, InvalidTransaction, InvalidTransactionValue) as exc:
                history.problem = f"ledger entry {row['sequence']} cannot be replayed: {exc}"
                continue
            history.transactions += 1
            if len(builder) == CHUNK_ROWS:
                states = _apply(builder, states, histories, asked)
    states = _apply(builder, states, histories, asked)
    for history, state in zip(histories, states, strict=True):
        history.state = state
    return histories


def _apply(
    builder: TransactionColumnsBuilder,
    states: list[bytes | None],
    histories: list[_History],
    asked: list[set[bytes]],
) -> list[bytes | None]:
    """The builder's rows applied to ``states`` (one hot-path call; the builder is emptied), the asked-about
    records among them counted."""
    if not len(builder):
        return states
    columns = builder.build()
    builder.clear()
    asking = [slot for slot, records in enumerate(asked) if records]
    if asking:
        records = encode_rows(columns)
        for row in np.flatnonzero(np.isin(columns.account_slot, asking)).tolist():
            slot = int(columns.account_slot[row])
            record = records[row].tobytes()
            if record in asked[slot]:
                histories[slot].recorded[record] += 1
    _, new_states = build_features(columns, states)
    return new_states


async def _each(items: Sequence[_T], action: Callable[[_T], Awaitable[_R]]) -> list[_R]:
    """``action`` of every item, at most REDIS_CONCURRENCY at a time; the results in order."""
    limit = asyncio.Semaphore(REDIS_CONCURRENCY)

    async def one(item: _T) -> _R:
        async with limit:
            return await action(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
