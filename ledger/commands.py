"""``sentinel ledger migrate|checkpoint|verify``: schema upkeep and tamper checks, run by operators."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sentinel.config import ConfigError, Settings, load_settings
from sentinel.ledger.migrate import migrate
from sentinel.ledger.verify import VerifyReport, take_checkpoint, verify_ledger
from sentinel.logs import configure_logging


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _admin_url(args: argparse.Namespace, settings: Settings) -> str:
    url = args.url or settings.ledger_admin_url or settings.database_url
    if not url:
        raise ConfigError(
            "no Postgres to use: pass --url or set ledger_admin_url / database_url "
            "(SENTINEL_LEDGER_ADMIN_URL / SENTINEL_DATABASE_URL)"
        )
    return url


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    applied = asyncio.run(migrate(_admin_url(args, settings)))
    print(f"ledger schema up to date; applied now: {applied or 'nothing'}")
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    settings = _settings(args)
    checkpoint = asyncio.run(take_checkpoint(_admin_url(args, settings)))
    print(
        f"checkpoint {checkpoint.checkpoint_id} taken at {checkpoint.taken_at.isoformat()}; chain heads "
        "(chain sequence entry_hash recorded_by_checkpoint):"
    )
    for head in checkpoint.heads:
        print(f"{head.chain_id} {head.sequence} {head.entry_hash} {head.checkpoint_id}")
    return 0


def _report_json(report: VerifyReport) -> dict[str, Any]:
    first = report.first_broken
    first_mismatch = report.first_checkpoint_mismatch
    return {
        "ok": report.ok,
        "entries": report.entries,
        "chains": report.chains,
        "first_broken_entry": None if first is None else vars(first),
        "broken_chains": len(report.broken),
        "checkpoints": report.checkpoints,
        "first_checkpoint_mismatch": None
        if first_mismatch is None
        else {**vars(first_mismatch), "taken_at": first_mismatch.taken_at.isoformat()},
        "checkpoint_mismatches": len(report.checkpoint_mismatches),
        "balance_mismatches": [
            {"account_id": a, "currency": c, "expected": str(e), "stored": str(s)}
            for a, c, e, s in report.balance_mismatches
        ],
        "keys_without_entry": [{"idempotency_key": k, "sequence": s} for k, s in report.keys_without_entry],
        "entries_without_key": [{"sequence": s, "idempotency_key": k} for s, k in report.entries_without_key],
        "replay_conflicts": [
            {"idempotency_key": k, "transaction_id": t, "replayed_at": at.isoformat()}
            for k, t, at in report.replay_conflicts
        ],
    }


def _verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    report = asyncio.run(verify_ledger(_admin_url(args, settings)))
    if args.json:
        print(json.dumps(_report_json(report), indent=2))
        return 0 if report.ok else 1
    print(
        f"checked {report.entries} entries in {len(report.chains)} chains against "
        f"{report.checkpoints} checkpoints"
    )
    first = report.first_broken
    if first is not None:
        print(
            f"FIRST BROKEN ENTRY: sequence {first.sequence} (chain {first.chain_id}, transaction "
            f"{first.transaction_id!r}): {first.reason}",
            file=sys.stderr,
        )
    mismatch = report.first_checkpoint_mismatch
    if mismatch is not None:
        print(
            f"TAMPERING: checkpoint {mismatch.checkpoint_id} (taken at {mismatch.taken_at.isoformat()}) "
            f"disagrees with the ledger: {mismatch.reason}",
            file=sys.stderr,
        )
    for account, currency, expected, stored in report.balance_mismatches:
        print(
            f"BALANCE MISMATCH: account {account!r} {currency}: approved entries sum to {expected}, "
            f"balance table says {stored}",
            file=sys.stderr,
        )
    for key, sequence in report.keys_without_entry:
        print(
            f"KEY WITHOUT ENTRY: idempotency key {key!r} points at missing sequence {sequence}",
            file=sys.stderr,
        )
    for sequence, key in report.entries_without_key:
        print(f"ENTRY WITHOUT KEY: sequence {sequence} (idempotency key {key!r})", file=sys.stderr)
    for key, transaction_id, replayed_at in report.replay_conflicts:
        print(
            f"ACKNOWLEDGED KEY CONFLICT: transaction {transaction_id!r} was answered from the spool "
            f"with idempotency key {key!r}, which the ledger holds for another transaction (kept in "
            f"ledger.replay_conflicts at {replayed_at.isoformat()}; its Redis claim had expired)",
            file=sys.stderr,
        )
    if report.ok:
        print("ledger OK")
    return 0 if report.ok else 1


def register(subparsers: Any) -> None:
    """Add ``sentinel ledger`` and its sub-commands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ledger", help="the append-only decision ledger (schema migrations, tamper check)"
    )
    commands = parser.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    migrate_parser = commands.add_parser(
        "migrate", help="apply pending ledger migrations (creates the owner and writer roles)"
    )
    migrate_parser.add_argument("--url", help="admin Postgres URL (default: ledger_admin_url, database_url)")
    migrate_parser.set_defaults(handler=_migrate)
    checkpoint_parser = commands.add_parser(
        "checkpoint",
        help="record the chain heads as the owner role, so that verify catches history written later",
        description="Record the head (sequence, entry hash) of every chain that moved since the last "
        "checkpoint, as the owner role (the writer role the service acts as cannot), and print the "
        "last recorded head of every chain. Run it on a schedule with the admin login, e.g. hourly "
        "from a systemd timer or cron: `sentinel ledger verify` then reports any entry dated before a "
        "checkpoint that the checkpoint does not hold, and any recorded head its chain no longer "
        "holds. Keep the printed heads outside the database (an external anchor) to also catch a "
        "database superuser's rewrite.",
    )
    checkpoint_parser.add_argument(
        "--url",
        help="admin Postgres URL, a member of the owner role (default: ledger_admin_url, database_url)",
    )
    checkpoint_parser.set_defaults(handler=_checkpoint)
    verify_parser = commands.add_parser(
        "verify",
        help="recompute the hash chains and balances and check them against the checkpoints; "
        "exit 1 naming the first broken entry or disagreeing checkpoint",
    )
    verify_parser.add_argument("--url", help="Postgres URL (default: ledger_admin_url, database_url)")
    verify_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    verify_parser.set_defaults(handler=_verify)
