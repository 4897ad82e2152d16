"""The model registry: publishing, activation, schema refusal, and the hot-reloading ActiveModel."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from sentinel.model_export.fused_export import fused_onnx_model
from sentinel.model_export.metadata import MODEL_FILE, Metrics, ModelMetadata, Thresholds, TrainingData
from sentinel.model_export.registry import (
    HOT_PATH_SCHEMA,
    FeatureSchema,
    ModelLoadError,
    ModelRegistry,
    ModelSchemaMismatch,
    default_model_directory,
    publish_model,
)
from sentinel.model_export.reloader import ActiveModel

N_FEATURES = 6
SCHEMA = FeatureSchema(version=1, hash="a" * 64)
OTHER_SCHEMA = FeatureSchema(version=2, hash="b" * 64)


def _publish(root: Path, version: str, seed: int, schema: FeatureSchema = SCHEMA) -> Path:
    """A small real model (trained here) written into the registry under ``version``."""
    rows = np.random.default_rng(seed).normal(size=(500, N_FEATURES)).astype(np.float32)
    forest = IsolationForest(n_estimators=10, max_samples=64, random_state=seed).fit(rows)
    onnx_bytes = fused_onnx_model(forest).SerializeToString()
    metadata = ModelMetadata(
        version=version,
        created_at="2026-11-23T10:00:00Z",
        feature_schema_version=schema.version,
        feature_schema_hash=schema.hash,
        feature_names=tuple(f"f{i}" for i in range(N_FEATURES)),
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        libraries={"scikit-learn": "test"},
        parameters={"n_estimators": 10, "max_samples": 64},
        training_data=TrainingData(
            file_name="random", sha256="c" * 64, rows=500, fraud_rows=0, attribution="generated"
        ),
        metrics=Metrics(
            pr_auc=0.5,
            roc_auc=0.5,
            recall_at_95_precision=0.0,
            validation_rows=100,
            validation_fraud_rows=10,
            review_precision=0.5,
            review_recall=0.5,
            decline_precision=0.5,
            decline_recall=0.1,
        ),
        thresholds=Thresholds(review=0.6, decline=0.7, rule="test"),
        parity_max_abs_diff=0.0,
    )
    return publish_model(root, onnx_bytes, metadata)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", SCHEMA)


def test_activate_points_active_at_a_checked_model(registry: ModelRegistry) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    assert registry.active_version() is None
    model = registry.activate("m2")
    assert model.version == "m2" == model.scorer.version
    assert registry.active_version() == "m2"
    assert registry.load_active().version == "m2"
    listed = {entry.version: entry for entry in registry.entries() if not entry.packaged}
    assert listed["m2"].active and not listed["m1"].active
    assert listed["m1"].problem is None


def test_model_of_another_feature_schema_is_refused_with_a_clear_message(registry: ModelRegistry) -> None:
    _publish(registry.root, "old-schema", seed=1, schema=OTHER_SCHEMA)
    with pytest.raises(ModelSchemaMismatch, match=r"trained for feature schema v2 .* computes schema v1"):
        registry.activate("old-schema")
    assert registry.active_version() is None
    (entry,) = [entry for entry in registry.entries() if entry.version == "old-schema"]
    assert entry.problem is not None and "feature schema v2" in entry.problem


def test_tampered_or_unknown_models_are_refused(registry: ModelRegistry) -> None:
    directory = _publish(registry.root, "m1", seed=1)
    with open(directory / MODEL_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="does not match the sha256"):
        registry.activate("m1")
    with pytest.raises(ModelLoadError, match="no model nope"):
        registry.activate("nope")
    with pytest.raises(ModelLoadError, match="not a model version"):
        registry.activate("../m1")


def test_publish_never_overwrites(registry: ModelRegistry) -> None:
    _publish(registry.root, "m1", seed=1)
    with pytest.raises(FileExistsError):
        _publish(registry.root, "m1", seed=2)


def test_packaged_default_model_serves_until_something_is_activated(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "empty", HOT_PATH_SCHEMA)
    model = registry.load_active()
    assert model.directory == default_model_directory()
    assert "PaySim" in model.metadata.training_data.attribution
    # Its validation scores, binned: what the ops dashboard's drift figure compares live scores with.
    distribution = model.metadata.score_distribution
    assert distribution is not None and distribution.rows == "validation"
    assert sum(distribution.counts) > 10_000
    features = np.zeros((3, len(model.metadata.feature_names)), dtype=np.float32)
    assert model.scorer.score(features).shape == (3,)
    # The packaged model can be activated by name like any other (e.g. to roll back to it).
    assert registry.activate(model.version).directory == default_model_directory()
    assert registry.active_version() == model.version


def test_active_model_swaps_on_activation_and_keeps_serving_through_a_bad_one(
    registry: ModelRegistry,
) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    _publish(registry.root, "bad", seed=3, schema=OTHER_SCHEMA)
    registry.activate("m1")
    active = ActiveModel(registry)
    assert active.current.version == "m1"
    assert not active.pointer_changed()

    registry.activate("m2")
    assert active.pointer_changed()
    assert active.reload()
    assert active.current.version == "m2"
    assert not active.pointer_changed()

    # A pointer written by hand (or by an older tool) naming an unusable model: keep serving m2.
    registry.pointer.write_text("bad\n")
    os.utime(registry.pointer, ns=(1, 1))
    assert active.pointer_changed()
    assert not active.reload()
    assert active.current.version == "m2"
    assert not active.pointer_changed()


async def test_watch_swaps_while_scoring_continues(registry: ModelRegistry) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    registry.activate("m1")
    active = ActiveModel(registry)
    watcher = asyncio.create_task(active.watch(interval_s=0.01))
    rows = np.random.default_rng(0).normal(size=(64, N_FEATURES)).astype(np.float32)
    versions_seen = set()
    try:
        registry.activate("m2")
        for _ in range(500):
            model = active.current
            assert model.scorer.score(rows).shape == (64,)
            versions_seen.add(model.version)
            if model.version == "m2":
                break
            await asyncio.sleep(0.005)
    finally:
        watcher.cancel()
    assert versions_seen >= {"m2"}
    assert active.current.version == "m2"


def test_startup_on_a_model_of_another_schema_fails(registry: ModelRegistry) -> None:
    _publish(registry.root, "old", seed=1, schema=OTHER_SCHEMA)
    registry.pointer.parent.mkdir(parents=True, exist_ok=True)
    registry.pointer.write_text("old\n")
    with pytest.raises(ModelSchemaMismatch):
        ActiveModel(registry)


async def test_watch_survives_a_failing_poll(registry: ModelRegistry, tmp_path: Path) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    registry.activate("m1")
    active = ActiveModel(registry)
    real_pointer = registry.pointer
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    registry.pointer = not_a_directory / "ACTIVE"  # stat now fails with NotADirectoryError
    watcher = asyncio.create_task(active.watch(interval_s=0.01))
    try:
        await asyncio.sleep(0.05)
        assert not watcher.done()
        registry.pointer = real_pointer
        registry.activate("m2")
        for _ in range(200):
            if active.current.version == "m2":
                break
            await asyncio.sleep(0.01)
    finally:
        watcher.cancel()
    assert active.current.version == "m2"


# ------------------------------------------------------------------------------------------ shadow model
def copy_default_model(root: Path, version: str, review: float, decline: float) -> Path:
    """The packaged default model published into ``root`` as ``version`` with other thresholds: a second
    model that loads under the hot path's schema (same ONNX file, so onnx_sha256 still matches)."""
    source = default_model_directory()
    metadata = ModelMetadata.read(source)
    thresholds = metadata.thresholds.model_copy(update={"review": review, "decline": decline})
    changed = metadata.model_copy(update={"version": version, "thresholds": thresholds})
    return publish_model(root, (source / MODEL_FILE).read_bytes(), changed)


