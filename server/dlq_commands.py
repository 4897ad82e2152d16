"""``sentinel dlq``: read the dead-letter stream of rejected transactions."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from sentinel.server.commands import settings_from_args
from sentinel.server.deadletter import read_dead_letters


async def _read(url: str, count: int) -> list[dict[str, Any]]:
    async with Redis.from_url(url) as client:
        return await read_dead_letters(client, count)


def _entries(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    settings = settings_from_args(args)
    if settings.redis_url is None:
        print("sentinel dlq: set redis_url (SENTINEL_REDIS_URL) to the server's Redis", file=sys.stderr)
        return None
    return asyncio.run(_read(settings.redis_url, args.count))


def _list(args: argparse.Namespace) -> int:
    entries = _entries(args)
    if entries is None:
        return 2
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        problems = "; ".join(f"{v['field']}: {v['description']}" for v in entry["violations"])
        print(f"{entry['id']}  {entry['method']:<11} {entry['transaction_id'] or '-':<24} {problems}")
    print(f"{len(entries)} rejected transaction(s), newest first", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    entries = _entries(args)
    if entries is None:
        return 2
    with Path(args.out).open("w") as out:
        for entry in entries:
            out.write(json.dumps(entry) + "\n")
    print(f"wrote {len(entries)} entries to {args.out}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add ``sentinel dlq list|export``."""
    parser = subparsers.add_parser("dlq", help="rejected transactions (capped dead-letter stream in Redis)")
    actions = parser.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    for name, handler, help_text in (
        ("list", _list, "show the newest rejected transactions"),
        ("export", _export, "write rejected transactions as JSON lines"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("--count", type=int, default=100, help="how many, newest first (default 100)")
        action.set_defaults(handler=handler, host=None, port=None, workers=None)
        if name == "list":
            action.add_argument("--json", action="store_true", help="print JSON instead of a table")
        else:
            action.add_argument("--out", required=True, help="file to write (JSON lines)")
