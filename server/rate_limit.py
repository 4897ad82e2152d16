"""Per-caller rate limits: a token bucket per caller in Redis, shared by every worker and replica.

A caller's limit comes from the ``rate_limits`` setting: its ``client:<subject>`` entry, else the most
generous ``role:<role>`` entry among its roles, else ``default``, else none (unlimited, and no Redis
call). Every caller has a bucket of its own (a role entry gives each of its callers that much, not the
role's callers together), counted in transactions: a call costs the transactions it asks to have decided.

The bucket is one Lua script over one key (``sentinel:r:{subject}``, so it also runs on Redis Cluster):
it refills the bucket by the time elapsed on Redis's clock (``TIME``, one clock for every worker and
replica), takes the call's cost if the bucket holds it, and otherwise takes nothing and says how long
until it would. Atomic, one round trip per call; the key expires once the bucket would be full again.

When Redis fails or does not answer within ``redis_budget_ms``, the limiter fails open to a token bucket
per process with the same limits (so the limit then holds per worker, not per caller across workers) and
leaves Redis alone for ``redis_retry_after_s``, as the state stage does: no call waits for a dead Redis.
The switch, both ways, is logged once and shown by ``sentinel_rate_limit_fail_open``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import structlog
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sentinel.config import RateLimit
from sentinel.server import metrics
from sentinel.server.budget import within_budget
from sentinel.server.errors import Refusal
from sentinel.server.identity import Caller
from sentinel.server.redis_errors import REDIS_FAILURES

log = structlog.get_logger("sentinel.admission")

# KEYS[1]: the caller's bucket, a hash of t (tokens) and u (Redis time of t, in microseconds).
# ARGV: rate per second, burst, cost. Returns {1, 0} when the cost was taken, else {0, milliseconds
# until the bucket holds it}. Numbers are written with %.17g: Redis would render them with Lua's %.14g,
# which rounds a time in microseconds.
_TOKEN_BUCKET_SCRIPT = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(held[1])
local updated = tonumber(held[2])
if tokens == nil or updated == nil then
  tokens = burst
  updated = now_us
end
if now_us > updated then
  tokens = tokens + (now_us - updated) * rate / 1000000
end
tokens = math.min(burst, tokens)
if tokens < cost then
  return {0, math.ceil((cost - tokens) * 1000 / rate)}
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'u', string.format('%.17g', now_us))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {1, 0}
"""

# Local buckets kept while failing open; past this many, the full ones (callers idle long enough) go.
_LOCAL_BUCKETS_MAX = 10_000


def bucket_key(subject: str) -> str:
    """Redis key of a caller's bucket (one key per call: a single hash slot on Redis Cluster)."""
    return f"sentinel:r:{{{subject}}}"


def _describe(name: str, limit: RateLimit) -> str:
    return f"rate limit {name} ({limit.rate_per_s:g} transactions/s, burst {limit.burst})"


def _entries(limits: Mapping[str, RateLimit], prefix: str) -> dict[str, tuple[str, RateLimit]]:
    """The limits whose key starts with ``prefix``, by the name after it, with their key."""
    return {key.removeprefix(prefix): (key, limit) for key, limit in limits.items() if key.startswith(prefix)}


