"""Hot reload: each worker holds the active model and swaps it when ``sentinel model activate`` runs.

A worker reads ``ActiveModel.current`` once per micro-batch and scores the whole batch with that
object, so a swap (one attribute assignment, atomic in Python) never mixes two models inside a batch
and never fails a request: in-flight batches finish on the old session, which is freed when the
last of them drops it. Polling costs one ``stat`` of the ACTIVE pointer per interval; the new model
is loaded (and checked) in a thread, off the event loop, before it is swapped in. A model that fails
its checks is logged and skipped, and the worker keeps serving the model it has.

The SHADOW pointer is followed the same way (same poll, same thread hop): ``ActiveModel.shadow`` is the
challenger scored beside ``current`` and recorded, never acted on. A shadow model is optional, so it can
never stop a worker or a batch: one that fails to load (or names the active version) is logged and
ignored (``shadow`` is None until the pointer changes again).
"""

from __future__ import annotations

import asyncio

import structlog

from sentinel.model_export.registry import LoadedModel, ModelLoadError, ModelRegistry

log = structlog.get_logger(__name__)


class ActiveModel:
    """The model a worker scores with, following the registry's ACTIVE pointer, and the shadow model
    it also scores with (recorded, never acted on), following SHADOW.

    The constructor loads the active model and raises ModelLoadError if it cannot be served (a
    worker must not start on a model of another feature schema). In a worker, after the fork::

        model = ActiveModel(ModelRegistry.from_settings(settings))
        watcher = asyncio.create_task(model.watch(settings.model_poll_interval_ms / 1000))
        ...
        loaded = model.current                # once per micro-batch
        risk = loaded.scorer.score(features)  # float32 [n, FEATURE_COUNT] -> risk in 0..1
        # loaded.version goes into Decision.model_version; loaded.metadata.thresholds.review/decline
        shadow = model.shadow                 # once per micro-batch too: a LoadedModel or None
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._signature = registry.pointer_signature()
        self._shadow_signature = registry.shadow_signature()
        self.current: LoadedModel = registry.load_active()
        self.shadow: LoadedModel | None = self._load_shadow()

    def pointer_changed(self) -> bool:
        """Whether ACTIVE or SHADOW changed since the last reload (two stat calls)."""
        return (
            self._registry.pointer_signature() != self._signature
            or self._registry.shadow_signature() != self._shadow_signature
        )

    def reload(self) -> bool:
        """Swap to the model ACTIVE names if it is another one and it loads; True when swapped. Then
        follow SHADOW (see ``reload_shadow``).

        Blocking (it may build onnxruntime sessions): call it from a thread in an event loop.
        """
        swapped = self._reload_active()
        self.reload_shadow(force=swapped)
        return swapped

    def _reload_active(self) -> bool:
        signature = self._registry.pointer_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            model = self._registry.load_active()
        except (ModelLoadError, OSError) as exc:  # the message names the refused version
            log.error("model_reload_refused", kept=self.current.version, error=str(exc))
            return False
        if model.version == self.current.version:
            return False
        previous, self.current = self.current, model
        log.info("model_swapped", version=model.version, previous=previous.version)
        return True

    def reload_shadow(self, *, force: bool = False) -> bool:
        """Load the model SHADOW names if the pointer changed (or ``force``: the active model did, and
        a shadow equal to it is dropped); True when ``shadow`` changed. Never raises for a bad model."""
        signature = self._registry.shadow_signature()
        if signature == self._shadow_signature and not force:
            return False
        self._shadow_signature = signature
        previous = self.shadow
        if previous is not None and previous.version != self.current.version:
            try:
                if self._registry.shadow_version() == previous.version:
                    return False  # the pointer was rewritten with the same version
            except OSError:
                pass  # _load_shadow says why
        self.shadow = self._load_shadow()
        if self.shadow is previous:
            return False
        log.info(
            "shadow_model_swapped",
            version=self.shadow.version if self.shadow else None,
            previous=previous.version if previous else None,
        )
        return True

    def _load_shadow(self) -> LoadedModel | None:
        """The shadow model SHADOW names, or None (none set, unusable, or the active version)."""
        try:
            shadow = self._registry.load_shadow()
        except Exception as exc:  # a shadow model must never stop the worker: ModelLoadError, OSError, ...
            log.error("shadow_model_refused", active=self.current.version, error=str(exc))
            return None
        if shadow is not None and shadow.version == self.current.version:
            log.warning("shadow_model_ignored", version=shadow.version, reason="it is the active model")
            return None
        return shadow

    async def watch(self, interval_s: float) -> None:
        """Poll the pointers every ``interval_s`` seconds and reload on change; runs until cancelled.

        A failed poll (say, the registry's file system went away) is logged and retried at the next
        interval: the watcher must outlive it, or the worker would silently stop following ACTIVE.
        """
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self.pointer_changed():
                    await asyncio.to_thread(self.reload)
            except Exception as exc:
                log.error("model_watch_failed", error=str(exc), kept=self.current.version)
