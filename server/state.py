"""The *state* stage's store: per-account state, its journal, and idempotency claims in Redis.

Layout (docs/decisions/0011-account-state-journal.md). Per account, hash-tagged so that both keys
share a Redis Cluster slot:

- ``sentinel:{<account>}:s``, the *base*: an 8-byte big-endian version followed by the hot path's
  encoded state, with every transaction folded into it so far;
- ``sentinel:{<account>}:j``, the *journal*: a list whose entries are the rows that one batch admitted
  for the account (``sentinel.hotpath.rows``), in the order Redis admitted them.

The account's state is the base with the journal's rows applied in order. Per idempotency key,
``sentinel:i:{<key>}`` holds the request's fingerprint, then ``P`` + the admission time (admitted, not
decided yet) or ``D`` + the decision.

A batch makes two calls. ``admit`` (one script) claims the keys that have no claim yet, appends the
rows of those keys to their accounts' journals and returns what precedes them: the base and the
journal entries before this batch's. Redis runs scripts one at a time, so admission is the order in
which an account's transactions happen: each batch computes its rows' features on exactly the state
that Redis placed before them, whatever other workers or replicas do at the same time. Nothing is
refused for contention, nothing retried. ``settle`` (after the ledger) writes the decisions into the
claims and folds the journal into the base, if the base is still the version the batch read (another
batch may have folded first; the entries then wait for the next fold, nothing is lost).

A key that is already claimed is never appended: a retry or a reused key does not touch the state.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import structlog
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot

from sentinel.hotpath import StateDecodeError, TransactionColumns, build_features
from sentinel.hotpath.rows import ROW_DTYPE, ROWS_FORMAT, Records, RowsDecodeError, columns_of, entry_records
from sentinel.ledger.records import FINGERPRINT_BYTES

log = structlog.get_logger("sentinel.state")

VERSION_BYTES = 8
_PENDING = b"P"
_DECIDED = b"D"

_ADMIT_SCRIPT = """
-- KEYS: the claim keys, then per account: its base key and its journal key.
-- ARGV: claim ttl, state ttl, claim count C, account count A, the C pending claim values, then per
--       account: its row count R and R pairs (claim index in this call, 0 = already claimed; record).
-- Returns {existing claim or false per claim key, per account {base or false, journal entries}}.
local claim_ttl, state_ttl = ARGV[1], ARGV[2]
local claims, accounts = tonumber(ARGV[3]), tonumber(ARGV[4])
local existing, taken = {}, {}
for i = 1, claims do
  local value = redis.call('GET', KEYS[i])
  if value then
    existing[i] = value
  else
    redis.call('SET', KEYS[i], ARGV[4 + i], 'EX', claim_ttl)
    existing[i] = false
    taken[i] = true
  end
