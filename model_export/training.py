"""Training without training/serving skew: PaySim replayed through the server's own feature builder.

The rows go through ``sentinel.hotpath.build_features`` in event order with per-account state, the
exact code and state rules the server applies to live traffic, so a model learns the features it will
be scored on. The file is split by account (``splits.py``): the train part fits the model, the
validation part chooses its thresholds by stated targets (``evaluation.py``) and measures it, and
the holdout part is never read here.

Two kinds of model, both exported to one fused ONNX graph with the same interface (float32 features
in, risk 0..1 out) and checked against scikit-learn before they are published:

- ``gradient_boosting`` (the default): HistGradientBoostingClassifier fitted on the labels; its risk
  is the predicted probability of fraud.
- ``isolation_forest``: fitted on the legitimate train rows only (an anomaly detector learns what
  normal looks like), for patterns nobody has labelled yet; often run in shadow beside the other.

Features the data cannot teach are left out: when too few training rows have an account history
(PaySim's accounts almost all transact once), the stateful features (``STATEFUL_FEATURES``) are held
constant in training, so the fitted trees never read them. Otherwise the rare rows with a history
look anomalous (or, to a classifier, unknown), and the same accounts scored a second time in
production, now with a history, would be flagged for it.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as distributions
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

from sentinel.hotpath import (
    ALL_BALANCES_KNOWN,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURE_SCHEMA_HASH,
    FEATURE_SCHEMA_VERSION,
    STATEFUL_FEATURES,
    TransactionColumns,
    build_features,
    stable_hash,
)
from sentinel.model_export.boosting_export import boosting_onnx_model
from sentinel.model_export.evaluation import PolicyTargets, evaluate
from sentinel.model_export.fused_export import fused_onnx_model
from sentinel.model_export.metadata import ModelKind, ModelMetadata, ScoreDistribution, Split, TrainingData
from sentinel.model_export.paysim import ATTRIBUTION, PaySimRows, read_paysim
from sentinel.model_export.row_order import METADATA_KEY as ROW_ORDER_KEY
from sentinel.model_export.row_order import choose_row_order
from sentinel.model_export.scorer import ModelScorer
from sentinel.model_export.splits import SplitParameters

PARITY_TOLERANCE = 1e-5
_LIBRARIES = ("scikit-learn", "onnx", "onnxruntime", "numpy", "sentinelstream")


_KIND_PREFIX: dict[ModelKind, str] = {"gradient_boosting": "gb", "isolation_forest": "if"}
# Below this share of training rows with an account history, the stateful features are left out.
MIN_HISTORY_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class ForestParameters:
    """IsolationForest parameters (scikit-learn's meaning)."""

    n_estimators: int = 200
    max_samples: int = 256
    max_features: float = 1.0
    contamination: float | str = "auto"
    bootstrap: bool = False
    random_state: int = 0


@dataclass(frozen=True, slots=True)
class BoostingParameters:
    """HistGradientBoostingClassifier parameters (scikit-learn's meaning)."""

    max_iter: int = 300
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    random_state: int = 0


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """Everything ``train`` needs besides the data: which model, how to split, what to aim for."""

    kind: ModelKind = "gradient_boosting"
    forest: ForestParameters = field(default_factory=ForestParameters)
    boosting: BoostingParameters = field(default_factory=BoostingParameters)
    split: SplitParameters = field(default_factory=SplitParameters)
    targets: PolicyTargets = field(default_factory=PolicyTargets)
    min_history_share: float = MIN_HISTORY_SHARE

    def parameters(self) -> dict[str, int | float | str | bool | None]:
        """The parameters of the chosen kind plus the policy targets, as metadata stores them."""
        chosen = asdict(self.forest if self.kind == "isolation_forest" else self.boosting)
        return (
            chosen
            | {f"target_{name}": value for name, value in asdict(self.targets).items()}
            | {"min_history_share": self.min_history_share}
        )


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


def version_name(kind: ModelKind, created: datetime, content_sha256: str) -> str:
    """A model version: kind, creation time and a hash of what makes it this model (readable, unique)."""
    return f"{_KIND_PREFIX[kind]}-{created:%Y%m%dT%H%M%SZ}-{content_sha256[:8]}"


def features_left_out(features: npt.NDArray[np.float32], min_history_share: float) -> tuple[str, ...]:
    """The stateful features when fewer than ``min_history_share`` of ``features``' rows have an
    account history (an earlier transaction of their account), else none."""
    with_history = float(np.mean(features[:, FEATURE_INDEX["first_transaction"]] == 0.0))
    return STATEFUL_FEATURES if with_history < min_history_share else ()


def train(data: Path, plan: TrainingPlan) -> TrainedModel:
    """Replay ``data`` (PaySim CSV), fit on the train part, export, check parity against scikit-learn
    and choose the thresholds on the validation part."""
    rows = read_paysim(data)
    features = replay_features(rows)
    parts = plan.split.masks(rows.origin)
    train_rows, validation_rows = parts["train"], parts["validation"]
    for name, mask in (("train", train_rows), ("validation", validation_rows)):
        if not rows.is_fraud[mask].any() or rows.is_fraud[mask].all():
            raise ValueError(f"{data}: the {name} part needs both fraud and legitimate rows")
    left_out = features_left_out(features[train_rows], plan.min_history_share)
    # Constant columns are never split on: the fitted trees cannot read a left-out feature.
    fitted_on = features.copy()
    fitted_on[:, [FEATURE_INDEX[name] for name in left_out]] = 0.0
    validation = features[validation_rows]
    labels = rows.is_fraud[validation_rows]

    extra: dict[str, int | float | str | bool | None] = {}
    if plan.kind == "isolation_forest":
        normal = fitted_on[train_rows & ~rows.is_fraud]
        forest = IsolationForest(
            **asdict(plan.forest) | {"max_samples": min(plan.forest.max_samples, len(normal))}
        ).fit(normal)
        order = choose_row_order(forest, normal)
        model = fused_onnx_model(forest, metadata={ROW_ORDER_KEY: order.to_json()})
        reference = -forest.score_samples(fitted_on[validation_rows])
        extra["max_samples_used"] = int(forest.max_samples_)
    else:
        boosting = HistGradientBoostingClassifier(**asdict(plan.boosting)).fit(
            fitted_on[train_rows], rows.is_fraud[train_rows]
        )
        model = boosting_onnx_model(boosting)
        reference = boosting.predict_proba(fitted_on[validation_rows])[:, 1]
        extra["iterations_used"] = int(boosting.n_iter_)

    onnx_bytes = model.SerializeToString()
    onnx_sha256 = hashlib.sha256(onnx_bytes).hexdigest()
    created = datetime.now(UTC).replace(microsecond=0)
    version = version_name(plan.kind, created, onnx_sha256)
    # Scored on the real features, left-out columns included: parity also proves they are not read.
    risk = ModelScorer(onnx_bytes, version=version).score(validation)
    parity = float(np.abs(risk.astype(np.float64) - reference).max())
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(
            f"exported scores differ from scikit-learn's by {parity:.3g} (> {PARITY_TOLERANCE}), "
            "or the export reads a feature left out of training"
        )
    metrics, thresholds = evaluate(risk.astype(np.float64), labels, plan.targets)
    holdout = parts["holdout"]
    metadata = ModelMetadata(
        version=version,
        kind=plan.kind,
        created_at=created.isoformat().replace("+00:00", "Z"),
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        feature_schema_hash=FEATURE_SCHEMA_HASH,
        feature_names=FEATURE_NAMES,
        features_left_out=left_out,
        features_left_out_reason=(
            f"fewer than {plan.min_history_share:.0%} of the training rows have an account history"
            if left_out
            else None
        ),
        onnx_sha256=onnx_sha256,
        libraries={"python": platform.python_version()}
        | {name: distributions.version(name) for name in _LIBRARIES},
        parameters=plan.parameters() | extra,
        training_data=TrainingData(
            file_name=data.name,
            sha256=rows.sha256,
            rows=len(rows),
            fraud_rows=int(rows.is_fraud.sum()),
            attribution=ATTRIBUTION,
        ),
        split=Split(
            validation_fraction=plan.split.validation_fraction,
            holdout_fraction=plan.split.holdout_fraction,
            train_rows=int(train_rows.sum()),
            train_fraud_rows=int(rows.is_fraud[train_rows].sum()),
            holdout_rows=int(holdout.sum()),
            holdout_fraud_rows=int(rows.is_fraud[holdout].sum()),
        ),
        metrics=metrics,
        thresholds=thresholds,
        parity_max_abs_diff=parity,
        score_distribution=ScoreDistribution.of(risk, "validation"),
    )
    return TrainedModel(onnx_bytes=onnx_bytes, metadata=metadata)
