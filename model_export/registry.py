"""The model registry: one directory per model version, and an ACTIVE pointer naming the one to serve.

Layout under the registry root (``settings.model_dir``, default ``<data_dir>/models``)::

    <version>/model.onnx       the fused export (sentinel.model_export.fused_export)
    <version>/metadata.json    sentinel.model_export.metadata.ModelMetadata
    ACTIVE                     the active version, one line; replaced atomically (rename)

Without an ACTIVE pointer the registry serves the default model shipped inside the package, so a fresh
clone scores with a real model. Loading a model checks everything that could make it score wrongly:
the metadata parses, the ONNX file is the one the metadata describes (sha256), and the feature schema
it was trained for is the one the hot path computes; a model failing any check is refused with a
message that says why, and activation refuses it before it reaches the pointer.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import pydantic

from sentinel.config import Settings
from sentinel.hotpath import FEATURE_SCHEMA_HASH, FEATURE_SCHEMA_VERSION
from sentinel.model_export.metadata import MODEL_FILE, VERSION_PATTERN, ModelMetadata
from sentinel.model_export.scorer import ForestScorer

ACTIVE_POINTER = "ACTIVE"


class FeatureSchema(NamedTuple):
    """The feature schema a model must have been trained for."""

    version: int
    hash: str


HOT_PATH_SCHEMA = FeatureSchema(FEATURE_SCHEMA_VERSION, FEATURE_SCHEMA_HASH)


class ModelLoadError(Exception):
    """A model cannot be served; the message says which model and why."""


class ModelSchemaMismatch(ModelLoadError):
    """The model was trained on other features than the hot path computes."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to score: its scorer, its metadata and where it came from."""

    scorer: ForestScorer
    metadata: ModelMetadata
    directory: Path

    @property
    def version(self) -> str:
        """The model version (also the scorer's and the Decision's ``model_version``)."""
        return self.metadata.version


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One model directory as ``sentinel model list`` shows it; ``problem`` is why it cannot load."""

    version: str
    directory: Path
    metadata: ModelMetadata | None
    problem: str | None
    active: bool
    packaged: bool


def default_model_directory() -> Path:
    """The model shipped with the package (``model_export/default_model/<version>``)."""
    root = Path(str(resources.files("sentinel.model_export") / "default_model"))
    (directory,) = (path for path in root.iterdir() if (path / MODEL_FILE).is_file())
    return directory


def load_model(directory: Path, expected: FeatureSchema) -> LoadedModel:
    """Load and check the model in ``directory``; ModelLoadError says what is wrong."""
    try:
        metadata = ModelMetadata.read(directory)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"no model in {directory}: {exc.strerror}: {exc.filename}") from None
    except pydantic.ValidationError as exc:
        raise ModelLoadError(f"model in {directory}: invalid metadata.json: {exc}") from None
    if metadata.feature_schema_hash != expected.hash:
        raise ModelSchemaMismatch(
            f"model {metadata.version} was trained for feature schema v{metadata.feature_schema_version} "
            f"(hash {metadata.feature_schema_hash[:12]}), but this hot path computes schema "
            f"v{expected.version} (hash {expected.hash[:12]}): its scores would be meaningless. "
            "Train a model for this version with `sentinel train` and activate it."
        )
    try:
        onnx_bytes = (directory / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"model {metadata.version}: cannot read {MODEL_FILE}: {exc}") from None
    if hashlib.sha256(onnx_bytes).hexdigest() != metadata.onnx_sha256:
        raise ModelLoadError(
            f"model {metadata.version}: {MODEL_FILE} does not match the sha256 in metadata.json "
            "(modified or truncated file)"
        )
    try:
        scorer = ForestScorer(onnx_bytes, version=metadata.version)
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        raise ModelLoadError(f"model {metadata.version}: cannot be loaded: {exc}") from None
    if scorer.feature_count != len(metadata.feature_names):
        raise ModelLoadError(
            f"model {metadata.version}: the ONNX graph takes {scorer.feature_count} features but "
            f"metadata.json lists {len(metadata.feature_names)}"
        )
    return LoadedModel(scorer=scorer, metadata=metadata, directory=directory)


class ModelRegistry:
    """Model directories under ``root`` plus the ACTIVE pointer, checked against ``schema``."""

    def __init__(self, root: Path, schema: FeatureSchema) -> None:
        self.root = root
        self.schema = schema
        self.pointer = root / ACTIVE_POINTER

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The registry at ``settings.model_dir`` (default ``<data_dir>/models``), checked against
        the feature schema of this process's hot path."""
        return cls(settings.model_dir or settings.data_dir / "models", HOT_PATH_SCHEMA)

    def directory(self, version: str) -> Path:
        """Where ``version`` lives: in the registry, or the packaged default model."""
        if not VERSION_PATTERN.fullmatch(version):
            raise ModelLoadError(f"{version!r} is not a model version")
        candidate = self.root / version
        if candidate.is_dir():
            return candidate
        default = default_model_directory()
        if default.name == version:
            return default
        raise ModelLoadError(f"no model {version} in {self.root} (see `sentinel model list`)")

    def active_version(self) -> str | None:
        """The version named by the ACTIVE pointer; None when nothing was activated."""
        try:
            return self.pointer.read_text().strip() or None
        except FileNotFoundError:
            return None

    def pointer_signature(self) -> tuple[int, int, int] | None:
        """A cheap fingerprint of the ACTIVE pointer (one stat call): changes on every activation."""
        try:
            status = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def load(self, version: str) -> LoadedModel:
        """Load and check one version."""
        return load_model(self.directory(version), self.schema)

    def load_active(self) -> LoadedModel:
        """The model to serve: the ACTIVE one, or the packaged default when nothing was activated."""
        version = self.active_version()
        if version is None:
            return load_model(default_model_directory(), self.schema)
        return self.load(version)

    def activate(self, version: str) -> LoadedModel:
        """Check that ``version`` loads, then point ACTIVE at it atomically (write, fsync, rename)."""
        model = self.load(version)
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".{ACTIVE_POINTER}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.pointer)
        directory_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
        return model

    def entries(self) -> list[RegistryEntry]:
        """Every model of the registry plus the packaged default, oldest first."""
        active = self.active_version()
        directories = [default_model_directory()]
        if self.root.is_dir():
            directories += sorted(path for path in self.root.iterdir() if (path / MODEL_FILE).is_file())
        entries = []
        for directory in directories:
            packaged = directory == directories[0]
            metadata: ModelMetadata | None = None
            problem: str | None = None
            try:
                metadata = load_model(directory, self.schema).metadata
            except ModelLoadError as exc:
                problem = str(exc)
            version = metadata.version if metadata else directory.name
            is_active = version == active or (active is None and packaged)
            entries.append(RegistryEntry(version, directory, metadata, problem, is_active, packaged))
        return entries


def publish_model(root: Path, onnx_bytes: bytes, metadata: ModelMetadata) -> Path:
    """Write a model directory ``root/<version>`` whole or not at all (staged, then renamed)."""
    if hashlib.sha256(onnx_bytes).hexdigest() != metadata.onnx_sha256:
        raise ValueError("metadata.onnx_sha256 is not the sha256 of the ONNX bytes")
    target = root / metadata.version
    if target.exists():
        raise FileExistsError(f"model {metadata.version} already exists in {root}")
    staging = root / f".{metadata.version}.{os.getpid()}.tmp"
    staging.mkdir(parents=True)
    (staging / MODEL_FILE).write_bytes(onnx_bytes)
    metadata.write(staging)
    os.rename(staging, target)
    return target
