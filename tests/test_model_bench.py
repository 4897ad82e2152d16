"""``sentinel bench model`` runs end to end and reports parity (small forest, few calls; no timing checks)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from sentinel.bench.model import run
from sentinel.cli import main
from sentinel.hotpath import FEATURE_COUNT

PAYSIM_CUT = Path(str(resources.files("sentinel.bench") / "data" / "paysim_cut.csv"))


def test_bench_reports_every_figure_on_one_forest() -> None:
    result = run(PAYSIM_CUT, trees=10, max_samples=64, repeats=2, single_calls=100, boosting_iterations=20)
    assert result["parity_max_abs_diff"] <= 1e-5
    assert result["boosting_parity_max_abs_diff"] <= 1e-5
    assert result["boosting_iterations"] == 20  # 2,570 rows: scikit-learn's early stopping stays off
    assert result["boosting_graph_nodes"] == 2
    assert result["features"] == FEATURE_COUNT
    assert result["fused_graph_nodes"] == 5
    assert result["stock_graph_nodes"] > 10 * 20
    for key in (
        "fused_single_row_us",
        "stock_single_row_us",
        "fused_us_per_row_batch256",
        "boosting_single_row_us",
        "boosting_us_per_row_batch256",
    ):
        assert result[key] > 0
    assert result["cpu_time_us"]["boosting_single_row"] > 0
    assert result["speedup_single_row"] == pytest.approx(
        result["stock_single_row_us"] / result["fused_single_row_us"], rel=0.05
    )


def test_bench_model_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "model", "--json", "--trees", "5", "--max-samples", "32", "--repeats", "1"]
    assert main([*args, "--single-calls", "20", "--boosting-iterations", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trees"] == 5
    assert result["boosting_max_iter"] == result["boosting_iterations"] == 5
