"""A SentinelStream server as a subprocess for integration tests, wired to the session's real services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sentinel.localservices import free_port

SCORING = "sentinel.v1.ScoringService"


class ServerProcess:
    """``sentinel serve`` (or ``sentinel dev serve`` with ``dev=True``) with settings given as environment."""

    def __init__(self, workdir: Path, *, workers: int = 2, dev: bool = False, **settings: object) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_file = workdir / "server.log"
        self.environment = {
            **os.environ,
            "SENTINEL_DATA_DIR": str(workdir / "data"),
            "SENTINEL_LOG_FORMAT": "json",
            "SENTINEL_METRICS_PORT": str(self.metrics_port),
            "SENTINEL_WORKERS": str(workers),
            **{f"SENTINEL_{name.upper()}": str(value) for name, value in settings.items()},
        }
        if dev:  # `sentinel dev serve` starts private Redis/Postgres for whatever is not configured
            self.environment.pop("SENTINEL_REDIS_URL", None)
            self.environment.pop("SENTINEL_DATABASE_URL", None)
        self.command = ["dev", "serve"] if dev else ["serve"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sentinel.cli", *self.command, "--port", str(self.port)],
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_until_serving(timeout_s)
        return self

    def wait_until_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.log_text()
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=SCORING), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"server not SERVING after {timeout_s} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_events(self) -> Iterator[dict[str, object]]:
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                yield json.loads(line)

    def worker_pids(self) -> set[int]:
        """Pids of the workers serving now (from their worker_serving log events)."""
        pids = {int(e["pid"]) for e in self.log_events() if e.get("event") == "worker_serving"}  # type: ignore[arg-type]
        return {pid for pid in pids if _alive(pid)}

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