end
local found = {}
local a = 5 + claims
for j = 1, accounts do
  local base_key, journal_key = KEYS[claims + 2 * j - 1], KEYS[claims + 2 * j]
  local base = redis.call('GET', base_key)
  local before = redis.call('LRANGE', journal_key, 0, -1)
  local rows, count = {}, tonumber(ARGV[a])
  for r = 1, count do
    local claim = tonumber(ARGV[a + 2 * r - 1])
    if claim == 0 or taken[claim] then rows[#rows + 1] = ARGV[a + 2 * r] end
  end
  a = a + 1 + 2 * count
  if #rows > 0 then
    redis.call('RPUSH', journal_key, FORMAT .. table.concat(rows))
    redis.call('EXPIRE', journal_key, state_ttl)
    if base then redis.call('EXPIRE', base_key, state_ttl) end
  end
  found[j] = {base or false, before}
end
return {existing, found}
""".replace("FORMAT", f"string.char({ROWS_FORMAT[0]})")

_SETTLE_SCRIPT = """
-- KEYS: claim keys, then per account: its base key and its journal key.
-- ARGV: claim ttl, state ttl, claim count C, account count A, the C claim values, then per account:
--       the base version its batch read ('' = none), the new base value, the journal entries folded.
local claim_ttl, state_ttl = ARGV[1], ARGV[2]
local claims, accounts = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, claims do redis.call('SET', KEYS[i], ARGV[4 + i], 'EX', claim_ttl) end
local folded = 0
local a = 5 + claims
for j = 1, accounts do
  local base_key, journal_key = KEYS[claims + 2 * j - 1], KEYS[claims + 2 * j]
  local current = redis.call('GET', base_key)
  if (current and string.sub(current, 1, 8) or '') == ARGV[a] then
    redis.call('SET', base_key, ARGV[a + 1], 'EX', state_ttl)
    redis.call('LTRIM', journal_key, tonumber(ARGV[a + 2]), -1)
    folded = folded + 1
  end
  a = a + 3
end
return folded
"""


def state_key(account_id: str) -> str:
    """Redis key of an account's base state (hash-tagged by account)."""
    return f"sentinel:{{{account_id}}}:s"


def journal_key(account_id: str) -> str:
    """Redis key of an account's journal (same hash slot as its base)."""
    return f"sentinel:{{{account_id}}}:j"


def claim_key(idempotency_key: str) -> str:
    """Redis key of an idempotency claim: one per key, whatever account the key was used with."""
    return f"sentinel:i:{{{idempotency_key}}}"


def pending_claim(fingerprint: bytes) -> bytes:
    """The claim of an admitted, not yet decided request."""
    return fingerprint + _PENDING + int(time.time() * 1000).to_bytes(8, "big")


def decided_claim(fingerprint: bytes, decision: bytes) -> bytes:
    """The claim of a decided request: its serialized Decision."""
    return fingerprint + _DECIDED + decision


class Claim(NamedTuple):
    """A claim found on admission: whose key it is, and how far its request got."""

    fingerprint: bytes
    decision: bytes | None  # the serialized Decision; None while the first request is being decided
    admitted_at: float  # seconds since the epoch (pending claims; 0 for decided ones)

    @classmethod
    def parse(cls, value: bytes) -> Claim:
        fingerprint, kind = value[:FINGERPRINT_BYTES], value[FINGERPRINT_BYTES : FINGERPRINT_BYTES + 1]
        rest = value[FINGERPRINT_BYTES + 1 :]
        if kind == _DECIDED:
            return cls(fingerprint, rest, 0.0)
        return cls(fingerprint, None, int.from_bytes(rest[:8], "big") / 1000)


@dataclass(slots=True)
class Admission:
    """What ``admit`` found: per request its existing claim (None: admitted now), per account the base
    (version, state) and the journal entries admitted before this batch's."""

    claims: list[Claim | None]
    bases: dict[str, tuple[bytes, bytes | None]]  # account -> (version, b"" if new; state or None)
    journals: dict[str, list[bytes]]


@dataclass(slots=True)
class AdmitRow:
    """One request as ``admit`` sees it: the claim to take and the row to append if it is taken."""

    account_id: str
    idempotency_key: str
    fingerprint: bytes
    record: bytes  # sentinel.hotpath.rows record
    claim: bool = True  # False: only read the account (a takeover of a request admitted earlier)


@dataclass(slots=True)
class Fold:
    """The base an account gets once the first ``entries`` journal entries are applied to the base of
    version ``version`` (b"": there was none)."""

    account_id: str
    version: bytes
    state: bytes
    entries: int


@dataclass(slots=True)
class _Call:
    """The keys and arguments of one script call (one hash slot in a cluster)."""

    claim_keys: list[str] = field(default_factory=list)
    claim_values: list[bytes] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    account_args: list[bytes | int] = field(default_factory=list)

    def add_claim(self, key: str, value: bytes) -> int:
        """Add a claim; its 1-based index in this call."""
        self.claim_keys.append(claim_key(key))
        self.claim_values.append(value)
        return len(self.claim_keys)

    def add_account(self, account_id: str, *args: bytes | int) -> None:
        self.accounts.append(account_id)
        self.account_args.extend(args)

    def keys_and_args(self, claim_ttl: int, state_ttl: int) -> tuple[list[str], list[bytes | int]]:
        keys = list(self.claim_keys)
        for account in self.accounts:
            keys += (state_key(account), journal_key(account))
        args: list[bytes | int] = [claim_ttl, state_ttl, len(self.claim_keys), len(self.accounts)]
        return keys, args + self.claim_values + self.account_args


def _rows_args(rows: list[tuple[int, bytes]]) -> list[bytes | int]:
    """An account's admit arguments: the row count, then (claim index, record) per row."""
    args: list[bytes | int] = [len(rows)]
    for index, record in rows:
        args += (index, record)
    return args


def next_version(version: bytes) -> bytes:
    """The version a fold of the base at ``version`` writes."""
    current = int.from_bytes(version, "big") if version else 0
    return (current + 1).to_bytes(VERSION_BYTES, "big")


class AccountStateStore:
    """Admits batches into account journals and settles them; one script call per batch each."""

    def __init__(self, client: Redis | RedisCluster, *, state_ttl_s: int, claim_ttl_s: int) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._state_ttl = state_ttl_s
        self._claim_ttl = claim_ttl_s
        self._admit = client.register_script(_ADMIT_SCRIPT)
        self._settle = client.register_script(_SETTLE_SCRIPT)

    async def admit(self, rows: Sequence[AdmitRow]) -> Admission:
        """Claim the rows' keys and append the rows whose key was free; see the module docstring.

        Against a single Redis this is one atomic script call. In a cluster an account's keys and its
        requests' claims live in different slots: the claims are taken first (one call per slot),
        then the rows whose claims were taken are appended (one call per slot)."""
        by_account: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            by_account[row.account_id].append(i)
        if self._cluster:
            taken = await self._claim_in_cluster(rows)
            calls: dict[int, _Call] = defaultdict(_Call)
            for account, members in by_account.items():
                appended = [(0, rows[i].record) for i in members if rows[i].claim and taken[i] is None]
                calls[self._slot(state_key(account))].add_account(account, *_rows_args(appended))
            results = await asyncio.gather(*(self._run(self._admit, call) for call in calls.values()))
            found = {
                account: result
                for call, (_, account_results) in zip(calls.values(), results, strict=True)
                for account, result in zip(call.accounts, account_results, strict=True)
            }
            return _admission(by_account, taken, found)
        call = _Call()
        index = {
            i: call.add_claim(row.idempotency_key, pending_claim(row.fingerprint))
            for i, row in enumerate(rows)
            if row.claim
        }
        for account, members in by_account.items():
            appended = [(index[i], rows[i].record) for i in members if i in index]
            call.add_account(account, *_rows_args(appended))
        existing, account_results = await self._run(self._admit, call)
        taken = [existing[index[i] - 1] if i in index else None for i in range(len(rows))]
        return _admission(by_account, taken, dict(zip(by_account, account_results, strict=True)))

    async def _claim_in_cluster(self, rows: Sequence[AdmitRow]) -> list[bytes | None]:
        """Cluster only: take the claims of ``rows``, one call per slot; the claims that existed."""
        calls: dict[int, _Call] = defaultdict(_Call)
        members: dict[int, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            if row.claim:
                slot = self._slot(claim_key(row.idempotency_key))
                calls[slot].add_claim(row.idempotency_key, pending_claim(row.fingerprint))
                members[slot].append(i)
        results = await asyncio.gather(*(self._run(self._admit, call) for call in calls.values()))
        taken: list[bytes | None] = [None] * len(rows)
        for slot, (existing, _) in zip(calls, results, strict=True):
            for i, value in zip(members[slot], existing, strict=True):
                taken[i] = value
        return taken

    async def settle(self, claims: Sequence[tuple[str, bytes]], folds: Sequence[Fold]) -> int:
        """Write decided claims ((idempotency key, value)) and apply the folds whose base version still
        matches; how many folds applied."""
        calls: dict[int, _Call] = defaultdict(_Call)
        for key, value in claims:
            calls[self._slot(claim_key(key))].add_claim(key, value)
        for fold in folds:
            calls[self._slot(state_key(fold.account_id))].add_account(
                fold.account_id, fold.version, next_version(fold.version) + fold.state, fold.entries
            )
        if not calls:
            return 0
        results = await asyncio.gather(*(self._run(self._settle, call) for call in calls.values()))
        return sum(results)

    async def state_of(self, account_id: str) -> bytes | None:
        """An account's current state (base and journal folded, nothing written); TestRule reads it."""
        _, state, entries = await self.read(account_id)
        return fold(state, entries)

    async def read(self, account_id: str) -> tuple[bytes, bytes | None, list[bytes]]:
        """An account's base version (b"": none), base state (None: none) and journal entries, without
        changing anything (TestRule and ``sentinel state rebuild`` read this way)."""
        async with self._client.pipeline(transaction=not self._cluster) as pipe:
            pipe.get(state_key(account_id))
            pipe.lrange(journal_key(account_id), 0, -1)
            base, entries = await pipe.execute()
        if base is None:
            return b"", None, list(entries)
        return base[:VERSION_BYTES], base[VERSION_BYTES:], list(entries)

    def _slot(self, key: str) -> int:
        return key_slot(key.encode()) if self._cluster else 0

    async def _run(self, script: AsyncScript, call: _Call) -> Any:
        keys, args = call.keys_and_args(self._claim_ttl, self._state_ttl)
        return await script(keys=keys, args=args)


def _admission(
    by_account: dict[str, list[int]], taken: list[bytes | None], found: dict[str, Any]
) -> Admission:
    bases: dict[str, tuple[bytes, bytes | None]] = {}
    journals: dict[str, list[bytes]] = {}
    for account in by_account:
        base, entries = found[account]
        bases[account] = (base[:VERSION_BYTES], base[VERSION_BYTES:]) if base else (b"", None)
        journals[account] = list(entries)
    return Admission([Claim.parse(value) if value else None for value in taken], bases, journals)


def journal_rows(
    journals: dict[str, list[bytes]], slot_of: dict[str, int]
) -> tuple[Records, npt.NDArray[np.int32]]:
    """Journal entries as records, in order, with the account slot of each (``slot_of``). An entry that
    is not readable (another build's record format) is logged and skipped: it is folded away."""
    parts: list[Records] = []
    slots: list[npt.NDArray[np.int32]] = []
    for account, entries in journals.items():
        for entry in entries:
            try:
                records = entry_records(entry)
            except RowsDecodeError as exc:
                log.error("journal_entry_unreadable", account_id=account, error=str(exc))
                continue
            parts.append(records)
            slots.append(np.full(len(records), slot_of[account], dtype=np.int32))
    if not parts:
        return np.empty(0, dtype=ROW_DTYPE), np.empty(0, dtype=np.int32)
    return np.concatenate(parts), np.concatenate(slots)


def features_and_states(
    columns: TransactionColumns, states: list[bytes | None]
) -> tuple[npt.NDArray[np.float32], list[bytes | None]]:
    """``build_features``, except that a state the hot path refuses (corrupt, or another build's
    layout) is logged and its account starts afresh instead of failing the batch."""
    while True:
        try:
            return build_features(columns, states)
        except StateDecodeError as exc:
            log.error("account_state_corrupt", error=str(exc), slot=exc.slot)
            if exc.slot is None:
                raise
            states[exc.slot] = None


def fold(state: bytes | None, entries: list[bytes]) -> bytes | None:
    """An account's state with its journal ``entries`` applied in order (None: no state at all)."""
    records, slots = journal_rows({"": entries}, {"": 0})
    if not len(records):
        return state
    _, states = features_and_states(columns_of(records, slots), [state])
    return states[0]
