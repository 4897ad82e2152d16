"""Run SentinelStream as a child process and wait until it serves: for benchmarks and tests.

``ServerProcess`` starts ``sentinel serve`` (or ``sentinel dev serve``, which brings private Redis and
PostgreSQL) on a free loopback port with a free metrics port, its settings given as ``SENTINEL_*``
environment, and in a session of its own so that a stuck server can be killed with everything it
started. Readiness is the standard gRPC health check; shutdown is SIGTERM (graceful).

A test server on loopback runs with ``insecure`` (``sentinel serve`` refuses to start without TLS and
authentication otherwise) unless the caller sets ``insecure`` itself; a server with TLS settings needs
the ``credentials`` its health check connects with (the CA, and under mTLS a client certificate).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sentinel.system import free_port

START_TIMEOUT_S = 120.0  # initdb of a private PostgreSQL takes a few seconds on a slow disk
STOP_TIMEOUT_S = 60.0
HEALTH_POLL_S = 0.1


class ServerStartError(RuntimeError):
    """The server did not become SERVING; the message quotes the end of its log."""


def wait_until_serving(
    address: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Poll grpc.health.v1 until SERVING; ServerStartError after ``timeout_s`` or if ``process`` exits.

    ``credentials``: of a TLS server; plaintext when None."""
    deadline = time.monotonic() + timeout_s
    channel = (
        grpc.insecure_channel(address) if credentials is None else grpc.secure_channel(address, credentials)
    )
    with channel:
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


def wait_until_rest_serving(
    url: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
    path: str = "/healthz",
) -> None:
    """Poll the REST gateway until GET ``path`` answers 200: by default /healthz, the gRPC server's health
    through the gateway (/openapi.json: the gateway alone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerStartError(f"SentinelStream exited with {process.returncode}{_tail(log_file)}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=1.0) as answer:
                if answer.status == 200:
                    return
        except OSError:  # refused, reset, or an HTTP error status (HTTPError is an OSError)
            pass
        time.sleep(HEALTH_POLL_S)
    raise ServerStartError(f"the REST gateway at {url} not serving after {timeout_s:.0f}s{_tail(log_file)}")


def _tail(log_file: Path | None, lines: int = 20) -> str:
    if log_file is None or not log_file.exists():
        return ""
    return "; last log lines:\n" + "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])


class ServerProcess:
    """``sentinel serve`` (``dev=True``: ``sentinel dev serve``) on free ports; a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        workers: int = 2,
        dev: bool = False,
        arguments: tuple[str, ...] = (),
        credentials: grpc.ChannelCredentials | None = None,
        **settings: object,
    ) -> None:
        """``arguments``: more command-line arguments (``("--tls",)``); ``credentials``: those of the health
        check, for a TLS server; ``settings``: ``SENTINEL_*`` values by setting name."""
        settings.setdefault("insecure", True)  # a loopback test server (dev serve needs no such permission)
        settings.setdefault("rest_port", 0)  # no REST gateway unless asked (dev serve's default is 8080)
        self.rest_port = int(str(settings["rest_port"]))
        self.workdir = workdir
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_file = workdir / "server.log"
        self.environment = {
            **os.environ,
            "SENTINEL_DATA_DIR": str(workdir / "data"),
            "SENTINEL_LOG_FORMAT": "json",
            "SENTINEL_METRICS_HOST": "127.0.0.1",
            "SENTINEL_METRICS_PORT": str(self.metrics_port),
            "SENTINEL_WORKERS": str(workers),
            **{f"SENTINEL_{name.upper()}": str(value) for name, value in settings.items()},
        }
        if dev:  # private Redis/Postgres for whatever is not configured here
            for name in ("redis_url", "database_url"):
                if name not in settings:
                    self.environment.pop(f"SENTINEL_{name.upper()}", None)
        self.command = ["dev", "serve", *arguments] if dev else ["serve", *arguments]
        self.credentials = credentials
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port of the gRPC server."""
        return f"127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        """Base URL of the REST gateway (plaintext; given a ``rest_port``)."""
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def metrics_url(self) -> str:
        """The server's Prometheus endpoint."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ServerProcess:
        """Start the server and return once it is SERVING (ServerStartError otherwise)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)  # a private PostgreSQL runs as the postgres user
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sentinel.cli", *self.command, "--port", str(self.port)],
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_serving(self.address, timeout_s, self.process, self.log_file, self.credentials)
            if self.rest_port:
                wait_until_rest_serving(self.rest_url, timeout_s, self.process, self.log_file)
        except BaseException:
            self.stop()
            raise
        return self

    def log_events(self) -> Iterator[dict[str, object]]:
        """The server's JSON log events so far."""
        if not self.log_file.exists():
            return
        for line in self.log_file.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                yield json.loads(line)

    @property
    def pids(self) -> set[int]:
        """The server's root process (its workers, Redis and PostgreSQL descend from it), once started."""
        return {self.process.pid} if self.process is not None else set()

    def worker_pids(self) -> set[int]:
        """Pids of the live workers (from their worker_serving events)."""
        pids = {int(str(e["pid"])) for e in self.log_events() if e.get("event") == "worker_serving"}
        return {pid for pid in pids if _alive(pid)}

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait for the graceful shutdown; kill the whole session past ``timeout_s``.

        Returns the exit code (-9 when it had to be killed)."""
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
