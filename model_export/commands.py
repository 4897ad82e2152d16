"""``sentinel train`` and ``sentinel model list|activate``: build models and choose the served one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.config import Settings, load_settings

if TYPE_CHECKING:
    from sentinel.model_export.registry import ModelRegistry


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _registry(settings: Settings) -> ModelRegistry:
    from sentinel.model_export.registry import ModelRegistry

    return ModelRegistry.from_settings(settings)


def _contamination(value: str) -> float | str:
    return value if value == "auto" else float(value)


def _train(args: argparse.Namespace) -> int:
    from sentinel.model_export.registry import ModelLoadError, publish_model
    from sentinel.model_export.training import ForestParameters, train

    settings = _settings(args)
    registry = _registry(settings)
    out = Path(args.out) if args.out else registry.root
    parameters = ForestParameters(
        n_estimators=args.n_estimators,
        max_samples=args.max_samples,
        max_features=args.max_features,
        contamination=args.contamination,
        bootstrap=args.bootstrap,
        random_state=args.random_state,
        validation_fraction=args.validation_fraction,
    )
    data = Path(args.data)
    if not data.is_file():
        print(f"sentinel train: --data {data}: no such file", file=sys.stderr)
        return 2
    model = train(data, parameters)
    directory = publish_model(out, model.onnx_bytes, model.metadata)
    summary = {
        "version": model.metadata.version,
        "directory": str(directory),
        "metrics": model.metadata.metrics.model_dump(),
        "thresholds": model.metadata.thresholds.model_dump(),
        "parity_max_abs_diff": model.metadata.parity_max_abs_diff,
    }
    print(json.dumps(summary, indent=2))
    if args.activate:
        if out.resolve() != registry.root.resolve():
            print(f"sentinel: --activate needs --out to be the registry ({registry.root})", file=sys.stderr)
            return 2
        try:
            registry.activate(model.metadata.version)
        except ModelLoadError as exc:
            print(f"sentinel: {exc}", file=sys.stderr)
            return 1
        print(f"activated {model.metadata.version}", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    registry = _registry(_settings(args))
    entries = registry.entries()
    if args.json:
        rows = [
            {
                "version": entry.version,
                "active": entry.active,
                "packaged": entry.packaged,
                "directory": str(entry.directory),
                "problem": entry.problem,
                "created_at": entry.metadata.created_at if entry.metadata else None,
                "metrics": entry.metadata.metrics.model_dump() if entry.metadata else None,
                "thresholds": entry.metadata.thresholds.model_dump() if entry.metadata else None,
            }
            for entry in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"registry: {registry.root}")
    for entry in entries:
        marker = "*" if entry.active else " "
        origin = " (packaged default)" if entry.packaged else ""
        if entry.metadata is None:
            print(f"{marker} {entry.version}{origin}  UNUSABLE: {entry.problem}")
            continue
        metrics = entry.metadata.metrics
        thresholds = entry.metadata.thresholds
        print(
            f"{marker} {entry.version}{origin}  created {entry.metadata.created_at}  "
            f"PR-AUC {metrics.pr_auc:.3f}  ROC-AUC {metrics.roc_auc:.3f}  "
            f"review>={thresholds.review:.3f}  decline>={thresholds.decline:.3f}"
        )
    return 0


def _activate(args: argparse.Namespace) -> int:
    from sentinel.model_export.registry import ModelLoadError

    registry = _registry(_settings(args))
    try:
        model = registry.activate(args.version)
    except ModelLoadError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    print(f"activated {model.version}; running servers switch to it within model_poll_interval_ms")
    return 0


def register(subparsers: Any) -> None:
    """Add ``sentinel train`` and ``sentinel model``."""
    train = subparsers.add_parser(
        "train", help="train an Isolation Forest on PaySim data through the hot-path feature builder"
    )
    train.add_argument("--data", required=True, metavar="CSV", help="PaySim CSV (original column layout)")
    train.add_argument(
        "--out", metavar="DIR", help="where the model directory <version>/ goes (default: the registry)"
    )
    train.add_argument("--n-estimators", type=int, default=200, help="trees (default 200)")
    train.add_argument("--max-samples", type=int, default=256, help="rows per tree (default 256)")
    train.add_argument(
        "--max-features", type=float, default=1.0, help="share of features per tree (default 1)"
    )
    train.add_argument(
        "--contamination", type=_contamination, default="auto", help="'auto' or a share (default auto)"
    )
    train.add_argument("--bootstrap", action="store_true", help="draw each tree's rows with replacement")
    train.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    train.add_argument(
        "--validation-fraction",
        type=float,
        default=0.25,
        help="latest share of the replay held out for evaluation (default 0.25)",
    )
    train.add_argument("--activate", action="store_true", help="activate the new model afterwards")
    train.set_defaults(handler=_train)

    model = subparsers.add_parser("model", help="list the registry's models, choose the active one")
    model_subparsers = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    listing = model_subparsers.add_parser("list", help="models with their metrics; * marks the active one")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    activate = model_subparsers.add_parser("activate", help="serve VERSION (checked before it is activated)")
    activate.add_argument("version", metavar="VERSION")
    activate.set_defaults(handler=_activate)
