"""Row order for batch scoring: similar rows next to each other walk the trees ~40 % faster.

onnxruntime's tree kernel evaluates a batch tree by tree, row by row. The walk is bound by branch
mispredictions: each level of each tree is a data-dependent branch. When consecutive rows take the
same branches the predictor gets them right, so scoring a batch sorted by "kind of transaction"
(the pattern of its 0/1 features, then the continuous feature the forest splits on most near its
roots) and putting the scores back in request order costs ~3.5 instead of ~5.8 us per row on
PaySim features (256-row batches; sorting and unsorting included). Every row's score is the same
bit for bit: rows are scored independently, only their order in the batch changes.

The order is chosen at training time from the training rows and travels inside the ONNX file
(metadata property ``sentinel.row_order``), so a model scores the same way wherever it is loaded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scikit-learn only for annotations: serving never imports it
    from sklearn.ensemble import IsolationForest

METADATA_KEY = "sentinel.row_order"
# Smaller batches gain too little to pay for the sort (~20 us per call).
MIN_ROWS = 32
_MAX_BINARY_COLUMNS = 52  # weights 2**i stay exact in float64
_ROOT_DEPTHS = 3  # splits at depth 0, 1, 2 weigh 4, 2, 1


@dataclass(frozen=True, slots=True)
class RowOrder:
    """Sort key of a batch: the 0/1 columns packed into one number, then one continuous column."""

    binary_columns: tuple[int, ...]
    sort_column: int | None

    def permutation(self, features: np.ndarray) -> np.ndarray:
        """Row indices of ``features`` in scoring order (a stable sort)."""
        keys = []
        if self.sort_column is not None:
            keys.append(features[:, self.sort_column])
        if self.binary_columns:
            weights = np.exp2(np.arange(len(self.binary_columns), dtype=np.float64))
            keys.append(features[:, self.binary_columns] @ weights)
        return np.lexsort(keys) if keys else np.arange(len(features))

    def columns(self) -> tuple[int, ...]:
        """Every column the key reads."""
        return self.binary_columns + (() if self.sort_column is None else (self.sort_column,))

    def to_json(self) -> str:
        """The ONNX metadata property value."""
        return json.dumps({"binary_columns": list(self.binary_columns), "sort_column": self.sort_column})

    @classmethod
    def from_json(cls, text: str) -> RowOrder:
        """Parse ``to_json``'s output."""
        value = json.loads(text)
        sort_column = value["sort_column"]
        return cls(
            tuple(int(c) for c in value["binary_columns"]), None if sort_column is None else int(sort_column)
        )


def choose_row_order(forest: IsolationForest, training_rows: np.ndarray) -> RowOrder:
    """The order for ``forest``: columns that are 0/1 in ``training_rows``, then the other column the
    forest splits on most near the roots of its trees."""
    binary = [
        column
        for column in range(training_rows.shape[1])
        if np.isin(training_rows[:, column], (0.0, 1.0)).all()
    ][:_MAX_BINARY_COLUMNS]
    weight: Counter[int] = Counter()
    for estimator, columns in zip(forest.estimators_, forest.estimators_features_, strict=True):
        tree = estimator.tree_
        frontier = [(0, 0)]
        while frontier:
            node, depth = frontier.pop()
            if depth >= _ROOT_DEPTHS or tree.children_left[node] == -1:
                continue
            column = int(columns[tree.feature[node]])
            if column not in binary:
                weight[column] += 2 ** (_ROOT_DEPTHS - 1 - depth)
            frontier += [(tree.children_left[node], depth + 1), (tree.children_right[node], depth + 1)]
    sort_column = min(weight, key=lambda column: (-weight[column], column)) if weight else None
    return RowOrder(tuple(binary), sort_column)
