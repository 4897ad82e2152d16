"""The generated Go client (clients/go) against a real `sentinel dev serve`, and the check that its
committed generated code still matches proto/ (clients/generate.py go)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from server_helpers import (
    ROOT,
    UNAVAILABLE,
    assert_client_check_report,
    assert_same_files,
    go_tools,
    run_checked,
)
from transport_helpers import authorization_recorder

from sentinel.certificates import DevPki
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port

CLIENT_DIR = ROOT / "clients" / "go"

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None, reason="go is needed for the Go client (CI machines have Go 1.26)"
)


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client's example and its live checks (internal/*check), built with the module's go.sum."""
    out = tmp_path_factory.mktemp("go-client-bin")
    run_checked(["go", "vet", "./..."], cwd=CLIENT_DIR, timeout_s=300)
    run_checked(
        ["go", "build", "-o", str(out), "./example", "./internal/scorecheck", "./internal/securecheck"],
        cwd=CLIENT_DIR,
        timeout_s=300,
    )
    return out


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    go_tools()
    fresh = tmp_path / "sentinelv1"
    run_checked([sys.executable, "clients/generate.py", "go", "--out", str(fresh)], cwd=ROOT, timeout_s=120)
    assert_same_files(fresh, CLIENT_DIR / "sentinelv1", "*.go", regenerate="make clients")


def test_score_batch_stream_retries_and_errors_through_go_client(
    programs: Path, dev_server: ServerProcess
) -> None:
    dead_address = f"127.0.0.1:{free_port()}"
    output = run_checked(
        [str(programs / "scorecheck"), dev_server.address, dead_address, "go"], CLIENT_DIR, 60
    )
    report = json.loads(output)

    assert report["invalid"]["rejected"] is True
    assert_client_check_report(report, "go")


def test_readme_example_scores_a_transaction(programs: Path, dev_server: ServerProcess) -> None:
    output = run_checked([str(programs / "example"), dev_server.address], CLIENT_DIR, 30)
    transaction_id, outcome, risk, model = output.split()
    assert transaction_id.startswith("example-")
    assert outcome in {"OUTCOME_APPROVE", "OUTCOME_REVIEW", "OUTCOME_DECLINE"}
    assert risk.startswith("risk=") and model.startswith("model=") and len(model) > len("model=")


def test_go_client_tls_client_certificates_and_tokens(
    programs: Path, mtls_dev_server: tuple[ServerProcess, DevPki]
) -> None:
    """CA and client certificate against a server that requires client certificates, and the tokens of a
    token provider as the authorization header a gRPC server receives, one per call."""
    server, pki = mtls_dev_server
    with authorization_recorder() as (recorder_address, seen):
        pem_files = [str(pki.ca_cert), str(pki.client_cert), str(pki.client_key)]
        output = run_checked(
            [str(programs / "securecheck"), server.address, *pem_files, recorder_address], CLIENT_DIR, 60
        )
    report = json.loads(output)

    assert report["mtls"] == {"transactionId": "go-tls-1"}
    assert report["withoutClientCertificate"]["code"] == UNAVAILABLE
    assert report["tokensIssued"] == 2
    assert seen == ["Bearer token-1", "Bearer token-2"]
    assert "plaintext to 192.0.2.1:50051" in report["plaintextTokenToAnotherMachine"]
