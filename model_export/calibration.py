"""``sentinel model calibrate``: new thresholds for an existing model, chosen on labelled data.

Thresholds belong to a model version, and a version is immutable (servers and the ledger's
``model_version`` refer to it), so calibrating publishes a new version: the same ONNX file, metadata
with the thresholds and validation figures the data gave, and ``calibrated_from`` naming the model it
came from. The data's rows are split by account as in training and only the validation part is used,
so calibrating on the training file never chooses thresholds on rows the model was fitted on.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from sentinel.model_export.evaluation import PolicyTargets, evaluate
from sentinel.model_export.metadata import ScoreDistribution
from sentinel.model_export.paysim import read_paysim
from sentinel.model_export.registry import LoadedModel
from sentinel.model_export.splits import SplitParameters
from sentinel.model_export.training import TrainedModel, replay_features, version_name


def calibrate(model: LoadedModel, data: Path, split: SplitParameters, targets: PolicyTargets) -> TrainedModel:
    """``model`` with thresholds chosen on the validation part of ``data`` (PaySim CSV) for ``targets``."""
    rows = read_paysim(data)
    validation = split.masks(rows.origin)["validation"]
    labels = rows.is_fraud[validation]
    if labels.all() or not labels.any():
        raise ValueError(f"{data}: the validation part needs both fraud and legitimate rows")
    risk = model.scorer.score(replay_features(rows)[validation])
    metrics, thresholds = evaluate(risk.astype("float64"), labels, targets)
    onnx_bytes = (model.directory / "model.onnx").read_bytes()
    if hashlib.sha256(onnx_bytes).hexdigest() != model.metadata.onnx_sha256:
        raise ValueError(f"model {model.version}: model.onnx changed since it was loaded")
    created = datetime.now(UTC).replace(microsecond=0)
    # Same ONNX file, other thresholds: the version's hash covers both.
    content = f"{model.metadata.onnx_sha256} {thresholds.review!r} {thresholds.decline!r}".encode()
    metadata = model.metadata.model_copy(
        update={
            "version": version_name(model.metadata.kind, created, hashlib.sha256(content).hexdigest()),
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "metrics": metrics,
            "thresholds": thresholds,
            "calibrated_from": model.version,
            "score_distribution": ScoreDistribution.of(risk, "validation"),
        }
    )
    return TrainedModel(onnx_bytes=onnx_bytes, metadata=metadata)
