"""The fused ONNX export scores exactly like scikit-learn, on 10,000 rows, for several forests."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from sklearn.ensemble import IsolationForest

from sentinel.model_export.fused_export import (
    DECISION_FUNCTION_OUTPUT,
    INPUT_NAME,
    PATH_LENGTH_OUTPUT,
    RISK_OUTPUT,
    SCORE_SAMPLES_OUTPUT,
    fused_onnx_model,
)
from sentinel.model_export.scorer import ModelScorer, latency_session
from sentinel.model_export.stock_export import STOCK_DECISION_FUNCTION_OUTPUT, stock_onnx_model
from sentinel.model_export.tree_ensemble import float32_at_most

N_FEATURES = 12
PARITY = 1e-5


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Continuous, heavy-tailed and discrete (tied) columns, like real features."""
    normal = rng.normal(size=(n, 6))
    heavy = rng.lognormal(mean=3.0, sigma=2.0, size=(n, 3))
    binary = rng.integers(0, 2, size=(n, 2))
    small_counts = rng.poisson(1.5, size=(n, 1))
    return np.hstack([normal, heavy, binary, small_counts]).astype(np.float32)


def _outputs(model: onnx.ModelProto, rows: np.ndarray) -> dict[str, np.ndarray]:
    session = latency_session(model.SerializeToString())
    names = [RISK_OUTPUT, SCORE_SAMPLES_OUTPUT, DECISION_FUNCTION_OUTPUT, PATH_LENGTH_OUTPUT]
    return dict(zip(names, (out[:, 0] for out in session.run(names, {INPUT_NAME: rows})), strict=True))


FORESTS = [
    {"n_estimators": 200, "max_samples": 256},
    {"n_estimators": 50, "max_samples": 64, "max_features": 0.5, "contamination": 0.05},
    {"n_estimators": 100, "max_samples": 1000, "max_features": 0.3},
    {"n_estimators": 25, "max_samples": 0.5, "max_features": 0.75, "bootstrap": True, "contamination": 0.2},
]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return _rows(rng, 3_000), _rows(rng, 10_000) * np.float32(1.5)


