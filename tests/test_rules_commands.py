"""`sentinel rules` management commands against a real Postgres."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.ledger.migrate import migrate
from sentinel.server.rules.rulefiles import parse_rule_file

pytestmark = pytest.mark.usefixtures("restore_logging")

RULES = """
[[rule]]
id = "big-transfer"
expression = '''
amount > 5000
and type == "TRANSFER"
'''
action = "REVIEW"
priority = 300
severity = 0.4
description = "large transfers"
"""


@pytest.fixture
def url(database_url: str) -> str:
    asyncio.run(migrate(database_url))
    return database_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what the test logged before
    code = main(["rules", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_manage_a_rule_from_the_command_line(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule_file = tmp_path / "rules.toml"
    rule_file.write_text(RULES)
    assert run(capsys, "add", str(rule_file), "--url", url, "--author", "alice", "--comment", "new") == (
        0,
        "stored big-transfer v1\n",
        "",
    )
    code, _, err = run(capsys, "add", str(rule_file), "--url", url, "--author", "alice")
    assert code == 1 and "already exists" in err

    code, shown, _ = run(capsys, "show", "big-transfer", "--url", url)
    assert code == 0 and shown.startswith("# version 1, by alice")
    assert parse_rule_file(shown) == parse_rule_file(RULES)  # show prints what update reads

    rule_file.write_text(shown.replace("5000", "9000"))
    assert (
        run(capsys, "update", str(rule_file), "--url", url, "--author", "bob")[1]
        == "stored big-transfer v2\n"
    )
    assert (
        run(capsys, "shadow", "big-transfer", "--url", url, "--author", "bob")[1]
        == "big-transfer v3 is shadow\n"
    )
    code, listed, _ = run(capsys, "list", "--url", url)
    assert "big-transfer" in listed and "shadow" in listed and "amount > 9000 and type" in listed
    assert (
        run(capsys, "rollback", "big-transfer", "1", "--url", url, "--author", "carol", "--comment", "undo")[
            0
        ]
        == 0
    )
    code, history, _ = run(capsys, "history", "big-transfer", "--url", url)
    lines = history.splitlines()
    assert len(lines) == 4
    assert "rollback (copy of v1) [active] by carol: undo" in lines[0]
    assert "create" in lines[3] and "by alice: new" in lines[3]

    transaction = tmp_path / "txn.json"
    transaction.write_text(
        json.dumps(
            {
                "transactionId": "t-1",
                "accountId": "a-1",
                "type": "TRANSACTION_TYPE_TRANSFER",
                "amount": {"amount": "7000.00", "currency": "EUR"},
                "eventTime": "2025-01-01T00:00:00Z",
            }
        )
    )
    code, out, _ = run(capsys, "test", "big-transfer", str(transaction), "--url", url)
    assert code == 0 and out.startswith("MATCH")
    code, out, _ = run(capsys, "test", "-e", "amount > 8000", str(transaction))
    assert code == 3 and out.startswith("no match")
    code, _, err = run(capsys, "test", "-e", "ammount > 8000", str(transaction))
    assert code == 1 and "unknown name 'ammount' at column 1 — did you mean 'amount'?" in err

    assert (
        run(capsys, "delete", "big-transfer", "--url", url, "--author", "dave")[1]
        == "big-transfer deleted (v5)\n"
    )
    assert run(capsys, "list", "--url", url)[1] == "no rules\n"
    code, _, err = run(capsys, "enable", "big-transfer", "--url", url, "--author", "dave")
    assert code == 1 and "does not exist" in err


def test_seed_and_bad_files(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "seed", "--url", url)[1].startswith("seeded 5 default rules")
    assert "nothing seeded" in run(capsys, "seed", "--url", url)[1]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nid = "x"\nexpression = "amount > 1 and spead_kmh > 9"\naction = "REVIEW"\n')
    code, _, err = run(capsys, "add", str(bad), "--url", url)
    assert code == 1
    assert "rule x: expression: unknown name 'spead_kmh' at column 16 — did you mean 'speed_kmh'?" in err
    bad.write_text('[[rule]]\nid = "x"\nexpression = "amount > 1"\naction = "BLOCK"\n')
    assert "action: must be DECLINE, REVIEW, ALLOW or TAG" in run(capsys, "add", str(bad), "--url", url)[2]


def test_names_lists_features_fields_and_functions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "names")
    assert code == 0
    for expected in ("amount", "home_country", "speed_kmh", "origin_drained", "condition", "is_missing(x)"):
        assert expected in out


PAYSIM_HEADER = (
    "step,type,amount,nameOrig,oldbalanceOrg,newbalanceOrig,nameDest,oldbalanceDest,newbalanceDest,isFraud,"
    "isFlaggedFraud\n"
)
PAYSIM_ROWS = (
    PAYSIM_HEADER
    + """1,TRANSFER,181.0,C1,181.0,0.0,C9,0.0,0.0,1.0,0.0
1,CASH_OUT,181.0,C2,181.0,0.0,C8,21182.0,0.0,1.0,0.0
2,PAYMENT,9839.64,C3,170136.0,160296.36,M1,0.0,0.0,0.0,0.0
3,TRANSFER,500.0,C4,1000.0,500.0,C7,0.0,0.0,0.0,0.0
"""
)


def test_backtest_uses_the_stored_rules(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "paysim.csv"
    csv.write_text(PAYSIM_ROWS)
    assert run(capsys, "seed", "--url", url)[0] == 0
    assert run(capsys, "disable", "drained-account-transfer", "--url", url, "--author", "alice")[0] == 0
    code, out, _ = run(capsys, "backtest", "--csv", str(csv), "--url", url, "--json")
    report = json.loads(out)
    assert code == 0 and report["transactions"] == 4 and report["labelled_frauds"] == 2
    assert "drained-account-transfer" not in report["rules"]  # disabled rules are not in the set
    mule = report["rules"]["mule-destination"]
    assert (mule["mode"], mule["hits"], mule["precision"], mule["recall"]) == ("shadow", 2, 0.5, 0.5)
    assert report["any_active_rule"]["hits"] == 0  # shadow hits do not count
    # named explicitly, a disabled rule is backtested at its stored version
    code, out, _ = run(
        capsys, "backtest", "--csv", str(csv), "--url", url, "--rule", "drained-account-transfer", "--json"
    )
    drained = json.loads(out)["rules"]["drained-account-transfer"]
    assert (
        drained["version"],
        drained["mode"],
        drained["hits"],
        drained["precision"],
        drained["recall"],
    ) == (2, "disabled", 2, 1.0, 1.0)
    code, _, err = run(capsys, "backtest", "--csv", str(csv), "--url", url, "--rule", "nope")
    assert code == 1 and "no such rule: nope" in err
