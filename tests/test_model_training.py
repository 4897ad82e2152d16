"""Training: PaySim replay through the hot path, held-out evaluation, thresholds, and the CLI."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from sentinel.cli import main
from sentinel.hotpath import FEATURE_INDEX, FEATURE_SCHEMA_HASH
from sentinel.model_export.evaluation import evaluate, recall_at_precision
from sentinel.model_export.paysim import COLUMNS, PAYSIM_EPOCH, read_paysim
from sentinel.model_export.registry import HOT_PATH_SCHEMA, ModelRegistry, publish_model
from sentinel.model_export.training import ForestParameters, replay_features, train

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


def test_thresholds_follow_their_rules() -> None:
    rng = np.random.default_rng(0)
    legitimate = rng.uniform(0.3, 0.6, size=5_000)
    fraud = rng.uniform(0.55, 0.8, size=200)
    scores = np.concatenate([legitimate, fraud])
    labels = np.concatenate([np.zeros(5_000, bool), np.ones(200, bool)])
    metrics, thresholds = evaluate(scores, labels)
    assert metrics.validation_rows == 5_200 and metrics.validation_fraud_rows == 200
    assert 0.9 < metrics.roc_auc <= 1.0 and 0.5 < metrics.pr_auc <= 1.0
    # Review: at most 1 % of legitimate rows at or above it.
    assert np.mean(legitimate >= thresholds.review) <= 0.0101
    # Decline: 95 % precision is reachable here (fraud alone above 0.6).
    assert metrics.decline_precision >= 0.95
    assert thresholds.review <= thresholds.decline
    with pytest.raises(ValueError, match="both fraud and legitimate"):
        evaluate(scores[:10], labels[:10])


def test_train_on_paysim_produces_a_servable_model(tmp_path: Path) -> None:
    model = train(PAYSIM_CUT, ForestParameters(n_estimators=40, max_samples=128, validation_fraction=0.3))
    metadata = model.metadata
    assert metadata.feature_schema_hash == FEATURE_SCHEMA_HASH
    assert metadata.training_data.rows == 2_570 and metadata.training_data.fraud_rows == 65
    assert metadata.training_data.sha256 == read_paysim(PAYSIM_CUT).sha256
    assert "CC BY-SA 4.0" in metadata.training_data.attribution
    assert metadata.parity_max_abs_diff <= 1e-5
    assert metadata.parameters["n_estimators"] == 40
    assert set(metadata.libraries) >= {"scikit-learn", "onnxruntime", "onnx", "numpy", "python"}
    assert 0.0 <= metadata.thresholds.review <= metadata.thresholds.decline <= 1.0

    # The exported model scores the replayed rows like a forest refitted the same way.
    rows = read_paysim(PAYSIM_CUT)
    features = replay_features(rows)
    split = round(len(rows) * 0.7)
    forest = IsolationForest(n_estimators=40, max_samples=128, random_state=0).fit(
        features[:split][~rows.is_fraud[:split]]
    )
    registry = ModelRegistry(tmp_path, HOT_PATH_SCHEMA)
    publish_model(tmp_path, model.onnx_bytes, metadata)
    served = registry.activate(metadata.version)
    assert np.abs(served.scorer.score(features) + forest.score_samples(features)).max() <= 1e-5


def test_cli_trains_lists_and_activates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    assert main(["train", "--data", str(PAYSIM_CUT), "--n-estimators", "20", "--activate"]) == 0
    version = json.loads(capsys.readouterr().out)["version"]

    assert main(["model", "list", "--json"]) == 0
    listed = {entry["version"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed[version]["active"] and listed[version]["problem"] is None
    assert sum(entry["active"] for entry in listed.values()) == 1

    assert main(["model", "activate", "no-such-version"]) == 1
    assert "no model no-such-version" in capsys.readouterr().err
    assert (tmp_path / "models" / "ACTIVE").read_text().strip() == version


def test_cli_names_a_missing_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    missing = tmp_path / "absent.csv"
    assert main(["train", "--data", str(missing)]) == 2
    assert capsys.readouterr().err == f"sentinel train: --data {missing}: no such file\n"
