"""The fast, exact ONNX export of a fitted binary HistGradientBoostingClassifier: two graph nodes.

Graph: ONE ``TreeEnsemble`` node (ai.onnx.ml opset 5, SUM over all boosting iterations) yields the
raw log-odds, and a ``Sigmoid`` turns it into ``predict_proba(X)[:, 1]``, the ``risk`` output. The
baseline (``_baseline_prediction``, the log-odds of the training prior) is folded into the leaves of
the first tree, so no ``Add`` node is needed. Why not one node: onnxruntime's tree kernels ignore
``post_transform=LOGISTIC`` for a single regression target (measured: the output stays the log-odds),
and ``TreeEnsembleClassifier``'s binary mode emits both class columns plus a label, so it would need a
slice after it anyway.

Why hand-built rather than skl2onnx (``to_onnx(..., options={"zipmap": False})`` then slimmed), measured
on 50 iterations fitted on 40,000 rows of the PaySim replay (33 features), onnxruntime 1.32, one
thread, best of 9 repeats of 3,000 single-row calls:

- skl2onnx 1.20.0 cannot convert a HistGradientBoostingClassifier under onnx 1.23 at all: it puts a
  Python ``bool`` into ``nodes_missing_value_tracks_true`` and onnx refuses it (TypeError). Patched
  around that, its one ``TreeEnsembleClassifier`` node takes 6.2-6.3 us per single-row call, but it
  outputs two probability columns and a label; slimmed to the scorer's interface (a ``Slice`` to one
  ``risk`` column) 7.0-7.2 us. This graph: 6.1-6.4 us. The same tree kernel does the work, and the
  per-node overhead that sank the Isolation Forest's stock export (fused_export.py) does not arise
  with one tree operator, so latency alone would barely decide it.
- Exactness decides it: skl2onnx rounds each float64 threshold to the *nearest* float32, which sends
  a feature equal to that float32 down the wrong branch whenever it lies above the threshold (below);
  on rows built on the thresholds it was off by 5e-5 in probability, this graph by 2e-7. Its model is
  also ~3x larger (112 kB vs 35 kB: the opset-3 operator keeps per-node attribute lists).

Exactness: scikit-learn casts X to float64 and routes a row left when ``x <= num_threshold`` (a float64
bin edge). onnxruntime compares float32 with float32 thresholds. Every threshold is rounded *down* to
the largest float32 not above it (``float32_at_most``): for float32 inputs ``x <= t`` iff
``x <= floor32(t)``, so every row reaches the same leaves as in scikit-learn; only the float32 sum of
the leaf values differs from scikit-learn's float64 sum (~1e-7 in probability). Where it matters:
a feature with more distinct values than bins gets quantile thresholds, mostly float32 data values
already; one with few distinct values gets midpoints between two float32 values, about half of which
the nearest float32 overshoots. A "split on NaN" (threshold ``+inf``: non-missing values go left)
stays ``+inf``.

Missing values: the hot path's features are always finite, so by default NaN never reaches the trees
(with ``nan_inputs=False`` a NaN would take the "greater than" branch, unlike scikit-learn).
``nan_inputs=True`` routes NaN like scikit-learn (each node's ``missing_go_to_left``, learnt when
training saw NaN, otherwise the child that got more training rows); its cost was within the noise of
single-row calls and up to ~10 % per row in 256-row batches. Off by default, as in fused_export.py.

Categorical splits (a bitset per node) have no exact TreeEnsemble equivalent here and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sentinel.model_export.scorer import INPUT_NAME, RISK_OUTPUT
from sentinel.model_export.tree_ensemble import TreeEnsembleArrays, onnx_model

# The raw log-odds of fraud (the tree operator's output, before the sigmoid).
LOG_ODDS_OUTPUT = "log_odds"


def boosting_onnx_model(
    model: HistGradientBoostingClassifier,
    *,
    metadata: Mapping[str, str] | None = None,
    nan_inputs: bool = False,
) -> onnx.ModelProto:
    """Export ``model`` as one TreeEnsemble node (log-odds) followed by a Sigmoid (``risk``).

    ``risk`` (float32, [N, 1]) is ``model.predict_proba(X)[:, 1]``, the probability of
    ``model.classes_[1]`` (fraud when the labels are 0/1 or False/True).
    ``metadata`` lands in the model's ``metadata_props`` (e.g. the model version).
    ``nan_inputs``: route NaN features like scikit-learn (see the module docstring); off by default
    because the hot path never produces NaN.
    Raises ValueError for a model that is not fitted, not a binary classifier, or has categorical
    features: an export that silently scored differently from scikit-learn would be worse than none.
    """
    _check_exportable(model)
    n_features = int(model.n_features_in_)
    baseline = float(np.asarray(model._baseline_prediction).reshape(-1)[0])
    columns = np.arange(n_features)
    tree = TreeEnsembleArrays()
    for index, (predictor,) in enumerate(model._predictors):
        nodes = predictor.nodes
        if nodes["is_categorical"].any():  # _check_exportable refuses these; never route by a bitset
            raise ValueError("HistGradientBoostingClassifier with categorical splits cannot be exported")
        # The baseline rides on the first tree's leaves: every row reaches exactly one of them.
        values = nodes["value"] + (baseline if index == 0 else 0.0)
        tree.add(_PredictorTree.of(nodes), columns, values, nan_inputs)

    ensemble = tree.node(LOG_ODDS_OUTPUT, nan_inputs)
    graph = helper.make_graph(
        [ensemble, helper.make_node("Sigmoid", [LOG_ODDS_OUTPUT], [RISK_OUTPUT])],
        "hist_gradient_boosting_fused",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(RISK_OUTPUT, TensorProto.FLOAT, [None, 1])],
    )
    return onnx_model(
        graph, f"HistGradientBoostingClassifier ({len(model._predictors)} iterations) fused export", metadata
    )


def _check_exportable(model: HistGradientBoostingClassifier) -> None:
    """Refuse what the two-node graph cannot score exactly like ``predict_proba(X)[:, 1]``."""
    if not isinstance(model, HistGradientBoostingClassifier):
        raise ValueError(f"expected a HistGradientBoostingClassifier, got {type(model).__name__}")
    try:
        check_is_fitted(model)
    except NotFittedError as error:
        raise ValueError(
            "the HistGradientBoostingClassifier is not fitted: fit it before exporting"
        ) from error
    classes = len(model.classes_)
    if classes != 2 or model.n_trees_per_iteration_ != 1:
        # Multiclass boosting fits one tree per class and iteration and needs a softmax across them.
        raise ValueError(
            f"only a binary classifier can be exported (risk = P(class 1)); it has {classes} classes"
        )
    if model.is_categorical_ is not None and np.any(model.is_categorical_):
        categorical = np.flatnonzero(model.is_categorical_).tolist()
        raise ValueError(
            f"categorical features (columns {categorical}) split by category bitsets, which this export "
            "cannot express exactly: fit without categorical_features"
        )


@dataclass(frozen=True)
class _PredictorTree:
    """One HGB tree (TreePredictor.nodes) seen through the scikit-learn ``tree_`` attribute names that
    ``TreeEnsembleArrays.add`` reads, so both exports share one TreeEnsemble layout.

    The predictor numbers nodes depth first (children after their parent), as ``add`` requires.
    """

    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_go_to_left: np.ndarray

    @classmethod
    def of(cls, nodes: np.ndarray) -> _PredictorTree:
        leaf = nodes["is_leaf"].astype(bool)
        return cls(
            children_left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
            children_right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
            feature=nodes["feature_idx"].astype(np.int64),
            threshold=nodes["num_threshold"].astype(np.float64),
            missing_go_to_left=nodes["missing_go_to_left"].astype(bool),
        )