class _LocalBucket:
    """The same bucket in this process's memory, on the monotonic clock: the fail-open fallback."""

    __slots__ = ("limit", "tokens", "updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = now

    def take(self, cost: int, now: float) -> float:
        """Take ``cost`` and return 0.0, or take nothing and return the seconds until it fits."""
        rate = self.limit.rate_per_s
        self.tokens = min(self.limit.burst, self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = now
        if self.tokens < cost:
            return (cost - self.tokens) / rate
        self.tokens -= cost
        return 0.0

    def full(self, now: float) -> bool:
        """True when refilled by now: as good as no bucket at all."""
        return self.tokens + (now - self.updated) * self.limit.rate_per_s >= self.limit.burst


class RateLimiter:
    """Charges callers' transactions against their limits; see the module docstring."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit],
        redis: Redis | RedisCluster | None,
        *,
        budget_s: float,
        retry_after_s: float,
    ) -> None:
        self._clients = _entries(limits, "client:")
        self._roles = _entries(limits, "role:")
        self._default = ("default", limits["default"]) if "default" in limits else None
        self._script = redis.register_script(_TOKEN_BUCKET_SCRIPT) if redis is not None and limits else None
        self._budget_s = budget_s
        self._retry_after_s = retry_after_s
        self._down_until = 0.0  # monotonic time before which Redis is not asked
        self._failing_open = False
        self._local: dict[str, _LocalBucket] = {}

    @property
    def enabled(self) -> bool:
        """False when no limit is configured: nothing to charge, no Redis call."""
        return bool(self._clients or self._roles or self._default)

    def limit_for(self, caller: Caller) -> tuple[str, RateLimit] | None:
        """The caller's limit and its name: its client entry, else its most generous role entry (by
        rate, then burst), else the default; None: unlimited."""
        client = self._clients.get(caller.subject)
        if client is not None:
            return client
        roles = [self._roles[role] for role in caller.roles if role in self._roles]
        if roles:
            return max(roles, key=lambda entry: (entry[1].rate_per_s, entry[1].burst, entry[0]))
        return self._default

    async def charge(self, caller: Caller, cost: int) -> Refusal | None:
        """Take ``cost`` transactions from the caller's bucket; a Refusal when it does not hold them."""
        found = self.limit_for(caller)
        if found is None:
            return None
        name, limit = found
        if cost > limit.burst:  # never fits, however long the caller waits
            return self._refused(
                name,
                cost,
                f"{cost} transactions in one call exceed the burst of {_describe(name, limit)}: send at "
                f"most {limit.burst} per call",
                None,
            )
        wait_s = await self._take(caller.subject, limit, cost)
        if wait_s <= 0:
            return None
        wait_s = max(wait_s, 0.001)
        return self._refused(
            name,
            cost,
            f"{_describe(name, limit)} exceeded: this call's "
            f"{'1 transaction fits' if cost == 1 else f'{cost} transactions fit'} in {wait_s * 1000:.0f} ms",
            wait_s,
        )

    @staticmethod
    def _refused(name: str, cost: int, message: str, retry_after_s: float | None) -> Refusal:
        metrics.RATE_LIMITED.labels(name).inc()
        metrics.RATE_LIMITED_TRANSACTIONS.labels(name).inc(cost)
        return Refusal(message, retry_after_s, name)

    async def _take(self, subject: str, limit: RateLimit, cost: int) -> float:
        """Seconds until the bucket holds ``cost`` (0.0: taken), from Redis or, failing open, locally."""
        if self._script is not None and time.monotonic() >= self._down_until:
            try:
                taken, wait_ms = await within_budget(
                    self._script(keys=[bucket_key(subject)], args=[limit.rate_per_s, limit.burst, cost]),
                    self._budget_s,
                )
            except REDIS_FAILURES as exc:
                self._fail_open(exc)
            else:
                if self._failing_open:
                    self._recovered()
                return 0.0 if taken else int(wait_ms) / 1000
        metrics.RATE_LIMIT_LOCAL_CHECKS.inc()
        return self._take_locally(subject, limit, cost)

    def _take_locally(self, subject: str, limit: RateLimit, cost: int) -> float:
        now = time.monotonic()
        bucket = self._local.get(subject)
        if bucket is None or bucket.limit != limit:
            if len(self._local) >= _LOCAL_BUCKETS_MAX:
                self._local = {key: kept for key, kept in self._local.items() if not kept.full(now)}
            bucket = self._local[subject] = _LocalBucket(limit, now)
        return bucket.take(cost, now)

    def _fail_open(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._retry_after_s
        if not self._failing_open:
            self._failing_open = True
            metrics.RATE_LIMIT_FAIL_OPEN.set(1)
            log.warning(
                "rate_limit_fail_open",
                error=repr(exc),
                retry_in_s=self._retry_after_s,
                detail="Redis unreachable: rate limits are counted per worker process until it answers",
            )

    def _recovered(self) -> None:
        self._failing_open = False
        self._local.clear()  # Redis's buckets count again; stale local ones would mislead a later outage
        metrics.RATE_LIMIT_FAIL_OPEN.set(0)
        log.info("rate_limit_redis_recovered")
