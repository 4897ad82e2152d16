"""``sentinel bench hotpath`` runs end to end and measures a workload where rules really fire."""

from __future__ import annotations

import argparse
import json

import pytest

from sentinel.bench import hotpath
from sentinel.bench.hotpath import benchmark_rules, synthetic_batch
from sentinel.hotpath import build_features, evaluate_rules


def test_json_output_has_the_promised_figures(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    hotpath.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "hotpath",
            "--json",
            "--batch",
            "16",
            "--accounts",
            "4",
            "--rounds",
            "2",
            "--reference-rounds",
            "1",
            "--repeats",
            "2",
        ]
    )
    assert args.handler(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch"] == 16 and result["rules"] == 20
    for key in ("ns_per_txn", "reference_ns_per_txn", "speedup", "features_ns_per_txn"):
        assert result[key] > 0


def test_benchmark_rules_fire_on_the_synthetic_batch() -> None:
    columns = synthetic_batch(256, 128)
    _, states = build_features(synthetic_batch(1024, 128, seed=8), [None] * 128)
    features, _ = build_features(columns, states)
    hits = evaluate_rules(benchmark_rules(), features, columns).sum(axis=0)
    assert (hits > 0).sum() >= 10  # most rules match some rows, so their whole program runs
