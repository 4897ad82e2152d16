"""Ports a server binds: a taken gRPC or metrics port is refused in one line, and reflection v1.

The workers share the gRPC port through SO_REUSEPORT, so a second server on a taken port used to start
silently and split the traffic with the first (issue 23): each recorded the same transaction as new.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2
from server_helpers import open_channels, stubs, transaction

from sentinel.config import ConfigError
from sentinel.server.app import SCORING_SERVICE
from sentinel.server.workers import refuse_taken_port
from sentinel.serverprocess import ServerProcess, wait_until_serving
from sentinel.system import free_port
from sentinel.v1 import scoring_pb2

REFUSAL_TIMEOUT_S = 60.0  # a refusal comes in a second; a server that starts anyway runs until killed
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


@contextmanager
def listener(reuse_port: bool = False) -> Iterator[int]:
    """A socket listening on a free loopback port (with SO_REUSEPORT: as grpc's listeners are)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuse_port))
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def run_cli(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``sentinel ARGS`` to its end; a server that does not exit is killed with its workers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sentinel.cli", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=REFUSAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"sentinel {' '.join(args)} still running after {REFUSAL_TIMEOUT_S:.0f}s")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def environment(workdir: Path, redis_url: str, database_url: str, metrics_port: int) -> dict[str, str]:
    """What ``ServerProcess`` gives a server, for a server run to its end here."""
    return {
        **ServerProcess(workdir).environment,
        "SENTINEL_REDIS_URL": redis_url,
        "SENTINEL_DATABASE_URL": database_url,
        "SENTINEL_METRICS_PORT": str(metrics_port),
    }


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


# Without a server -----------------------------------------------------------------------------------


@pytest.mark.parametrize("reuse_port", [False, True])
def test_probe_refuses_any_listener(reuse_port: bool) -> None:
    with listener(reuse_port) as port, pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1"):
        refuse_taken_port("127.0.0.1", port)


def test_probe_refuses_a_listener_on_the_wildcard_address() -> None:
    with listener() as port, pytest.raises(ConfigError, match="--port"):
        refuse_taken_port("0.0.0.0", port)


def test_probe_accepts_a_free_port_and_time_wait_connections() -> None:
    """A restarted server finds its port's old connections in TIME_WAIT: the port is still free."""
    with socket.socket() as server_socket:
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server_socket.bind(("127.0.0.1", 0))
        server_socket.listen()
        port = int(server_socket.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _peer = server_socket.accept()
            accepted.close()  # the server side closes first: its port's end stays in TIME_WAIT
    refuse_taken_port("127.0.0.1", port)
    refuse_taken_port("127.0.0.1", 0)


def test_probe_names_an_unknown_host() -> None:
    with pytest.raises(ConfigError, match="`host`"):
        refuse_taken_port("no-such-host.invalid", 50051)


# Real servers -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("command", [["serve"], ["dev", "serve"]])
def test_second_server_on_a_taken_port_is_refused(
    command: list[str], server: ServerProcess, tmp_path: Path, redis_url: str, database_url: str
) -> None:
    """The second server exits in one stderr line naming the port; the first keeps serving alone."""
    env = environment(tmp_path / "second", redis_url, database_url, free_port())
    result = run_cli([*command, "--port", str(server.port)], env)
    assert_one_line_refusal(result, f"port {server.port} on 127.0.0.1", "already in use", "--port")
    assert '"serving"' not in result.stdout
    (stub,) = stubs(server.address, 1)
    reply = stub.Score(scoring_pb2.ScoreRequest(transaction=transaction("after-refusal")), timeout=20)
    assert reply.decision.transaction_id == "after-refusal"


@pytest.mark.slow
def test_taken_metrics_port_is_one_line(tmp_path: Path, redis_url: str, database_url: str) -> None:
    with listener() as taken:
        env = environment(tmp_path, redis_url, database_url, taken)
        result = run_cli(["serve", "--port", str(free_port())], env)
    assert_one_line_refusal(result, "`metrics_port`", f"metrics port {taken} on 127.0.0.1", "already in use")


@pytest.mark.slow
def test_port_zero_still_picks_a_free_port(tmp_path: Path, redis_url: str, database_url: str) -> None:
    env = environment(tmp_path, redis_url, database_url, free_port())
    log_file = tmp_path / "server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sentinel.cli", "serve", "--port", "0"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        address = _served_address(log_file, process)
        wait_until_serving(address, 60, process, log_file)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0


def _served_address(log_file: Path, process: subprocess.Popen[bytes]) -> str:
    """The address of the supervisor's ``serving`` event, once logged."""
    deadline = time.monotonic() + REFUSAL_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        for line in log_file.read_text(errors="replace").splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "serving":
                return str(json.loads(line)["address"])
        time.sleep(0.1)
    pytest.fail(f"no serving event; log:\n{log_file.read_text(errors='replace')}")


@pytest.mark.slow
def test_reflection_v1_lists_and_describes_the_services(server: ServerProcess) -> None:
    channel = grpc.insecure_channel(server.address)
    open_channels.append(channel)
    info = channel.stream_stream(  # v1 and v1alpha messages are the same on the wire
        REFLECTION_V1,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SCORING_SERVICE),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
    ]
    listed, scoring, reflection = list(info(iter(requests), timeout=20))
    names = {service.name for service in listed.list_services_response.service}
    assert {SCORING_SERVICE, "grpc.reflection.v1.ServerReflection"} <= names
    assert "grpc.reflection.v1alpha.ServerReflection" in names  # still served for older clients
    assert scoring.file_descriptor_response.file_descriptor_proto
    assert reflection.file_descriptor_response.file_descriptor_proto, reflection.error_response
