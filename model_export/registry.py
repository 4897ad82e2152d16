"""The model registry: one directory per model version, and an ACTIVE pointer naming the one to serve.

Layout under the registry root (``settings.model_dir``, default ``<data_dir>/models``)::

    <version>/model.onnx       the fused export (sentinel.model_export.fused_export)
    <version>/metadata.json    sentinel.model_export.metadata.ModelMetadata
    ACTIVE                     the active version, one line; replaced atomically (rename)
    SHADOW                     optional: a challenger version scored beside the active one on the same
                               traffic, recorded with each decision and never acted on; same format

Without an ACTIVE pointer the registry serves the default model shipped inside the package, so a fresh
clone scores with a real model. Loading a model checks everything that could make it score wrongly:
the metadata parses, the ONNX file is the one the metadata describes (sha256), and the feature schema
it was trained for is the one the hot path computes; a model failing any check is refused with a
message that says why, and activation refuses it before it reaches the pointer (so does ``set_shadow``,
which also refuses the active version: a shadow model is a second opinion).
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
from sentinel.model_export.scorer import ModelScorer

ACTIVE_POINTER = "ACTIVE"
SHADOW_POINTER = "SHADOW"
DEFAULT_POINTER = "DEFAULT"  # in the packaged models' directory


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

    scorer: ModelScorer
    metadata: ModelMetadata
    directory: Path

    @property
    def version(self) -> str:
        """The model version (also the scorer's and the Decision's ``model_version``)."""
        return self.metadata.version


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One model directory as ``sentinel model list`` shows it; ``problem`` is why it cannot load,
    ``shadow`` that the SHADOW pointer names it."""

    version: str
    directory: Path
    metadata: ModelMetadata | None
    problem: str | None
    active: bool
    packaged: bool
    shadow: bool = False


def packaged_model_directories() -> list[Path]:
    """The models shipped with the package (``model_export/default_model/<version>``), by version."""
    root = Path(str(resources.files("sentinel.model_export") / "default_model"))
    return sorted(path for path in root.iterdir() if (path / MODEL_FILE).is_file())


def default_model_directory() -> Path:
    """The packaged model served while nothing is ACTIVE: the one ``default_model/DEFAULT`` names."""
    root = Path(str(resources.files("sentinel.model_export") / "default_model"))
    return root / (root / DEFAULT_POINTER).read_text().strip()


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
        scorer = ModelScorer(onnx_bytes, version=metadata.version)
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        raise ModelLoadError(f"model {metadata.version}: cannot be loaded: {exc}") from None
    if scorer.feature_count != len(metadata.feature_names):
        raise ModelLoadError(
            f"model {metadata.version}: the ONNX graph takes {scorer.feature_count} features but "
            f"metadata.json lists {len(metadata.feature_names)}"
        )
    return LoadedModel(scorer=scorer, metadata=metadata, directory=directory)


