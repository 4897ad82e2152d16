"""Destinations of the decision events (webhook subscriptions and the broker) and replays, in Postgres.

Tables from ``ledger/migrations/0007_events_outbox.sql``; every statement acts as the events role
(``sentinel_events``), the only role that may read a secret or touch a delivery. Each change of a
destination also appends its new state (never a secret) to ``ledger.event_destination_history``, in the
same transaction. A webhook secret is generated here and returned once, by ``create_webhook`` and
``rotate_secret``; ``list`` never returns one.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from sentinel.events.body import EVENT_TYPE
from sentinel.events.signing import new_secret
from sentinel.postgres import EVENTS_ROLE, writer_pool

OUTCOMES = ("APPROVE", "REVIEW", "DECLINE")
EVENT_TYPES = (EVENT_TYPE,)
AMQP_DESTINATION_ID = "amqp"
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500

_COLUMNS = (
    "destination_id, kind, url, description, outcomes, event_types, active, created_at, updated_at, "
    "previous_secret_until"
)
_HISTORY = """
INSERT INTO ledger.event_destination_history (destination_id, change, actor, kind, url, outcomes, event_types,
    active)
SELECT destination_id, $2, $3, kind, url, outcomes, event_types, active
FROM ledger.event_destinations WHERE destination_id = $1
"""
_MATCHING_DESTINATIONS = """
JOIN ledger.event_destinations AS d ON d.active
    AND (cardinality(d.outcomes) = 0 OR e.outcome = ANY (d.outcomes))
    AND (cardinality(d.event_types) = 0 OR 'decision.recorded' = ANY (d.event_types))
    AND ($3::text IS NULL OR d.destination_id = $3)"""
# Replay: a new pending delivery per matching (event, destination); a dead one comes back to life with its
# retry clock reset; one still pending is left as it is (it will be delivered anyway).
_REPLAY = f"""
WITH scheduled AS (
    INSERT INTO ledger.event_deliveries AS o (destination_id, sequence, account_id, recorded_at)
    SELECT d.destination_id, e.sequence, e.account_id, e.recorded_at
    FROM ledger.decisions AS e {_MATCHING_DESTINATIONS}
    WHERE e.recorded_at >= coalesce($1::timestamptz, '-infinity')
        AND e.recorded_at < coalesce($2::timestamptz, 'infinity')
        AND ($4::bigint[] IS NULL OR e.sequence = ANY ($4))
    ORDER BY e.sequence
    ON CONFLICT (destination_id, sequence) DO UPDATE
    SET state = 'pending', attempts = 0, next_attempt_at = now(), enqueued_at = now(), last_error = NULL
    WHERE o.state = 'dead'
    RETURNING 1
)
SELECT count(*) FROM scheduled
"""

_REVIVE_DEAD = """
UPDATE ledger.event_deliveries
SET state = 'pending', attempts = 0, next_attempt_at = now(), enqueued_at = now(), last_error = NULL
WHERE destination_id = $1 AND state = 'dead'
"""


class InvalidSubscription(ValueError):
    """A subscription request the store refuses (the RPC's INVALID_ARGUMENT)."""


class SubscriptionNotFound(LookupError):
    """No destination with that id (the RPC's NOT_FOUND)."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination as listed: everything but its secrets."""

    destination_id: str
    kind: str  # "webhook" | "amqp"
    url: str
    description: str
    outcomes: tuple[str, ...]  # empty: every outcome
    event_types: tuple[str, ...]  # empty: every event type
    active: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_until: datetime | None  # while a rotated secret still signs


def _destination(row: asyncpg.Record) -> Destination:
    return Destination(
        destination_id=row["destination_id"],
        kind=row["kind"],
        url=row["url"],
        description=row["description"],
        outcomes=tuple(row["outcomes"]),
        event_types=tuple(row["event_types"]),
        active=row["active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        previous_secret_until=row["previous_secret_until"],
    )


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal (no name resolution: the check must not depend on DNS)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str, allow_plain_http_loopback: bool) -> str:
    """``url`` when it is an acceptable webhook endpoint: https://, or http:// on loopback when allowed."""
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidSubscription(f"url must be 1 to {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise InvalidSubscription(f"url is not a valid URL: {exc}") from None
    if not parts.hostname or parts.username is not None or parts.password is not None or parts.fragment:
        raise InvalidSubscription("url needs a host, and no credentials or fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_plain_http_loopback and is_loopback_host(parts.hostname):
        return url
    allowed = "https:// (or http:// on loopback, with events_allow_plain_http_loopback)"
    raise InvalidSubscription(f"url must be {allowed}: {url!r}")


def _check_filters(outcomes: Sequence[str], event_types: Sequence[str]) -> None:
    unknown = sorted(set(outcomes) - set(OUTCOMES)) + sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidSubscription(
            f"unknown filter values {unknown}: outcomes are {', '.join(OUTCOMES)}, event types "
            f"{', '.join(EVENT_TYPES)}"
        )


def redacted(url: str) -> str:
    """``url`` without its password (the broker URL as listed and kept in the history)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class SubscriptionStore:
    """Destinations and replays, through a small pool acting as the events role."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        connect_timeout_s: float = 5.0,
        max_size: int = 2,
        application_name: str = "sentinel-events",
    ) -> SubscriptionStore:
        pool = await writer_pool(
            dsn,
            connect_timeout_s=connect_timeout_s,
            max_size=max_size,
            application_name=application_name,
            role=EVENTS_ROLE,
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def create_webhook(
        self,
        url: str,
        *,
        outcomes: Sequence[str],
        event_types: Sequence[str],
        description: str,
        actor: str,
        allow_plain_http_loopback: bool,
    ) -> tuple[Destination, str]:
        """Store a new active webhook subscription; returns it and its secret (shown this once)."""
        check_webhook_url(url, allow_plain_http_loopback)
        _check_filters(outcomes, event_types)
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidSubscription(f"description is longer than {MAX_DESCRIPTION_LENGTH} characters")
        secret = new_secret()
        destination_id = "wh_" + secrets.token_hex(8)
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "INSERT INTO ledger.event_destinations (destination_id, kind, url, description, secret, "
                "outcomes, event_types) VALUES ($1, 'webhook', $2, $3, $4, $5, $6) "
                f"RETURNING {_COLUMNS}",
                destination_id,
                url,
                description,
                secret,
                sorted(set(outcomes)),
                sorted(set(event_types)),
            )
            await connection.execute(_HISTORY, destination_id, "create", actor)
        return _destination(row), secret

    async def list(self, include_inactive: bool = False) -> list[Destination]:
        """Every destination (only the active ones unless ``include_inactive``), oldest first."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM ledger.event_destinations WHERE active OR $1 ORDER BY created_at, "
            "destination_id",
            include_inactive,
        )
        return [_destination(row) for row in rows]

    async def disable(self, destination_id: str, *, actor: str) -> Destination:
        """Stop delivering to a destination (its pending deliveries wait; re-enabling is not offered)."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                f"UPDATE ledger.event_destinations SET active = false, updated_at = now() "
                f"WHERE destination_id = $1 RETURNING {_COLUMNS}",
                destination_id,
            )
            if row is None:
                raise SubscriptionNotFound(f"no subscription {destination_id!r}")
            await connection.execute(_HISTORY, destination_id, "disable", actor)
        return _destination(row)

    async def rotate_secret(
        self, destination_id: str, *, actor: str, grace_s: float
    ) -> tuple[Destination, str]:
        """A new secret for a webhook; the old one keeps signing (second ``v1=``) for ``grace_s``."""
        secret = new_secret()
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "UPDATE ledger.event_destinations SET previous_secret = secret, secret = $2, "
                "previous_secret_until = now() + $3::float8 * interval '1 second', updated_at = now() "
                f"WHERE destination_id = $1 AND kind = 'webhook' RETURNING {_COLUMNS}",
                destination_id,
                secret,
                grace_s,
            )
            if row is None:
                raise SubscriptionNotFound(f"no webhook subscription {destination_id!r}")
            await connection.execute(_HISTORY, destination_id, "rotate_secret", actor)
        return _destination(row), secret

    async def sync_amqp(self, amqp_url: str | None, *, actor: str) -> None:
        """Make the broker destination match the ``events_amqp_url`` setting: active with the URL (without
        its password) when set, inactive when unset. Changes nothing (and adds no history) when it matches."""
        async with self._pool.acquire() as connection, connection.transaction():
            current = await connection.fetchrow(
                "SELECT url, active FROM ledger.event_destinations WHERE destination_id = $1 FOR UPDATE",
                AMQP_DESTINATION_ID,
            )
            if amqp_url is None:
                if current is None or not current["active"]:
                    return
                await connection.execute(
                    "UPDATE ledger.event_destinations SET active = false, updated_at = now() "
                    "WHERE destination_id = $1",
                    AMQP_DESTINATION_ID,
                )
                await connection.execute(_HISTORY, AMQP_DESTINATION_ID, "disable", actor)
                return
            url = redacted(amqp_url)
            if current is not None and current["active"] and current["url"] == url:
                return
            await connection.execute(
                "INSERT INTO ledger.event_destinations (destination_id, kind, url, description) "
                "VALUES ($1, 'amqp', $2, 'RabbitMQ (events_amqp_url)') "
                "ON CONFLICT (destination_id) DO UPDATE "
                "SET url = excluded.url, active = true, updated_at = now()",
                AMQP_DESTINATION_ID,
                url,
            )
            change = "create" if current is None else ("update" if current["active"] else "enable")
            await connection.execute(_HISTORY, AMQP_DESTINATION_ID, change, actor)

    async def replay(
        self,
        *,
        sequences: Sequence[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        destination_id: str | None = None,
    ) -> int:
        """Schedule the events of the given ledger sequences and/or time range ([since, until)) again, to
        every matching active destination or only to ``destination_id``; returns the deliveries scheduled.
        Without a time range the ledger is scanned whole: bound large ledgers with ``since``. With only a
        destination: its dead deliveries, all of them, are tried again."""
        if sequences is None and since is None and until is None and destination_id is None:
            raise InvalidSubscription("replay needs event ids, a time range or a destination")
        if since is not None and until is not None and until <= since:
            raise InvalidSubscription("until must be later than since")
        if destination_id is not None and not await self._pool.fetchval(
            "SELECT active FROM ledger.event_destinations WHERE destination_id = $1", destination_id
        ):
            raise SubscriptionNotFound(f"no active subscription {destination_id!r}")
        if sequences is None and since is None and until is None:
            status = await self._pool.execute(_REVIVE_DEAD, destination_id)
            return int(status.split()[-1])
        count = await self._pool.fetchval(
            _REPLAY, since, until, destination_id, list(sequences) if sequences is not None else None
        )
        return int(count)
