"""``sentinel bench wire`` runs end to end: both paths give the same bytes, and the figures are there."""

from __future__ import annotations

import argparse
import json

import pytest

from sentinel.bench import wire


def test_json_output_has_the_promised_figures(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    wire.register(parser.add_subparsers())
    args = parser.parse_args(["wire", "--json", "--transactions", "50", "--accounts", "5", "--repeats", "2"])
    assert args.handler(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["transactions"] == 50 and result["rules"] > 0
    for key in (
        "decode_us_per_txn",
        "decode_reference_us_per_txn",
        "respond_us_per_txn",
        "respond_reference_us_per_txn",
    ):
        assert result[key] > 0
