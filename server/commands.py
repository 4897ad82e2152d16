"""``sentinel serve``: run the scoring server with its workers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentinel.config import Settings, load_settings
from sentinel.logs import configure_logging


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that override the matching settings (SENTINEL_HOST, SENTINEL_PORT, SENTINEL_WORKERS)."""
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    parser.add_argument("--workers", type=int, help="worker processes (default: number of cores)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the config file, the environment and the flags, validated."""
    config = Path(args.config) if args.config else None
    return load_settings(
        config, host=args.host, port=args.port, workers=args.workers, insecure=vars(args).get("insecure")
    )


def _serve(args: argparse.Namespace) -> int:
    from sentinel.server.auth import check_signing_keys
    from sentinel.server.transport import announce, require_secure_transport
    from sentinel.server.workers import serve

    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format)
    require_secure_transport(settings)
    announce(settings)
    check_signing_keys(settings)
    return serve(settings)


def register(subparsers: Any) -> None:
    """Add ``sentinel serve``."""
    parser = subparsers.add_parser("serve", help="serve the gRPC API (Redis and Postgres URLs configured)")
    add_server_flags(parser)
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=None,  # unset: the setting `insecure` (SENTINEL_INSECURE) decides
        help="serve even without TLS or without authentication (a trusted network or a test only)",
    )
    parser.set_defaults(handler=_serve)