class ModelRegistry:
    """Model directories under ``root`` plus the ACTIVE and SHADOW pointers, checked against ``schema``."""

    def __init__(self, root: Path, schema: FeatureSchema) -> None:
        self.root = root
        self.schema = schema
        self.pointer = root / ACTIVE_POINTER
        self.shadow_pointer = root / SHADOW_POINTER

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The registry at ``settings.model_dir`` (default ``<data_dir>/models``), checked against
        the feature schema of this process's hot path."""
        return cls(settings.model_dir or settings.data_dir / "models", HOT_PATH_SCHEMA)

    def directory(self, version: str) -> Path:
        """Where ``version`` lives: in the registry, or among the packaged models."""
        if not VERSION_PATTERN.fullmatch(version):
            raise ModelLoadError(f"{version!r} is not a model version")
        candidate = self.root / version
        if candidate.is_dir():
            return candidate
        for packaged in packaged_model_directories():
            if packaged.name == version:
                return packaged
        raise ModelLoadError(f"no model {version} in {self.root} (see `sentinel model list`)")

    def active_version(self) -> str | None:
        """The version named by the ACTIVE pointer; None when nothing was activated."""
        return _read_pointer(self.pointer)

    def serving_version(self) -> str:
        """The version ``load_active`` serves: ACTIVE's, else the packaged default's."""
        return self.active_version() or default_model_directory().name

    def shadow_version(self) -> str | None:
        """The version named by the SHADOW pointer; None when no shadow model is set."""
        return _read_pointer(self.shadow_pointer)

    def pointer_signature(self) -> tuple[int, int, int] | None:
        """A cheap fingerprint of the ACTIVE pointer (one stat call): changes on every activation."""
        return _signature(self.pointer)

    def shadow_signature(self) -> tuple[int, int, int] | None:
        """The same for the SHADOW pointer: changes whenever the shadow model is set or removed."""
        return _signature(self.shadow_pointer)

    def load(self, version: str) -> LoadedModel:
        """Load and check one version."""
        return load_model(self.directory(version), self.schema)

    def load_active(self) -> LoadedModel:
        """The model to serve: the ACTIVE one, or the packaged default when nothing was activated."""
        version = self.active_version()
        if version is None:
            return load_model(default_model_directory(), self.schema)
        return self.load(version)

    def load_shadow(self) -> LoadedModel | None:
        """The shadow model SHADOW names (checked like any other), or None when none is set."""
        version = self.shadow_version()
        return None if version is None else self.load(version)

    def activate(self, version: str) -> LoadedModel:
        """Check that ``version`` loads, then point ACTIVE at it atomically (write, fsync, rename). When
        ``version`` was the shadow model (a challenger promoted), the SHADOW pointer is removed."""
        model = self.load(version)
        self._write_pointer(self.pointer, version)
        if self.shadow_version() == version:
            self._remove_pointer(self.shadow_pointer)
        return model

    def set_shadow(self, version: str | None) -> LoadedModel | None:
        """Point SHADOW at ``version`` once it loads (atomically, as ``activate`` does ACTIVE); None
        removes the pointer. ModelLoadError when the model cannot be served or is the active one."""
        if version is None:
            self._remove_pointer(self.shadow_pointer)
            return None
        active = self.serving_version()
        if version == active:
            raise ModelLoadError(
                f"model {version} is the active model: a shadow model is scored beside the active one, "
                "so it must be another version (see `sentinel model list`)"
            )
        model = self.load(version)
        if model.version == active:
            raise ModelLoadError(f"model {version} is the active model ({active}): choose another version")
        self._write_pointer(self.shadow_pointer, version)
        return model

    def _write_pointer(self, pointer: Path, version: str) -> None:
        """Replace ``pointer`` with ``version`` atomically: write and fsync a temporary file, rename
        it over the pointer, fsync the directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".{pointer.name}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, pointer)
        self._sync_root()

    def _remove_pointer(self, pointer: Path) -> None:
        """Remove ``pointer`` durably (nothing to do when it does not exist)."""
        try:
            os.unlink(pointer)
        except FileNotFoundError:
            return
        self._sync_root()

    def _sync_root(self) -> None:
        directory_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)

    def entries(self) -> list[RegistryEntry]:
        """The packaged models, then every model of the registry, oldest first."""
        active = self.active_version()
        shadow = self.shadow_version()
        packaged_directories = packaged_model_directories()
        default = default_model_directory()
        directories = list(packaged_directories)
        if self.root.is_dir():
            directories += sorted(path for path in self.root.iterdir() if (path / MODEL_FILE).is_file())
        entries = []
        for directory in directories:
            packaged = directory in packaged_directories
            metadata: ModelMetadata | None = None
            problem: str | None = None
            try:
                metadata = load_model(directory, self.schema).metadata
            except ModelLoadError as exc:
                problem = str(exc)
            version = metadata.version if metadata else directory.name
            is_active = version == active or (active is None and directory == default)
            entries.append(
                RegistryEntry(version, directory, metadata, problem, is_active, packaged, version == shadow)
            )
        return entries


def _read_pointer(pointer: Path) -> str | None:
    """The version a pointer file names; None when there is none."""
    try:
        return pointer.read_text().strip() or None
    except FileNotFoundError:
        return None


def _signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of ``path``, None when it does not exist: one stat call."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


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
