"""Hot reload: each worker holds the active model and swaps it when ``sentinel model activate`` runs.

A worker reads ``ActiveModel.current`` once per micro-batch and scores the whole batch with that
object, so a swap (one attribute assignment, atomic in Python) never mixes two models inside a batch
and never fails a request: in-flight batches finish on the old session, which is freed when the
last of them drops it. Polling costs one ``stat`` of the ACTIVE pointer per interval; the new model
is loaded (and checked) in a thread, off the event loop, before it is swapped in. A model that fails
its checks is logged and skipped, and the worker keeps serving the model it has.
"""

from __future__ import annotations

import asyncio

import structlog

from sentinel.model_export.registry import LoadedModel, ModelLoadError, ModelRegistry

log = structlog.get_logger(__name__)


class ActiveModel:
    """The model a worker scores with, following the registry's ACTIVE pointer.

    The constructor loads the active model and raises ModelLoadError if it cannot be served (a
    worker must not start on a model of another feature schema). In a worker, after the fork::

        model = ActiveModel(ModelRegistry.from_settings(settings))
        watcher = asyncio.create_task(model.watch(settings.model_poll_interval_ms / 1000))
        ...
        loaded = model.current                # once per micro-batch
        risk = loaded.scorer.score(features)  # float32 [n, FEATURE_COUNT] -> risk in 0..1
        # loaded.version goes into Decision.model_version; loaded.metadata.thresholds.review/decline
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._signature = registry.pointer_signature()
        self.current: LoadedModel = registry.load_active()

    def pointer_changed(self) -> bool:
        """Whether ACTIVE changed since the last reload (one stat call)."""
        return self._registry.pointer_signature() != self._signature

    def reload(self) -> bool:
        """Swap to the model ACTIVE names if it is another one and it loads; True when swapped.

        Blocking (it may build an onnxruntime session): call it from a thread in an event loop.
        """
        self._signature = self._registry.pointer_signature()
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

    async def watch(self, interval_s: float) -> None:
        """Poll the pointer every ``interval_s`` seconds and reload on change; runs until cancelled.

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
