"""The stock skl2onnx export of an IsolationForest, kept to compare the fused export against.

skl2onnx converts every tree on its own (a TreeEnsembleRegressor plus ~25 helper nodes per tree),
which is what makes it slow; ``sentinel bench model`` measures both on the same forest. Its
converter refuses forests fitted with ``max_features < 1.0``.
"""

from __future__ import annotations

import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.ensemble import IsolationForest

from sentinel.model_export.tree_ensemble import ONNX_OPSET

# skl2onnx's outputs: the inlier/outlier label and decision_function.
STOCK_DECISION_FUNCTION_OUTPUT = "scores"


def stock_onnx_model(forest: IsolationForest) -> onnx.ModelProto:
    """skl2onnx's conversion of ``forest`` (float32 input named ``X``)."""
    sample = np.zeros((1, int(forest.n_features_in_)), dtype=np.float32)
    model = to_onnx(forest, sample, target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3})
    assert isinstance(model, onnx.ModelProto)
    return model
