"""``sentinel bench model``: the fused ONNX export against skl2onnx's, on one forest, in one run, with
the gradient-boosting challenger's export (boosting_export.py) timed beside them.

The forest is the production shape (200 trees, max_samples 256) fitted on production features: the
PaySim cut shipped in bench/data (or ``--data``) replayed through the hot-path feature builder, the
way ``sentinel train`` does it. Both exports run in onnxruntime sessions configured like the
server's (one thread, sequential, no spinning). Single-row latency cycles through different rows;
the batch figure scores 256-row blocks (in event order) through the server's ModelScorer, which
sorts each batch into the model's row order (sentinel.model_export.row_order; the unordered figure is
reported alongside). The timings take turns in short repeats: the
reported figure is the best repeat (the machine is shared, and the best repeat is the least
disturbed one), with the median alongside (for the speedup: the median of per-repeat ratios).
Parity is measured on every row against scikit-learn's score_samples and decision_function.

The challenger is a HistGradientBoostingClassifier fitted on the same rows and their fraud labels
with the training defaults (``max_iter`` 300, scikit-learn's other defaults: early stopping only
above 10,000 rows); its single-row and 256-row figures are taken in the same interleaved repeats,
and its parity is against ``predict_proba(X)[:, 1]``. Its batch goes through the same ModelScorer
(it has no row order, so that is the unordered path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

PAYSIM_CUT = "data/paysim_cut.csv"
BATCH = 256
# The challenger's max_iter, as `sentinel train` fits it (model_export/training.py).
BOOSTING_ITERATIONS = 300


def _us_per_call(call: Callable[[int], object], calls: int) -> tuple[float, float]:
    """Microseconds per call of ``call(i)`` over ``calls`` calls: wall clock, and this thread's CPU
    time (which leaves out the time other processes held the core)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(calls):
        call(i)
    return (time.perf_counter() - wall) / calls * 1e6, (time.thread_time() - cpu) / calls * 1e6


