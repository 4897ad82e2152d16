"""The REST/JSON gateway beside the gRPC server: finding or building it, and running it.

The gateway (gateway/, a Go program around grpc-gateway's generated handlers; decision 0018) is a
separate process that translates REST calls into calls to the gRPC port. The supervisor of ``sentinel
serve`` starts it once the workers serve and restarts it when it dies, like a worker; ``sentinel dev
serve`` builds it first when it is missing or out of date (deploy/build-gateway.sh, with Go).

It follows the gRPC port's transport: with ``tls_cert_file`` it serves HTTPS with the same files and
connects to the gRPC port with TLS, accepting exactly that certificate; plaintext otherwise (which
``sentinel serve`` only allows with ``insecure``). Client certificates cannot pass through it (the
gRPC port would see the gateway's, for every REST caller), so ``require_client_cert`` and REST are
refused together; tokens (``auth_mode = "jwt"``) are forwarded as they come.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from sentinel.config import ConfigError, Settings
from sentinel.system import RestartBackoff, with_parent_death_signal

log = structlog.get_logger("sentinel.rest")

GATEWAY = "sentinel-gateway"
# The repository (this file is server/rest_gateway.py; editable installs link it, hence resolve()).
REPOSITORY = Path(__file__).resolve().parent.parent
TOOLS_DIR = REPOSITORY / ".tools"
BUILD_SCRIPT = REPOSITORY / "deploy" / "build-gateway.sh"
DEV_REST_PORT = 8080
BUILD_TIMEOUT_S = 600.0  # a first build downloads grpc-gateway and its dependencies
STOP_TIMEOUT_S = 15.0  # the gateway gives calls in flight 10 s
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def gateway_executable() -> str | None:
    """The repository's ``.tools/sentinel-gateway`` (deploy/build-gateway.sh), else one on PATH."""
    return shutil.which(GATEWAY, path=str(TOOLS_DIR)) or shutil.which(GATEWAY)


def build_gateway() -> str | None:
    """Build (or bring up to date) the gateway with deploy/build-gateway.sh; None when Go is missing.

    Quick when nothing changed. ConfigError with the end of the build's output when it fails."""
    if shutil.which("go") is None or not BUILD_SCRIPT.exists():
        return None
    completed = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise ConfigError(
            f"building the REST gateway failed: {(completed.stderr or completed.stdout)[-800:]}"
        )
    return gateway_executable()


def check_rest_settings(settings: Settings) -> None:
    """ConfigError for REST settings that cannot work (before anything starts)."""
    if not settings.rest_port:
        return
    if settings.rest_port == settings.port:
        raise ConfigError(
            f"rest_port and port are both {settings.port}: give the REST gateway a port of its own"
        )
    if settings.require_client_cert:
        raise ConfigError(
            "rest_port is set with require_client_cert: client certificates cannot pass through the REST "
            "gateway (the gRPC port would see the gateway's for every REST caller); authenticate REST "
            'callers with tokens (auth_mode = "jwt") or set rest_port = 0'
        )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def gateway_command(executable: str, settings: Settings, grpc_port: int) -> list[str]:
    """The gateway's command line for a server on ``grpc_port`` configured by ``settings``."""
    assert settings.rest_port  # set and not 0
    upstream_host = "127.0.0.1" if settings.host in WILDCARD_HOSTS else _bracketed(settings.host)
    command = [
        executable,
        "-listen",
        f"{_bracketed(settings.host)}:{settings.rest_port}",
        "-upstream",
        f"{upstream_host}:{grpc_port}",
        # Several connections per worker: the kernel spreads connections over the SO_REUSEPORT workers
        # by a hash, so one per worker would leave some idle.
        "-upstream-connections",
        str(2 * settings.workers),
        "-max-message-bytes",
        str(settings.max_message_bytes),
        # JSON is larger than the protobuf it becomes: about 3x for transactions.
        "-max-body-bytes",
        str(4 * settings.max_message_bytes),
    ]
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        command += ["-upstream-tls-cert", str(settings.tls_cert_file)]
        command += ["-tls-cert", str(settings.tls_cert_file), "-tls-key", str(settings.tls_key_file)]
    return command


class RestGateway:
    """The gateway process of one server: started, restarted when it dies, stopped with the server."""

    def __init__(self, settings: Settings, grpc_port: int) -> None:
        check_rest_settings(settings)
        executable = gateway_executable()
        if executable is None:
            raise ConfigError(
                f"rest_port is {settings.rest_port} but the REST gateway is not built: run `make gateway` "
                "(deploy/build-gateway.sh, needs Go) or set rest_port = 0"
            )
        self.command = gateway_command(executable, settings, grpc_port)
        scheme = "http" if settings.tls_cert_file is None else "https"
        self.url = f"{scheme}://{_bracketed(settings.host)}:{settings.rest_port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._backoff = RestartBackoff()

    def start(self) -> None:
        """Start the gateway; it exits by itself (SIGTERM) if the supervisor dies."""
        self._process = subprocess.Popen(self.command, preexec_fn=with_parent_death_signal(signal.SIGTERM))
        log.info(
            "rest_gateway_started", url=self.url, openapi=f"{self.url}/openapi.json", pid=self._process.pid
        )

    def restart_if_exited(self) -> None:
        """Called from the supervisor's loop: start the gateway again if it exited, with back-off."""
        if self._process is None or self._process.poll() is None:
            return
        backoff = self._backoff.delay_s(self)
        log.error("rest_gateway_died", exitcode=self._process.returncode, restart_in_s=backoff)
        time.sleep(backoff)
        self.start()

    def stop(self) -> None:
        """SIGTERM (the gateway finishes calls in flight), then SIGKILL after STOP_TIMEOUT_S."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("rest_gateway_killed", pid=self._process.pid)
            self._process.kill()
            self._process.wait()
