"""Transport security against live servers: TLS, client certificates (mTLS), certificate rotation without a
restart, the refusal to serve in the clear by accident, the development CA, and the Python client's
transport options (its bearer tokens on the wire)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from transport_helpers import authorization_recorder, health_check, tls_credentials

from sentinel.certificates import DevPki, ensure_dev_pki
from sentinel.clients import SentinelClient, make_transaction, outcome_name
from sentinel.config import ConfigError, load_settings
from sentinel.server.transport import require_loopback
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port

OK, UNAVAILABLE = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A second, unrelated CA with its own server and client certificates."""
    return ensure_dev_pki(tmp_path_factory.mktemp("other-pki"))


def score_once(client: SentinelClient) -> str:
    transaction = make_transaction(
        transaction_id=f"t-{uuid.uuid4()}",
        account_id="C-transport",
        amount="12.50",
        currency="EUR",
        event_time=datetime.now(UTC),
    )
    return outcome_name(client.score(transaction))


def events(server: ServerProcess, name: str) -> list[dict[str, object]]:
    return [event for event in server.log_events() if event["event"] == name]


def run_cli(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``sentinel ARGS`` run to its end (a refusal ends it within seconds)."""
    command = [sys.executable, "-m", "sentinel.cli", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)


# The refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "missing"),
    [
        (False, "without TLS (tls_cert_file, tls_key_file) and without authentication"),
        (True, "authentication"),
    ],
)
def test_serve_refuses_to_start_without_tls_and_authentication(
    tmp_path: Path, pki: DevPki, tls: bool, missing: str
) -> None:
    settings: dict[str, Any] = (
        {"tls_cert_file": pki.server_cert, "tls_key_file": pki.server_key} if tls else {}
    )
    environment = ServerProcess(tmp_path, insecure=False, **settings).environment
    result = run_cli(["serve", "--port", str(free_port())], environment)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("sentinel: refusing to serve without") and missing in line
    assert "--insecure" in line
    assert result.stdout == ""  # not a single log line: nothing started


def test_insecure_flag_lets_serve_go_on_to_its_next_check(tmp_path: Path) -> None:
    """--insecure passes the transport check: the start stops only at the next one, a port in use."""
    environment = ServerProcess(tmp_path, insecure=False).environment
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = run_cli(["serve", "--insecure", "--port", str(taken)], environment)
    assert result.returncode == 2
    assert f"port {taken} on 127.0.0.1 is already in use" in result.stderr


def test_dev_serve_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    environment = ServerProcess(tmp_path, dev=True).environment
    result = run_cli(["dev", "serve", "--host", "0.0.0.0", "--port", str(free_port())], environment)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "loopback only, not on 0.0.0.0 (setting `host`, flag --host)" in line
    assert not (tmp_path / "data" / "services").exists()  # no private database started for nothing


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_dev_serve_takes_any_loopback_host(host: str) -> None:
    require_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "sentinel.example.com"])
def test_dev_serve_refuses_every_other_host(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback only"):
        require_loopback(host)


def test_inconsistent_tls_settings_are_named(tmp_path: Path, pki: DevPki) -> None:
    environment = ServerProcess(tmp_path, tls_cert_file=pki.server_cert, require_client_cert=True).environment
    result = run_cli(["serve", "--port", str(free_port())], environment)
    assert result.returncode == 2
    assert "tls_key_file [defaults]: tls_cert_file is set" in result.stderr
    assert (
        "require_client_cert [environment SENTINEL_REQUIRE_CLIENT_CERT]: set tls_client_ca_file"
        in result.stderr
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tls_key_file": "k.pem"}, "tls_key_file [command line]: set tls_cert_file to the certificate"),
        ({"tls_client_ca_file": "ca.pem"}, "tls_client_ca_file [command line]: client certificates need TLS"),
        (
            {"tls_cert_file": "c.pem", "tls_key_file": "k.pem", "tls_client_ca_file": "ca.pem"},
            "require_client_cert [defaults]: tls_client_ca_file is set: set require_client_cert = true",
        ),
    ],
)
def test_tls_settings_that_do_not_go_together(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(**settings)


def test_a_key_of_another_certificate_is_refused_at_start(
    tmp_path: Path, pki: DevPki, other_pki: DevPki
) -> None:
    environment = ServerProcess(
        tmp_path, tls_cert_file=pki.server_cert, tls_key_file=other_pki.server_key
    ).environment
    result = run_cli(["serve", "--port", str(free_port())], environment)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "the private key does not belong to the (first) certificate" in line


# Live servers --------------------------------------------------------------------------------------------


def test_tls_port_serves_tls_clients_and_refuses_plaintext(
    tmp_path: Path, redis_url: str, database_url: str, pki: DevPki, other_pki: DevPki
) -> None:
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=redis_url,
        database_url=database_url,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        credentials=tls_credentials(pki),
    ) as server:
        with SentinelClient(server.address, root_certificates=pki.ca_cert, timeout_s=20) as client:
            assert score_once(client) in {"APPROVE", "REVIEW", "DECLINE"}
        assert health_check(server.address, None) == UNAVAILABLE  # plaintext to the TLS port
        assert health_check(server.address, tls_credentials(other_pki)) == UNAVAILABLE  # a CA it did not use
        (announced,) = events(server, "transport_security")
    assert announced["transport"] == "TLS, no authentication"
    assert announced["level"] == "warning"  # served only because ServerProcess says insecure


def test_client_certificate_required_under_mtls(
    tmp_path: Path, redis_url: str, database_url: str, pki: DevPki, other_pki: DevPki
) -> None:
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=redis_url,
        database_url=database_url,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca_cert,
        require_client_cert=True,
        insecure=False,  # mTLS counts as authentication: no permission needed
        credentials=tls_credentials(pki, client_certificate=True),
    ) as server:
        assert health_check(server.address, tls_credentials(pki)) == UNAVAILABLE  # no client certificate
        stranger = grpc.ssl_channel_credentials(
            pki.ca_cert.read_bytes(), other_pki.client_key.read_bytes(), other_pki.client_cert.read_bytes()
        )
        assert health_check(server.address, stranger) == UNAVAILABLE  # issued by another CA
        with SentinelClient(
            server.address,
            root_certificates=pki.ca_cert,
            client_certificate=pki.client_cert,
            client_key=pki.client_key.read_bytes(),
            timeout_s=20,
        ) as client:
            assert score_once(client) in {"APPROVE", "REVIEW", "DECLINE"}
        (announced,) = events(server, "transport_security")
    assert announced["transport"] == "TLS, client certificate required, no tokens (auth_mode none)"
    assert announced["level"] == "info"


def test_replaced_certificate_is_served_to_new_connections(
    tmp_path: Path, redis_url: str, database_url: str, pki: DevPki, other_pki: DevPki
) -> None:
    """A rotation replaces the files while the server runs: new connections get the new certificate, and
    the moment between the two files (new certificate, old key) keeps the old pair instead of failing."""
    served = tmp_path / "tls"
    served.mkdir()
    shutil.copy(pki.server_cert, served / "server.pem")
    shutil.copy(pki.server_key, served / "server-key.pem")
    old, new = tls_credentials(pki), tls_credentials(other_pki)
    with ServerProcess(
        tmp_path / "server",
        workers=1,
        redis_url=redis_url,
        database_url=database_url,
        tls_cert_file=served / "server.pem",
        tls_key_file=served / "server-key.pem",
        credentials=old,
    ) as server:
        assert (health_check(server.address, old), health_check(server.address, new)) == (OK, UNAVAILABLE)

        replace(other_pki.server_cert, served / "server.pem")  # half-way: the key is still the old one
        assert (health_check(server.address, old), health_check(server.address, new)) == (OK, UNAVAILABLE)

        replace(other_pki.server_key, served / "server-key.pem")
        assert (health_check(server.address, old), health_check(server.address, new)) == (UNAVAILABLE, OK)
        with SentinelClient(server.address, root_certificates=other_pki.ca_cert, timeout_s=20) as client:
            assert score_once(client) in {"APPROVE", "REVIEW", "DECLINE"}
        (refused,) = events(server, "tls_reload_refused")
        (reloaded,) = events(server, "tls_reloaded")
    assert "does not belong" in str(refused["reason"])
    assert reloaded["certificate"] == str(served / "server.pem")


def replace(source: Path, target: Path) -> None:
    """Put a copy of ``source`` in place of ``target`` at once, as rotation tools do (write, rename)."""
    temporary = target.with_suffix(".new")
    shutil.copy(source, temporary)
    os.replace(temporary, target)


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_dev_serve_says_how_it_is_reached_in_its_first_log_line(
    tmp_path: Path, redis_url: str, database_url: str, tls: bool
) -> None:
    workdir = tmp_path / "server"
    # What --tls makes under <data_dir>/tls/, made beforehand here so that the health check can trust it;
    # the server must use this set rather than make another.
    pki = ensure_dev_pki(workdir / "data" / "tls") if tls else None
    with ServerProcess(
        workdir,
        workers=1,
        dev=True,
        arguments=("--tls",) if tls else (),
        redis_url=redis_url,
        database_url=database_url,
        credentials=tls_credentials(pki, client_certificate=True) if pki else None,
    ) as server:
        if pki is not None:
            assert health_check(server.address, tls_credentials(pki)) == UNAVAILABLE  # no client certificate
            with SentinelClient(
                server.address,
                root_certificates=pki.ca_cert,
                client_certificate=pki.client_cert,
                client_key=pki.client_key,
                timeout_s=20,
            ) as client:
                assert score_once(client) in {"APPROVE", "REVIEW", "DECLINE"}
        else:
            assert health_check(server.address, None) == OK
        first = next(server.log_events())
    assert first["event"] == "transport_security"
    if pki is None:
        assert first["transport"] == "plaintext (no TLS), no authentication"
        assert first["level"] == "warning"
    else:
        assert first["transport"] == "TLS, client certificate required, no tokens (auth_mode none)"
        assert (first["ca_cert"], first["client_cert"], first["client_key"]) == (
            str(pki.ca_cert),
            str(pki.client_cert),
            str(pki.client_key),
        )


# The Python client's options ------------------------------------------------------------------------------


def test_client_sends_the_token_of_its_provider_with_every_call() -> None:
    issued = iter(range(1, 100))
    with authorization_recorder() as (address, seen):
        with SentinelClient(address, token_provider=lambda: f"token-{next(issued)}", timeout_s=10) as client:
            score_once(client)
            score_once(client)
        with SentinelClient(address, token="fixed", timeout_s=10) as client:
            score_once(client)
        with SentinelClient(address, timeout_s=10) as client:
            score_once(client)
    assert seen == ["Bearer token-1", "Bearer token-2", "Bearer fixed", ""]


def test_client_refuses_to_send_a_token_in_plaintext_to_another_machine() -> None:
    with pytest.raises(ValueError, match=r"plaintext to 192\.0\.2\.1:50051: use TLS"):
        SentinelClient("192.0.2.1:50051", token="secret")
    SentinelClient("localhost:50051", token="secret").close()  # this machine: fine
    SentinelClient("192.0.2.1:50051", token="secret", tls=True).close()


def test_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="client_certificate and client_key go together"):
        SentinelClient("127.0.0.1:1", client_certificate=b"-----BEGIN CERTIFICATE-----")
