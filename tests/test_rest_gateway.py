"""The REST/JSON gateway (gateway/, grpc-gateway) in front of a real `sentinel serve`: the exact proto3 JSON
of a decision, gRPC statuses as HTTP statuses with the google.rpc.Status (and its details) as the body,
tokens and rate limits as over gRPC, the OpenAPI document generated from proto/ (committed, served, and
fuzzed with schemathesis against the live gateway), and the vendored google/api protos."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import schemathesis
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, json_format
from hypothesis import HealthCheck, given, settings
from server_helpers import new_database, transaction
from transport_helpers import authorization_recorder

from sentinel.bench import rest_bench, wrk
from sentinel.bench.measurement import LoadSettings
from sentinel.bench.payloads import TransactionFactory, load_paysim
from sentinel.bench.server_metrics import scrape_server_counts
from sentinel.certificates import ensure_dev_pki
from sentinel.config import ConfigError, Settings
from sentinel.localservices import LocalPostgres, LocalRedis
from sentinel.server.rest_gateway import (
    BUILD_SCRIPT,
    build_gateway,
    check_rest_settings,
    gateway_command,
    gateway_executable,
)
from sentinel.server.token_commands import issue_token
from sentinel.serverprocess import ServerProcess, wait_until_rest_serving
from sentinel.system import free_port, with_parent_death_signal
from sentinel.v1 import scoring_pb2, scoring_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_DOCUMENT = ROOT / "gateway" / "openapi.json"
ISSUER, AUDIENCE = "https://issuer.rest.test", "sentinel-rest"
LIMITED = "limited-svc"  # a caller with a bucket of one transaction and (almost) no refill

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None and gateway_executable() is None,
    reason="the REST gateway needs Go 1.26+ to build (make test runs deploy/build-gateway.sh --tests)",
)


def call(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One HTTP call: (status, headers, the JSON body)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def score_body(transaction_id: str, **extra: object) -> dict[str, Any]:
    """A ScoreRequest in proto3 JSON, as a REST caller writes it."""
    request = scoring_pb2.ScoreRequest(transaction=transaction(transaction_id, **extra))
    return json_format.MessageToDict(request)


@pytest.fixture(scope="module")
def gateway() -> str:
    """The gateway binary, built (or found up to date) by deploy/build-gateway.sh."""
    executable = build_gateway()
    assert executable is not None
    return executable


@pytest.fixture(scope="module")
def server(
    gateway: str,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: LocalRedis,
    postgres_server: LocalPostgres,
) -> Iterator[ServerProcess]:
    """`sentinel serve` with its REST gateway (started by the supervisor), without authentication."""
    with ServerProcess(
        tmp_path_factory.mktemp("rest-server"),
        workers=1,
        redis_url=redis_server.url,
        database_url=new_database(postgres_server, f"rest_{os.getpid()}"),
        rest_port=free_port(),
    ) as process:
        yield process


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    secret = uuid.uuid4().hex.encode() * 2
    secret_file = tmp_path_factory.mktemp("rest-secret") / "hs256.secret"
    secret_file.write_bytes(secret)
    secret_file.chmod(0o600)
    return secret, secret_file


@pytest.fixture(scope="module")
def secured_server(
    gateway: str,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: LocalRedis,
    postgres_server: LocalPostgres,
    secret: tuple[bytes, Path],
) -> Iterator[ServerProcess]:
    """The same with JWT authentication (HS256) and a rate limit for LIMITED."""
    with ServerProcess(
        tmp_path_factory.mktemp("rest-secured"),
        workers=1,
        redis_url=redis_server.url,
        database_url=new_database(postgres_server, f"rest_auth_{os.getpid()}"),
        rest_port=free_port(),
        auth_mode="jwt",
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_algorithms='["HS256"]',
        auth_hs256_secret_file=secret[1],
        rate_limits=json.dumps({f"client:{LIMITED}": {"rate_per_s": 0.001, "burst": 1}}),
    ) as process:
        yield process


def bearer(secret: tuple[bytes, Path], subject: str, roles: list[str]) -> dict[str, str]:
    token = issue_token(
        subject=subject,
        roles=roles,
        ttl_s=600,
        issuer=ISSUER,
        audience=AUDIENCE,
        key=secret[0],
        algorithm="HS256",
        kid=None,
    )
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------------ the generated contract
def test_openapi_document_matches_protos(tmp_path: Path) -> None:
    """gateway/openapi.json is what protoc-gen-openapiv2 makes of proto/ now."""
    subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--openapi", str(tmp_path)],
        env={**os.environ, "PYTHON": sys.executable},
        check=True,
        capture_output=True,
        timeout=300,
    )
    fresh = (tmp_path / "openapi.json").read_text()
    assert fresh == OPENAPI_DOCUMENT.read_text(), "stale: run `deploy/build-gateway.sh --openapi gateway`"


def test_vendored_google_api_protos_are_googleapis_common_protos(tmp_path: Path) -> None:
    """proto/google/api/*.proto (vendored for buf, ghz and the generators) define exactly what the
    google.api modules of googleapis-common-protos, which the server imports, define."""
    from grpc_tools import protoc

    descriptor_set = tmp_path / "google-api.pb"
    well_known = Path(protoc.__file__).parent / "_proto"
    arguments = ["protoc", f"-I{ROOT / 'proto'}", f"-I{well_known}", f"--descriptor_set_out={descriptor_set}"]
    assert protoc.main([*arguments, "google/api/annotations.proto", "google/api/http.proto"]) == 0
    vendored = {
        f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file
    }
    for module in (annotations_pb2, http_pb2):
        installed = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(installed)
        compiled = _without_json_names(vendored[installed.name])
        assert compiled == _without_json_names(installed), (
            f"{installed.name} differs from googleapis-common-protos"
        )


def _without_json_names(file: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """The file without json_name, which protoc writes and CopyToProto leaves out (derived from the name)."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    messages = list(copy.message_type)
    for field in copy.extension:
        field.ClearField("json_name")
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for field in [*message.field, *message.extension]:
            field.ClearField("json_name")
    return copy


def test_gateway_serves_the_openapi_document(server: ServerProcess) -> None:
    status, headers, document = call(f"{server.rest_url}/openapi.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert document == json.loads(OPENAPI_DOCUMENT.read_text())
    assert {"/v1/score", "/v1/score:batch", "/v1/decisions/{transactionId}", "/v1/rules"} <= set(
        document["paths"]
    )


# ---------------------------------------------------------------------------------------- how it runs
def test_gateway_follows_the_grpc_ports_transport(tmp_path: Path) -> None:
    """TLS on the gRPC port: HTTPS with the same files, TLS upstream pinned to that certificate; a wildcard
    host is reached on loopback; client certificates cannot pass through, so they and REST are refused."""
    plain = gateway_command("gw", Settings(host="0.0.0.0", port=50051, rest_port=8080, workers=3), 50051)
    assert plain[plain.index("-listen") + 1] == "0.0.0.0:8080"
    assert plain[plain.index("-upstream") + 1] == "127.0.0.1:50051"
    assert plain[plain.index("-upstream-connections") + 1] == "6" and "-tls-cert" not in plain
    pki = ensure_dev_pki(tmp_path / "pki")
    tls = Settings(rest_port=8443, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    command = gateway_command("gw", tls, 50051)
    assert command[command.index("-upstream-tls-cert") + 1] == str(pki.server_cert)
    assert command[command.index("-tls-key") + 1] == str(pki.server_key)
    mtls = tls.model_copy(update={"tls_client_ca_file": pki.ca_cert, "require_client_cert": True})
    with pytest.raises(ConfigError, match="require_client_cert"):
        check_rest_settings(mtls)
    with pytest.raises(ConfigError, match="port of its own"):
        check_rest_settings(Settings(port=9000, rest_port=9000))


def test_serve_refuses_a_taken_rest_port(server: ServerProcess, tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "SENTINEL_DATA_DIR": str(tmp_path / "data"),
        "SENTINEL_INSECURE": "true",
        "SENTINEL_REST_PORT": str(server.rest_port),
        "SENTINEL_METRICS_PORT": "0",
    }
    command = [sys.executable, "-m", "sentinel.cli", "serve", "--port", str(free_port())]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert f"port {server.rest_port} on 127.0.0.1 is already in use" in line and "`rest_port`" in line


# ------------------------------------------------------------------------------------- JSON and errors
def test_rest_score_returns_the_proto3_json_of_the_decision(server: ServerProcess) -> None:
    body = score_body("rest-json-1")
    status, headers, answer = call(f"{server.rest_url}/v1/score", "POST", body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    # Canonical proto3 JSON: a strict parse (unknown names refused) prints back to the very same JSON.
    parsed = json_format.ParseDict(answer, scoring_pb2.ScoreResponse())
    assert json_format.MessageToDict(parsed) == answer
    decision = answer["decision"]
    assert decision["transactionId"] == "rest-json-1" and decision["idempotencyKey"] == "rest-json-1"
    assert isinstance(decision["ledgerSequence"], str)  # int64 as a string
    assert decision["outcome"].startswith("OUTCOME_") and "replayed" not in decision  # false is omitted

    # The same transaction over gRPC is the same decision, replayed from the idempotency record. The
    # very same one: built again, its event time (now - 10 s, in whole seconds) can fall in the next
    # second, and a different transaction under the same key is refused (ALREADY_EXISTS).
    with grpc.insecure_channel(server.address) as channel:
        replay = scoring_pb2_grpc.ScoringServiceStub(channel).Score(
            json_format.ParseDict(body, scoring_pb2.ScoreRequest()), timeout=10
        )
    assert replay.decision.replayed
    replay.decision.replayed = False
    assert json_format.MessageToDict(replay.decision) == decision


def test_batch_and_path_parameters(server: ServerProcess) -> None:
    body = {"transactions": [score_body("rest-b0")["transaction"], {"transactionId": "rest-b1"}]}
    status, _, answer = call(f"{server.rest_url}/v1/score:batch", "POST", body)
    assert status == 200
    first, second = answer["results"]
    assert first["decision"]["transactionId"] == "rest-b0"
    assert second["error"]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    status, _, entry = call(f"{server.rest_url}/v1/decisions/rest-b0")
    assert status == 200 and entry["entry"]["decision"]["transactionId"] == "rest-b0"
    status, _, balance = call(f"{server.rest_url}/v1/accounts/C1/balance")
    assert status == 200 and balance["accountId"] == "C1"


def test_invalid_field_is_400_with_the_bad_request_details(server: ServerProcess) -> None:
    status, _, answer = call(f"{server.rest_url}/v1/score", "POST", score_body("rest-bad-1", amount="-5"))
    assert status == 400
    assert answer["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    (detail,) = answer["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["fieldViolations"]] == ["transaction.amount.amount"]


def test_unknown_json_field_and_malformed_json_are_400(server: ServerProcess) -> None:
    status, _, answer = call(f"{server.rest_url}/v1/score", "POST", {"transaction": {"transactionID": "x"}})
    assert status == 400 and "unknown field" in answer["message"]
    status, _, answer = call(f"{server.rest_url}/v1/score", "POST", b'{"transaction": ')
    assert status == 400 and answer["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_not_found_is_404(server: ServerProcess) -> None:
    status, _, answer = call(f"{server.rest_url}/v1/decisions/never-scored")
    assert status == 404 and answer["code"] == grpc.StatusCode.NOT_FOUND.value[0]


def test_gateway_forwards_the_request_id_and_the_token(gateway: str) -> None:
    """x-request-id and Authorization reach the gRPC server as metadata of the same names."""
    rest_port = free_port()
    for header, value in (("x-request-id", "req-42"), ("authorization", "Bearer t-1")):
        with authorization_recorder(header) as (address, seen):
            process = subprocess.Popen(
                [gateway, "-listen", f"127.0.0.1:{rest_port}", "-upstream", address],
                stderr=subprocess.DEVNULL,
                preexec_fn=with_parent_death_signal(signal.SIGTERM),
            )
            try:
                wait_until_rest_serving(f"http://127.0.0.1:{rest_port}", 30, process, path="/openapi.json")
                status, _, _ = call(f"http://127.0.0.1:{rest_port}/v1/score", "POST", {}, {header: value})
            finally:
                process.terminate()
                process.wait(15)
        assert status == 200 and seen == [value]


@pytest.mark.skipif(not wrk.wrk_available(), reason="wrk is missing (make test-system-packages installs it)")
def test_bench_rest_load_sends_a_new_transaction_in_every_call(server: ServerProcess, tmp_path: Path) -> None:
    """`sentinel bench rest`'s wrk side: every call it counts OK is a fresh decision, none a replay."""
    factory = TransactionFactory(load_paysim(), seed=7)
    templates = wrk.write_templates(
        tmp_path / "bodies.jsonl", rest_bench.rest_templates(rest_bench.score_requests(factory, "x"))
    )
    load = LoadSettings(concurrency=4, connections=1, duration_s=1.0, total_calls=None, rate=None, warmup_s=0)
    before = scrape_server_counts(server.metrics_url)
    result = wrk.run_wrk(f"{server.rest_url}/v1/score", templates, "wrk-test", load, tmp_path)
    counted = scrape_server_counts(server.metrics_url) - before
    assert result is not None and result.errors == {} and result.calls_ok > 0
    statuses = counted.by_status("Score")
    # wrk drops the calls in flight when its time is up: the server finishes them or sees them cancelled.
    in_flight_at_the_end = statuses.pop("OK") - result.calls_ok + statuses.pop("CANCELLED", 0)
    assert statuses == {} and 0 <= in_flight_at_the_end <= load.concurrency
    assert counted.replayed_decisions == 0


# ------------------------------------------------------------------------- authentication, rate limits
def test_missing_token_is_401_and_wrong_role_403(
    secured_server: ServerProcess, secret: tuple[bytes, Path]
) -> None:
    url = f"{secured_server.rest_url}/v1/score"
    status, _, answer = call(url, "POST", score_body("rest-auth-1"))
    assert status == 401 and answer["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    reader = bearer(secret, "reader-svc", ["ledger-reader"])
    status, _, answer = call(url, "POST", score_body("rest-auth-2"), reader)
    assert status == 403 and answer["code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
    scorer = bearer(secret, "payments-svc", ["scorer"])
    status, _, answer = call(url, "POST", score_body("rest-auth-3"), scorer)
    assert status == 200 and answer["decision"]["caller"] == "payments-svc"


def test_rate_limited_caller_gets_429_with_retry_after(
    secured_server: ServerProcess, secret: tuple[bytes, Path]
) -> None:
    url, limited = f"{secured_server.rest_url}/v1/score", bearer(secret, LIMITED, ["scorer"])
    assert call(url, "POST", score_body("rest-limit-1"), limited)[0] == 200
    status, headers, answer = call(url, "POST", score_body("rest-limit-2"), limited)
    assert status == 429 and answer["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    retry_info = [d for d in answer["details"] if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
    assert len(retry_info) == 1 and int(headers["Retry-After"]) >= 1


# ------------------------------------------------------------------------------------------ schemathesis
# The committed document (the gateway serves exactly it, tested above), loaded once to name the operations;
# each is a test of its own, run with Hypothesis here rather than through schemathesis' pytest plugin
# (which does not run under pytest 9).
SCHEMA = schemathesis.openapi.from_path(OPENAPI_DOCUMENT)
OPERATIONS = [result.ok().label for result in SCHEMA.get_all_operations()]
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_schemathesis_against_the_live_gateway(server: ServerProcess, operation: str) -> None:
    """Generated calls of every operation: no 5xx, every answer (200 or google.rpc.Status) matches the
    document's schema."""

    @given(case=SCHEMA.find_operation_by_label(operation).as_strategy())
    @settings(
        max_examples=10,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=server.rest_url, checks=CHECKS)

    check()
