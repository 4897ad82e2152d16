"""The *state* stage's store: per-account state with its journal, and idempotency claims, in Redis.

Layout (docs/decisions/0011-account-state-journal.md). One string per account,
``sentinel:{<account>}:s`` (hash-tagged by account for Redis Cluster):

    version (8 bytes, big-endian) | base length (2 bytes) | base | journal

The *base* is the hot path's encoded state with every transaction folded into it so far (empty for an
account that has none yet); the *journal* is the rows admitted since, as ``sentinel.hotpath.rows``
records in the order Redis admitted them. The account's state is the base with the journal applied
in order. Per idempotency key, ``sentinel:i:{<key>}`` holds the request's fingerprint, then ``P`` +
the admission time (admitted, not decided yet) or ``D`` + the decision.

A batch makes two calls. ``admit`` (one script) claims the keys that have no claim yet, appends the
rows of those keys to their accounts' journals (APPEND) and returns what the accounts held before:
base and earlier journal. Redis runs scripts one at a time, so admission is the order in which an
account's transactions happen: each batch computes its rows' features on exactly the state that Redis
placed before them, whatever other workers or replicas do at the same time. Nothing is refused for
contention, nothing retried. ``settle`` (after the ledger) writes the decisions into the claims and
folds: the base becomes the state after the batch's rows and the journal keeps only what came after
them, if the version is still the one the batch read (else another batch folded first, and the rows
wait for the next fold; nothing is lost). Appends never change the version, folds always do.

A key that is already claimed is never appended: a retry or a reused key does not touch the state.
"""

from __future__ import annotations

import asyncio
import struct
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

from sentinel.hotpath import (
    StateDecodeError,
    TransactionColumns,
    build_features,
    pending_claims,
    settle_claims,
)
from sentinel.hotpath.rows import ROW_DTYPE, ROW_SIZE, Records, columns_of, decode_journals
from sentinel.ledger.records import FINGERPRINT_BYTES
from sentinel.server.requests import Decided

log = structlog.get_logger("sentinel.state")

VERSION_BYTES = 8
_HEADER_BYTES = VERSION_BYTES + 2  # version + base length
_PENDING = b"P"
DECIDED_MARK = b"D"

# Both scripts take their values packed into four arguments rather than one argument per value: redis-py
# encodes every argument with Python code of its own, which cost the workers more than the rest of the
# state stage (decision 0011, "Packed arguments").
_ADMIT_SCRIPT = """
-- KEYS: the claim keys, then the account keys.
-- ARGV: claim ttl, state ttl, claim count C, account count A, the C claim values' lengths (4 bytes
--       each, big-endian), the C pending claim values concatenated, per account its first claim's
--       index in this call (its claims are consecutive) and its row count R (4 bytes each), and per
--       account its R records, all concatenated (row r goes with claim first + r - 1; first = 0: the
--       claims were taken already, append every row; R = 0: nothing to append).
-- Returns {existing claim or false per claim key, what each account held before (or false)}.
local claim_ttl, state_ttl = ARGV[1], ARGV[2]
local claims, accounts = tonumber(ARGV[3]), tonumber(ARGV[4])
local lengths, values, heads, records = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local existing, taken = {}, {}
local at = 1
for i = 1, claims do
  local length = struct.unpack('>I4', lengths, 4 * i - 3)
  local claim = string.sub(values, at, at + length - 1)
  at = at + length
  local value = redis.call('SET', KEYS[i], claim, 'NX', 'GET', 'EX', claim_ttl)
  existing[i] = value or false
  taken[i] = not value
end
local before = {}
at = 1
for j = 1, accounts do
  local key = KEYS[claims + j]
  local value = redis.call('GET', key)
  local first, count = struct.unpack('>I4I4', heads, 8 * j - 7)
  local rows = string.sub(records, at, at + count * ROW - 1)
  if first > 0 then
    local kept = {}
    for r = 1, count do
      if taken[first + r - 1] then kept[#kept + 1] = string.sub(rows, (r - 1) * ROW + 1, r * ROW) end
    end
    rows = table.concat(kept)
  end
  at = at + count * ROW
  if #rows > 0 then
    if value then
      redis.call('APPEND', key, rows)
    else
      redis.call('SET', key, NEW_ACCOUNT .. rows, 'EX', state_ttl)
    end
  end
  before[j] = value or false
end
return {existing, before}
""".replace("NEW_ACCOUNT", f"string.rep(string.char(0), {_HEADER_BYTES})").replace("ROW", str(ROW_SIZE))

