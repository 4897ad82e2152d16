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

import asyncpg

OWNER_ROLE = "sentinel_ledger_owner"  # owns every table; migrations and checkpoints act as it
WRITER_ROLE = "sentinel_ledger_writer"  # what the service's connections act as

_SERVER_SETTINGS = {"role": WRITER_ROLE, "synchronous_commit": "on"}


def server_settings(application_name: str) -> dict[str, str]:
    """Startup parameters of a ledger service connection."""
    return {**_SERVER_SETTINGS, "application_name": application_name}


async def connect_as_writer(
    dsn: str, *, connect_timeout_s: float, application_name: str
) -> asyncpg.Connection:
    """One connection acting as the writer role."""
    return await asyncpg.connect(
        dsn, timeout=connect_timeout_s, server_settings=server_settings(application_name)
    )


async def writer_pool(
    dsn: str, *, connect_timeout_s: float, max_size: int, application_name: str
) -> asyncpg.Pool:
    """A pool of connections acting as the writer role (the LedgerService's reads)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=connect_timeout_s,
        server_settings=server_settings(application_name),
    )