def run(
    data: Path,
    trees: int,
    max_samples: int,
    repeats: int,
    single_calls: int,
    boosting_iterations: int = BOOSTING_ITERATIONS,
) -> dict[str, Any]:
    """Fit the forest, export it both ways, fit and export the boosting challenger, and measure
    parity and latency of all three."""
    # Imported here, not at module level: `sentinel --help` must not load scikit-learn.
    import onnxruntime as ort
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

    from sentinel.model_export.boosting_export import boosting_onnx_model
    from sentinel.model_export.fused_export import (
        DECISION_FUNCTION_OUTPUT,
        INPUT_NAME,
        RISK_OUTPUT,
        SCORE_SAMPLES_OUTPUT,
        fused_onnx_model,
    )
    from sentinel.model_export.paysim import read_paysim
    from sentinel.model_export.row_order import METADATA_KEY as ROW_ORDER_KEY
    from sentinel.model_export.row_order import choose_row_order
    from sentinel.model_export.scorer import ModelScorer, latency_session
    from sentinel.model_export.stock_export import STOCK_DECISION_FUNCTION_OUTPUT, stock_onnx_model
    from sentinel.model_export.training import replay_features

    rows = read_paysim(data)
    features = replay_features(rows)
    forest = IsolationForest(n_estimators=trees, max_samples=max_samples, random_state=0).fit(
        features[~rows.is_fraud]
    )
    order = choose_row_order(forest, features[~rows.is_fraud])
    fused_model = fused_onnx_model(forest, metadata={ROW_ORDER_KEY: order.to_json()})
    stock_model = stock_onnx_model(forest)
    fused = latency_session(fused_model.SerializeToString())
    scorer = ModelScorer(fused_model.SerializeToString(), version="bench")
    stock = latency_session(stock_model.SerializeToString())
    stock_input = stock.get_inputs()[0].name
    boosting_model = HistGradientBoostingClassifier(max_iter=boosting_iterations, random_state=0).fit(
        features, rows.is_fraud
    )
    boosting_onnx = boosting_onnx_model(boosting_model)
    boosting = latency_session(boosting_onnx.SerializeToString())
    boosting_scorer = ModelScorer(boosting_onnx.SerializeToString(), version="bench-boosting")

    fused_scores, fused_decision = fused.run(
        [SCORE_SAMPLES_OUTPUT, DECISION_FUNCTION_OUTPUT], {INPUT_NAME: features}
    )
    (stock_decision,) = stock.run([STOCK_DECISION_FUNCTION_OUTPUT], {stock_input: features})
    expected_decision = forest.decision_function(features)
    expected_scores = forest.score_samples(features)
    parity = max(
        float(np.abs(fused_scores[:, 0] - expected_scores).max()),
        float(np.abs(fused_decision[:, 0] - expected_decision).max()),
        float(np.abs(scorer.score(features) + expected_scores).max()),  # risk = -score_samples
    )
    stock_parity = float(np.abs(stock_decision[:, 0] - expected_decision).max())
    boosting_parity = float(
        np.abs(boosting_scorer.score(features) - boosting_model.predict_proba(features)[:, 1]).max()
    )

    singles = [features[i : i + 1].copy() for i in range(len(features))]
    blocks = [features[i : i + BATCH].copy() for i in range(0, len(features) - BATCH + 1, BATCH)]

    def single(session: ort.InferenceSession, name: str, output: str) -> Callable[[int], object]:
        return lambda i: session.run([output], {name: singles[i % len(singles)]})

    def batch(i: int) -> object:  # what the server runs: the scorer, in the model's row order
        return scorer.score(blocks[i % len(blocks)])

    def batch_unordered(i: int) -> object:
        return fused.run([RISK_OUTPUT], {INPUT_NAME: blocks[i % len(blocks)]})

    def boosting_batch(i: int) -> object:
        return boosting_scorer.score(blocks[i % len(blocks)])

    fused_call = single(fused, INPUT_NAME, RISK_OUTPUT)
    stock_call = single(stock, stock_input, STOCK_DECISION_FUNCTION_OUTPUT)
    boosting_call = single(boosting, INPUT_NAME, RISK_OUTPUT)
    stock_calls, batch_calls = max(single_calls // 50, 5), max(single_calls // 100, 4)
    calls = {
        fused_call: single_calls,
        stock_call: stock_calls,
        batch: batch_calls,
        batch_unordered: batch_calls,
        boosting_call: single_calls,
        boosting_batch: batch_calls,
    }
    for call, count in calls.items():
        _us_per_call(call, count)  # warm-up
    # The measurements take turns, so each repeat sees them all under the same load.
    timings: dict[Callable[[int], object], list[tuple[float, float]]] = {call: [] for call in calls}
    for _ in range(repeats):
        for call, count in calls.items():
            timings[call].append(_us_per_call(call, count))
    fused_single = [wall for wall, _ in timings[fused_call]]
    stock_single = [wall for wall, _ in timings[stock_call]]
    fused_batch_per_row = [wall / BATCH for wall, _ in timings[batch]]
    unordered_batch_per_row = [wall / BATCH for wall, _ in timings[batch_unordered]]
    boosting_single = [wall for wall, _ in timings[boosting_call]]
    boosting_batch_per_row = [wall / BATCH for wall, _ in timings[boosting_batch]]

    def best_cpu(call: Callable[[int], object], per: int = 1) -> float:
        return round(min(cpu for _, cpu in timings[call]) / per, 3)

    speedups = [stock / fused for stock, fused in zip(stock_single, fused_single, strict=True)]
    return {
        "fused_single_row_us": round(min(fused_single), 2),
        "stock_single_row_us": round(min(stock_single), 2),
        "speedup_single_row": round(min(stock_single) / min(fused_single), 1),
        "fused_us_per_row_batch256": round(min(fused_batch_per_row), 3),
        "parity_max_abs_diff": parity,
        "fused_single_row_us_median": round(statistics.median(fused_single), 2),
        "stock_single_row_us_median": round(statistics.median(stock_single), 2),
        "speedup_single_row_median": round(statistics.median(speedups), 1),
        "fused_us_per_row_batch256_median": round(statistics.median(fused_batch_per_row), 3),
        "fused_us_per_row_batch256_unordered": round(min(unordered_batch_per_row), 3),
        "fused_us_per_row_batch256_unordered_median": round(statistics.median(unordered_batch_per_row), 3),
        "cpu_time_us": {
            "fused_single_row": best_cpu(fused_call),
            "stock_single_row": best_cpu(stock_call),
            "fused_per_row_batch256": best_cpu(batch, BATCH),
            "fused_per_row_batch256_unordered": best_cpu(batch_unordered, BATCH),
            "boosting_single_row": best_cpu(boosting_call),
            "boosting_per_row_batch256": best_cpu(boosting_batch, BATCH),
        },
        "batch_row_order": json.loads(order.to_json()),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "stock_parity_max_abs_diff": stock_parity,
        "statistic": f"wall clock, best of {repeats} interleaved repeats (median alongside); "
        "cpu_time_us: this thread's CPU time, best repeat",
        "trees": trees,
        "max_samples": int(forest.max_samples_),
        "features": int(forest.n_features_in_),
        "rows": len(features),
        "data": data.name,
        "fused_graph_nodes": len(fused_model.graph.node),
        "stock_graph_nodes": len(stock_model.graph.node),
        "fused_model_bytes": fused_model.ByteSize(),
        "stock_model_bytes": stock_model.ByteSize(),
        "onnxruntime": ort.__version__,
        "boosting_single_row_us": round(min(boosting_single), 2),
        "boosting_single_row_us_median": round(statistics.median(boosting_single), 2),
        "boosting_us_per_row_batch256": round(min(boosting_batch_per_row), 3),
        "boosting_us_per_row_batch256_median": round(statistics.median(boosting_batch_per_row), 3),
        "boosting_parity_max_abs_diff": boosting_parity,
        "boosting_max_iter": boosting_iterations,
        "boosting_iterations": int(boosting_model.n_iter_),
        "boosting_leaves": sum(int(p.nodes["is_leaf"].sum()) for (p,) in boosting_model._predictors),
        "boosting_graph_nodes": len(boosting_onnx.graph.node),
        "boosting_model_bytes": boosting_onnx.ByteSize(),
    }


def _bench_model(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else Path(str(resources.files("sentinel.bench") / PAYSIM_CUT))
    result = run(
        data, args.trees, args.max_samples, args.repeats, args.single_calls, args.boosting_iterations
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"forest: {result['trees']} trees, max_samples {result['max_samples']}, "
        f"{result['features']} features, fitted on {result['rows']} replayed rows of {result['data']}\n"
        f"fused export: {result['fused_graph_nodes']} nodes; "
        f"stock skl2onnx: {result['stock_graph_nodes']} nodes\n"
        f"single row   fused {result['fused_single_row_us']} us   stock {result['stock_single_row_us']} us   "
        f"speedup {result['speedup_single_row']}x\n"
        f"batch of 256 fused {result['fused_us_per_row_batch256']} us/row "
        f"(without row order {result['fused_us_per_row_batch256_unordered']})\n"
        f"parity       max |fused - scikit-learn| = {result['parity_max_abs_diff']:.2e}\n"
        f"({result['statistic']}: medians {result['fused_single_row_us_median']} / "
        f"{result['stock_single_row_us_median']} / {result['fused_us_per_row_batch256_median']})\n"
        f"challenger: HistGradientBoostingClassifier, {result['boosting_iterations']} iterations "
        f"({result['boosting_leaves']} leaves), export {result['boosting_graph_nodes']} nodes\n"
        f"single row   boosting {result['boosting_single_row_us']} us   "
        f"(forest {result['fused_single_row_us']} us)\n"
        f"batch of 256 boosting {result['boosting_us_per_row_batch256']} us/row\n"
        f"parity       max |boosting - predict_proba| = {result['boosting_parity_max_abs_diff']:.2e}\n"
        f"(medians {result['boosting_single_row_us_median']} / "
        f"{result['boosting_us_per_row_batch256_median']})"
    )
    return 0


def register(bench_subparsers: Any) -> None:
    """Add ``sentinel bench model``."""
    parser = bench_subparsers.add_parser(
        "model",
        help="fused vs stock ONNX export of the Isolation Forest, and the boosting challenger's export: "
        "latency and parity",
    )
    parser.add_argument("--data", metavar="CSV", help="PaySim CSV to fit on (default: the bundled cut)")
    parser.add_argument("--trees", type=int, default=200, help="trees (default 200)")
    parser.add_argument("--max-samples", type=int, default=256, help="rows per tree (default 256)")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per figure (default 30)")
    parser.add_argument(
        "--single-calls", type=int, default=1_000, help="fused single-row calls per repeat (default 1000)"
    )
    parser.add_argument(
        "--boosting-iterations",
        type=int,
        default=BOOSTING_ITERATIONS,
        help=f"max_iter of the boosting challenger (default {BOOSTING_ITERATIONS}, as sentinel train)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(handler=_bench_model)
