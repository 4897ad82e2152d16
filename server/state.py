"""The *state* stage: per-account state and idempotency claims in Redis.

Each account has one value, ``sentinel:{<account>}:s`` = an 8-byte big-endian version followed by the
hot path's encoded state. Writes go through one Lua script per hash slot (one per batch against a
single Redis) that, per account, compares the version read earlier and checks that none of the
batch's idempotency keys of that account exist yet, and only then stores the new state and claims the
keys. An account that lost a race to another worker or replica is reported back, re-read and
recomputed: no update is ever lost, and a transaction never changes state twice.

Idempotency claims live beside the state, ``sentinel:{<account>}:i:<key>``, so that both share a hash
slot in Redis Cluster. A claim holds the request's fingerprint and the decision made for it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

VERSION_BYTES = 8

_COMMIT_SCRIPT = """
-- KEYS: per account: its state key, then the idempotency keys it claims.
-- ARGV: state ttl, claim ttl, account count, then per account:
--       expected version ('' = new account), new value, claim count, claim values...
local results = {}
local k, a = 1, 4
for i = 1, tonumber(ARGV[3]) do
  local state_key, expected, new_value = KEYS[k], ARGV[a], ARGV[a + 1]
  local claims = tonumber(ARGV[a + 2])
  local current = redis.call('GET', state_key)
  local ok = (current and string.sub(current, 1, 8) or '') == expected
  for j = 1, claims do
    if ok and redis.call('EXISTS', KEYS[k + j]) == 1 then ok = false end
  end
  if ok then
    redis.call('SET', state_key, new_value, 'EX', ARGV[1])
    for j = 1, claims do redis.call('SET', KEYS[k + j], ARGV[a + 2 + j], 'EX', ARGV[2]) end
  end
  results[i] = ok and 1 or 0
  k = k + 1 + claims
  a = a + 3 + claims
end
return results
"""


def state_key(account_id: str) -> str:
    """Redis key of an account's state (hash-tagged by account)."""
    return f"sentinel:{{{account_id}}}:s"


def claim_key(account_id: str, idempotency_key: str) -> str:
    """Redis key of an idempotency claim (same hash slot as the account's state)."""
    return f"sentinel:{{{account_id}}}:i:{idempotency_key}"


@dataclass(slots=True)
class AccountSnapshot:
    """What Redis held for an account when the batch read it."""

    version: bytes  # b"" for a new account
    state: bytes | None  # the hot path's encoded state; None for a new account


@dataclass(slots=True)
class AccountWrite:
    """A new state for one account, valid only if the version is still ``expected``, plus claims."""

    account_id: str
    expected: bytes
    state: bytes
    claims: list[tuple[str, bytes]] = field(default_factory=list)  # (idempotency key, claim value)


def _next_version(expected: bytes) -> bytes:
    current = int.from_bytes(expected, "big") if expected else 0
    return (current + 1).to_bytes(VERSION_BYTES, "big")


class AccountStateStore:
    """Reads and atomically writes account state and idempotency claims, one round trip each."""

    def __init__(self, client: Redis | RedisCluster, *, state_ttl_s: int, claim_ttl_s: int) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._state_ttl = state_ttl_s
        self._claim_ttl = claim_ttl_s
        self._commit = client.register_script(_COMMIT_SCRIPT)

    async def read(
        self, accounts: Sequence[str], claims: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, AccountSnapshot], dict[tuple[str, str], bytes]]:
        """States of ``accounts`` and the existing claims among ``claims`` ((account, key) pairs)."""
        keys = [state_key(a) for a in accounts] + [claim_key(a, k) for a, k in claims]
        if not keys:
            return {}, {}
        if self._cluster:
            values = await self._client.mget_nonatomic(keys)  # type: ignore[union-attr]
        else:
            values = await self._client.mget(keys)
        snapshots = {
            account: AccountSnapshot(value[:VERSION_BYTES], value[VERSION_BYTES:])
            if value is not None
            else AccountSnapshot(b"", None)
            for account, value in zip(accounts, values[: len(accounts)], strict=True)
        }
        existing = {
            claim: value
            for claim, value in zip(claims, values[len(accounts) :], strict=True)
            if value is not None
        }
        return snapshots, existing

    async def state_of(self, account_id: str) -> bytes | None:
        """The encoded state of one account (None: no state), read-only (TestRule uses it)."""
        snapshots, _ = await self.read([account_id], [])
        return snapshots[account_id].state

    async def update_claims(self, claims: Sequence[tuple[str, str, bytes]]) -> None:
        """Overwrite existing claims ((account, key, value)), keeping their expiry; one round trip."""
        async with self._client.pipeline(transaction=False) as pipe:
            for account_id, key, value in claims:
                pipe.set(claim_key(account_id, key), value, xx=True, keepttl=True)
            await pipe.execute()

    async def commit(self, writes: Sequence[AccountWrite]) -> list[str]:
        """Apply the writes whose versions still match; returns the accounts that lost a race."""
        groups: dict[int, list[AccountWrite]] = defaultdict(list)
        for write in writes:
            groups[key_slot(state_key(write.account_id).encode()) if self._cluster else 0].append(write)
        results = await asyncio.gather(*(self._commit_group(group) for group in groups.values()))
        return [account for conflicts in results for account in conflicts]

    async def _commit_group(self, group: list[AccountWrite]) -> list[str]:
        keys: list[str] = []
        args: list[bytes | int] = [self._state_ttl, self._claim_ttl, len(group)]
        for write in group:
            keys.append(state_key(write.account_id))
            keys.extend(claim_key(write.account_id, key) for key, _ in write.claims)
            args.extend((write.expected, _next_version(write.expected) + write.state, len(write.claims)))
            args.extend(value for _, value in write.claims)
        results = await self._commit(keys=keys, args=args)
        return [w.account_id for w, ok in zip(group, results, strict=True) if not ok]
