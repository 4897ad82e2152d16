"""Training without training/serving skew: PaySim replayed through the server's own feature builder.

The rows go through ``sentinel.hotpath.build_features`` in event order with per-account state, the
exact code and state rules the server applies to live traffic, so the forest learns the features it
will be scored on. The forest is fitted on the earlier part of the replay (legitimate rows only:
an anomaly detector must learn what normal looks like) and evaluated on the later part, labels
included, which is also where the suggested thresholds and the export's parity come from.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata as distributions
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from sentinel.hotpath import (
    ALL_BALANCES_KNOWN,
    FEATURE_NAMES,
    FEATURE_SCHEMA_HASH,
    FEATURE_SCHEMA_VERSION,
    TransactionColumns,
    build_features,
    stable_hash,
)
from sentinel.model_export.evaluation import evaluate
from sentinel.model_export.fused_export import fused_onnx_model
from sentinel.model_export.metadata import ModelMetadata, TrainingData
from sentinel.model_export.paysim import ATTRIBUTION, PaySimRows, read_paysim
from sentinel.model_export.row_order import METADATA_KEY as ROW_ORDER_KEY
from sentinel.model_export.row_order import choose_row_order
from sentinel.model_export.scorer import ForestScorer

PARITY_TOLERANCE = 1e-5
_LIBRARIES = ("scikit-learn", "onnx", "onnxruntime", "numpy", "sentinelstream")


@dataclass(frozen=True, slots=True)
class ForestParameters:
    """IsolationForest parameters (scikit-learn's meaning) plus the held-out share of the replay."""

    n_estimators: int = 200
    max_samples: int = 256
    max_features: float = 1.0
    contamination: float | str = "auto"
    bootstrap: bool = False
    random_state: int = 0
    validation_fraction: float = 0.25


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A model ready to publish: the fused ONNX bytes and their metadata."""

    onnx_bytes: bytes
    metadata: ModelMetadata


def replay_features(rows: PaySimRows) -> npt.NDArray[np.float32]:
    """Feature rows of ``rows`` (already in event order) from the hot path, state carried along."""
    slots: dict[str, int] = {}
    account_slot = np.array([slots.setdefault(name, len(slots)) for name in rows.origin], dtype=np.int32)
    n = len(rows)
    columns = TransactionColumns(
        account_slot=account_slot,
        amount=rows.amount,
        type=rows.type,
        event_time=rows.event_time,
        geo_known=np.zeros(n, dtype=np.uint8),
        latitude=np.zeros(n),
        longitude=np.zeros(n),
        country=np.zeros(n, dtype=np.uint16),
        channel=np.zeros(n, dtype=np.uint8),
        counterparty=np.array([stable_hash(name) for name in rows.destination], dtype=np.uint64),
        device=np.zeros(n, dtype=np.uint64),
        balances_known=np.full(n, ALL_BALANCES_KNOWN, dtype=np.uint8),
        origin_before=rows.origin_before,
        origin_after=rows.origin_after,
        destination_before=rows.destination_before,
        destination_after=rows.destination_after,
    )
    features, _ = build_features(columns, [None] * len(slots))
    if not np.isfinite(features).all():
        raise ValueError("the hot path produced non-finite features; the fused export assumes finite ones")
    return features


def train(data: Path, parameters: ForestParameters) -> TrainedModel:
    """Replay ``data`` (PaySim CSV), fit, export, check parity and evaluate on the held-out rows."""
    rows = read_paysim(data)
    features = replay_features(rows)
    split = round(len(rows) * (1.0 - parameters.validation_fraction))
    if split < 2 or split >= len(rows):
        raise ValueError(
            f"{len(rows)} rows cannot be split with validation_fraction {parameters.validation_fraction}"
        )
    train_rows = features[:split][~rows.is_fraud[:split]]
    forest = IsolationForest(
        n_estimators=parameters.n_estimators,
        max_samples=min(parameters.max_samples, len(train_rows)),
        max_features=parameters.max_features,
        contamination=parameters.contamination,
        bootstrap=parameters.bootstrap,
        random_state=parameters.random_state,
    ).fit(train_rows)

    order = choose_row_order(forest, train_rows)
    onnx_bytes = fused_onnx_model(forest, metadata={ROW_ORDER_KEY: order.to_json()}).SerializeToString()
    onnx_sha256 = hashlib.sha256(onnx_bytes).hexdigest()
    created = datetime.now(UTC).replace(microsecond=0)
    version = f"{created:%Y%m%dT%H%M%SZ}-{onnx_sha256[:8]}"
    validation = features[split:]
    labels = rows.is_fraud[split:]
    risk = ForestScorer(onnx_bytes, version=version).score(validation)
    parity = float(np.abs(risk.astype(np.float64) + forest.score_samples(validation)).max())
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(
            f"exported scores differ from scikit-learn's by {parity:.3g} (> {PARITY_TOLERANCE})"
        )
    metrics, thresholds = evaluate(risk.astype(np.float64), labels)

    metadata = ModelMetadata(
        version=version,
        created_at=created.isoformat().replace("+00:00", "Z"),
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        feature_schema_hash=FEATURE_SCHEMA_HASH,
        feature_names=FEATURE_NAMES,
        onnx_sha256=onnx_sha256,
        libraries={"python": platform.python_version()}
        | {name: distributions.version(name) for name in _LIBRARIES},
        parameters=asdict(parameters) | {"max_samples_used": int(forest.max_samples_)},
        training_data=TrainingData(
            file_name=data.name,
            sha256=rows.sha256,
            rows=len(rows),
            fraud_rows=int(rows.is_fraud.sum()),
            attribution=ATTRIBUTION,
        ),
        metrics=metrics,
        thresholds=thresholds,
        parity_max_abs_diff=parity,
    )
    return TrainedModel(onnx_bytes=onnx_bytes, metadata=metadata)
