"""The decision log's own JSON lines (one write per call) say what structlog's ``decision`` event would:
same keys, same values, for decided answers only, with the call's context."""

from __future__ import annotations

import io
import json
import math
import time
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

import sentinel.server.decision_log as decision_log
from sentinel.logs import configure_logging
from sentinel.server.decision_log import DecisionLog
from sentinel.server.requests import Decided, Rejection, ShadowOpinion

OUTCOMES = (1, 2, 3)  # sentinel.v1.Outcome: APPROVE, REVIEW, DECLINE

shadows = st.none() | st.builds(
    ShadowOpinion,
    st.sampled_from(["if-2026-11-23", "gbt-2"]),
    st.floats(0, 1),
    st.sampled_from(OUTCOMES),
    st.floats(0, 1),
)
answers = st.builds(
    Decided,
    st.just(b"\x08\x01"),
    st.sampled_from(OUTCOMES),
    st.floats(0, 1),
    st.booleans(),
    st.sampled_from(["gbt-2026-12-07", 'a "quoted" version']),
    st.integers(0, 2**40),
    st.booleans(),
    shadows,
) | st.just(Rejection(code=None, message="refused"))  # type: ignore[arg-type]


def _lines(monkeypatch: pytest.MonkeyPatch, write: Any) -> list[dict[str, Any]]:
    out = io.BytesIO()
    monkeypatch.setattr(decision_log, "json_lines_out", lambda: out)
    write()
    return [json.loads(line) for line in out.getvalue().decode().splitlines()]


@settings(max_examples=150, deadline=None)
@given(st.lists(answers, max_size=12), st.booleans())
def test_its_lines_are_structlogs_decision_events(decided: list[Any], with_waits: bool) -> None:
    ids = [f"tx-{i}" for i in range(len(decided))]
    waits = [0.001 * i for i in range(len(decided))] if with_waits else []
    log = DecisionLog(1.0)
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        # both renders read the same clock: a pause between them (a busy CI machine) must not count
        patch.setattr(decision_log, "time", SimpleNamespace(perf_counter=lambda: started + 0.0125))
        structlog.contextvars.bind_contextvars(worker=3, caller="svc-a")
        try:
            lines = _lines(patch, lambda: log.write(ids, decided, started, waits))
            patch.setattr(decision_log, "json_lines_out", lambda: None)
            with capture_logs() as events:
                log.write(ids, decided, started, waits)
        finally:
            structlog.contextvars.clear_contextvars()
    assert len(lines) == len(events) == sum(isinstance(answer, Decided) for answer in decided)
    for line, event in zip(lines, events, strict=True):
        assert line.pop("level") == "info" and line.pop("timestamp").endswith("Z")
        assert (line.pop("worker"), line.pop("caller")) == (3, "svc-a")  # the call's context
        line_latency, event_latency = line.pop("latency_ms"), event.pop("latency_ms")
        assert math.isclose(line_latency, event_latency, abs_tol=5.0)  # rendered a moment apart
        event.pop("log_level")
        assert line == event


@pytest.mark.parametrize("level", ["info", "warning"])
def test_a_level_above_info_renders_nothing(
    level: str, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """Configured above info (``log_level``), the log renders no decision at all, not even to have
    structlog drop it."""
    stream = io.TextIOWrapper(io.BytesIO(), write_through=True)
    configure_logging(level, "json", stream)
    through_structlog: list[int] = []
    monkeypatch.setattr(DecisionLog, "_through_structlog", lambda *args: through_structlog.append(1))
    answer = Decided(b"\x08\x01", 1, 0.5, False, "m1")
    DecisionLog(1.0).write(["tx-1", "tx-2"], [answer, answer], time.perf_counter())
    lines = stream.buffer.getvalue().splitlines()  # type: ignore[attr-defined]
    assert (len(lines), through_structlog) == ((2, []) if level == "info" else (0, []))
