"""The ``sentinel`` command: one entry point, one sub-command per concern.

Each concern registers its own sub-commands (``register(subparsers)``) in the module that owns
the behaviour, so this file only lists them and turns ConfigError into a one-line exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from sentinel import __version__
from sentinel.config import ConfigError

# Modules that contribute sub-commands; each has ``register(subparsers) -> None`` and sets
# ``handler`` (a callable taking the parsed arguments and returning an exit code) on its parsers.
COMMAND_MODULES = (
    "sentinel.server.commands",
    "sentinel.server.dlq_commands",
    "sentinel.server.state_commands",
    "sentinel.server.token_commands",
    "sentinel.server.dev_commands",
    "sentinel.bench.commands",
    "sentinel.server.rules.commands",
    "sentinel.ledger.commands",
    "sentinel.model_export.commands",
    "sentinel.model_export.evaluate_command",
    "sentinel.fuzz.commands",
    "sentinel.events.commands",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="sentinel", description="SentinelStream fraud scoring service.")
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration file (default: $SENTINEL_CONFIG)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sentinel`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
