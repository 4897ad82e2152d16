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
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble._iforest import _average_path_length

from sentinel.model_export.scorer import INPUT_NAME, RISK_OUTPUT
from sentinel.model_export.tree_ensemble import TreeEnsembleArrays, onnx_model

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

# Mean path length E[h(x)] over the trees (the tree operator's own output).
PATH_LENGTH_OUTPUT = "mean_path_length"
# scikit-learn's score_samples (= -risk) and decision_function (= score_samples - offset_).
SCORE_SAMPLES_OUTPUT = "score_samples"
DECISION_FUNCTION_OUTPUT = "decision_function"


def average_path_length(n_samples: int) -> float:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n items."""
    return float(_average_path_length(np.array([n_samples]))[0])


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
    tree = TreeEnsembleArrays()
    for index, (estimator, columns) in enumerate(
        zip(forest.estimators_, forest.estimators_features_, strict=True)
    ):
        # Path length contributed by each node if it is the leaf reached (sklearn's own arrays).
        contribution = (
            forest._decision_path_lengths[index] + forest._average_path_length_per_tree[index] - 1.0
        )
        tree.add(estimator.tree_, np.asarray(columns), contribution / n_trees, nan_inputs)

    ensemble = tree.node(PATH_LENGTH_OUTPUT, nan_inputs)
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
    return onnx_model(
        graph,
        f"IsolationForest ({n_trees} trees, max_samples {forest.max_samples_}) fused export",
        metadata,
    )
