"""``sentinel train`` and ``sentinel model list|activate|shadow``: build models and choose the served one
(and a shadow one scored beside it)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.config import Settings, load_settings

if TYPE_CHECKING:
    from sentinel.model_export.evaluation import PolicyTargets
    from sentinel.model_export.registry import ModelRegistry
    from sentinel.model_export.splits import SplitParameters
    from sentinel.model_export.training import TrainedModel, TrainingPlan


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _registry(settings: Settings) -> ModelRegistry:
    from sentinel.model_export.registry import ModelRegistry

    return ModelRegistry.from_settings(settings)


def _contamination(value: str) -> float | str:
    return value if value == "auto" else float(value)


def _plan(args: argparse.Namespace) -> TrainingPlan:
    from sentinel.model_export.training import BoostingParameters, ForestParameters, TrainingPlan

    return TrainingPlan(
        kind="isolation_forest" if args.kind == "isolation-forest" else "gradient_boosting",
        forest=ForestParameters(
            n_estimators=args.n_estimators,
            max_samples=args.max_samples,
            max_features=args.max_features,
            contamination=args.contamination,
            bootstrap=args.bootstrap,
            random_state=args.random_state,
        ),
        boosting=BoostingParameters(
            max_iter=args.max_iter, learning_rate=args.learning_rate, random_state=args.random_state
        ),
        split=_split(args),
        targets=_targets(args),
    )


def _split(args: argparse.Namespace) -> SplitParameters:
    from sentinel.model_export.splits import SplitParameters

    return SplitParameters(
        validation_fraction=args.validation_fraction, holdout_fraction=args.holdout_fraction
    )


def _targets(args: argparse.Namespace) -> PolicyTargets:
    from sentinel.model_export.evaluation import PolicyTargets

    return PolicyTargets(decline_precision=args.decline_precision, review_precision=args.review_precision)


def _data(args: argparse.Namespace, command: str) -> Path | None:
    data = Path(args.data)
    if not data.is_file():
        print(f"sentinel {command}: --data {data}: no such file", file=sys.stderr)
        return None
    return data


def _publish(args: argparse.Namespace, registry: ModelRegistry, model: TrainedModel) -> int:
    """Publish into --out (default: the registry), print the summary, activate on --activate."""
    from sentinel.model_export.registry import ModelLoadError, publish_model

    out = Path(args.out) if args.out else registry.root
    directory = publish_model(out, model.onnx_bytes, model.metadata)
    summary = {
        "version": model.metadata.version,
        "kind": model.metadata.kind,
        "directory": str(directory),
        "features_left_out": list(model.metadata.features_left_out),
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


def _train(args: argparse.Namespace) -> int:
    from sentinel.model_export.splits import write_holdout
    from sentinel.model_export.training import train

    plan = _plan(args)
    data = _data(args, "train")
    if data is None:
        return 2
    if args.write_holdout:
        written = write_holdout(data, Path(args.write_holdout), plan.split)
        print(f"wrote {written} held-out rows to {args.write_holdout}", file=sys.stderr)
    return _publish(args, _registry(_settings(args)), train(data, plan))


def _utc_time(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _compare(args: argparse.Namespace) -> int:
    from sentinel.model_export.compare import compare_on_file, compare_shadow_period
    from sentinel.model_export.registry import ModelLoadError

    settings = _settings(args)
    registry = _registry(settings)
    if args.data is None and args.since is None:
        print("sentinel model compare: give --data CSV, --since TIME or both", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    if args.data is not None:
        data = _data(args, "model compare")
        if data is None:
            return 2
        versions = args.versions or [registry.serving_version(), registry.shadow_version()]
        if versions[1] is None:
            print(
                "sentinel model compare: no shadow model is set; name two models with --versions A B",
                file=sys.stderr,
            )
            return 2
        try:
            models = [registry.load(version) for version in versions]
        except ModelLoadError as exc:
            print(f"sentinel: {exc}", file=sys.stderr)
            return 1
        report["file"] = compare_on_file(models, data)
    if args.since is not None:
        if settings.database_url is None:
            print("sentinel model compare: --since reads the ledger: set database_url", file=sys.stderr)
            return 2
        until = args.until or datetime.datetime.now(datetime.UTC)
        report["shadow_period"] = asyncio.run(compare_shadow_period(settings.database_url, args.since, until))
    if args.json:
        print(json.dumps(report, indent=2, default=_as_json))
    else:
        _print_comparison(report)
    return 0


def _as_json(value: object) -> object:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _print_comparison(report: dict[str, Any]) -> None:
    if "file" in report:
        on_file = report["file"]
        print(f"{on_file['data']}: {on_file['rows']} rows, {on_file['fraud_rows']} fraud (rules left out)")
        print(f"{'model':<34} {'PR-AUC':>7} {'ROC-AUC':>7} {'flag P/R':>13} {'decline P/R':>13}")
        for model in on_file["models"]:
            print(
                f"{model.version:<34} {model.pr_auc:>7.4f} {model.roc_auc:>7.4f} "
                f"{model.flagged_precision:>6.3f}/{model.flagged_recall:<6.3f} "
                f"{model.decline_precision:>6.3f}/{model.decline_recall:<6.3f}"
            )
        if "agreement" in on_file:
            print(f"same outcome on {on_file['agreement_share']:.1%} of the rows")
            _print_matrix(on_file["agreement"])
    for pair in report.get("shadow_period", {}).get("pairs", []):
        print(
            f"shadow period: active {pair['active_version']} vs shadow {pair['shadow_version']}: "
            f"{pair['decisions']} decisions, same outcome on {pair['agreement_share']:.1%}, mean model "
            f"score {pair['mean_model_score']:.3f} vs {pair['mean_shadow_model_score']:.3f}"
        )
        _print_matrix(pair["agreement"])
    if "shadow_period" in report and not report["shadow_period"]["pairs"]:
        print("shadow period: no decision with a shadow score in that time")


def _print_matrix(matrix: dict[str, dict[str, int]]) -> None:
    print(f"  {'first / second':<16}" + "".join(f"{name:>9}" for name in matrix))
    for name, row in matrix.items():
        print(f"  {name:<16}" + "".join(f"{count:>9}" for count in row.values()))


def _calibrate(args: argparse.Namespace) -> int:
    from sentinel.model_export.calibration import calibrate
    from sentinel.model_export.registry import ModelLoadError

    registry = _registry(_settings(args))
    data = _data(args, "model calibrate")
    if data is None:
        return 2
    try:
        model = registry.load(args.version)
    except ModelLoadError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    return _publish(args, registry, calibrate(model, data, _split(args), _targets(args)))


def _list(args: argparse.Namespace) -> int:
    registry = _registry(_settings(args))
    entries = registry.entries()
    if args.json:
        rows = [
            {
                "version": entry.version,
                "active": entry.active,
                "shadow": entry.shadow,
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
        marker = "*" if entry.active else "s" if entry.shadow else " "
        origin = " (packaged)" if entry.packaged else ""
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
    was_shadow = registry.shadow_version() == args.version
    try:
        model = registry.activate(args.version)
    except ModelLoadError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    print(f"activated {model.version}; running servers switch to it within model_poll_interval_ms")
    if was_shadow:
        print(f"{model.version} was the shadow model: no shadow model now")
    return 0


def _shadow(args: argparse.Namespace) -> int:
    from sentinel.model_export.registry import ModelLoadError

    registry = _registry(_settings(args))
    if args.off:
        previous = registry.shadow_version()
        registry.set_shadow(None)
        print(
            f"shadow model {previous} off; running servers stop scoring with it within model_poll_interval_ms"
            if previous
            else "no shadow model was set"
        )
        return 0
    try:
        model = registry.set_shadow(args.version)
    except ModelLoadError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    assert model is not None
    thresholds = model.metadata.thresholds
    print(
        f"shadow model {model.version} (review>={thresholds.review:.3f}, decline>={thresholds.decline:.3f}); "
        "within model_poll_interval_ms running servers also score every transaction with it and record "
        "its opinion in Decision.shadow, never acting on it"
    )
    return 0


def _add_publish_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="DIR", help="where the model directory <version>/ goes (default: the registry)"
    )
    parser.add_argument("--activate", action="store_true", help="activate the new model afterwards")


def _add_calibration_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("split and thresholds")
    group.add_argument(
        "--validation-fraction",
        type=float,
        default=0.2,
        help="share of the accounts whose rows choose the thresholds (default 0.2)",
    )
    group.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.2,
        help="share of the accounts kept out of training and calibration alike (default 0.2)",
    )
    group.add_argument(
        "--decline-precision",
        type=float,
        default=0.995,
        help="DECLINE from the lowest score with this validation precision (default 0.995)",
    )
    group.add_argument(
        "--review-precision",
        type=float,
        default=0.98,
        help="REVIEW from the lowest score with this validation precision (default 0.98)",
    )


def register(subparsers: Any) -> None:
    """Add ``sentinel train`` and ``sentinel model``."""
    train = subparsers.add_parser(
        "train",
        help="train a model on PaySim data through the hot-path feature builder, thresholds included",
    )
    train.add_argument("--data", required=True, metavar="CSV", help="PaySim CSV (original column layout)")
    train.add_argument(
        "--kind",
        choices=("gradient-boosting", "isolation-forest"),
        default="gradient-boosting",
        help="supervised gradient-boosted trees (default) or an unsupervised Isolation Forest",
    )
    _add_publish_flags(train)
    _add_calibration_flags(train)
    train.add_argument(
        "--write-holdout",
        metavar="CSV",
        help="also write the held-out rows (never trained or calibrated on) here, for sentinel evaluate",
    )
    forest = train.add_argument_group("isolation forest")
    forest.add_argument("--n-estimators", type=int, default=200, help="trees (default 200)")
    forest.add_argument("--max-samples", type=int, default=256, help="rows per tree (default 256)")
    forest.add_argument(
        "--max-features", type=float, default=1.0, help="share of features per tree (default 1)"
    )
    forest.add_argument(
        "--contamination", type=_contamination, default="auto", help="'auto' or a share (default auto)"
    )
    forest.add_argument("--bootstrap", action="store_true", help="draw each tree's rows with replacement")
    boosting = train.add_argument_group("gradient boosting")
    boosting.add_argument("--max-iter", type=int, default=300, help="boosting iterations (default 300)")
    boosting.add_argument("--learning-rate", type=float, default=0.1, help="shrinkage (default 0.1)")
    train.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    train.set_defaults(handler=_train)

    model = subparsers.add_parser(
        "model", help="list the registry's models, choose the active one and a shadow one"
    )
    model_subparsers = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    listing = model_subparsers.add_parser(
        "list", help="models with their metrics; * marks the active one, s the shadow one"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    activate = model_subparsers.add_parser("activate", help="serve VERSION (checked before it is activated)")
    activate.add_argument("version", metavar="VERSION")
    activate.set_defaults(handler=_activate)
    shadow = model_subparsers.add_parser(
        "shadow",
        help="also score live traffic with VERSION, recorded in each Decision and never acted on "
        "(--off: stop); s marks it in `model list`",
    )
    shadow_choice = shadow.add_mutually_exclusive_group(required=True)
    shadow_choice.add_argument(
        "version", metavar="VERSION", nargs="?", help="a model other than the active one"
    )
    shadow_choice.add_argument("--off", action="store_true", help="remove the shadow model")
    shadow.set_defaults(handler=_shadow)
    calibrate = model_subparsers.add_parser(
        "calibrate",
        help="publish VERSION again with thresholds chosen on labelled data (a new version)",
    )
    calibrate.add_argument("version", metavar="VERSION")
    calibrate.add_argument("--data", required=True, metavar="CSV", help="labelled PaySim CSV")
    _add_publish_flags(calibrate)
    _add_calibration_flags(calibrate)
    calibrate.set_defaults(handler=_calibrate)
    compare = model_subparsers.add_parser(
        "compare",
        help="the active and the shadow model (or --versions A B) on a labelled file and on the shadow "
        "period's decisions in the ledger",
    )
    compare.add_argument("--versions", nargs=2, metavar=("A", "B"), help="compare these two instead")
    compare.add_argument("--data", metavar="CSV", help="labelled PaySim CSV to score both models on")
    compare.add_argument(
        "--since",
        type=_utc_time,
        metavar="TIME",
        help="shadow period start (ISO 8601, UTC when no offset); reads the ledger of database_url",
    )
    compare.add_argument("--until", type=_utc_time, metavar="TIME", help="shadow period end (default: now)")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.set_defaults(handler=_compare)
