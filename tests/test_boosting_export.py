"""The HistGradientBoostingClassifier export scores exactly like predict_proba, on real features and on
rows built to sit on every split threshold; models it cannot score exactly are refused."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from sentinel.hotpath import FEATURE_COUNT
from sentinel.model_export import tree_ensemble
from sentinel.model_export.boosting_export import LOG_ODDS_OUTPUT, boosting_onnx_model
from sentinel.model_export.paysim import read_paysim
from sentinel.model_export.scorer import INPUT_NAME, RISK_OUTPUT, ModelScorer, latency_session
from sentinel.model_export.training import replay_features
from sentinel.model_export.tree_ensemble import float32_at_most

PAYSIM_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "paysim_sample.csv"
PARITY = 1e-5
# The float32 sum of ~50 leaf values (log-odds up to ~10) against scikit-learn's float64 sum; a row
# sent down the wrong branch moves its log-odds by a leaf difference, orders of magnitude more.
LOG_ODDS_PARITY = 1e-4


@pytest.fixture(scope="module")
def paysim() -> tuple[np.ndarray, np.ndarray]:
    """Hot-path features of the PaySim sample (every row, in event order) and the fraud labels."""
    if not PAYSIM_SAMPLE.exists():
        pytest.skip(f"{PAYSIM_SAMPLE} is not here (it lives beside the repository, not in it)")
    rows = read_paysim(PAYSIM_SAMPLE)
    return replay_features(rows), rows.is_fraud.astype(np.int64)


@pytest.fixture(scope="module")
def split(paysim: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20,000 training rows and 10,000 held-out rows, drawn at random from the whole file (fraud is
    concentrated in some hours, so the first rows alone hold few positives)."""
    features, labels = paysim
    order = np.random.default_rng(0).permutation(len(features))
    train, held_out = order[:20_000], order[20_000:30_000]
    return features[train], labels[train], features[held_out]


@pytest.fixture(scope="module")
def model(split: tuple[np.ndarray, np.ndarray, np.ndarray]) -> HistGradientBoostingClassifier:
    train, labels, _ = split
    return HistGradientBoostingClassifier(max_iter=50, early_stopping=False, random_state=0).fit(
        train, labels
    )


def _log_odds(model: onnx.ModelProto, rows: np.ndarray) -> np.ndarray:
    """The tree operator's raw output (exposed as an extra graph output on a copy of the model)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(LOG_ODDS_OUTPUT, TensorProto.FLOAT, [None, 1]))
    (log_odds,) = latency_session(probe.SerializeToString()).run([LOG_ODDS_OUTPUT], {INPUT_NAME: rows})
    return np.asarray(log_odds[:, 0])


def test_paysim_model_matches_predict_proba_on_held_out_rows(
    model: HistGradientBoostingClassifier, split: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, _, held_out = split
    assert held_out.dtype == np.float32
    scorer = ModelScorer(boosting_onnx_model(model).SerializeToString(), version="t")
    assert scorer.feature_count == FEATURE_COUNT
    assert scorer.row_order is None
    expected = model.predict_proba(held_out)[:, 1]
    risk = scorer.score(held_out)
    assert risk.dtype == np.float32 and risk.shape == (len(held_out),)
    assert np.abs(risk - expected).max() <= PARITY
    # The server also scores one row per call.
    for index in range(0, len(held_out), 500):
        (single,) = scorer.score(held_out[index : index + 1])
        assert abs(float(single) - expected[index]) <= PARITY
    # Parity holds for the fraud rows too, not only for the many near-zero risks.
    assert expected.max() > 0.5


def test_graph_is_one_tree_operator_and_a_sigmoid(model: HistGradientBoostingClassifier) -> None:
    exported = boosting_onnx_model(model, metadata={"model_version": "v7"})
    assert [node.op_type for node in exported.graph.node] == ["TreeEnsemble", "Sigmoid"]
    (graph_input,) = exported.graph.input
    (graph_output,) = exported.graph.output
    assert (graph_input.name, graph_output.name) == (INPUT_NAME, RISK_OUTPUT)
    assert graph_input.type.tensor_type.elem_type == TensorProto.FLOAT
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [0, FEATURE_COUNT]
    assert [d.dim_value for d in graph_output.type.tensor_type.shape.dim] == [0, 1]
    assert {p.key: p.value for p in exported.metadata_props} == {"model_version": "v7"}


def _boundary_rows(model: HistGradientBoostingClassifier, base: np.ndarray) -> np.ndarray:
    """For every split of every tree, rows that reach that split with the split's feature set to the
    threshold cast to float32, to the largest float32 at or below it, and to the next float32 above.

    Each row starts as a real row; every ancestor's feature is set to a value just on the side the
    path takes (ancestors nest, so a deeper setting keeps the shallower ones), so the row really is
    compared against the threshold under test, not merely given its value.
    """
    rows: list[np.ndarray] = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        assert np.isfinite(nodes["num_threshold"]).all(), "a model fitted without NaN (no split on NaN)"
        parent: dict[int, tuple[int, bool]] = {}
        for index in np.flatnonzero(~nodes["is_leaf"].astype(bool)):
            parent[int(nodes["left"][index])] = (int(index), True)
            parent[int(nodes["right"][index])] = (int(index), False)
        for index in np.flatnonzero(~nodes["is_leaf"].astype(bool)):
            path = []
            node = int(index)
            while node in parent:
                node, went_left = parent[node]
                path.append((node, went_left))
            threshold = nodes["num_threshold"][index]
            at_most = float32_at_most(np.array([threshold]))[0]
            for value in (np.float32(threshold), at_most, np.nextafter(at_most, np.float32(np.inf))):
                row = base[len(rows) % len(base)].copy()
                for ancestor, went_left in reversed(path):  # root first
                    below = float32_at_most(np.array([nodes["num_threshold"][ancestor]]))[0]
                    side = below if went_left else np.nextafter(below, np.float32(np.inf))
                    row[nodes["feature_idx"][ancestor]] = side
                row[nodes["feature_idx"][index]] = value
                rows.append(row)
    return np.array(rows, dtype=np.float32)


def test_rows_on_the_split_thresholds_route_like_sklearn(
    model: HistGradientBoostingClassifier, split: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, _, held_out = split
    rows = _boundary_rows(model, held_out)
    exported = boosting_onnx_model(model)
    assert np.abs(_log_odds(exported, rows) - model.decision_function(rows)).max() <= LOG_ODDS_PARITY
    risk = ModelScorer(exported.SerializeToString(), version="t").score(rows)
    assert np.abs(risk - model.predict_proba(rows)[:, 1]).max() <= PARITY


def test_thresholds_between_float32_values_are_rounded_down() -> None:
    """Features with few distinct values get midpoint thresholds, about half of which the nearest
    float32 overshoots: rounding to nearest would misroute the rows built on them, rounding down does not.
    """
    rng = np.random.default_rng(4)
    levels = rng.normal(size=(200, 6)).astype(np.float32)  # 200 distinct values per column: midpoints
    train = np.take_along_axis(levels, rng.integers(0, 200, size=(5_000, 6)), axis=0)
    labels = (train[:, 0] + train[:, 1] * train[:, 2] + rng.normal(scale=0.5, size=5_000) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0).fit(
        train, labels
    )
    thresholds = np.concatenate(
        [p.nodes["num_threshold"][~p.nodes["is_leaf"].astype(bool)] for (p,) in model._predictors]
    )
    assert (thresholds.astype(np.float32).astype(np.float64) > thresholds).mean() > 0.2

    rows = _boundary_rows(model, train)
    expected = model.decision_function(rows)
    assert np.abs(_log_odds(boosting_onnx_model(model), rows) - expected).max() <= LOG_ODDS_PARITY
    with mock.patch.object(tree_ensemble, "float32_at_most", lambda t: t.astype(np.float32)):
        nearest = _log_odds(boosting_onnx_model(model), rows)
    assert (np.abs(nearest - expected) > LOG_ODDS_PARITY).sum() > 10  # the check above has teeth


def test_missing_values_follow_sklearn_with_nan_inputs(
    split: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Trained with NaN, a model learns where missing values go (and "split on NaN" nodes, threshold
    +inf); ``nan_inputs=True`` follows it. Finite rows score the same either way."""
    train, labels, held_out = split
    rng = np.random.default_rng(5)
    train = np.where(rng.random(train.shape) < 0.05, np.float32(np.nan), train)
    model = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0).fit(
        train, labels
    )
    assert any(np.isinf(p.nodes["num_threshold"]).any() for (p,) in model._predictors)
    rows = np.where(rng.random(held_out.shape) < 0.1, np.float32(np.nan), held_out)

    with_nan = ModelScorer(boosting_onnx_model(model, nan_inputs=True).SerializeToString(), version="t")
    assert np.abs(with_nan.score(rows) - model.predict_proba(rows)[:, 1]).max() <= PARITY
    without = ModelScorer(boosting_onnx_model(model).SerializeToString(), version="t")
    assert np.abs(without.score(held_out) - model.predict_proba(held_out)[:, 1]).max() <= PARITY


