"""What a model directory says about its model: ``metadata.json``, validated when read.

The metadata is what lets an operator (and the server) trust a model file: which feature schema it
was trained for (the server refuses any other), on which data (sha256), with which libraries and
parameters, how well it did on held-out data, and which score thresholds that data suggests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.onnx"
METADATA_FORMAT = 1
# A version is also a directory name: keep it to safe characters.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN.pattern)]


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
    """Model scores from which the decision policy should REVIEW or DECLINE, with the rule used."""

    review: float = Field(ge=0.0, le=1.0)
    decline: float = Field(ge=0.0, le=1.0)
    rule: str


class Metrics(_Frozen):
    """Held-out evaluation of the anomaly score against the fraud labels."""

    pr_auc: float
    roc_auc: float
    recall_at_95_precision: float
    validation_rows: int
    validation_fraud_rows: int
    review_precision: float
    review_recall: float
    decline_precision: float
    decline_recall: float


class ModelMetadata(_Frozen):
    """The content of ``metadata.json``."""

    format: int = METADATA_FORMAT
    version: Version
    created_at: str = Field(description="UTC time of training, ISO 8601.")
    feature_schema_version: int
    feature_schema_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    feature_names: tuple[str, ...]
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    libraries: dict[str, str]
    parameters: dict[str, int | float | str | bool | None]
    training_data: TrainingData
    metrics: Metrics
    thresholds: Thresholds
    parity_max_abs_diff: float = Field(description="Largest |ONNX - scikit-learn| score on held-out rows.")

    def write(self, directory: Path) -> None:
        """Write ``metadata.json`` into ``directory``."""
        (directory / METADATA_FILE).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, directory: Path) -> ModelMetadata:
        """Read and validate ``directory/metadata.json`` (pydantic.ValidationError when malformed)."""
        return cls.model_validate_json((directory / METADATA_FILE).read_bytes())
