"""The supervisor's side of the metrics: one HTTP endpoint summing every worker's metric files (and the
ops dashboard beside it, ``sentinel.server.dashboard``).

Kept apart from ``metrics`` so that the supervisor never creates metric objects of its own: the
multiprocess directory must be set in the environment before a worker imports the definitions.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from sentinel.config import ConfigError, Settings
from sentinel.server.worker_restarts import WORKER_RESTARTS

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(directory: Path) -> None:
    """Empty the directory workers write their metric files to (stale files would be summed)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def serve_metrics(settings: Settings) -> int:
    """Serve the workers' aggregated metrics, and the ops dashboard beside them, over HTTP on
    ``metrics_host:metrics_port`` (``sentinel.server.dashboard.http``); returns the bound port.

    A port that cannot be bound (typically taken: ``make run`` binds 9095 besides the gRPC port) is a
    ConfigError naming the settings, not an OSError traceback."""
    from sentinel.server.dashboard.http import OpsHttp  # aiohttp: the supervisor's, not the workers'

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(WORKER_RESTARTS)  # counted by the supervisor itself
    listener = _bind(settings.metrics_host, settings.metrics_port)
    OpsHttp(settings, registry).start(listener)
    return int(listener.getsockname()[1])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or the ConfigError."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(128)
        except OSError:
            listener.close()
            raise
    except OSError as exc:
        raise ConfigError(
            f"metrics port {port} on {host} {_bind_failure(exc)} (setting `metrics_port`, "
            "SENTINEL_METRICS_PORT; address `metrics_host`): choose a free port, or 0 for any"
        ) from None
    listener.setblocking(False)
    return listener


def _bind_failure(exc: OSError) -> str:
    """Why the bind failed, in words (a gaierror for an unknown host carries no errno)."""
    if exc.errno == errno.EADDRINUSE:
        return "is already in use"
    return f"cannot be bound: {exc.strerror or exc}"


def forget_worker(pid: int) -> None:
    """Drop a dead worker's live gauges (counters and histograms keep their totals)."""
    multiprocess.mark_process_dead(pid)
