"""Command-line options the load benchmarks share (`sentinel bench grpc`, `rest`, `scale`, `events`),
defined once so that they mean the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from sentinel.bench.payloads import DEFAULT_ACCOUNTS, DEFAULT_SEED


def optional_path(text: str) -> Path | None:
    """An option's path, or None for '' (the benchmarks' "write nowhere")."""
    return Path(text) if text else None


def add_payload_options(parser: argparse.ArgumentParser, *, accounts: str | None = "accounts") -> None:
    """--data and --seed of the generated transactions, and --accounts (its help starting with
    ``accounts``) unless ``accounts`` is None."""
    parser.add_argument("--data", type=Path, help="PaySim CSV (default: the cut shipped in bench/data)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="payload seed")
    if accounts is not None:
        parser.add_argument(
            "--accounts",
            type=int,
            default=DEFAULT_ACCOUNTS,
            help=f"{accounts} (default {DEFAULT_ACCOUNTS:,})",
        )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where a run's figures go (--results, --plot-dir; '' for nowhere) and whether its work files stay."""
    parser.add_argument(
        "--results",
        type=optional_path,
        default=Path("bench/RESULTS.md"),
        help="Markdown file the results are appended to (default bench/RESULTS.md; '' for none)",
    )
    parser.add_argument(
        "--plot-dir",
        type=optional_path,
        default=Path("bench/plots"),
        help="where latency plots go (default bench/plots; '' for none)",
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep the run's work files (payloads, reports, the private databases); by default they are "
        "removed unless the run reported a problem",
    )
