"""What a model directory says about its model: ``metadata.json``, validated when read.

The metadata is what lets an operator (and the server) trust a model file: which feature schema it
was trained for (the server refuses any other), on which data (sha256) split how, which features it
was kept from and why, with which libraries and parameters, how well it did on validation data, and
which score thresholds that data chose for which targets.

Format 1 (the first models: Isolation Forests without a stored split) still reads; the fields added
in format 2 take the values those models had.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.onnx"
METADATA_FORMAT = 2
# A version is also a directory name: keep it to safe characters.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN.pattern)]
# isolation_forest: risk = the anomaly score 2^(-E[h(x)]/c(n)), fitted without labels.
# gradient_boosting: risk = the predicted probability of fraud, fitted on the labels.
ModelKind = Literal["isolation_forest", "gradient_boosting"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrainingData(_Frozen):
    """Where the training rows came from."""

    file_name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0)
    fraud_rows: int = Field(ge=0)
    attribution: str = Field(description="Source and license of the data, to be cited with the model.")


class Thresholds(_Frozen):
    """Model scores from which the decision policy should REVIEW or DECLINE, with the rule used and
    the validation precision each was chosen for (None: a format-1 model, chosen another way)."""

    review: float = Field(ge=0.0, le=1.0)
    decline: float = Field(ge=0.0, le=1.0)
    rule: str
    review_precision_target: float | None = None
    decline_precision_target: float | None = None


class Split(_Frozen):
    """How the training file was divided (sentinel.model_export.splits), and what each part held."""

    method: str = "account hash"
    validation_fraction: float
    holdout_fraction: float
    train_rows: int = Field(ge=0)
    train_fraud_rows: int = Field(ge=0)
    holdout_rows: int = Field(ge=0)
    holdout_fraud_rows: int = Field(ge=0)


class Metrics(_Frozen):
    """Evaluation of the model's score against the fraud labels of the validation rows."""

    pr_auc: float
    roc_auc: float
    recall_at_95_precision: float
    validation_rows: int
    validation_fraud_rows: int
    review_precision: float
    review_recall: float
    decline_precision: float
    decline_recall: float


# Upper bounds of the score bins a model's score distribution is counted in: its validation scores at
# training time (ScoreDistribution) and live scores (the sentinel_model_scores_total metric), so the two
# compare bin by bin. Finer near 0, where a fraud model puts most legitimate traffic.
SCORE_BINS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def score_bin_counts(scores: npt.NDArray[np.floating]) -> list[int]:
    """How many of ``scores`` fall in each SCORE_BINS bin (a score equal to a bound is in its bin)."""
    indexes = np.searchsorted(np.asarray(SCORE_BINS), np.clip(scores, 0.0, 1.0), side="left")
    return np.bincount(indexes, minlength=len(SCORE_BINS)).tolist()


class ScoreDistribution(_Frozen):
    """The model's scores on its validation rows, counted in SCORE_BINS: what live scores are compared
    with to see drift (the ops dashboard). Absent from models trained before it was recorded."""

    bins: tuple[float, ...] = Field(description="Upper bounds of the bins (each bin: (previous, bound]).")
    counts: tuple[int, ...]
    rows: str = Field(description="Which rows were scored, e.g. 'validation'.")

    @classmethod
    def of(cls, scores: npt.NDArray[np.floating], rows: str) -> ScoreDistribution:
        return cls(bins=SCORE_BINS, counts=tuple(score_bin_counts(scores)), rows=rows)


class ModelMetadata(_Frozen):
    """The content of ``metadata.json``."""

    format: int = METADATA_FORMAT
    version: Version
    kind: ModelKind = "isolation_forest"
    created_at: str = Field(description="UTC time of training, ISO 8601.")
    feature_schema_version: int
    feature_schema_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    feature_names: tuple[str, ...]
    features_left_out: tuple[str, ...] = Field(
        (), description="Features held constant in training, so the model never reads them."
    )
    features_left_out_reason: str | None = None
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    libraries: dict[str, str]
    parameters: dict[str, int | float | str | bool | None]
    training_data: TrainingData
    split: Split | None = None
    calibrated_from: Version | None = Field(
        None, description="The model whose ONNX file this one reuses with new thresholds."
    )
    metrics: Metrics
    thresholds: Thresholds
    parity_max_abs_diff: float = Field(description="Largest |ONNX - scikit-learn| score on held-out rows.")
    score_distribution: ScoreDistribution | None = None

    def write(self, directory: Path) -> None:
        """Write ``metadata.json`` into ``directory``."""
        (directory / METADATA_FILE).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, directory: Path) -> ModelMetadata:
        """Read and validate ``directory/metadata.json`` (pydantic.ValidationError when malformed)."""
        return cls.model_validate_json((directory / METADATA_FILE).read_bytes())
