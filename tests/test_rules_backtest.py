"""Backtests through the same features and evaluator: the PaySim cut in bench/data, and the ledger."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from ledger_helpers import ledger_settings

from sentinel.cli import main
from sentinel.ledger import LedgerWriter
from sentinel.ledger.migrate import migrate
from sentinel.ledger.records import record_from_messages
from sentinel.v1 import decision_pb2, transaction_pb2

pytestmark = pytest.mark.usefixtures("restore_logging")

ROOT = Path(__file__).resolve().parents[1]
PAYSIM_CUT = ROOT / "bench" / "data" / "paysim_cut.csv"  # 2,570 rows, 65 frauds (bench/data/README.md)
DEFAULT_RULES = ROOT / "server" / "rules" / "default_rules.toml"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()  # drop what the test logged before
    assert main(["rules", "backtest", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_backtest_of_the_default_rules_on_the_paysim_cut(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--csv", str(PAYSIM_CUT), "--file", str(DEFAULT_RULES))
    assert report["transactions"] == 2_570 and report["labelled_frauds"] == 65
    seconds = report["seconds"]  # rounded to 0.1 ms in the report
    assert seconds > 0 and 2_570 / (seconds + 5e-5) <= report["tps"] <= 2_570 / max(seconds - 5e-5, 1e-9)
    drained = report["rules"]["drained-account-transfer"]
    assert drained["precision"] > 0.95 and drained["recall"] > 0.9
    assert drained["hits"] == drained["true_positives"] + round(drained["hits"] * (1 - drained["precision"]))
    assert all(sample["fraud"] is not None for sample in drained["sample_hits"])
    # PaySim has no geolocation: impossible travel cannot hit, and its precision is undefined
    travel = report["rules"]["impossible-travel"]
    assert (travel["hits"], travel["precision"], travel["recall"]) == (0, None, 0.0)
    assert report["rules"]["mule-destination"]["mode"] == "shadow"
    # shadow rules are not part of what the active set catches
    assert report["any_active_rule"]["hits"] == drained["hits"]
    # one rule alone gives the same figures for it
    alone = run_json(
        capsys,
        "--csv",
        str(PAYSIM_CUT),
        "--file",
        str(DEFAULT_RULES),
        "--rule",
        "drained-account-transfer",
    )
    assert list(alone["rules"]) == ["drained-account-transfer"]
    assert alone["rules"]["drained-account-transfer"]["hits"] == drained["hits"]


def test_backtest_of_a_missing_or_foreign_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.csv"
    assert main(["rules", "backtest", "--csv", str(missing), "--file", str(DEFAULT_RULES)]) == 1
    assert capsys.readouterr().err == f"sentinel rules: --csv {missing}: no such file\n"
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    assert main(["rules", "backtest", "--csv", str(foreign), "--file", str(DEFAULT_RULES)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sentinel rules: {foreign}: not a PaySim CSV") and err.count("\n") == 1


def transfer(
    number: int, account: str, seconds: float, latitude: float, longitude: float
) -> transaction_pb2.Transaction:
    txn = transaction_pb2.Transaction(
        transaction_id=f"t-{number}",
        account_id=account,
        type=transaction_pb2.TRANSACTION_TYPE_TRANSFER,
        amount=transaction_pb2.Money(amount="120.00", currency="EUR"),
        geo=transaction_pb2.GeoLocation(latitude=latitude, longitude=longitude, country="DE"),
    )
    txn.event_time.FromSeconds(int(seconds))
    return txn


async def test_backtest_over_the_ledger_replays_state_in_event_order(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await migrate(database_url)
    writer = LedgerWriter(ledger_settings(database_url, tmp_path), name="backtest")
    await writer.start()
    now = time.time() - 3600
    # Berlin, then New York ten minutes later (recorded out of order), then a second account once
    transactions = [
        transfer(2, "acct-a", now + 600, 40.71, -74.00),
        transfer(1, "acct-a", now, 52.52, 13.40),
        transfer(3, "acct-b", now + 30, 48.14, 11.58),
    ]
    decision = decision_pb2.Decision(outcome=decision_pb2.OUTCOME_APPROVE, model_version="none")
    try:
        await writer.submit([record_from_messages(txn, decision) for txn in transactions])
    finally:
        await writer.close()
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nid = "travel"\nexpression = "speed_kmh > 1000"\naction = "REVIEW"\n'
        '[[rule]]\nid = "first"\nexpression = "first_transaction"\naction = "TAG"\nmode = "shadow"\n'
    )
    # the command runs its own event loop
    report = await asyncio.to_thread(
        run_json, capsys, "--since", "2000-01-01", "--url", database_url, "--file", str(rules)
    )
    assert report["transactions"] == 3 and report["labelled_frauds"] is None
    assert report["rules"]["travel"]["hits"] == 1
    assert report["rules"]["travel"]["sample_hits"][0]["id"] == "t-2"
    assert report["rules"]["travel"]["precision"] is None and report["rules"]["travel"]["recall"] is None
    assert report["rules"]["first"]["hits"] == 2
    future = await asyncio.to_thread(
        run_json, capsys, "--since", "2999-01-01T00:00:00+00:00", "--url", database_url, "--file", str(rules)
    )
    assert future["transactions"] == 0 and future["rules"]["travel"]["hits"] == 0