_SETTLE_SCRIPT = """
-- KEYS: claim keys, then account keys.
-- ARGV: claim ttl, state ttl, claim count C, account count A, the C claim values' lengths (4 bytes
--       each, big-endian), the C claim values concatenated, per account the version its batch read
--       (8 bytes; zeros: none, and a missing value then is created), the length of its new header +
--       base and the journal bytes that base covers (4 bytes each), and the accounts' new headers +
--       bases, concatenated.
local claim_ttl, state_ttl = ARGV[1], ARGV[2]
local claims, accounts = tonumber(ARGV[3]), tonumber(ARGV[4])
local lengths, values, heads, bases = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local at = 1
for i = 1, claims do
  local length = struct.unpack('>I4', lengths, 4 * i - 3)
  redis.call('SET', KEYS[i], string.sub(values, at, at + length - 1), 'EX', claim_ttl)
  at = at + length
end
local folded = 0
at = 1
for j = 1, accounts do
  local key = KEYS[claims + j]
  local version = string.sub(heads, 16 * j - 15, 16 * j - 8)
  local length, covered = struct.unpack('>I4I4', heads, 16 * j - 7)
  local current = redis.call('GET', key)
  if (current and string.sub(current, 1, 8) or NO_VERSION) == version then
    local rest = ''
    if current then
      local base_length = string.byte(current, 9) * 256 + string.byte(current, 10)
      rest = string.sub(current, 11 + base_length + covered)
    end
    redis.call('SET', key, string.sub(bases, at, at + length - 1) .. rest, 'EX', state_ttl)
    folded = folded + 1
  end
  at = at + length
end
return folded
""".replace("NO_VERSION", f"string.rep(string.char(0), {VERSION_BYTES})")


def state_key(account_id: str) -> str:
    """Redis key of an account's state and journal (hash-tagged by account)."""
    return f"sentinel:{{{account_id}}}:s"


_CLAIM_KEY_PREFIX, _CLAIM_KEY_SUFFIX = "sentinel:i:{", "}"
# encoded, as the compiled claim writers take them (sentinel.hotpath._claims)
CLAIM_KEY_PARTS = (_CLAIM_KEY_PREFIX.encode(), _CLAIM_KEY_SUFFIX.encode())


def claim_key(idempotency_key: str) -> str:
    """Redis key of an idempotency claim: one per key, whatever account the key was used with."""
    return f"{_CLAIM_KEY_PREFIX}{idempotency_key}{_CLAIM_KEY_SUFFIX}"


def pending_claim(fingerprint: bytes, admitted_at: bytes) -> bytes:
    """The claim of an admitted, not yet decided request (``admitted_at``: ``admission_time()``)."""
    return fingerprint + _PENDING + admitted_at


def admission_time() -> bytes:
    """Now, as pending claims record it (milliseconds since the epoch)."""
    return int(time.time() * 1000).to_bytes(8, "big")


def decided_claim(fingerprint: bytes, decision: bytes) -> bytes:
    """The claim of a decided request: its serialized Decision."""
    return fingerprint + DECIDED_MARK + decision


class Claim(NamedTuple):
    """A claim found on admission: whose key it is, and how far its request got."""

    fingerprint: bytes
    decision: bytes | None  # the serialized Decision; None while the first request is being decided
    admitted_at: float  # seconds since the epoch (pending claims; 0 for decided ones)

    @classmethod
    def parse(cls, value: bytes) -> Claim:
        fingerprint, kind = value[:FINGERPRINT_BYTES], value[FINGERPRINT_BYTES : FINGERPRINT_BYTES + 1]
        rest = value[FINGERPRINT_BYTES + 1 :]
        if kind == DECIDED_MARK:
            return cls(fingerprint, rest, 0.0)
        return cls(fingerprint, None, int.from_bytes(rest[:8], "big") / 1000)


class AccountValue(NamedTuple):
    """An account's value in Redis, split: version, base (None: none yet), journal (whole records)."""

    version: bytes
    base: bytes | None
    journal: bytes

    @classmethod
    def parse(cls, value: bytes | None) -> AccountValue:
        return cls(*_split(value)) if value else _NO_VALUE


