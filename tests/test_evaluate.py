"""`sentinel evaluate`: labelled PaySim replayed through a real, running SentinelStream (no mocks).

One `sentinel serve` (one worker) for the module, on the session's Redis and a database of the session's
PostgreSQL of its own; one test lets the command start its private `sentinel dev serve` itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from server_helpers import new_database

from sentinel.cli import main
from sentinel.localservices import LocalPostgres, LocalRedis
from sentinel.model_export.paysim import COLUMNS
from sentinel.serverprocess import ServerProcess

CUT = Path(__file__).resolve().parents[1] / "bench" / "data" / "paysim_cut.csv"
CUT_ROWS = 2570
CUT_FRAUDS = 65


class Service:
    """The module's server and the database its ledger writes to."""

    def __init__(self, server: ServerProcess, database_url: str) -> None:
        self.server = server
        self.database_url = database_url

    def ledger_count(self, id_prefix: str) -> tuple[int, int]:
        """Ledger entries whose transaction id starts with ``id_prefix``, and their distinct keys."""

        async def query() -> tuple[int, int]:
            connection = await asyncpg.connect(self.database_url)
            try:
                row = await connection.fetchrow(
                    "SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys FROM ledger.decisions "
                    "WHERE starts_with(transaction_id, $1)",
                    id_prefix,
                )
            finally:
                await connection.close()
            return int(row["n"]), int(row["keys"])

        return asyncio.run(query())


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, redis_server: LocalRedis, postgres_server: LocalPostgres
) -> Iterator[Service]:
    database_url = new_database(postgres_server, f"test_evaluate_{os.getpid()}")
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    with ServerProcess(
        tmp_path_factory.mktemp("evaluate") / "server",
        workers=1,
        redis_url=redis_server.url,
        database_url=database_url,
        redis_budget_ms=2000,  # a loaded test machine must not turn the figures into degraded ones
        ledger_commit_timeout_s=20,
    ) as server:
        yield Service(server, database_url)


def evaluate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """Run `sentinel evaluate ... --json --quiet` in this process: exit status, parsed output, stderr."""
    status = main(["evaluate", *args, "--json", "--quiet"])
    captured = capsys.readouterr()
    return status, json.loads(captured.out) if captured.out.strip() else None, captured.err


def check_consistent(figures: dict[str, Any], rows: int, frauds: int) -> None:
    """The figures of one pass agree with each other and cover every row."""
    assert figures["rows"] == rows
    assert figures["frauds"] == frauds
    assert figures["decided"] + figures["errors"] == rows
    outcomes = figures["outcomes"]
    assert set(outcomes) == {"APPROVE", "REVIEW", "DECLINE"}
    assert sum(o["fraud"] + o["legit"] for o in outcomes.values()) == figures["decided"]
    assert sum(o["fraud"] for o in outcomes.values()) == frauds
    for name, flagged_outcomes in (("flagged", ("REVIEW", "DECLINE")), ("declined", ("DECLINE",))):
        counts = figures[name]
        assert counts["tp"] + counts["fp"] + counts["fn"] + counts["tn"] == figures["decided"]
        assert counts["tp"] + counts["fn"] == frauds
        assert counts["tp"] == sum(outcomes[o]["fraud"] for o in flagged_outcomes)
        assert counts["fp"] == sum(outcomes[o]["legit"] for o in flagged_outcomes)
        if counts["tp"] + counts["fp"]:
            assert counts["precision"] == pytest.approx(counts["tp"] / (counts["tp"] + counts["fp"]))
        else:
            assert counts["precision"] is None
        assert counts["recall"] == pytest.approx(counts["tp"] / frauds)
    assert figures["declined"]["tp"] <= figures["flagged"]["tp"]
    for key in ("risk_pr_auc", "risk_roc_auc", "model_pr_auc", "model_roc_auc"):
        assert 0.0 <= figures[key] <= 1.0
    assert sum(figures["model_versions"].values()) == figures["decided"]
    for rules in figures["rule_hits"].values():
        for hits in rules.values():
            assert hits["fraud"] <= frauds
            assert hits["legit"] <= rows - frauds
    assert figures["wall_time_s"] > 0
    assert figures["transactions_per_s"] == pytest.approx(rows / figures["wall_time_s"], rel=0.01)


