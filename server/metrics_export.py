"""The supervisor's side of the metrics: one HTTP endpoint summing every worker's metric files.

Kept apart from ``metrics`` so that the supervisor never creates metric objects of its own: the
multiprocess directory must be set in the environment before a worker imports the definitions.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from sentinel.config import ConfigError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(directory: Path) -> None:
    """Empty the directory workers write their metric files to (stale files would be summed)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def serve_metrics(host: str, port: int) -> int:
    """Serve the workers' aggregated metrics over HTTP; returns the bound port.

    A port that cannot be bound (typically taken: ``make run`` binds 9095 besides the gRPC port) is a
    ConfigError naming the settings, not an OSError traceback."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"metrics port {port} on {host} {_bind_failure(exc)} (setting `metrics_port`, "
            "SENTINEL_METRICS_PORT; address `metrics_host`): choose a free port, or 0 for any"
        ) from None
    return int(server.server_port)


def _bind_failure(exc: OSError) -> str:
    """Why the bind failed, in words (a gaierror for an unknown host carries no errno)."""
    if exc.errno == errno.EADDRINUSE:
        return "is already in use"
    return f"cannot be bound: {exc.strerror or exc}"


def forget_worker(pid: int) -> None:
    """Drop a dead worker's live gauges (counters and histograms keep their totals)."""
    multiprocess.mark_process_dead(pid)