def _split(value: bytes) -> tuple[bytes, bytes | None, bytes]:
    end = _HEADER_BYTES + int.from_bytes(value[VERSION_BYTES:_HEADER_BYTES], "big")
    return value[:VERSION_BYTES], value[_HEADER_BYTES:end] or None, value[end:]


_NO_VALUE = AccountValue(bytes(VERSION_BYTES), None, b"")


@dataclass(slots=True)
class Admission:
    """What ``admit`` found: per row its existing claim (None: admitted now), per account (in the order
    of the batch's account slots) what it held before this batch's rows."""

    claims: list[Claim | None]
    account_ids: list[str]
    values: list[bytes | None]  # as Redis holds them: see AccountValue

    def split(self) -> tuple[list[bytes], list[bytes | None], list[bytes]]:
        """The accounts' versions, bases and journals (AccountValue's fields as three lists in slot
        order, at half the cost of an AccountValue per account)."""
        versions: list[bytes] = []
        bases: list[bytes | None] = []
        journals: list[bytes] = []
        for value in self.values:
            version, base, journal = _split(value) if value else _NO_VALUE
            versions.append(version)
            bases.append(base)
            journals.append(journal)
        return versions, bases, journals

    @property
    def accounts(self) -> dict[str, AccountValue]:
        """The accounts' values, split, by account id."""
        values = zip(self.account_ids, self.values, strict=True)
        return {account: AccountValue.parse(value) for account, value in values}


class AdmitRow(NamedTuple):
    """One request as ``admit`` sees it: the claim to take and the row to append if it is taken."""

    account_id: str
    idempotency_key: str
    fingerprint: bytes
    record: bytes  # sentinel.hotpath.rows record
    claim: bool = True  # False: only read the account (a takeover of a request admitted earlier)


class AdmitColumns(NamedTuple):
    """A batch as ``admit`` takes it, as columns: what AdmitRow says of one request, for every row."""

    account_ids: list[str]  # account slot -> account id
    account_slot: npt.NDArray[np.int32]  # row -> its account's slot
    idempotency_keys: list[str]
    fingerprints: list[bytes]
    records: Records  # row -> its sentinel.hotpath.rows record
    claim: npt.NDArray[np.bool_]  # row -> False: only read the account (a takeover)

    @classmethod
    def of_rows(cls, rows: Sequence[AdmitRow]) -> AdmitColumns:
        """The columns of ``rows``; accounts get slots in the order they first appear."""
        slots: dict[str, int] = {}
        slot_of_row = [slots.setdefault(row.account_id, len(slots)) for row in rows]
        return cls(
            list(slots),
            np.array(slot_of_row, dtype=np.int32),
            [row.idempotency_key for row in rows],
            [row.fingerprint for row in rows],
            np.frombuffer(b"".join(row.record for row in rows), dtype=ROW_DTYPE),
            np.array([row.claim for row in rows], dtype=np.bool_),
        )


@dataclass(slots=True)
class Fold:
    """The base an account gets once the first ``rows`` journal rows are applied to the base of version
    ``version``."""

    account_id: str
    version: bytes
    state: bytes
    rows: int


_ADMIT_HEAD = struct.Struct(">II")  # an account's first claim in the call, its row count
_SETTLE_HEAD = struct.Struct(f">{VERSION_BYTES}sII")  # version read, new header + base length, covered


class ClaimWrites(NamedTuple):
    """Decided claims to write, as ``settle`` takes them: Redis keys (encoded claim keys) and values."""

    keys: list[bytes]
    values: list[bytes]

    @classmethod
    def of_pairs(cls, claims: Sequence[tuple[str, bytes]]) -> ClaimWrites:
        """The writes of (idempotency key, claim value) pairs."""
        return cls([claim_key(key).encode() for key, _ in claims], [value for _, value in claims])

    @classmethod
    def decided(
        cls,
        keys: list[str],
        fingerprints: list[bytes],
        results: Sequence[object],
        owners: dict[int, tuple[bytes | None, bytes | None]],
        replays: set[int],
        resubmitted: set[int],
        durable: bool,
    ) -> ClaimWrites:
        """The decided claims a batch writes after the ledger (which rows, and what: ``settle_claims``)."""
        return cls(
            *settle_claims(
                keys,
                fingerprints,
                results,
                Decided,
                owners,
                replays,
                resubmitted,
                durable,
                *CLAIM_KEY_PARTS,
                DECIDED_MARK,
            )
        )


