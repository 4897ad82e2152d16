"""Training: PaySim replay through the hot path, held-out evaluation, thresholds, and the CLI."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from sentinel.cli import main
from sentinel.hotpath import FEATURE_INDEX, FEATURE_SCHEMA_HASH, STATEFUL_FEATURES
from sentinel.model_export.calibration import calibrate
from sentinel.model_export.evaluation import PolicyTargets, evaluate, precision_recall_at, recall_at_precision
from sentinel.model_export.metadata import ModelKind
from sentinel.model_export.paysim import COLUMNS, PAYSIM_EPOCH, read_paysim
from sentinel.model_export.registry import (
    HOT_PATH_SCHEMA,
    ModelRegistry,
    packaged_model_directories,
    publish_model,
)
from sentinel.model_export.splits import SplitParameters, write_holdout
from sentinel.model_export.training import (
    BoostingParameters,
    ForestParameters,
    TrainingPlan,
    features_left_out,
    replay_features,
    train,
)

PAYSIM_CUT = Path(str(resources.files("sentinel.bench") / "data" / "paysim_cut.csv"))
HEADER = ",".join(COLUMNS)


def _csv(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "paysim.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def test_rows_are_replayed_in_step_order_with_times_inside_their_hour(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        [
            "2,PAYMENT,10.0,C1,100.0,90.0,M1,0.0,0.0,0.0,0.0",
            "1,TRANSFER,20.0,C2,20.0,0.0,C9,0.0,20.0,1.0,0.0",
            "2,CASH_OUT,30.0,C3,50.0,20.0,C8,5.0,35.0,0.0,0.0",
            "1,CASH_IN,40.0,C4,0.0,40.0,C7,80.0,40.0,0.0,0.0",
        ],
    )
    rows = read_paysim(path)
    assert rows.origin == ["C2", "C4", "C1", "C3"]
    assert rows.event_time.tolist() == [
        PAYSIM_EPOCH,
        PAYSIM_EPOCH + 1_800,
        PAYSIM_EPOCH + 3_600,
        PAYSIM_EPOCH + 5_400,
    ]
    assert rows.is_fraud.tolist() == [True, False, False, False]
    assert rows.type.tolist() == [2, 4, 1, 3]


def test_a_file_that_is_not_paysim_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a PaySim CSV"):
        read_paysim(path)


def test_replay_carries_account_state_from_one_row_to_the_next(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        [
            "1,PAYMENT,10.0,C1,100.0,90.0,M1,0.0,0.0,0.0,0.0",
            "1,PAYMENT,12.0,C2,100.0,88.0,M1,0.0,0.0,0.0,0.0",
            "3,PAYMENT,11.0,C1,90.0,79.0,M2,0.0,0.0,0.0,0.0",
        ],
    )
    rows = read_paysim(path)
    features = replay_features(rows)
    first = FEATURE_INDEX["first_transaction"]
    since_last = FEATURE_INDEX["seconds_since_last"]
    assert features[:, first].tolist() == [1.0, 1.0, 0.0]
    assert features[2, since_last] == pytest.approx(rows.event_time[2] - rows.event_time[0])


def test_recall_at_precision_on_a_known_ranking() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    assert recall_at_precision(scores, labels, 0.95) == (pytest.approx(2 / 3), 0.8)
    assert recall_at_precision(scores, labels, 0.75)[0] == pytest.approx(1.0)


def test_thresholds_meet_their_precision_targets() -> None:
    rng = np.random.default_rng(0)
    legitimate = rng.uniform(0.3, 0.6, size=5_000)
    fraud = rng.uniform(0.55, 0.8, size=200)
    scores = np.concatenate([legitimate, fraud])
    labels = np.concatenate([np.zeros(5_000, bool), np.ones(200, bool)])
    targets = PolicyTargets(decline_precision=0.995, review_precision=0.9)
    metrics, thresholds = evaluate(scores, labels, targets)
    assert metrics.validation_rows == 5_200 and metrics.validation_fraud_rows == 200
    assert 0.9 < metrics.roc_auc <= 1.0 and 0.5 < metrics.pr_auc <= 1.0
    assert metrics.decline_precision >= 0.995 and metrics.review_precision >= 0.9
    assert precision_recall_at(scores, labels, thresholds.decline) == (
        metrics.decline_precision,
        metrics.decline_recall,
    )
    # The lowest such threshold: one step lower falls short of the target.
    below = scores[scores < thresholds.decline].max()
    assert precision_recall_at(scores, labels, below)[0] < 0.995
    assert thresholds.review <= thresholds.decline
    assert (thresholds.review_precision_target, thresholds.decline_precision_target) == (0.9, 0.995)
    with pytest.raises(ValueError, match="both fraud and legitimate"):
        evaluate(scores[:10], labels[:10])


def test_unreachable_targets_fall_back_to_stated_rules() -> None:
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.0, 1.0, size=4_000)  # no signal: no threshold is 98 % precise
    labels = rng.uniform(0.0, 1.0, size=4_000) < 0.1
    _, thresholds = evaluate(scores, labels)
    assert "never reaches 98.0%" in thresholds.rule and "never reaches 99.5%" in thresholds.rule
    # REVIEW at the analyst-capacity quantile (1 % of legitimate rows), never above DECLINE.
    capacity = float(np.quantile(scores[~labels], 0.99))
    assert thresholds.review == min(capacity, thresholds.decline)


def test_accounts_split_whole_and_stably() -> None:
    split = SplitParameters(validation_fraction=0.2, holdout_fraction=0.2)
    accounts = [f"C{number}" for number in range(20_000)]
    parts = split.masks(accounts + accounts[:100])
    shares = {part: mask[:20_000].mean() for part, mask in parts.items()}
    assert shares["holdout"] == pytest.approx(0.2, abs=0.02)
    assert shares["validation"] == pytest.approx(0.2, abs=0.02)
    # Every transaction of an account lands in its account's part, whatever else is in the file.
    for mask in parts.values():
        assert (mask[:100] == mask[20_000:]).all()
    assert [split.part_of(account) for account in accounts[:50]] == [
        SplitParameters(validation_fraction=0.2, holdout_fraction=0.2).part_of(account)
        for account in accounts[:50]
    ]
    with pytest.raises(ValueError):
        SplitParameters(validation_fraction=0.6, holdout_fraction=0.5)


def test_holdout_file_holds_exactly_the_held_out_accounts(tmp_path: Path) -> None:
    split = SplitParameters()
    target = tmp_path / "holdout.csv"
    written = write_holdout(PAYSIM_CUT, target, split)
    held_out = read_paysim(target)
    assert len(held_out) == written > 0
    assert all(split.part_of(account) == "holdout" for account in held_out.origin)
    everything = read_paysim(PAYSIM_CUT)
    assert written == sum(split.part_of(account) == "holdout" for account in everything.origin)


@pytest.mark.parametrize("kind", ["gradient_boosting", "isolation_forest"])
def test_train_on_paysim_produces_a_servable_model(tmp_path: Path, kind: ModelKind) -> None:
    plan = TrainingPlan(
        kind=kind,
        forest=ForestParameters(n_estimators=40, max_samples=128),
        boosting=BoostingParameters(max_iter=40),
        split=SplitParameters(validation_fraction=0.3, holdout_fraction=0.2),
    )
    model = train(PAYSIM_CUT, plan)
    metadata = model.metadata
    assert metadata.kind == kind and metadata.version.startswith(
        {"gradient_boosting": "gb-"}.get(kind, "if-")
    )
    assert metadata.feature_schema_hash == FEATURE_SCHEMA_HASH
    assert metadata.training_data.rows == 2_570 and metadata.training_data.fraud_rows == 65
    assert metadata.training_data.sha256 == read_paysim(PAYSIM_CUT).sha256
    assert "CC BY-SA 4.0" in metadata.training_data.attribution
    assert metadata.parity_max_abs_diff <= 1e-5
    assert set(metadata.libraries) >= {"scikit-learn", "onnxruntime", "onnx", "numpy", "python"}
    assert 0.0 <= metadata.thresholds.review <= metadata.thresholds.decline <= 1.0
    assert metadata.split is not None
    rows = read_paysim(PAYSIM_CUT)
    parts = plan.split.masks(rows.origin)
    assert metadata.split.train_rows == parts["train"].sum()
    assert metadata.split.holdout_rows == parts["holdout"].sum()
    assert metadata.metrics.validation_rows == parts["validation"].sum()
    # PaySim's accounts have no history: the stateful features are left out, and the served model
    # scores a row the same whatever they hold (a second visit of the same account changes nothing).
    assert metadata.features_left_out == STATEFUL_FEATURES
    publish_model(tmp_path, model.onnx_bytes, metadata)
    served = ModelRegistry(tmp_path, HOT_PATH_SCHEMA).activate(metadata.version)
    features = replay_features(rows)
    moved = features.copy()
    for name in STATEFUL_FEATURES:
        moved[:, FEATURE_INDEX[name]] = np.random.default_rng(2).uniform(-5, 500, size=len(moved))
    assert np.array_equal(served.scorer.score(features), served.scorer.score(moved))


def test_history_rich_data_keeps_the_stateful_features() -> None:
    features = np.zeros((100, len(FEATURE_INDEX)), dtype=np.float32)
    features[:, FEATURE_INDEX["first_transaction"]] = 1.0
    assert features_left_out(features, 0.05) == STATEFUL_FEATURES
    features[:10, FEATURE_INDEX["first_transaction"]] = 0.0
    assert features_left_out(features, 0.05) == ()


def test_calibrate_publishes_a_new_version_with_new_thresholds(tmp_path: Path) -> None:
    plan = TrainingPlan(boosting=BoostingParameters(max_iter=30))
    trained = train(PAYSIM_CUT, plan)
    publish_model(tmp_path, trained.onnx_bytes, trained.metadata)
    registry = ModelRegistry(tmp_path, HOT_PATH_SCHEMA)
    loose = calibrate(
        registry.load(trained.metadata.version),
        PAYSIM_CUT,
        plan.split,
        PolicyTargets(decline_precision=0.5, review_precision=0.3),
    )
    metadata = loose.metadata
    assert loose.onnx_bytes == trained.onnx_bytes and metadata.onnx_sha256 == trained.metadata.onnx_sha256
    assert metadata.calibrated_from == trained.metadata.version != metadata.version
    assert metadata.thresholds.decline_precision_target == 0.5
    assert metadata.thresholds.decline <= trained.metadata.thresholds.decline


def test_cli_trains_lists_and_activates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    holdout = tmp_path / "holdout.csv"
    command = ["train", "--data", str(PAYSIM_CUT), "--max-iter", "20", "--write-holdout", str(holdout)]
    assert main([*command, "--activate"]) == 0
    summary = json.loads(capsys.readouterr().out)
    version = summary["version"]
    assert (
        summary["kind"] == "gradient_boosting" and summary["thresholds"]["decline_precision_target"] == 0.995
    )
    assert len(read_paysim(holdout)) == summary_holdout_rows(version, tmp_path / "models")

    assert main(["model", "list", "--json"]) == 0
    listed = {entry["version"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed[version]["active"] and listed[version]["problem"] is None
    assert sum(entry["active"] for entry in listed.values()) == 1

    assert main(["model", "activate", "no-such-version"]) == 1
    assert "no model no-such-version" in capsys.readouterr().err
    assert (tmp_path / "models" / "ACTIVE").read_text().strip() == version

    forest = ["train", "--data", str(PAYSIM_CUT), "--kind", "isolation-forest", "--n-estimators", "20"]
    assert main(forest) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "isolation_forest"
    assert main(["model", "calibrate", version, "--data", str(PAYSIM_CUT), "--review-precision", "0.5"]) == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert calibrated["thresholds"]["review_precision_target"] == 0.5 and calibrated["version"] != version


def summary_holdout_rows(version: str, registry: Path) -> int:
    """The held-out row count the model's metadata recorded."""
    metadata = json.loads((registry / version / "metadata.json").read_text())
    return int(metadata["split"]["holdout_rows"])