def test_single_leaf_trees_export() -> None:
    """Constant features: no tree can split, each is one leaf, and the baseline still counts."""
    train = np.ones((400, 3), dtype=np.float32)
    labels = np.r_[np.zeros(300, int), np.ones(100, int)]
    model = HistGradientBoostingClassifier(max_iter=5, early_stopping=False).fit(train, labels)
    rows = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    risk = ModelScorer(boosting_onnx_model(model).SerializeToString(), version="t").score(rows)
    assert np.abs(risk - model.predict_proba(rows)[:, 1]).max() <= PARITY


def test_string_labels_score_the_second_class() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(2_000, 4)).astype(np.float32)
    labels = np.where(train[:, 0] + rng.normal(size=2_000) > 0.5, "fraud", "legit")
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(train, labels)
    assert list(model.classes_) == ["fraud", "legit"]
    risk = ModelScorer(boosting_onnx_model(model).SerializeToString(), version="t").score(train)
    assert np.abs(risk - model.predict_proba(train)[:, 1]).max() <= PARITY


def test_unfitted_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        boosting_onnx_model(HistGradientBoostingClassifier())


def test_multiclass_model_is_refused() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(300, 4)).astype(np.float32)
    model = HistGradientBoostingClassifier(max_iter=3).fit(train, rng.integers(0, 3, size=300))
    with pytest.raises(ValueError, match=r"only a binary classifier.*3 classes"):
        boosting_onnx_model(model)


def test_categorical_features_are_refused() -> None:
    rng = np.random.default_rng(3)
    train = np.column_stack([rng.integers(0, 5, size=500), rng.normal(size=500)]).astype(np.float32)
    labels = (train[:, 0] % 2 == 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(train, labels)
    with pytest.raises(ValueError, match=r"categorical features \(columns \[0\]\)"):
        boosting_onnx_model(model)


def test_regressor_is_refused() -> None:
    rng = np.random.default_rng(4)
    train = rng.normal(size=(200, 3)).astype(np.float32)
    regressor = HistGradientBoostingRegressor(max_iter=3).fit(train, train[:, 0])
    with pytest.raises(ValueError, match="expected a HistGradientBoostingClassifier"):
        boosting_onnx_model(regressor)
