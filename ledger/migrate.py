"""Versioned schema migrations of the ledger database: numbered SQL files applied once each, in order.

The files are the ledger's (0001-0099) and the rule store's (0100 on, ``sentinel.server.rules``): one
database, one history. The roles come from ``sentinel.postgres``, the plumbing both share.

A small runner rather than a migration framework: the ledger has a handful of SQL files and needs
three things a generic tool does not give together: the objects must belong to a dedicated owner role
(never to the login that runs the migration, never to the service), the roles themselves must exist
first, and concurrent start-ups of several workers must not apply a migration twice (an advisory
lock serializes them). Applied files are checksummed: editing a migration that already ran is an
error, not a silent divergence between databases.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from sentinel.postgres import EVENTS_ROLE, OWNER_ROLE, WRITER_ROLE

log = structlog.get_logger(__name__)

_LOCK_KEY = 0x5E171E1D6E12  # pg_advisory_lock key of the ledger's migration runner
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Idempotent set-up every migration relies on: the roles (owner, writer, events), the schema and the
# history table.
# Roles are cluster-wide, so two databases migrating at once may race on CREATE ROLE.
_BOOTSTRAP = f"""
DO $$
BEGIN
    BEGIN
        CREATE ROLE {OWNER_ROLE} NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE {WRITER_ROLE} NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE {EVENTS_ROLE} NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    IF NOT pg_has_role(current_user, '{OWNER_ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {OWNER_ROLE} TO %I', current_user);
    END IF;
END
$$;
CREATE SCHEMA IF NOT EXISTS ledger AUTHORIZATION {OWNER_ROLE};
SET LOCAL ROLE {OWNER_ROLE};
REVOKE ALL ON SCHEMA ledger FROM PUBLIC;
GRANT USAGE ON SCHEMA ledger TO {WRITER_ROLE};
CREATE TABLE IF NOT EXISTS ledger.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """The database's migration history disagrees with the migrations shipped with this version."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file of ``sentinel/ledger/migrations``."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def shipped_migrations() -> list[Migration]:
    """The migrations of this version, in order; file names are ``NNNN_name.sql``."""
    found = []
    for entry in resources.files("sentinel.ledger").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number: {versions}")
    return found


def latest_version() -> int:
    """The schema version this code expects."""
    return shipped_migrations()[-1].version


async def applied_versions(connection: asyncpg.Connection) -> dict[int, str]:
    """Version -> checksum of the migrations applied to the database (empty before the first)."""
    exists = await connection.fetchval("SELECT to_regclass('ledger.schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await connection.fetch("SELECT version, checksum FROM ledger.schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


async def migrate(dsn: str) -> list[int]:
    """Apply the pending migrations through ``dsn`` (an owner/admin login); returns their versions.

    The login needs to create roles (or find them created) and a schema; it is made a member of the
    owner role so that everything it creates belongs to that role.
    """
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        async with connection.transaction():
            await connection.execute(_BOOTSTRAP)
        applied = await applied_versions(connection)
        newly_applied = []
        for migration in shipped_migrations():
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was "
                        "applied to this database; add a new migration instead"
                    )
                continue
            async with connection.transaction():
                await connection.execute(f"SET LOCAL ROLE {OWNER_ROLE}")
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO ledger.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("ledger_migration_applied", version=migration.version, name=migration.name)
            newly_applied.append(migration.version)
        unknown = sorted(set(applied) - {m.version for m in shipped_migrations()})
        if unknown:
            raise MigrationError(f"the database has migrations this version does not know: {unknown}")
        return newly_applied
    finally:
        await connection.close()  # also releases the session-level advisory lock


async def check_schema(connection: asyncpg.Connection) -> None:
    """Raise MigrationError unless every shipped migration has been applied."""
    missing = sorted({m.version for m in shipped_migrations()} - set(await applied_versions(connection)))
    if missing:
        raise MigrationError(
            f"ledger schema is not up to date (missing migrations {missing}): run `sentinel ledger migrate`"
        )
