"""The dispatcher processes ``sentinel serve`` runs when ``events_enabled``: started, restarted, stopped.

Spawned like the workers (no gRPC or event-loop state inherited), each a child of the supervisor: they
write their metrics to the supervisor's multiprocess directory (the environment is inherited), get
SIGTERM from the kernel if the supervisor dies, and are restarted with a growing back-off when they die.
A dispatcher killed mid-delivery loses nothing: its claimed deliveries are released by Postgres when its
connection drops, and another dispatcher (or its restart) delivers them again under the same event id.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from multiprocessing.process import BaseProcess

import structlog

from sentinel.config import Settings
from sentinel.logs import configure_logging
from sentinel.system import RestartBackoff, die_with_parent

log = structlog.get_logger("sentinel.supervisor")


def _dispatcher_main(settings: Settings, index: int) -> None:
    """Entry point of a dispatcher process."""
    import uvloop

    from sentinel.events.dispatcher import run_dispatcher

    configure_logging(settings.log_level, settings.log_format)
    structlog.contextvars.bind_contextvars(dispatcher=index, pid=os.getpid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides
    supervisor = multiprocessing.parent_process()
    assert supervisor is not None and supervisor.pid is not None
    die_with_parent(signal.SIGTERM, supervisor.pid)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await run_dispatcher(settings, stop)

    uvloop.run(main())


async def prepare_events(settings: Settings) -> None:
    """Before the workers start: register (or retire) the broker destination, so that the decisions of the
    very first calls already have their broker deliveries."""
    from sentinel.events.store import SubscriptionStore

    assert settings.database_url is not None
    store = await SubscriptionStore.connect(settings.database_url)
    try:
        await store.sync_amqp(settings.events_amqp_url, actor="serve")
    finally:
        await store.close()


class DispatcherProcesses:
    """``events_dispatchers`` processes (none unless ``events_enabled``)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._count = settings.events_dispatchers if settings.events_enabled else 0
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._backoff = RestartBackoff()

    def start(self) -> None:
        if self._count:
            asyncio.run(prepare_events(self._settings))
        for index in range(self._count):
            self._start(index)

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_dispatcher_main,
            args=(self._settings, index),
            name=f"sentinel-events-{index}",
            daemon=False,
        )
        process.start()
        self._processes[index] = process
        self._started_at[index] = time.monotonic()

    def restart_exited(self) -> None:
        """Restart the dispatchers that ended (polled by the supervisor's loop), with a growing back-off
        for one that keeps dying; forget their live gauges."""
        from sentinel.server.metrics_export import forget_worker

        for index, process in list(self._processes.items()):
            if process.is_alive():
                continue
            process.join()
            if process.pid is not None:
                forget_worker(process.pid)
            backoff = self._backoff.delay_s(index, time.monotonic() - self._started_at[index])
            log.error(
                "events_dispatcher_died", dispatcher=index, exitcode=process.exitcode, restart_in_s=backoff
            )
            time.sleep(backoff)
            self._start(index)

    def terminate(self) -> None:
        """SIGTERM to every dispatcher: each finishes its rounds under way and exits."""
        for process in self._processes.values():
            if process.is_alive():
                process.terminate()

    def join(self, deadline: float) -> None:
        """Wait for them until ``deadline`` (monotonic), then kill the stragglers."""
        for process in self._processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("events_dispatcher_killed_after_grace", pid=process.pid)
                process.kill()
                process.join()
