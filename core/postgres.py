"""The Postgres plumbing the ledger and the rule store share: the database's two roles and the
connections of the service side, which always act as the insert-and-select writer role.

One database holds the ledger and the rule tables (schema ``ledger``, migrations in
``ledger/migrations``, applied by ``sentinel.ledger.migrate``); the objects belong to the owner role
and the service acts as the writer role. The role is a startup parameter of the connection
(``role=sentinel_ledger_writer``), so every statement of the session runs with that role's privileges
whatever the login is: in production a login that is only a member of the writer role, in development
the private cluster's superuser. Since the session is never the owner, the owner's ability to disable
triggers is out of its reach, and the superuser-only ``session_replication_role`` cannot be set by the
role. ``synchronous_commit`` is forced on: with it off, Postgres may acknowledge a commit it later
loses, which the ledger promises never to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import asyncpg

from sentinel.config import ConfigError

OWNER_ROLE = "sentinel_ledger_owner"  # owns every table; migrations and checkpoints act as it
WRITER_ROLE = "sentinel_ledger_writer"  # what the service's connections act as
# The decision events' dispatcher and subscription management (sentinel.events): reads decisions, owns
# the outbox's deliveries and the webhook secrets, which the writer role can neither read nor change.
EVENTS_ROLE = "sentinel_events"

_SERVER_SETTINGS = {"role": WRITER_ROLE, "synchronous_commit": "on"}


def server_settings(application_name: str, role: str = WRITER_ROLE) -> dict[str, str]:
    """Startup parameters of a ledger service connection acting as ``role``."""
    return {**_SERVER_SETTINGS, "role": role, "application_name": application_name}


async def connect_as_writer(
    dsn: str, *, connect_timeout_s: float, application_name: str
) -> asyncpg.Connection:
    """One connection acting as the writer role."""
    return await asyncpg.connect(
        dsn, timeout=connect_timeout_s, server_settings=server_settings(application_name)
    )


async def writer_pool(
    dsn: str, *, connect_timeout_s: float, max_size: int, application_name: str, role: str = WRITER_ROLE
) -> asyncpg.Pool:
    """A pool of connections acting as the writer role (the LedgerService's reads), or as ``role``."""
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=connect_timeout_s,
        server_settings=server_settings(application_name, role),
    )


class _Closable(Protocol):
    async def close(self) -> None: ...


_Store = TypeVar("_Store", bound=_Closable)
_T = TypeVar("_T")


def run_with_store(
    connect: Callable[[], Awaitable[_Store]], action: Callable[[_Store], Awaitable[_T]], tables: str
) -> _T:
    """For a command: open a store with ``connect()``, run ``action(store)``, close it; the usual
    failures as one line (ConfigError) naming ``tables`` (e.g. "rule"), not a traceback."""

    async def main() -> _T:
        store = await connect()
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except asyncpg.UndefinedTableError:
        raise ConfigError(f"the {tables} tables do not exist: run `sentinel ledger migrate` first") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot use the {tables} database: {exc}") from None
