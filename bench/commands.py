"""``sentinel bench``: one sub-command per thing measured; each module registers its own."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# Modules with ``register(bench_subparsers)``; each adds one ``sentinel bench <name>`` command.
BENCH_MODULES: tuple[str, ...] = (
    "sentinel.bench.grpc_bench",
    "sentinel.bench.hotpath",
    "sentinel.bench.model",
    "sentinel.bench.ledger",
    "sentinel.bench.pipeline",
    "sentinel.bench.wire",
    "sentinel.bench.rest_bench",
    "sentinel.bench.scale",
    "sentinel.bench.events_bench",
)


def register(subparsers: Any) -> None:
    """Add ``sentinel bench`` and its sub-commands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench", help="measure SentinelStream and its parts (results go to bench/RESULTS.md)"
    )
    bench_subparsers = parser.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    for module_name in BENCH_MODULES:
        importlib.import_module(module_name).register(bench_subparsers)