def test_cli_names_a_missing_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    missing = tmp_path / "absent.csv"
    assert main(["train", "--data", str(missing)]) == 2
    assert capsys.readouterr().err == f"sentinel train: --data {missing}: no such file\n"


def test_compare_scores_two_models_on_a_labelled_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    packaged = sorted(path.name for path in packaged_model_directories())
    assert main(["model", "compare", "--data", str(PAYSIM_CUT)]) == 2  # no shadow model, no --versions
    assert "no shadow model" in capsys.readouterr().err
    assert main(["model", "compare", "--versions", *packaged, "--data", str(PAYSIM_CUT), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["file"]
    assert [model["version"] for model in report["models"]] == packaged
    assert sum(sum(row.values()) for row in report["agreement"].values()) == report["rows"] == 2_570
    rows = read_paysim(PAYSIM_CUT)
    registry = ModelRegistry(tmp_path / "models", HOT_PATH_SCHEMA)
    for figures, version in zip(report["models"], packaged, strict=True):
        scores = registry.load(version).scorer.score(replay_features(rows)).astype(np.float64)
        thresholds = registry.load(version).metadata.thresholds
        assert (figures["decline_precision"], figures["decline_recall"]) == precision_recall_at(
            scores, rows.is_fraud, thresholds.decline
        )