@dataclass(slots=True)
class _Call:
    """The keys and arguments of one script call (one hash slot in a cluster): the claims' keys (encoded)
    and values, and per account its key, a fixed-size head and its data (see the scripts)."""

    claim_keys: list[bytes] = field(default_factory=list)
    claim_values: list[bytes] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    account_heads: list[bytes] = field(default_factory=list)
    account_data: list[bytes] = field(default_factory=list)

    def add_claim(self, key: bytes, value: bytes) -> None:
        self.claim_keys.append(key)
        self.claim_values.append(value)

    def add_account(self, account_id: str, head: bytes, data: bytes) -> None:
        self.accounts.append(account_id)
        self.account_heads.append(head)
        self.account_data.append(data)

    def keys_and_args(self, claim_ttl: int, state_ttl: int) -> tuple[list[bytes], list[bytes | int]]:
        """The call's keys, all encoded (redis-py encodes a str argument with more Python than a bytes
        one: half the cost of packing a call of a few hundred keys), and its arguments."""
        claims = len(self.claim_keys)
        keys = self.claim_keys + [state_key(account).encode() for account in self.accounts]
        lengths = struct.pack(f">{claims}I", *map(len, self.claim_values))
        return keys, [
            claim_ttl,
            state_ttl,
            claims,
            len(self.accounts),
            lengths,
            b"".join(self.claim_values),
            b"".join(self.account_heads),
            b"".join(self.account_data),
        ]


def next_header(version: bytes, state: bytes) -> bytes:
    """The version and base length a fold of the base at ``version`` writes, before the new base."""
    return (int.from_bytes(version, "big") + 1).to_bytes(VERSION_BYTES, "big") + len(state).to_bytes(2, "big")


