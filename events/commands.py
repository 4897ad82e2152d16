"""``sentinel events``: subscriptions, replays and the dispatcher, straight against the database.

Like ``sentinel rules`` these act on Postgres directly (as the events role), for operators holding the
database credentials; remote callers use the EventsService (role events-admin). ``subscribe`` and
``rotate-secret`` print the secret once: it is not shown again.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sentinel.config import ConfigError, Settings, load_settings
from sentinel.logs import configure_logging
from sentinel.postgres import run_with_store

_T = TypeVar("_T")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(Path(args.config) if args.config else None)
    if getattr(args, "url", None):
        settings = settings.model_copy(update={"database_url": args.url})
    if not settings.database_url:
        raise ConfigError("no Postgres to use: pass --url or set database_url (SENTINEL_DATABASE_URL)")
    return settings


def _with_store(args: argparse.Namespace, action: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``action(store)``; the usual failures as one line (ConfigError), store errors as exit 1."""
    from sentinel.events.store import SubscriptionStore

    url = _settings(args).database_url
    assert url is not None
    return run_with_store(lambda: SubscriptionStore.connect(url), action, "events")


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    from sentinel.events.store import InvalidSubscription, SubscriptionNotFound

    def run(args: argparse.Namespace) -> int:
        configure_logging("warning", "console")
        try:
            return handler(args)
        except (InvalidSubscription, SubscriptionNotFound) as exc:
            print(f"sentinel events: {exc}", file=sys.stderr)
            return 1

    return run


def _described(destination: Any) -> dict[str, Any]:
    fields = asdict(destination)
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in fields.items()}


def _print_destination(destination: Any, secret: str | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**_described(destination), **({"secret": secret} if secret else {})}))
        return
    print(f"{destination.destination_id}  {destination.kind}  {destination.url}")
    if secret:
        print(f"secret: {secret}")
        print("(shown once: store it where the receiver reads it)")


def _subscribe(args: argparse.Namespace) -> int:
    settings = _settings(args)
    destination, secret = _with_store(
        args,
        lambda store: store.create_webhook(
            args.endpoint,
            outcomes=[outcome.upper() for outcome in args.outcome],
            event_types=args.event_type,
            description=args.description,
            actor=args.actor,
            allow_plain_http_loopback=settings.events_allow_plain_http_loopback,
        ),
    )
    _print_destination(destination, secret, args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    destinations = _with_store(args, lambda store: store.list(args.all))
    if args.json:
        print(json.dumps([_described(destination) for destination in destinations]))
        return 0
    for d in destinations:
        filters = ",".join(d.outcomes) or "all outcomes"
        state = "active" if d.active else "disabled"
        print(f"{d.destination_id}  {d.kind}  {state}  {filters}  {d.url}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    destination = _with_store(args, lambda store: store.disable(args.id, actor=args.actor))
    _print_destination(destination, None, args.json)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    grace_s = _settings(args).events_secret_grace_s
    destination, secret = _with_store(
        args, lambda store: store.rotate_secret(args.id, actor=args.actor, grace_s=grace_s)
    )
    _print_destination(destination, secret, args.json)
    if not args.json:
        print(f"the previous secret signs as well until {destination.previous_secret_until.isoformat()}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from sentinel.events.body import sequence_of

    try:
        sequences = [sequence_of(identifier) for identifier in args.event_id] or None
    except ValueError as exc:
        print(f"sentinel events: {exc}", file=sys.stderr)
        return 2
    count = _with_store(
        args,
        lambda store: store.replay(
            sequences=sequences, since=args.since, until=args.until, destination_id=args.destination
        ),
    )
    print(json.dumps({"deliveries_scheduled": count}) if args.json else f"{count} deliveries scheduled")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    import uvloop
    from prometheus_client import start_http_server

    from sentinel.events.dispatcher import run_dispatcher
    from sentinel.server.metrics_export import MULTIPROC_ENV

    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    if MULTIPROC_ENV not in os.environ:  # not a child of `sentinel serve`: our own endpoint
        start_http_server(settings.events_metrics_port, addr=settings.metrics_host)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_dispatcher(settings, stop)

    uvloop.run(main())
    return 0


def _timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2025-01-31T00:00:00+00:00")
    return moment


def register(subparsers: Any) -> None:
    """Add ``sentinel events``."""
    parser = subparsers.add_parser(
        "events", help="decision events: webhook subscriptions, replays, dispatcher"
    )
    actions = parser.add_subparsers(dest="events_command", metavar="ACTION", required=True)

    def action(
        name: str, help_text: str, handler: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("--url", help="Postgres URL (default: database_url)")
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.add_argument("--actor", default=getpass.getuser(), help="who makes the change (default: you)")
        sub.set_defaults(handler=_guarded(handler))
        return sub

    subscribe = action("subscribe", "subscribe a webhook endpoint (prints its secret once)", _subscribe)
    subscribe.add_argument("endpoint", help="https:// URL receiving the signed POSTs")
    subscribe.add_argument(
        "--outcome",
        action="append",
        default=[],
        choices=["approve", "review", "decline"],
        type=str.lower,
        help="deliver only this outcome (repeatable; default: all)",
    )
    subscribe.add_argument(
        "--event-type", action="append", default=[], help="deliver only this event type (decision.recorded)"
    )
    subscribe.add_argument("--description", default="", help="free text for whoever runs the receiver")
    listing = action("list", "list subscriptions and the broker destination (no secrets)", _list)
    listing.add_argument("--all", action="store_true", help="include disabled ones")
    disable = action("disable", "stop delivering to a subscription", _disable)
    disable.add_argument("id", help="subscription id (wh_...)")
    rotate = action(
        "rotate-secret", "new signing secret; the old one signs too during the grace period", _rotate
    )
    rotate.add_argument("id", help="subscription id (wh_...)")
    replay = action("replay", "deliver recorded events again (dead ones included)", _replay)
    replay.add_argument("--event-id", action="append", default=[], help="evt_<sequence> (repeatable)")
    replay.add_argument("--since", type=_timestamp, help="events recorded at or after (ISO 8601 with offset)")
    replay.add_argument("--until", type=_timestamp, help="events recorded before (ISO 8601 with offset)")
    replay.add_argument("--destination", help="only to this subscription (alone: retry its dead deliveries)")
    dispatch = actions.add_parser(
        "dispatch", help="run a dispatcher in the foreground (until SIGTERM/Ctrl-C)"
    )
    dispatch.add_argument("--url", help="Postgres URL (default: database_url)")
    dispatch.set_defaults(handler=_dispatch)
