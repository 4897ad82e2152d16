"""The generated Java client (clients/java) against a real `sentinel dev serve`, and the check that its
committed generated code still matches proto/ (clients/generate.py java)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from server_helpers import ROOT, assert_client_check_report, assert_same_files, run_checked

from sentinel.serverprocess import ServerProcess
from sentinel.system import free_port

CLIENT_DIR = ROOT / "clients" / "java"
MAVEN = ["mvn", "-q", "-B", "-Dstyle.color=never"]

pytestmark = pytest.mark.skipif(
    shutil.which("mvn") is None or shutil.which("java") is None,
    reason="java and mvn are needed for the Java client (CI machines have OpenJDK 17 and Maven)",
)


@pytest.fixture(scope="module")
def classpath() -> str:
    """The compiled client, its live check and example (src/test/java) and their dependencies. The first
    run downloads the pinned artifacts into ~/.m2; later runs need no network (no SNAPSHOTs)."""
    listing = CLIENT_DIR / "target" / "classpath.txt"
    build = [
        "test-compile",
        "dependency:build-classpath",
        f"-Dmdep.outputFile={listing}",
        "-Dmdep.includeScope=test",
    ]
    run_checked([*MAVEN, *build], cwd=CLIENT_DIR, timeout_s=580)
    classes = [CLIENT_DIR / "target" / "classes", CLIENT_DIR / "target" / "test-classes"]
    return os.pathsep.join([*map(str, classes), listing.read_text().strip()])


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    fresh = tmp_path / "java"
    run_checked([sys.executable, "clients/generate.py", "java", "--out", str(fresh)], cwd=ROOT, timeout_s=300)
    assert_same_files(fresh, CLIENT_DIR / "src" / "generated" / "java", "*.java", regenerate="make clients")


def test_score_batch_stream_retries_and_errors_through_java_client(
    classpath: str, dev_server: ServerProcess
) -> None:
    dead_address = f"127.0.0.1:{free_port()}"
    program = [
        "java",
        "-cp",
        classpath,
        "io.sentinelstream.client.ScoreCheck",
        dev_server.address,
        dead_address,
    ]
    report = json.loads(run_checked([*program, "java"], CLIENT_DIR, 90))

    assert_client_check_report(report, "java")


def test_readme_example_scores_a_transaction(classpath: str, dev_server: ServerProcess) -> None:
    program = ["java", "-cp", classpath, "io.sentinelstream.client.example.Example", dev_server.address]
    transaction_id, outcome, risk, model = run_checked(program, CLIENT_DIR, 60).split()
    assert transaction_id.startswith("example-")
    assert outcome in {"OUTCOME_APPROVE", "OUTCOME_REVIEW", "OUTCOME_DECLINE"}
    assert risk.startswith("risk=") and model.startswith("model=") and len(model) > len("model=")