def test_cut_through_target_every_row_answered_and_figures_consistent(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report, err = evaluate(capsys, "--data", str(CUT), "--target", service.server.address)
    assert status == 0, err
    assert report is not None
    assert (report["rows"], report["frauds"]) == (CUT_ROWS, CUT_FRAUDS)
    [figures] = report["passes"]
    check_consistent(figures, CUT_ROWS, CUT_FRAUDS)
    assert figures["errors"] == 0
    assert figures["first_error"] is None
    assert figures["degraded"] == 0
    assert figures["replayed"] == 0
    assert figures["changes"] is None
    assert figures["calls"] == 6  # 2,570 rows in batches of 500
    # The default rule set is there: every PaySim fraud empties its account.
    assert "drained-account-transfer" in figures["rule_hits"]["active"]
    assert "mule-destination" in figures["rule_hits"]["shadow"]
    # Every row was answered AND recorded: one ledger entry each, durable before the answer.
    assert service.ledger_count(f"{report['run_id']}-") == (CUT_ROWS, CUT_ROWS)


def test_second_pass_is_scored_anew_not_replayed(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report, err = evaluate(
        capsys,
        "--data",
        str(CUT),
        "--target",
        service.server.address,
        "--passes",
        "2",
        "--batch-size",
        "1000",
    )
    assert status == 0, err
    assert report is not None
    assert [p["pass_number"] for p in report["passes"]] == [1, 2]
    for figures in report["passes"]:
        check_consistent(figures, CUT_ROWS, CUT_FRAUDS)
        assert figures["errors"] == 0
        assert figures["replayed"] == 0  # Decision.replayed false on every row of both passes
        assert figures["calls"] == 3
    second = report["passes"][1]
    assert second["changes"] is not None
    assert set(second["changes"]["mean_model_score_change"]) == {"fraud", "legit"}
    # The second pass's rows are new ledger entries under new keys, not the first pass's answers again.
    run = report["run_id"]
    assert service.ledger_count(f"{run}-p1-") == (CUT_ROWS, CUT_ROWS)
    assert service.ledger_count(f"{run}-p2-") == (CUT_ROWS, CUT_ROWS)


def test_json_output_of_the_installed_command_parses(service: Service) -> None:
    command = [sys.executable, "-m", "sentinel.cli", "evaluate", "--data", str(CUT), "--json"]
    completed = subprocess.run(
        [*command, "--target", service.server.address, "--batch-size", "2570"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["data"] == str(CUT)
    assert len(report["passes"]) == 1
    assert report["passes"][0]["decided"] == CUT_ROWS
    assert "pass 1: 2570 decided, 0 errors" in completed.stderr  # progress goes to stderr


def write_csv(path: Path, lines: list[str], header: str = ",".join(COLUMNS)) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("step,type,amount\n1,PAYMENT,10.0\n", "not a PaySim CSV"),
        ("", "not a PaySim CSV"),
        (",".join(COLUMNS) + "\n", "no rows"),
        (",".join(COLUMNS) + "\n1,PAYMENT,ten,C1,1.0,0.0,M1,0.0,0.0,0.0,0.0\n", "not a valid PaySim CSV"),
        (",".join(COLUMNS) + "\n1,REFUND,10.0,C1,1.0,0.0,M1,0.0,0.0,0.0,0.0\n", "unknown transaction type"),
        (",".join(COLUMNS) + "\n1,PAYMENT,10.0,C1\n", "not a valid PaySim CSV"),
    ],
)
def test_bad_file_exit_2_with_one_line(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    status, report, err = evaluate(capsys, "--data", str(path), "--target", service.server.address)
    assert status == 2
    assert report is None
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("sentinel evaluate: ")
    assert message in err


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A short temporary directory the postgres user can reach (PostgreSQL's socket lives in its data
    directory, and a socket path has at most 107 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="se-"))
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_refused_rows_exit_1_counted_by_a_private_server(
    services_dir: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --target the command starts (and removes) its own `sentinel dev serve`; a row the service
    refuses (amount 0) is counted and named, and the others are still scored."""
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the command makes its work directory
    path = write_csv(
        services_dir / "refused.csv",
        [
            "1,TRANSFER,181.0,C1305486145,181.0,0.0,C553264065,0.0,0.0,1.0,0.0",
            "1,PAYMENT,0.0,C840083671,181.0,181.0,M38997010,0.0,0.0,0.0,0.0",
            "2,CASH_OUT,229133.94,C905080434,15325.0,0.0,C476402209,5083.0,51513.44,0.0,0.0",
        ],
    )
    status, report, err = evaluate(capsys, "--data", str(path), "--workers", "1")
    assert status == 1
    assert report is not None, err
    [figures] = report["passes"]
    assert (figures["decided"], figures["errors"]) == (2, 1)
    assert figures["errors_by_code"] == {"INVALID_ARGUMENT": 1}
    assert figures["first_error"]["row"] == 1
    assert "amount" in figures["first_error"]["message"]
    assert report["target"] == "private sentinel dev serve"
    [line] = err.strip().splitlines()
    assert line.startswith(
        "sentinel evaluate: the service refused 1 of 3 transactions; first: pass 1 row 1 ("
    )
    assert "INVALID_ARGUMENT" in line
    assert list(scratch.iterdir()) == []  # the private server's files are gone, so it was stopped


def test_target_only_options_are_refused(service: Service, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = evaluate(
        capsys, "--data", str(CUT), "--target", service.server.address, "--workers", "2"
    )
    assert status == 2
    assert "--workers and --model-dir apply only" in err
