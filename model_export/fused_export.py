"""The fast, exact ONNX export of a fitted IsolationForest: the whole forest as ONE tree operator.

skl2onnx emits one tree node per estimator plus ~25 helper nodes each, so a single-row run pays the
per-node overhead of onnxruntime thousands of times (~1 ms). Here every leaf carries the path length
it contributes, ``depth + c(n_leaf_samples)``, divided by the number of trees, so ONE ``TreeEnsemble``
node with a SUM aggregate yields ``E[h(x)]`` directly; three arithmetic nodes turn it into the anomaly
score ``2^(-E[h(x)]/c(max_samples))`` (the risk in 0..1) and into scikit-learn's ``score_samples``
(its negation) and ``decision_function`` (``score_samples - offset_``).

Exactness: IsolationForest casts X to float32 and compares it against float64 thresholds. A float32
threshold rounded *down* to the largest float32 not above the float64 threshold gives the same
answer for every float32 input (``x <= t`` iff ``x <= floor32(t)``), so the float32 graph routes
every row exactly like scikit-learn; only the float32 sum of the leaf values differs (< 1e-6).

The ``TreeEnsemble`` operator (ai.onnx.ml opset 5) is the successor of ``TreeEnsembleRegressor``
(deprecated in that opset): same kernel in onnxruntime, but typed tensors for thresholds and leaf
weights and leaves listed apart from the interior nodes, so the file is about 3x smaller
(docs/decisions/0006-model-export-and-registry.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble._iforest import _average_path_length

from sentinel.model_export.scorer import INPUT_NAME, RISK_OUTPUT

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

# Mean path length E[h(x)] over the trees (the tree operator's own output).
PATH_LENGTH_OUTPUT = "mean_path_length"
# scikit-learn's score_samples (= -risk) and decision_function (= score_samples - offset_).
SCORE_SAMPLES_OUTPUT = "score_samples"
DECISION_FUNCTION_OUTPUT = "decision_function"

ONNX_OPSET = 21
ONNX_ML_OPSET = 5  # TreeEnsemble
_BRANCH_LEQ = 0  # TreeEnsemble nodes_modes value


def average_path_length(n_samples: int) -> float:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n items."""
    return float(_average_path_length(np.array([n_samples]))[0])


