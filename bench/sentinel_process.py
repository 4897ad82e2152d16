"""Run SentinelStream for a benchmark: ``sentinel dev serve`` with its own data directory.

The server runs as a subprocess in a session of its own (its supervisor, workers and the private
Redis and PostgreSQL it starts), with a fresh data directory so every benchmark starts from empty
state and an empty ledger. Readiness is the standard gRPC health check; shutdown is SIGTERM to the
supervisor (graceful, it stops its private databases), with a kill of the session as last resort.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sentinel.localservices import free_port

START_TIMEOUT_S = 120.0  # initdb of the private PostgreSQL takes a few seconds on a slow disk
STOP_TIMEOUT_S = 60.0
HEALTH_POLL_S = 0.25


class ServerStartError(RuntimeError):
    """SentinelStream did not become SERVING; the message quotes its log."""


def wait_until_serving(address: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None,
                       log_file: Path | None = None) -> None:
    """Poll grpc.health.v1 until SERVING; raise ServerStartError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServerStartError(f"SentinelStream exited with {process.returncode}{_tail(log_file)}")
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(HEALTH_POLL_S)
    raise ServerStartError(f"SentinelStream at {address} not SERVING after {timeout_s:.0f}s{_tail(log_file)}")


def _tail(log_file: Path | None, lines: int = 20) -> str:
    if log_file is None or not log_file.exists():
        return ""
    return "; last log lines:\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])


class SentinelProcess:
    """``sentinel dev serve --workers N`` on a free loopback port; a context manager."""

    def __init__(self, workers: int, workdir: Path) -> None:
        self.workers = workers
        self.port = free_port()
        self.metrics_port = free_port()
        self.data_dir = workdir / "sentinel-data"
        self.log_file = workdir / "sentinel-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port of the server."""
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """The server's Prometheus endpoint (calls by method and status, replays)."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> SentinelProcess:
        """Start the server and its private Redis/PostgreSQL; return once it is SERVING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o755)  # the private PostgreSQL runs as the postgres user
        environment = {
            **os.environ,
            "SENTINEL_DATA_DIR": str(self.data_dir),
            "SENTINEL_LOG_FORMAT": "json",
            "SENTINEL_METRICS_HOST": "127.0.0.1",
            "SENTINEL_METRICS_PORT": str(self.metrics_port),
        }
        command = [
            sys.executable, "-m", "sentinel.cli", "dev", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
        ]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
            )
        try:
            wait_until_serving(self.address, START_TIMEOUT_S, self._process, self.log_file)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, wait for the graceful shutdown, then kill the server's session if needed.

        The private databases go with it (hundreds of MB after a run); the server log stays.
        """
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SentinelProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
