"""The ONNX building blocks both fused exports share: one ``TreeEnsemble`` node over many trees.

A fused export puts every tree of a scikit-learn ensemble into ONE ``TreeEnsemble`` operator
(ai.onnx.ml opset 5) with a SUM aggregate, so a single-row run pays onnxruntime's per-node overhead
once, not once per tree. The operator lists interior nodes and leaves apart; ``TreeEnsembleArrays``
fills its attribute arrays one scikit-learn tree at a time, whatever the leaves carry (a path length
for the Isolation Forest, a log-odds contribution for gradient boosting).

Exactness: scikit-learn compares float64 thresholds with float32 inputs. A threshold rounded *down*
to the largest float32 not above it gives the same answer for every float32 input (``x <= t`` iff
``x <= floor32(t)``), so the float32 graph routes every row exactly like scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from sentinel.model_export.scorer import INPUT_NAME

ONNX_OPSET = 21
ONNX_ML_OPSET = 5  # TreeEnsemble
_BRANCH_LEQ = 0  # TreeEnsemble nodes_modes value


def float32_at_most(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold (so float32 ``x <= t`` is unchanged)."""
    rounded = thresholds.astype(np.float32)
    above = rounded.astype(np.float64) > thresholds
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def onnx_model(
    graph: onnx.GraphProto, description: str, metadata: Mapping[str, str] | None
) -> onnx.ModelProto:
    """``graph`` as a checked model with the opsets the exports use; ``metadata`` in ``metadata_props``."""
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", ONNX_ML_OPSET)],
        producer_name="sentinel.model_export",
        doc_string=description,
    )
    model.ir_version = 10
    helper.set_model_props(model, dict(metadata or {}))
    onnx.checker.check_model(model)
    return model


class TreeEnsembleArrays:
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

    def node(self, output: str, nan_inputs: bool) -> onnx.NodeProto:
        """The TreeEnsemble node (SUM of the leaves reached, one target) over the trees added, reading
        the model input and writing ``output``; thresholds rounded down to float32 (exact routing)."""
        ensemble = helper.make_node(
            "TreeEnsemble",
            [INPUT_NAME],
            [output],
            domain="ai.onnx.ml",
            aggregate_function=1,  # SUM
            n_targets=1,
            tree_roots=self.roots,
            nodes_featureids=self.feature_ids,
            nodes_splits=numpy_helper.from_array(float32_at_most(np.array(self.splits)), "nodes_splits"),
            nodes_modes=numpy_helper.from_array(
                np.full(len(self.splits), _BRANCH_LEQ, np.uint8), "nodes_modes"
            ),
            nodes_truenodeids=self.true_ids,
            nodes_trueleafs=self.true_is_leaf,
            nodes_falsenodeids=self.false_ids,
            nodes_falseleafs=self.false_is_leaf,
            leaf_targetids=[0] * len(self.leaf_weights),
            leaf_weights=numpy_helper.from_array(np.array(self.leaf_weights, np.float32), "leaf_weights"),
        )
        if nan_inputs:
            ensemble.attribute.append(
                helper.make_attribute("nodes_missing_value_tracks_true", self.missing_tracks_true)
            )
        return ensemble


def _uniform_subtree_values(left: np.ndarray, right: np.ndarray, node_values: np.ndarray) -> np.ndarray:
    """For every node, the value all leaves of its subtree share, or NaN when they differ."""
    uniform = np.full(len(left), np.nan)
    for node in range(len(left) - 1, -1, -1):  # children before parents
        if left[node] == -1:
            uniform[node] = node_values[node]
        elif uniform[left[node]] == uniform[right[node]]:  # NaN never compares equal
            uniform[node] = uniform[left[node]]
    return uniform