class AccountStateStore:
    """Admits batches into account journals and settles them; one script call per batch each."""

    def __init__(self, client: Redis | RedisCluster, *, state_ttl_s: int, claim_ttl_s: int) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._state_ttl = state_ttl_s
        self._claim_ttl = claim_ttl_s
        self._admit = client.register_script(_ADMIT_SCRIPT)
        self._settle = client.register_script(_SETTLE_SCRIPT)

    async def admit(self, rows: Sequence[AdmitRow] | AdmitColumns) -> Admission:
        """Claim the rows' keys and append the rows whose key was free; see the module docstring.

        Against a single Redis this is one atomic script call. In a cluster an account's key and its
        requests' claims live in different slots: the claims are taken first (one call per slot),
        then the rows whose claims were taken are appended (one call per slot)."""
        batch = rows if isinstance(rows, AdmitColumns) else AdmitColumns.of_rows(rows)
        admitted_at = admission_time()
        if self._cluster:
            return await self._admit_in_cluster(batch, admitted_at)
        # The claims in account order (a stable sort keeps each account's rows in row order), so that
        # each account's claims are consecutive and its rows go in as one slice of the records.
        claiming = np.flatnonzero(batch.claim)
        order = claiming[np.argsort(batch.account_slot[claiming], kind="stable")]
        counts = np.bincount(batch.account_slot[order], minlength=len(batch.account_ids))
        heads = np.zeros((len(counts), 2), dtype=">u4")
        heads[:, 0] = np.where(counts > 0, np.cumsum(counts) - counts + 1, 0)
        heads[:, 1] = counts
        claimed = order.tolist()
        claim_keys, claim_values = pending_claims(
            batch.idempotency_keys, batch.fingerprints, claimed, *CLAIM_KEY_PARTS, _PENDING + admitted_at
        )
        call = _Call(
            claim_keys,
            claim_values,
            batch.account_ids,
            [heads.tobytes()],
            [batch.records[order].tobytes()],
        )
        existing, values = await self._run(self._admit, call)
        found_claims: list[bytes | None] = [None] * len(batch.idempotency_keys)
        for i, value in zip(claimed, existing, strict=True):
            found_claims[i] = value
        return _admission(found_claims, batch.account_ids, values)

    async def _admit_in_cluster(self, batch: AdmitColumns, admitted_at: bytes) -> Admission:
        """The claims first (one call per slot), then the rows whose claims were taken (one call per
        account slot)."""
        calls: dict[int, _Call] = defaultdict(_Call)
        members: dict[int, list[int]] = defaultdict(list)
        keys, fingerprints = batch.idempotency_keys, batch.fingerprints
        for i in np.flatnonzero(batch.claim).tolist():
            key = claim_key(keys[i]).encode()
            slot = self._slot(key)
            calls[slot].add_claim(key, pending_claim(fingerprints[i], admitted_at))
            members[slot].append(i)
        results = await asyncio.gather(*(self._run(self._admit, call) for call in calls.values()))
        taken: list[bytes | None] = [None] * len(keys)
        for slot, (existing, _) in zip(calls, results, strict=True):
            for i, value in zip(members[slot], existing, strict=True):
                taken[i] = value
        appended = batch.claim & np.array([value is None for value in taken], dtype=np.bool_)
        account_calls: dict[int, _Call] = defaultdict(_Call)
        for slot, account in enumerate(batch.account_ids):
            records = batch.records[appended & (batch.account_slot == slot)].tobytes()
            account_calls[self._slot(state_key(account).encode())].add_account(
                account, _ADMIT_HEAD.pack(0, len(records) // ROW_SIZE), records
            )
        results = await asyncio.gather(*(self._run(self._admit, call) for call in account_calls.values()))
        found = {
            account: value
            for call, (_, values) in zip(account_calls.values(), results, strict=True)
            for account, value in zip(call.accounts, values, strict=True)
        }
        return _admission(taken, batch.account_ids, [found[account] for account in batch.account_ids])

    async def settle(self, writes: ClaimWrites, folds: Sequence[Fold]) -> int:
        """Write decided claims and apply the folds whose version still matches; how many folds
        applied."""
        calls: dict[int, _Call] = defaultdict(_Call)
        if self._cluster:
            for key, value in zip(writes.keys, writes.values, strict=True):
                calls[self._slot(key)].add_claim(key, value)
        elif writes.keys:
            calls[0] = _Call(writes.keys, writes.values)
        for fold in folds:
            base = next_header(fold.version, fold.state) + fold.state
            calls[self._slot(state_key(fold.account_id).encode())].add_account(
                fold.account_id, _SETTLE_HEAD.pack(fold.version, len(base), fold.rows * ROW_SIZE), base
            )
        if not calls:
            return 0
        results = await asyncio.gather(*(self._run(self._settle, call) for call in calls.values()))
        return sum(results)

    async def read(self, account_id: str) -> AccountValue:
        """An account's version, base and journal, without changing anything."""
        value: bytes | None = await self._client.get(state_key(account_id))  # type: ignore[assignment]
        return AccountValue.parse(value)

    async def state_of(self, account_id: str) -> bytes | None:
        """An account's current state (base and journal folded, nothing written); TestRule reads it."""
        value = await self.read(account_id)
        return fold(value.base, value.journal)

    def _slot(self, key: bytes) -> int:
        return key_slot(key) if self._cluster else 0

    async def _run(self, script: AsyncScript, call: _Call) -> Any:
        keys, args = call.keys_and_args(self._claim_ttl, self._state_ttl)
        return await script(keys=keys, args=args)


def _admission(taken: list[bytes | None], account_ids: list[str], values: list[bytes | None]) -> Admission:
    return Admission([Claim.parse(value) if value else None for value in taken], account_ids, values)


def journal_rows(journals: Sequence[bytes], accounts: Sequence[str]) -> tuple[Records, npt.NDArray[np.int32]]:
    """The journals of ``accounts`` (account slot i: ``accounts[i]``, its journal ``journals[i]``) as
    records, in order, with the account slot of each. A journal that is not readable (another build's
    record format) is logged and skipped: the next fold drops it."""
    records, owner, unreadable = decode_journals(journals)
    for slot, error in unreadable.items():
        log.error("journal_unreadable", account_id=accounts[slot], error=error)
    return records, owner.astype(np.int32)


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


def fold(state: bytes | None, journal: bytes) -> bytes | None:
    """An account's state with its ``journal`` applied in order (None: no state at all)."""
    records, slots = journal_rows([journal], [""])
    if not len(records):
        return state
    _, states = features_and_states(columns_of(records, slots), [state])
    return states[0]