@pytest.mark.parametrize("params", FORESTS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_fused_export_matches_sklearn(params: dict[str, object], data: tuple[np.ndarray, np.ndarray]) -> None:
    train, test = data
    forest = IsolationForest(random_state=3, **params).fit(train)
    out = _outputs(fused_onnx_model(forest), test)

    score_samples = forest.score_samples(test)
    assert np.abs(out[SCORE_SAMPLES_OUTPUT] - score_samples).max() <= PARITY
    assert np.abs(out[DECISION_FUNCTION_OUTPUT] - forest.decision_function(test)).max() <= PARITY
    assert np.abs(out[RISK_OUTPUT] + score_samples).max() <= PARITY
    # Every row reached the same leaves: one misrouted row moves E[h] by at least ~1/n_trees.
    mean_path_length = -np.log2(-score_samples) * _c(forest.max_samples_)
    assert np.abs(out[PATH_LENGTH_OUTPUT] - mean_path_length).max() < 1e-4


def _c(n: int) -> float:
    return 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


def test_rows_on_split_boundaries_route_like_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Rows whose values sit on the float32 neighbours of the float64 thresholds."""
    train, _ = data
    forest = IsolationForest(n_estimators=60, max_samples=128, random_state=5).fit(train)
    rng = np.random.default_rng(11)
    rows = _rows(rng, 10_000)
    for index, estimator in enumerate(forest.estimators_[:50]):
        interior = np.flatnonzero(estimator.tree_.children_left != -1)
        thresholds = estimator.tree_.threshold[interior]
        below = float32_at_most(thresholds)
        above = np.nextafter(below, np.float32(np.inf))
        features = forest.estimators_features_[index][estimator.tree_.feature[interior]]
        block = rows[index * 200 : (index + 1) * 200]
        picks = rng.integers(0, len(interior), size=(len(block), 4))
        sides = rng.integers(0, 2, size=picks.shape).astype(bool)
        for column in range(picks.shape[1]):
            chosen = picks[:, column]
            block[np.arange(len(block)), features[chosen]] = np.where(
                sides[:, column], above[chosen], below[chosen]
            )
    out = _outputs(fused_onnx_model(forest), rows)
    mean_path_length = -np.log2(-forest.score_samples(rows)) * _c(forest.max_samples_)
    assert np.abs(out[PATH_LENGTH_OUTPUT] - mean_path_length).max() < 1e-4
    assert np.abs(out[SCORE_SAMPLES_OUTPUT] - forest.score_samples(rows)).max() <= PARITY


def test_float32_at_most_is_the_largest_float32_not_above() -> None:
    thresholds = np.array([0.1, 1.0, -0.1, 3.0000001, 1e-40, -2.5e30])
    rounded = float32_at_most(thresholds)
    assert rounded.dtype == np.float32
    assert np.all(rounded.astype(np.float64) <= thresholds)
    assert np.all(np.nextafter(rounded, np.float32(np.inf)).astype(np.float64) > thresholds)


def test_nan_inputs_follow_sklearn_missing_value_routing(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, test = data
    forest = IsolationForest(n_estimators=40, max_samples=128, max_features=0.5, random_state=1).fit(train)
    rows = test.copy()
    rows[np.random.default_rng(2).random(rows.shape) < 0.1] = np.nan
    out = _outputs(fused_onnx_model(forest, nan_inputs=True), rows)
    assert np.abs(out[SCORE_SAMPLES_OUTPUT] - forest.score_samples(rows)).max() <= PARITY


def test_forest_of_single_leaf_trees_exports() -> None:
    """Constant training data: every tree is one leaf, and every row gets the same score."""
    train = np.ones((300, 3), dtype=np.float32)
    forest = IsolationForest(n_estimators=5, random_state=0).fit(train)
    rows = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    out = _outputs(fused_onnx_model(forest), rows)
    assert np.abs(out[SCORE_SAMPLES_OUTPUT] - forest.score_samples(rows)).max() <= PARITY


def test_stock_export_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, test = data
    forest = IsolationForest(n_estimators=20, max_samples=128, random_state=0).fit(train)
    session = latency_session(stock_onnx_model(forest).SerializeToString())
    (scores,) = session.run([STOCK_DECISION_FUNCTION_OUTPUT], {"X": test})
    assert np.abs(scores[:, 0] - forest.decision_function(test)).max() <= PARITY


def test_scorer_returns_the_risk_and_checks_its_input(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, test = data
    forest = IsolationForest(n_estimators=30, max_samples=128, random_state=0).fit(train)
    scorer = ModelScorer(fused_onnx_model(forest).SerializeToString(), version="v-test")
    risk = scorer.score(test[:256])
    assert risk.shape == (256,)
    assert np.all((risk > 0) & (risk < 1))
    assert np.abs(risk + forest.score_samples(test[:256])).max() <= PARITY
    assert scorer.feature_count == N_FEATURES
    with pytest.raises(ValueError, match="float32 features of shape"):
        scorer.score(test[:4].astype(np.float64))
    with pytest.raises(ValueError, match="float32 features of shape"):
        scorer.score(test[:4, :5])


def test_subtrees_with_one_value_become_leaves_without_changing_scores(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    """Tied, discrete data makes sibling leaves with equal contributions: they are merged."""
    train, test = data
    discrete = np.round(train[:, :4]).astype(np.float32)
    forest = IsolationForest(n_estimators=30, max_samples=256, random_state=0).fit(discrete)
    model = fused_onnx_model(forest)
    (ensemble,) = [node for node in model.graph.node if node.op_type == "TreeEnsemble"]
    exported_interior = len(next(a for a in ensemble.attribute if a.name == "nodes_featureids").ints)
    sklearn_interior = sum(int((e.tree_.children_left != -1).sum()) for e in forest.estimators_)
    assert exported_interior < sklearn_interior
    rows = np.round(test[:, :4]).astype(np.float32)
    out = _outputs(model, rows)
    assert np.abs(out[SCORE_SAMPLES_OUTPUT] - forest.score_samples(rows)).max() <= PARITY
    mean_path_length = -np.log2(-forest.score_samples(rows)) * _c(forest.max_samples_)
    assert np.abs(out[PATH_LENGTH_OUTPUT] - mean_path_length).max() < 1e-4
