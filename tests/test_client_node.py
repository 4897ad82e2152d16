"""The generated Node.js client (clients/node) against a real `sentinel dev serve`, and the check that
its committed generated code still matches proto/ (see clients/node/README.md for why it is committed)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from server_helpers import (
    INVALID_ARGUMENT,
    UNAVAILABLE,
    assert_retried_after_replaced_answers,
    assert_same_files,
    run_checked,
)
from transport_helpers import authorization_recorder

from sentinel.certificates import DevPki
from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port

CLIENT_DIR = Path(__file__).resolve().parent.parent / "clients" / "node"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed for the Node.js client (CI installs them: apt-get install nodejs npm)",
)


def _run(command: list[str], timeout_s: float, **environment: str) -> str:
    return run_checked(command, CLIENT_DIR, timeout_s, **environment)


@pytest.fixture(scope="module")
def built_client() -> Path:
    """clients/node with its locked dependencies installed and src/ compiled to dist/."""
    installed = CLIENT_DIR / "node_modules" / ".package-lock.json"
    lock = CLIENT_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        _run(["npm", "ci", "--no-audit", "--no-fund"], timeout_s=300)  # its prepare script runs the build
    else:
        _run(["npm", "run", "build"], timeout_s=120)
    return CLIENT_DIR


def test_generated_code_matches_protos(built_client: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "gen"
    _run(["node", "scripts/generate.mjs", "--out", str(fresh)], timeout_s=120, PYTHON=sys.executable)
    assert_same_files(fresh, built_client / "src" / "gen", "*.ts", regenerate="npm run generate")


def test_score_batch_and_stream_through_node_client(built_client: Path, dev_server: ServerProcess) -> None:
    dead_address = f"127.0.0.1:{free_port()}"
    program = ["node", "test/score-against-server.mjs", dev_server.address, dead_address, "node"]
    report = json.loads(_run(program, timeout_s=60))

    first, again = report["score"], report["scoreAgain"]
    assert first["transactionId"] == "node-1"
    assert first["idempotencyKey"] == "node-1"  # filled in by the client from the transaction id
    assert first["outcome"] in {"OUTCOME_APPROVE", "OUTCOME_REVIEW", "OUTCOME_DECLINE"}
    assert 0.0 <= first["riskScore"] <= 1.0
    assert first["modelVersion"]
    assert again.get("replayed") is True  # what makes the client's retries safe
    assert again["outcome"] == first["outcome"] and again["riskScore"] == first["riskScore"]

    assert report["invalid"]["rejected"] is True
    assert report["invalid"]["code"] == INVALID_ARGUMENT
    assert "transaction.amount.amount" in report["invalid"]["details"]

    batch = report["batch"]
    assert [next(iter(item)) for item in batch] == ["decision", "error", "decision"]
    assert batch[0]["decision"]["transactionId"] == "node-b0"
    assert batch[2]["decision"]["transactionId"] == "node-b2"
    assert batch[1]["error"]["code"] == INVALID_ARGUMENT
    assert batch[1]["error"]["fieldViolations"][0]["field"] == "transactions[1].amount.currency"

    stream = {item["transactionId"]: item for item in report["stream"]}
    assert sorted(stream) == ["node-s-bad", "node-s0", "node-s1", "node-s2", "node-s3", "node-s4"]
    assert all(stream[f"node-s{i}"]["decision"]["transactionId"] == f"node-s{i}" for i in range(5))
    assert stream["node-s-bad"]["error"]["code"] == INVALID_ARGUMENT
    assert stream["node-s-bad"]["error"]["fieldViolations"][0]["field"] == "transaction.type"

    assert_retried_after_replaced_answers(report, "node")

    unreachable = report["unreachable"]
    assert unreachable["rejected"] is True and unreachable["code"] == UNAVAILABLE
    assert [(r["method"], r["attempt"], r["code"]) for r in unreachable["retries"]] == [
        ("Score", 1, UNAVAILABLE),
        ("Score", 2, UNAVAILABLE),
    ]


def test_node_client_tls_client_certificates_and_tokens(
    built_client: Path, mtls_dev_server: tuple[ServerProcess, DevPki]
) -> None:
    """ca/cert/key (as paths and as PEM text) against a server that requires client certificates, and
    the tokens of a tokenProvider as the authorization header a gRPC server receives, one per call."""
    server, pki = mtls_dev_server
    with authorization_recorder() as (recorder_address, seen):
        arguments = [str(pki.ca_cert), str(pki.client_cert), str(pki.client_key), recorder_address]
        report = json.loads(_run(["node", "test/secure-against-server.mjs", server.address, *arguments], 60))

    assert report["mtls"]["decision"]["transactionId"] == "node-tls-1"
    assert report["mtlsPemText"]["decision"]["transactionId"] == "node-tls-2"
    assert report["withoutClientCertificate"]["code"] == UNAVAILABLE
    assert report["tokensIssued"] == 2
    assert seen == ["Bearer token-1", "Bearer token-2"]
    assert "plaintext to 192.0.2.1:50051" in report["plaintextTokenToAnotherMachine"]
