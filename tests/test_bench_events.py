"""`sentinel bench events`: the A/B arithmetic (pooled percentiles, the p99 ratio against the target), the
bench receiver's signature check, and a brief real run of both arms (its latency figures are only checked
for presence: a two-second run on a shared machine proves nothing about speed; its deliveries are checked
in full: every decision of a with-round reached the receiver)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from sentinel.bench import ghz
from sentinel.bench.events_bench import P99_TARGET, arm_summary, distinct_event_ids, p99_comparison
from sentinel.bench.webhook_receiver import verified
from sentinel.cli import main
from sentinel.events.signing import new_secret, signature_header


def test_the_p99_ratio_is_with_over_without_against_the_target() -> None:
    assert p99_comparison(10.0, 10.9) == {"p99_ratio": 1.09, "target": P99_TARGET, "within_target": True}
    assert p99_comparison(10.0, 11.5) == {"p99_ratio": 1.15, "target": P99_TARGET, "within_target": False}
    assert p99_comparison(10.0, 9.0)["within_target"] is True  # faster with events: noise, still within
    assert p99_comparison(None, 9.0)["p99_ratio"] is None
    assert p99_comparison(10.0, None)["within_target"] is None


def test_an_arm_pools_its_rounds_calls_before_taking_percentiles() -> None:
    # 99 fast calls in one round, one slow in the other: the pooled p99 sits between them
    summary = arm_summary([np.full(99, 1.0), np.asarray([101.0])], [1.0, 101.0])
    assert summary["calls"] == 100 and summary["p50_ms"] == 1.0
    assert summary["p99_ms"] == pytest.approx(2.0)  # linear interpolation between rank 99 and 100
    assert summary["p99_ms_by_round"] == [1.0, 101.0]
    assert arm_summary([], [])["p99_ms"] is None


def test_event_ids_are_read_from_both_receivers_output() -> None:
    output = "evt_1\nevt_2 decision.recorded acc-1 APPROVE\nevt_1\nsomething else\n"
    assert distinct_event_ids(output) == {"evt_1", "evt_2"}


def test_the_bench_receiver_accepts_only_a_recent_signature_of_the_body() -> None:
    secret, body, now = new_secret(), b'{"id": "evt_1"}', int(time.time())
    header = signature_header([secret], now, body)
    assert verified(header, body, secret, now)
    assert verified(signature_header(["whsec_old", secret], now, body), body, secret, now)  # rotation
    assert not verified(header, body + b" ", secret, now)
    assert not verified(header, body, new_secret(), now)
    assert not verified(header, body, secret, now + 301)  # a captured request replayed later
    assert not verified("v1=" + header.split("v1=")[1], body, secret, now)  # no timestamp


@pytest.mark.skipif(not ghz.ghz_available(), reason="needs ghz: `make bench-tools`")
def test_a_brief_run_measures_both_arms_and_delivers_every_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    results = tmp_path / "RESULTS.md"
    arguments = ["bench", "events", "--rounds", "1", "--rate", "50", "--duration", "2", "--warmup", "0.5"]
    code = main([*arguments, "--json", "--plot-dir", "", "--results", str(results)])
    document = json.loads(capsys.readouterr().out)  # --json: the document and nothing else on stdout
    without, with_ = document["rounds"]
    assert (without["arm"], with_["arm"]) == ("without", "with") and "events" not in without
    summary = document["summary"]
    assert summary["without"]["calls"] > 0 and summary["with"]["calls"] > 0
    assert summary["p99_ratio"] == pytest.approx(
        summary["with"]["p99_ms"] / summary["without"]["p99_ms"], 0.01
    )
    events = with_["events"]
    assert events["decisions_recorded"] >= with_["calls_ok"] > 0
    assert events["events_received"] == events["decisions_recorded"] and events["all_delivered"]
    assert events["at_end"]["dead"] == 0 and events["drained_after_s"] is not None
    assert with_["cpu"]["cores_busy"]["dispatcher"] >= 0 and "receiver" in with_["cpu"]["cores_busy"]
    assert summary["all_delivered"] is True
    # a loaded machine may fall a little short of the offered rate: reported, and the only problem allowed
    problems = [p for r in document["rounds"] for p in r["status_check"]["problems"]]
    assert all(p.startswith("saturated") for p in problems), problems
    assert code == (1 if problems else 0)
    assert "`sentinel bench events`" in results.read_text()
