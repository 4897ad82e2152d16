"""The supervisor of ``sentinel serve``: N worker processes on one port, restarted when they crash.

Workers are *spawned* (not forked) so that no gRPC state of the parent leaks into them (grpc issue
16001); each builds its own server, event loop (uvloop) and connections. On SIGTERM the supervisor
forwards the signal, gives in-flight calls ``shutdown_grace_s`` to finish, then kills stragglers. A
worker whose supervisor dies (SIGKILL, a crash) gets SIGTERM from the kernel and shuts down alike.
"""

from __future__ import annotations

import asyncio
import errno
import multiprocessing
import multiprocessing.connection
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from sentinel.config import ConfigError, Settings
from sentinel.events.processes import DispatcherProcesses
from sentinel.logs import configure_logging
from sentinel.server.metrics_export import forget_worker, prepare_multiprocess_dir, serve_metrics
from sentinel.server.resources import prepare_database
from sentinel.server.rest_gateway import RestGateway
from sentinel.server.worker_restarts import WORKER_RESTARTS
from sentinel.system import RestartBackoff, die_with_parent, free_port

log = structlog.get_logger("sentinel.supervisor")


def refuse_taken_port(host: str, port: int, setting: str = "setting `port`, flag --port") -> None:
    """ConfigError if anything listens on (host, port).

    The workers bind with SO_REUSEPORT, so without this check a second server would silently share
    the port with the first and split its traffic (two idempotency stores: duplicates decided twice).
    A probe bound *without* SO_REUSEPORT is refused by any listener, SO_REUSEPORT or not; with
    SO_REUSEADDR, so that connections of a stopped server still in TIME_WAIT do not count as taken.
    Run before any worker exists: the only listeners it can meet are someone else's.
    """
    for family, kind, proto, _name, address in _bind_addresses(host, port):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    continue  # e.g. no IPv6 here: the workers' own bind decides
                raise ConfigError(
                    f"port {port} on {host} is already in use by another process ({setting}): stop the "
                    "other server or choose a free port"
                ) from None


def _bind_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """The addresses grpc binds for ``host`` (bracketed IPv6 literals accepted, as grpc does)."""
    try:
        return socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"host {host!r} cannot be resolved (setting `host`, flag --host): {exc}") from None


def _worker_main(settings: Settings, port: int, worker_id: int, reuse_port: bool, ready: Any) -> None:
    """Entry point of a worker process."""
    import uvloop

    from sentinel.server.app import run_worker

    configure_logging(settings.log_level, settings.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; Ctrl-C reaches it
    supervisor = multiprocessing.parent_process()
    assert supervisor is not None and supervisor.pid is not None  # a spawned child knows its parent
    die_with_parent(signal.SIGTERM, supervisor.pid)
    uvloop.run(run_worker(settings, port, worker_id, reuse_port, ready.set))


class Supervisor:
    """Starts, watches and stops the worker processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.port or free_port()
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._ready: dict[int, Any] = {}  # multiprocessing.Event set once the worker serves
        self._started_at: dict[int, float] = {}
        self._backoff = RestartBackoff()
        self._stopping = False
        self._gateway: RestGateway | None = None  # the REST gateway, with rest_port (rest_gateway.py)
        self._dispatchers = DispatcherProcesses(settings)  # decision events, with events_enabled

    def _start(self, worker_id: int) -> None:
        ready = self._ready.setdefault(worker_id, self._context.Event())
        self._started_at[worker_id] = time.monotonic()
        process = self._context.Process(
            target=_worker_main,
            args=(self.settings, self.port, worker_id, self.settings.workers > 1, ready),
            name=f"sentinel-worker-{worker_id}",
            daemon=False,
        )
        process.start()
        self._workers[worker_id] = process

    def request_stop(self, *_: object) -> None:
        """Signal handler: stop taking calls and shut the workers down gracefully."""
        self._stopping = True

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code.

        ConfigError (one line, exit 2 from the CLI) when the gRPC or the metrics port is taken."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        # Ports first: a taken one is refused before the metric files of the port's owner are wiped.
        refuse_taken_port(self.settings.host, self.port)
        if self.settings.rest_port:
            refuse_taken_port(self.settings.host, self.settings.rest_port, "setting `rest_port`")
            self._gateway = RestGateway(self.settings, self.port)  # ConfigError when it cannot run
        prepare_multiprocess_dir(self.settings.data_dir.resolve() / f"metrics-{self.port}")
        metrics_port = serve_metrics(self.settings)
        asyncio.run(prepare_database(self.settings))
        self._dispatchers.start()
        for worker_id in range(self.settings.workers):
            self._start(worker_id)
        log.info(
            "serving",
            address=f"{self.settings.host}:{self.port}",
            workers=self.settings.workers,
            metrics=f"http://{self.settings.metrics_host}:{metrics_port}/metrics",
            dashboard=f"http://{self.settings.metrics_host}:{metrics_port}/dashboard/"
            if self.settings.dashboard_enabled
            else None,
        )
        if self._gateway is not None:
            self._gateway.start()
        while not self._stopping:
            sentinels = {p.sentinel: wid for wid, p in self._workers.items()}
            for ended in multiprocessing.connection.wait(list(sentinels), timeout=0.2):
                worker_id = sentinels[ended]  # type: ignore[index]
                if not self._ready[worker_id].is_set():
                    log.error(
                        "worker_failed_to_start", worker=worker_id, exitcode=self._workers[worker_id].exitcode
                    )
                    self._stopping = True
                    self._shutdown()
                    return 1
                self._on_exit(worker_id)
            if self._gateway is not None and not self._stopping:
                self._gateway.restart_if_exited()
            if not self._stopping:
                self._dispatchers.restart_exited()
        return self._shutdown()

    def _on_exit(self, worker_id: int) -> None:
        process = self._workers[worker_id]
        process.join()
        if process.pid is not None:
            forget_worker(process.pid)
        if self._stopping:
            return
        backoff = self._backoff.delay_s(worker_id, time.monotonic() - self._started_at[worker_id])
        log.error("worker_died", worker=worker_id, exitcode=process.exitcode, restart_in_s=backoff)
        WORKER_RESTARTS.inc()
        time.sleep(backoff)
        self._start(worker_id)

    def _shutdown(self) -> int:
        log.info("stopping", grace_s=self.settings.shutdown_grace_s)
        if self._gateway is not None:
            self._gateway.stop()  # REST calls in flight finish while the workers still serve
        for process in self._workers.values():
            if process.is_alive() and process.pid is not None:
                process.terminate()  # SIGTERM: graceful in the worker
        self._dispatchers.terminate()
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 5.0
        for process in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker_killed_after_grace", pid=process.pid)
                process.kill()
                process.join()
        self._dispatchers.join(deadline)
        log.info("stopped")
        return 0


def serve(settings: Settings) -> int:
    """Run the supervisor in the foreground."""
    return Supervisor(settings).run()
