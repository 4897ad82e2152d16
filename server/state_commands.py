"""``sentinel state rebuild``: recompute account state from the ledger after Redis lost acknowledged writes.

It takes the configuration of ``sentinel serve`` (``redis_url``, ``redis_cluster``, ``database_url``,
``state_ttl_s`` ...; ``--redis-url`` and ``--database-url`` override the two URLs) and runs while the
service scores. How it avoids losing or doubling what the service admits meanwhile, and what it cannot
see, is in sentinel.server.rebuild. The summary goes to stdout (``--json``: one JSON object), log events
to stderr; the exit status is 1 when an account could not be rebuilt (they are named: run again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from sentinel.config import ConfigError, Settings, load_settings
from sentinel.logs import configure_logging
from sentinel.server.redis_errors import REDIS_FAILURES

if TYPE_CHECKING:
    from sentinel.server.rebuild import RebuildReport

BATCH_ACCOUNTS = 500
DEFAULT_WAIT_S = 2.0


def _settings(args: argparse.Namespace) -> Settings:
    config = Path(args.config) if args.config else None
    settings = load_settings(config, redis_url=args.redis_url, database_url=args.database_url)
    if settings.redis_url is None or settings.database_url is None:
        raise ConfigError(
            "sentinel state rebuild needs the service's Redis and Postgres: pass --redis-url and "
            "--database-url or set redis_url and database_url (SENTINEL_REDIS_URL, SENTINEL_DATABASE_URL)"
        )
    return settings


async def _rebuild_with(settings: Settings, args: argparse.Namespace) -> RebuildReport:
    # Imported here: the service's modules (hot path, model, ledger writer) are not needed to build the
    # parser of every `sentinel` command.
    from sentinel.postgres import connect_as_writer
    from sentinel.server.rebuild import rebuild_states
    from sentinel.server.resources import redis_client
    from sentinel.server.state_store import AccountStateStore

    assert settings.database_url is not None
    client = redis_client(settings)
    try:
        store = AccountStateStore(
            client, state_ttl_s=settings.state_ttl_s, claim_ttl_s=settings.idempotency_ttl_s
        )
        connection = await connect_as_writer(
            settings.database_url,
            connect_timeout_s=settings.ledger_connect_timeout_s,
            application_name="sentinel-state-rebuild",
        )
        try:
            return await rebuild_states(
                connection, store, args.account, batch_size=args.batch_size, wait_s=args.wait
            )
        finally:
            await connection.close()
    finally:
        await client.aclose()


def _rebuild(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format, stream=sys.stderr)
    try:
        report = asyncio.run(_rebuild_with(settings, args))
    except (*REDIS_FAILURES, asyncpg.PostgresError) as exc:
        print(f"sentinel state rebuild: stopped: {exc!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(
            f"rebuilt {report.accounts_rebuilt} account(s) from {report.transactions_applied} ledger "
            f"transaction(s) in {report.seconds:.2f} s"
        )
        for account, why in report.skipped.items():
            print(f"skipped {account!r}: {why}")
        for account, why in report.not_rebuilt.items():
            print(f"NOT REBUILT {account!r}: {why}", file=sys.stderr)
        if report.not_rebuilt:
            print(f"{len(report.not_rebuilt)} account(s) not rebuilt (why: above)", file=sys.stderr)
    return 1 if report.not_rebuilt else 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a number of seconds, 0 or more")
    return value


def register(subparsers: Any) -> None:
    """Add ``sentinel state rebuild``."""
    parser = subparsers.add_parser("state", help="per-account state in Redis (rebuild it from the ledger)")
    actions = parser.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    rebuild = actions.add_parser(
        "rebuild",
        help="recompute account state from the ledger and write it to Redis, while the service runs",
        description="Recompute every account's state (or those of --account) from the ledger and write "
        "it to Redis, after Redis lost acknowledged writes. Runs while the service scores; an account "
        "with transactions in flight for longer than --wait is left as it was and named (exit status 1). "
        "A transaction in flight during the rebuild of its own account can be missing from the result.",
    )
    rebuild.add_argument(
        "--account", action="append", metavar="ID", help="only this account (repeatable; default: all)"
    )
    rebuild.add_argument("--redis-url", metavar="URL", help="the service's Redis (default: redis_url)")
    rebuild.add_argument(
        "--database-url", metavar="URL", help="the ledger's Postgres (default: database_url)"
    )
    rebuild.add_argument(
        "--batch-size",
        type=_positive_int,
        default=BATCH_ACCOUNTS,
        metavar="N",
        help=f"accounts per ledger query and hot-path call (default {BATCH_ACCOUNTS})",
    )
    rebuild.add_argument(
        "--wait",
        type=_seconds,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"how long an account with transactions in flight is tried again (default {DEFAULT_WAIT_S:g})",
    )
    rebuild.add_argument("--json", action="store_true", help="print the summary as JSON")
    rebuild.set_defaults(handler=_rebuild)