def test_shadow_pointer_names_a_checked_model_other_than_the_active_one(registry: ModelRegistry) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    _publish(registry.root, "bad", seed=3, schema=OTHER_SCHEMA)
    registry.activate("m1")
    assert registry.shadow_version() is None and registry.load_shadow() is None

    model = registry.set_shadow("m2")
    assert model is not None and model.version == "m2"
    assert registry.shadow_pointer == registry.root / "SHADOW" and registry.shadow_pointer.is_file()
    assert registry.shadow_version() == "m2" and registry.active_version() == "m1"
    loaded = registry.load_shadow()
    assert loaded is not None and loaded.version == "m2"
    assert not list(registry.root.glob(".*.tmp"))  # written through a temporary file, renamed

    listed = {entry.version: entry for entry in registry.entries()}
    assert listed["m2"].shadow and not listed["m2"].active
    assert listed["m1"].active and not listed["m1"].shadow
    assert not any(entry.shadow for entry in listed.values() if entry.version != "m2")

    with pytest.raises(ModelLoadError, match="m1 is the active model"):
        registry.set_shadow("m1")
    with pytest.raises(ModelSchemaMismatch):
        registry.set_shadow("bad")
    with pytest.raises(ModelLoadError, match="no model nope"):
        registry.set_shadow("nope")
    assert registry.shadow_version() == "m2"  # refusals leave the pointer alone

    assert registry.set_shadow(None) is None
    assert registry.shadow_version() is None and not registry.shadow_pointer.exists()
    assert registry.set_shadow(None) is None  # removing no pointer is fine
    assert not any(entry.shadow for entry in registry.entries())


def test_activating_the_shadow_model_promotes_it(registry: ModelRegistry) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    registry.activate("m1")
    registry.set_shadow("m2")
    registry.activate("m2")
    assert registry.active_version() == "m2" and registry.shadow_version() is None