def float32_at_most(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold (so float32 ``x <= t`` is unchanged)."""
    rounded = thresholds.astype(np.float32)
    above = rounded.astype(np.float64) > thresholds
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def fused_onnx_model(
    forest: IsolationForest,
    *,
    nan_inputs: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> onnx.ModelProto:
    """Export ``forest`` as one TreeEnsemble node followed by the anomaly-score arithmetic.

    ``nan_inputs``: route NaN features the way scikit-learn does (its per-node ``missing_go_to_left``).
    It costs ~15 % of the tree walk, so it is off by default: the hot path's features are always
    finite, and with it off a NaN simply takes the "greater than" branch.
    ``metadata`` lands in the model's ``metadata_props`` (e.g. the model version).
    """
    if forest.max_samples_ < 2:
        raise ValueError("an IsolationForest fitted on fewer than 2 samples per tree has no anomaly score")
    n_trees = len(forest.estimators_)
    n_features = int(forest.n_features_in_)
    tree = _TreeEnsembleArrays()
    for index, (estimator, columns) in enumerate(
        zip(forest.estimators_, forest.estimators_features_, strict=True)
    ):
        # Path length contributed by each node if it is the leaf reached (sklearn's own arrays).
        contribution = (
            forest._decision_path_lengths[index] + forest._average_path_length_per_tree[index] - 1.0
        )
        tree.add(estimator.tree_, np.asarray(columns), contribution / n_trees, nan_inputs)

    ensemble = helper.make_node(
        "TreeEnsemble",
        [INPUT_NAME],
        [PATH_LENGTH_OUTPUT],
        domain="ai.onnx.ml",
        aggregate_function=1,  # SUM
        n_targets=1,
        tree_roots=tree.roots,
        nodes_featureids=tree.feature_ids,
        nodes_splits=numpy_helper.from_array(float32_at_most(np.array(tree.splits)), "nodes_splits"),
        nodes_modes=numpy_helper.from_array(np.full(len(tree.splits), _BRANCH_LEQ, np.uint8), "nodes_modes"),
        nodes_truenodeids=tree.true_ids,
        nodes_trueleafs=tree.true_is_leaf,
        nodes_falsenodeids=tree.false_ids,
        nodes_falseleafs=tree.false_is_leaf,
        leaf_targetids=[0] * len(tree.leaf_weights),
        leaf_weights=numpy_helper.from_array(np.array(tree.leaf_weights, np.float32), "leaf_weights"),
    )
    if nan_inputs:
        ensemble.attribute.append(
            helper.make_attribute("nodes_missing_value_tracks_true", tree.missing_tracks_true)
        )
    inverse_c = 1.0 / average_path_length(forest.max_samples_)
    constants = [
        helper.make_tensor("minus_inverse_c", TensorProto.FLOAT, [], [-inverse_c]),
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("minus_offset", TensorProto.FLOAT, [], [-float(forest.offset_)]),
    ]
    nodes = [
        ensemble,
        helper.make_node("Mul", [PATH_LENGTH_OUTPUT, "minus_inverse_c"], ["exponent"]),
        helper.make_node("Pow", ["two", "exponent"], [RISK_OUTPUT]),
        helper.make_node("Neg", [RISK_OUTPUT], [SCORE_SAMPLES_OUTPUT]),
        helper.make_node("Sub", ["minus_offset", RISK_OUTPUT], [DECISION_FUNCTION_OUTPUT]),
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1])
        for name in (RISK_OUTPUT, SCORE_SAMPLES_OUTPUT, DECISION_FUNCTION_OUTPUT, PATH_LENGTH_OUTPUT)
    ]
    graph = helper.make_graph(
        nodes,
        "isolation_forest_fused",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        outputs,
        initializer=constants,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", ONNX_ML_OPSET)],
        producer_name="sentinel.model_export",
        doc_string=f"IsolationForest ({n_trees} trees, max_samples {forest.max_samples_}) fused export",
    )
    model.ir_version = 10
    helper.set_model_props(model, dict(metadata or {}))
    onnx.checker.check_model(model)
    return model


class _TreeEnsembleArrays:
    """The attribute arrays of the TreeEnsemble operator, filled one scikit-learn tree at a time.

    TreeEnsemble lists interior nodes and leaves apart; a child is an index into one or the other.
    """

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.feature_ids: list[int] = []
        self.splits: list[float] = []
        self.true_ids: list[int] = []
        self.true_is_leaf: list[int] = []
        self.false_ids: list[int] = []
        self.false_is_leaf: list[int] = []
        self.missing_tracks_true: list[int] = []
        self.leaf_weights: list[float] = []

    def add(self, tree: Any, columns: np.ndarray, node_values: np.ndarray, nan_inputs: bool) -> None:
        """Append one tree; ``columns`` maps its feature indices to input columns (max_features < 1).

        ``node_values[i]`` is what a row ending in node i contributes (used at leaves). A subtree
        whose leaves all contribute the same value becomes one leaf: every row reaching it gets that
        value whichever way it goes, so the walk can stop there (about 20 % fewer interior nodes).
        """
        left = tree.children_left
        right = tree.children_right
        uniform = _uniform_subtree_values(left, right, node_values)
        terminal = ~np.isnan(uniform)
        reachable = np.zeros(len(left), dtype=bool)
        reachable[0] = True
        for node in range(len(left)):  # scikit-learn numbers children after their parent
            if reachable[node] and not terminal[node]:
                reachable[left[node]] = reachable[right[node]] = True
        interior = np.flatnonzero(reachable & ~terminal)
        leaves = np.flatnonzero(reachable & terminal)
        # Position of every kept node among this operator's interior nodes or among its leaves.
        position = np.full(len(left), -1, dtype=np.int64)
        position[interior] = len(self.splits) + np.arange(len(interior))
        position[leaves] = len(self.leaf_weights) + np.arange(len(leaves))
        self.leaf_weights.extend(uniform[leaves].tolist())
        if terminal[0]:
            # A tree that is one leaf (constant sample, or all leaves equal): one split whose both
            # sides lead there.
            self.roots.append(len(self.splits))
            self.feature_ids.append(0)
            self.splits.append(0.0)
            self.true_ids.append(int(position[0]))
            self.false_ids.append(int(position[0]))
            self.true_is_leaf.append(1)
            self.false_is_leaf.append(1)
            if nan_inputs:
                self.missing_tracks_true.append(0)
            return
        self.roots.append(int(position[0]))
        self.feature_ids.extend(columns[tree.feature[interior]].tolist())
        self.splits.extend(tree.threshold[interior].tolist())
        self.true_ids.extend(position[left[interior]].tolist())
        self.true_is_leaf.extend(terminal[left[interior]].astype(int).tolist())
        self.false_ids.extend(position[right[interior]].tolist())
        self.false_is_leaf.extend(terminal[right[interior]].astype(int).tolist())
        if nan_inputs:
            self.missing_tracks_true.extend(tree.missing_go_to_left[interior].astype(int).tolist())


def _uniform_subtree_values(left: np.ndarray, right: np.ndarray, node_values: np.ndarray) -> np.ndarray:
    """For every node, the value all leaves of its subtree share, or NaN when they differ."""
    uniform = np.full(len(left), np.nan)
    for node in range(len(left) - 1, -1, -1):  # children before parents
        if left[node] == -1:
            uniform[node] = node_values[node]
        elif uniform[left[node]] == uniform[right[node]]:  # NaN never compares equal
            uniform[node] = uniform[left[node]]
    return uniform
