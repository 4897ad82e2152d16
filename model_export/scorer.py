"""The runtime scorer: one onnxruntime session over a fused model, tuned for a latency service.

Every worker process runs its own session on one thread (``intra_op_num_threads=1``, sequential
execution, no spinning): the service parallelises across worker processes, and extra intra-op
threads would only oversubscribe the 2 shared cores and burn them spinning while idle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from sentinel.model_export import row_order

# The interface of a fused export (fused_export.py writes it): float32 features in, risk out.
# Defined here so that serving never imports scikit-learn, which only the export needs.
INPUT_NAME = "features"
# Risk in 0..1, higher = more suspicious: the anomaly score 2^(-E[h(x)]/c(n)) of an Isolation Forest,
# the probability of fraud of gradient-boosted trees.
RISK_OUTPUT = "risk"


def latency_session_options() -> ort.SessionOptions:
    """Session options for a latency-bound service process (one thread, no spinning)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def latency_session(model: bytes | Path) -> ort.InferenceSession:
    """An onnxruntime CPU session over ``model`` (serialized bytes or a file) with the options above."""
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, latency_session_options(), providers=["CPUExecutionProvider"])


class ModelScorer:
    """Scores feature rows with a fused export (either kind: both take ``features`` and give ``risk``);
    ``version`` names the model.

    Batches of at least ``row_order.MIN_ROWS`` rows are scored in the model's row order (see
    ``sentinel.model_export.row_order``) when the model carries one, then returned in request order.
    """

    def __init__(self, model: bytes | Path, *, version: str) -> None:
        self.version = version
        self._session = latency_session(model)
        (model_input,) = self._session.get_inputs()
        if model_input.name != INPUT_NAME:
            raise ValueError(f"model {version}: input is {model_input.name!r}, not a fused export")
        self.feature_count = int(model_input.shape[1])
        self._outputs = [RISK_OUTPUT]
        order = self._session.get_modelmeta().custom_metadata_map.get(row_order.METADATA_KEY)
        self.row_order = row_order.RowOrder.from_json(order) if order else None
        if self.row_order and not all(
            0 <= column < self.feature_count for column in self.row_order.columns()
        ):
            raise ValueError(f"model {version}: its row order names columns it does not have")

    def score(self, features: np.ndarray) -> np.ndarray:
        """Risk (0..1: the anomaly score or the probability of fraud) of each row of float32
        ``features[n, F]``."""
        if features.dtype != np.float32 or features.ndim != 2 or features.shape[1] != self.feature_count:
            raise ValueError(
                f"model {self.version} needs float32 features of shape (n, {self.feature_count}), "
                f"got {features.dtype} {features.shape}"
            )
        if self.row_order is None or len(features) < row_order.MIN_ROWS:
            (risk,) = self._session.run(self._outputs, {INPUT_NAME: features})
            return risk[:, 0]
        order = self.row_order.permutation(features)
        (ordered_risk,) = self._session.run(self._outputs, {INPUT_NAME: features[order]})
        risk = np.empty(len(features), dtype=np.float32)
        risk[order] = ordered_risk[:, 0]
        return risk
