"""Batch row order: it changes how fast a batch is scored, never a score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from sentinel.model_export import row_order
from sentinel.model_export.fused_export import fused_onnx_model
from sentinel.model_export.row_order import RowOrder, choose_row_order
from sentinel.model_export.scorer import ModelScorer


def _rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, size=n)
    one_hot = np.eye(3)[kind]
    amount = rng.lognormal(5.0, 2.0, size=(n, 1))
    drained = (rng.random((n, 1)) < 0.2).astype(float)
    noise = rng.normal(size=(n, 2))
    return np.hstack([amount, one_hot, noise, drained]).astype(np.float32)


def test_choose_row_order_packs_the_binary_columns_and_picks_a_split_column() -> None:
    rows = _rows(2_000, seed=0)
    forest = IsolationForest(n_estimators=50, max_samples=128, random_state=0).fit(rows)
    order = choose_row_order(forest, rows)
    assert order.binary_columns == (1, 2, 3, 6)
    assert order.sort_column in (0, 4, 5)
    assert RowOrder.from_json(order.to_json()) == order


def test_permutation_groups_rows_of_one_kind() -> None:
    rows = _rows(300, seed=1)
    order = RowOrder(binary_columns=(1, 2, 3, 6), sort_column=0)
    ordered = rows[order.permutation(rows)]
    pattern = ordered[:, [1, 2, 3, 6]] @ np.array([1.0, 2.0, 4.0, 8.0])
    assert np.all(np.diff(pattern) >= 0)  # one run per pattern
    same_pattern = np.diff(pattern) == 0
    assert np.all(np.diff(ordered[:, 0])[same_pattern] >= 0)  # amounts ascending inside a run


def test_ordered_batches_score_exactly_like_unordered_ones() -> None:
    train = _rows(3_000, seed=2)
    forest = IsolationForest(n_estimators=60, max_samples=256, random_state=0).fit(train)
    order = choose_row_order(forest, train)
    ordered = ModelScorer(
        fused_onnx_model(forest, metadata={row_order.METADATA_KEY: order.to_json()}).SerializeToString(),
        version="ordered",
    )
    plain = ModelScorer(fused_onnx_model(forest).SerializeToString(), version="plain")
    assert ordered.row_order == order and plain.row_order is None
    batch = _rows(10_000, seed=3)
    for size in (1, row_order.MIN_ROWS - 1, row_order.MIN_ROWS, 256, 10_000):
        assert np.array_equal(ordered.score(batch[:size]), plain.score(batch[:size]))
    assert np.abs(ordered.score(batch) + forest.score_samples(batch)).max() <= 1e-5


def test_a_row_order_naming_missing_columns_is_refused() -> None:
    train = _rows(500, seed=4)
    forest = IsolationForest(n_estimators=5, max_samples=64, random_state=0).fit(train)
    bad = RowOrder(binary_columns=(1, 2), sort_column=train.shape[1])
    model = fused_onnx_model(forest, metadata={row_order.METADATA_KEY: bad.to_json()})
    with pytest.raises(ValueError, match="row order names columns"):
        ModelScorer(model.SerializeToString(), version="bad")
