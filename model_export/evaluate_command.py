"""``sentinel evaluate --data CSV``: detection quality of a live SentinelStream on labelled PaySim data.

Against ``--target HOST:PORT``, or else a private ``sentinel dev serve`` (private Redis and PostgreSQL)
started for the run and stopped afterwards. The replay and the figures are in ``live_evaluation``.
Exit status 0; 2 for a bad file or bad arguments; 1 when the service refused rows or could not be
reached.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.config import load_settings

if TYPE_CHECKING:
    from sentinel.model_export.live_evaluation import BinaryFigures, PassFigures
    from sentinel.model_export.paysim import PaySimRows

TARGET_WAIT_S = 10.0


class UsageError(Exception):
    """A bad file or argument: one line, exit status 2."""


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return number


def _read_rows(path: Path) -> PaySimRows:
    from sentinel.model_export.paysim import read_paysim

    if not path.is_file():
        raise UsageError(f"--data {path}: no such file")
    try:
        return read_paysim(path)
    except OSError as exc:
        raise UsageError(f"--data {path}: {exc.strerror or exc}") from None
    except IndexError:  # read_paysim indexes the columns of the rows: a file of short rows
        raise UsageError(
            f"--data {path}: not a valid PaySim CSV: rows with fewer than the header's columns"
        ) from None
    except ValueError as exc:  # header, types, numbers, ragged rows, encoding
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        prefix = "" if message.startswith(str(path)) else f"{path}: not a valid PaySim CSV: "
        raise UsageError(f"--data {prefix}{message}") from None


@contextmanager
def _private_server(args: argparse.Namespace) -> Iterator[str]:
    """A ``sentinel dev serve`` of our own, as the tests and benchmarks start it; its files are removed
    afterwards (the private PostgreSQL alone holds tens of MB)."""
    from sentinel.serverprocess import ServerProcess

    workers = args.workers or load_settings(Path(args.config) if args.config else None).workers
    settings: dict[str, Any] = {}  # SENTINEL_* values by setting name
    if args.model_dir is not None:
        settings["model_dir"] = args.model_dir.resolve()
    if args.config:
        settings["config"] = Path(args.config).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-evaluate-"))
    os.chmod(workdir, 0o755)  # the private PostgreSQL (postgres user) lives below
    try:
        with ServerProcess(workdir / "server", workers=workers, dev=True, **settings) as server:
            yield server.address
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _evaluate(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        print(f"sentinel evaluate: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from sentinel.model_export.live_evaluation import evaluate_live, open_stub
    from sentinel.serverprocess import ServerStartError, wait_until_serving

    if args.target and (args.workers is not None or args.model_dir is not None):
        raise UsageError("--workers and --model-dir apply only to the server it starts (no --target)")
    if args.model_dir is not None and not args.model_dir.is_dir():
        raise UsageError(f"--model-dir {args.model_dir}: no such directory")
    data = Path(args.data)
    rows = _read_rows(data)
    started = time.perf_counter()
    progress = (lambda text: print(text, file=sys.stderr, flush=True)) if not args.quiet else (lambda _: None)
    try:
        with _private_server(args) if not args.target else _existing(args.target) as address:
            if args.target:
                wait_until_serving(address, TARGET_WAIT_S)
            progress(f"evaluating {len(rows)} rows x {args.passes} pass(es) against {address}")
            channel, stub = open_stub(address)
            try:
                run_id, figures = evaluate_live(
                    stub,
                    rows,
                    passes=args.passes,
                    batch_size=args.batch_size,
                    timeout_s=args.timeout,
                    on_pass=lambda f: progress(
                        f"pass {f.pass_number}: {f.decided} decided, {f.errors} errors, {f.wall_time_s:.1f}s"
                    ),
                )
            finally:
                channel.close()
    except ServerStartError as exc:
        print(f"sentinel evaluate: {exc}", file=sys.stderr)
        return 1
    report = {
        "data": str(data),
        "sha256": rows.sha256,
        "rows": len(rows),
        "frauds": int(rows.is_fraud.sum()),
        "target": args.target or "private sentinel dev serve",
        "run_id": run_id,
        "batch_size": args.batch_size,
        "total_wall_time_s": round(time.perf_counter() - started, 3),
        "passes": [asdict(f) for f in figures],
    }
    print(json.dumps(report, indent=2) if args.json else format_report(report, figures))
    errors = sum(f.errors for f in figures)
    if errors:
        first = next(f.first_error for f in figures if f.first_error is not None)
        pass_number = next(f.pass_number for f in figures if f.first_error is not None)
        print(
            f"sentinel evaluate: the service refused {errors} of {len(rows) * len(figures)} transactions; "
            f"first: pass {pass_number} row {first['row']} ({first['transaction_id']}): "
            f"{first['code']}: {first['message']}",
            file=sys.stderr,
        )
        return 1
    return 0


@contextmanager
def _existing(target: str) -> Iterator[str]:
    yield target


# --- the readable table ---------------------------------------------------------------------------


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _counts(figures: BinaryFigures) -> str:
    return f"{figures.tp}/{figures.fp}/{figures.fn}/{figures.tn}"


def format_report(report: dict[str, Any], figures: list[PassFigures]) -> str:
    """One column per pass, one line per figure, then the changes between passes."""
    header = (
        f"{report['data']}: {report['rows']} rows, {report['frauds']} fraud; target {report['target']}; "
        f"run {report['run_id']}, batches of {report['batch_size']}"
    )
    lines: list[tuple[str, list[str]]] = [
        ("decided / errors", [f"{f.decided} / {f.errors}" for f in figures]),
        ("wall time s", [f"{f.wall_time_s:.2f}" for f in figures]),
        ("transactions/s", [f"{f.transactions_per_s:.0f}" for f in figures]),
        ("REVIEW|DECLINE precision", [_number(f.flagged.precision) for f in figures]),
        ("REVIEW|DECLINE recall", [_number(f.flagged.recall) for f in figures]),
        ("  TP/FP/FN/TN", [_counts(f.flagged) for f in figures]),
        ("DECLINE precision", [_number(f.declined.precision) for f in figures]),
        ("DECLINE recall", [_number(f.declined.recall) for f in figures]),
        ("  TP/FP/FN/TN", [_counts(f.declined) for f in figures]),
        ("risk score PR-AUC", [_number(f.risk_pr_auc) for f in figures]),
        ("risk score ROC-AUC", [_number(f.risk_roc_auc) for f in figures]),
        ("model score PR-AUC", [_number(f.model_pr_auc) for f in figures]),
        ("model score ROC-AUC", [_number(f.model_roc_auc) for f in figures]),
    ]
    for outcome in ("APPROVE", "REVIEW", "DECLINE"):
        lines.append(
            (
                f"{outcome} fraud/legit",
                [f"{f.outcomes[outcome]['fraud']}/{f.outcomes[outcome]['legit']}" for f in figures],
            )
        )
    lines.append(("degraded / replayed", [f"{f.degraded} / {f.replayed}" for f in figures]))
    for mode in ("active", "shadow"):
        rules = sorted({rule for f in figures for rule in f.rule_hits[mode]})
        for rule in rules:
            cells = []
            for f in figures:
                hits = f.rule_hits[mode].get(rule, {"fraud": 0, "legit": 0})
                cells.append(f"{hits['fraud']}/{hits['legit']}")
            suffix = " (shadow)" if mode == "shadow" else ""
            lines.append((f"rule {rule}{suffix} fraud/legit", cells))
    label_width = max(len(label) for label, _ in lines)
    cell_width = max(12, *(len(cell) for _, cells in lines for cell in cells))
    out = [header, ""]
    out.append(" " * label_width + "".join(f"  {f'pass {f.pass_number}':>{cell_width}}" for f in figures))
    out.extend(
        label + " " * (label_width - len(label)) + "".join(f"  {c:>{cell_width}}" for c in cells)
        for label, cells in lines
    )
    for f in figures:
        versions = ", ".join(f"{version} ({n} decisions)" for version, n in f.model_versions.items())
        out.append(f"pass {f.pass_number} model version: {versions or '-'}")
    for f in figures:
        if f.changes is None:
            continue
        changes = f.changes
        out.append("")
        out.append(
            f"pass {f.pass_number} vs pass {f.pass_number - 1}: {changes['new_false_positives']} new false "
            f"positives, {changes['resolved_false_positives']} resolved; mean model score change "
            f"fraud {_number(changes['mean_model_score_change']['fraud'], 4)}, "
            f"legit {_number(changes['mean_model_score_change']['legit'], 4)}"
        )
        transitions = ", ".join(
            f"{key} {n['fraud']}/{n['legit']}" for key, n in changes["outcome_transitions"].items()
        )
        out.append(f"  outcome changes (fraud/legit): {transitions or 'none'}")
        if changes["new_false_positive_reasons"]:
            reasons = ", ".join(f"{code} {n}" for code, n in changes["new_false_positive_reasons"].items())
            out.append(f"  reasons on new false positives: {reasons}")
        if changes["new_false_positive_rules"]:
            rules_text = ", ".join(f"{rule} {n}" for rule, n in changes["new_false_positive_rules"].items())
            out.append(f"  rules on new false positives: {rules_text}")
    out.append("")
    out.append(f"total wall time {report['total_wall_time_s']:.1f}s (server start included)")
    return "\n".join(out)


def register(subparsers: Any) -> None:
    """Add ``sentinel evaluate``."""
    evaluate = subparsers.add_parser(
        "evaluate",
        help="replay labelled PaySim data through a live service and report detection figures",
        description="Replay a labelled PaySim CSV through SentinelStream's ScoreBatch in event order and "
        "report precision, recall, PR-AUC/ROC-AUC, outcomes and rule hits per pass.",
    )
    evaluate.add_argument("--data", required=True, metavar="CSV", help="PaySim CSV (original column layout)")
    evaluate.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="a running service (plaintext gRPC); default: start a private sentinel dev serve",
    )
    evaluate.add_argument(
        "--workers", type=_positive_int, help="workers of the private server (default: the workers setting)"
    )
    evaluate.add_argument(
        "--model-dir", type=Path, metavar="DIR", help="model registry of the private server (model_dir)"
    )
    evaluate.add_argument(
        "--passes", type=_positive_int, default=1, help="replay the file N times, new ids each (default 1)"
    )
    evaluate.add_argument(
        "--batch-size",
        type=_positive_int,
        default=500,
        help="transactions per ScoreBatch call (default 500; at most the server's max_batch_items)",
    )
    evaluate.add_argument(
        "--timeout", type=_positive_float, default=60.0, help="deadline of each call in seconds (default 60)"
    )
    evaluate.add_argument("--json", action="store_true", help="one JSON object with a passes list")
    evaluate.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    evaluate.set_defaults(handler=_evaluate)