def test_the_packaged_default_serving_without_active_cannot_be_its_own_shadow(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models", HOT_PATH_SCHEMA)
    default = default_model_directory().name
    with pytest.raises(ModelLoadError, match="is the active model"):
        registry.set_shadow(default)
    copy_default_model(registry.root, "challenger-1", review=0.3, decline=0.4)
    shadow = registry.set_shadow("challenger-1")
    assert shadow is not None and shadow.metadata.thresholds.review == 0.3
    listed = {entry.version: entry for entry in registry.entries()}
    assert listed[default].active and listed[default].packaged and not listed[default].shadow
    assert listed["challenger-1"].shadow and not listed["challenger-1"].active


def test_active_model_follows_the_shadow_pointer_and_ignores_a_bad_shadow(registry: ModelRegistry) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    _publish(registry.root, "m3", seed=3)
    _publish(registry.root, "bad", seed=4, schema=OTHER_SCHEMA)
    registry.activate("m1")
    registry.set_shadow("m2")
    active = ActiveModel(registry)
    assert active.current.version == "m1"
    assert active.shadow is not None and active.shadow.version == "m2"
    assert not active.pointer_changed()

    registry.set_shadow("m3")
    assert active.pointer_changed()
    assert not active.reload()  # the active model did not change...
    assert active.shadow is not None and active.shadow.version == "m3"  # ...the shadow did
    assert active.current.version == "m1" and not active.pointer_changed()

    # A pointer written by hand naming an unusable model: logged and ignored, scoring goes on.
    registry.shadow_pointer.write_text("bad\n")
    os.utime(registry.shadow_pointer, ns=(1, 1))
    assert active.pointer_changed()
    active.reload()
    assert active.shadow is None and active.current.version == "m1"

    registry.set_shadow("m2")
    active.reload()
    assert active.shadow is not None and active.shadow.version == "m2"
    registry.set_shadow(None)
    active.reload()
    assert active.shadow is None

    # A worker starts whatever SHADOW names: an unusable shadow never stops it.
    registry.shadow_pointer.write_text("bad\n")
    started = ActiveModel(registry)
    assert started.current.version == "m1" and started.shadow is None
    registry.shadow_pointer.write_text("m1\n")  # the active version (written by hand): ignored
    assert ActiveModel(registry).shadow is None

    # The active model changing to the shadow's version drops the shadow in the same reload.
    registry.set_shadow("m2")
    promoted = ActiveModel(registry)
    registry.pointer.write_text("m2\n")  # by hand, so SHADOW stays
    os.utime(registry.pointer, ns=(2, 2))
    assert promoted.reload()
    assert promoted.current.version == "m2" and promoted.shadow is None


async def test_watch_follows_the_shadow_pointer(registry: ModelRegistry) -> None:
    _publish(registry.root, "m1", seed=1)
    _publish(registry.root, "m2", seed=2)
    registry.activate("m1")
    active = ActiveModel(registry)
    assert active.shadow is None
    watcher = asyncio.create_task(active.watch(interval_s=0.01))
    rows = np.random.default_rng(0).normal(size=(16, N_FEATURES)).astype(np.float32)
    try:
        registry.set_shadow("m2")
        for _ in range(500):
            shadow = active.shadow
            if shadow is not None:
                assert shadow.scorer.score(rows).shape == (16,)
                break
            await asyncio.sleep(0.005)
        assert active.shadow is not None and active.shadow.version == "m2"
        registry.set_shadow(None)
        for _ in range(500):
            if active.shadow is None:
                break
            await asyncio.sleep(0.005)
    finally:
        watcher.cancel()
    assert active.shadow is None and active.current.version == "m1"


def test_cli_sets_lists_and_removes_the_shadow_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentinel.cli import main

    root = tmp_path / "models"
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(root))
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    copy_default_model(root, "champion-1", review=0.6, decline=0.7)
    copy_default_model(root, "challenger-1", review=0.3, decline=0.4)
    assert main(["model", "activate", "champion-1"]) == 0
    assert main(["model", "shadow", "challenger-1"]) == 0
    assert "shadow model challenger-1 (review>=0.300, decline>=0.400)" in capsys.readouterr().out
    assert (root / "SHADOW").read_text() == "challenger-1\n"

    assert main(["model", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("* champion-1 ") for line in lines)
    assert any(line.startswith("s challenger-1 ") for line in lines)
    assert main(["model", "list", "--json"]) == 0
    listed = {entry["version"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed["challenger-1"]["shadow"] is True and listed["challenger-1"]["active"] is False
    assert listed["champion-1"]["shadow"] is False and listed["champion-1"]["active"] is True
    assert sum(entry["shadow"] for entry in listed.values()) == 1

    assert main(["model", "shadow", "champion-1"]) == 1
    assert "champion-1 is the active model" in capsys.readouterr().err
    assert main(["model", "shadow", "no-such-version"]) == 1
    assert "no model no-such-version" in capsys.readouterr().err
    assert (root / "SHADOW").read_text() == "challenger-1\n"

    assert main(["model", "shadow", "--off"]) == 0
    assert "shadow model challenger-1 off" in capsys.readouterr().out
    assert not (root / "SHADOW").exists()
    assert main(["model", "list", "--json"]) == 0
    assert not any(entry["shadow"] for entry in json.loads(capsys.readouterr().out))
    with pytest.raises(SystemExit):
        main(["model", "shadow"])  # VERSION or --off
    with pytest.raises(SystemExit):
        main(["model", "shadow", "challenger-1", "--off"])
