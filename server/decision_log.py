"""The decision log: one JSON line per decision (a ``log_sample_rate`` share of them), written once per
call.

Ops read one ``decision`` event per decision, so the schema stays that of a structlog event (event,
transaction_id, outcome, risk_score, model_version, degraded, replayed, latency_ms, the worker's
context, level, timestamp). What changes is the cost: the parts every line of a call shares (context,
timestamp, model version) are rendered once, and the lines are written with one call. Transaction ids
need no JSON escaping: validation allows only ``[A-Za-z0-9._:-]`` in them. Console logs (a terminal)
and levels above info fall back to structlog or to nothing.

While a shadow model is set, a decision's event also has ``shadow``: that model's version, score, risk
score and outcome (``{"model_version": ..., "model_score": ..., "risk_score": ..., "outcome": ...}``),
its version rendered once per call like the model version; without one the line is unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import structlog

from sentinel.logs import json_lines_out, level_logged
from sentinel.server.outcome import OUTCOME_NAMES
from sentinel.server.requests import Decided, ShadowOpinion

log = structlog.get_logger("sentinel.decisions")

_BOOL = ("false", "true")
# The fixed parts of a line, rendered once: the outcome field, and the degraded and replayed fields.
_OUTCOME_FIELDS = {number: f'"outcome":"{name}",' for number, name in OUTCOME_NAMES.items()}
_FLAG_FIELDS = {
    (degraded, replayed): f'"degraded":{_BOOL[degraded]},"replayed":{_BOOL[replayed]},'
    for degraded in (False, True)
    for replayed in (False, True)
}


class DecisionLog:
    """Writes decision events for the answered decisions of a call."""

    def __init__(self, sample_rate: float) -> None:
        self._rate = sample_rate

    def write(
        self, ids: Sequence[str], answers: Sequence[object], started: float, waits: Sequence[float] = ()
    ) -> None:
        """One event per ``Decided`` answer (``ids[i]`` its transaction id); latency counts from
        ``started`` (perf_counter), plus the item's wait before it when ``waits`` are given."""
        out = json_lines_out()
        if out is None and not level_logged():  # a level above info drops decision events
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        rate = self._rate
        chosen = [
            i
            for i, answer in enumerate(answers)
            if answer.__class__ is Decided and (rate >= 1.0 or random.random() < rate)
        ]
        if not chosen:
            return
        if out is None:
            self._through_structlog(ids, answers, chosen, elapsed_ms, waits)
            return
        tail = orjson.dumps(
            {
                **structlog.contextvars.get_contextvars(),
                "level": "info",
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
        )[1:]
        end = tail.decode() + "\n"
        # Without per-item waits every line of the call has the same latency: its end is rendered once.
        call_end = "" if waits else _line_end(elapsed_ms, end)
        versions: dict[str, str] = {}
        lines: list[str] = []
        append, names, flags = lines.append, _OUTCOME_FIELDS, _FLAG_FIELDS
        for i in chosen:
            answer: Decided = answers[i]  # type: ignore[assignment]
            version = versions.get(answer.model_version)
            if version is None:
                version = versions[answer.model_version] = orjson.dumps(answer.model_version).decode()
            shadow_field = "" if answer.shadow is None else _shadow_field(answer.shadow, versions)
            line_end = call_end or _line_end(elapsed_ms + waits[i] * 1000, end)
            risk = round(answer.risk_score, 4)
            append(
                f'{{"transaction_id":"{ids[i]}",{names[answer.outcome]}"risk_score":{risk},'
                f'"model_version":{version},{flags[answer.degraded, answer.replayed]}{shadow_field}{line_end}'
            )
        out.write("".join(lines).encode())
        out.flush()

    @staticmethod
    def _through_structlog(
        ids: Sequence[str],
        answers: Sequence[object],
        chosen: list[int],
        elapsed_ms: float,
        waits: Sequence[float],
    ) -> None:
        for i in chosen:
            answer: Decided = answers[i]  # type: ignore[assignment]
            latency = elapsed_ms + waits[i] * 1000 if waits else elapsed_ms
            shadow = {} if answer.shadow is None else {"shadow": _shadow_event(answer.shadow)}
            log.info(
                "decision",
                transaction_id=ids[i],
                outcome=OUTCOME_NAMES[answer.outcome],
                risk_score=round(answer.risk_score, 4),
                model_version=answer.model_version,
                degraded=answer.degraded,
                replayed=answer.replayed,
                **shadow,
                latency_ms=round(latency, 3),
            )


def _line_end(latency_ms: float, end: str) -> str:
    """A line's last fields: its latency, the event name, and the call's context, level and timestamp."""
    return f'"latency_ms":{round(latency_ms, 3)},"event":"decision",{end}'


def _shadow_field(shadow: ShadowOpinion, versions: dict[str, str]) -> str:
    """``"shadow":{...},`` of a JSON line; ``versions``: the call's versions rendered so far."""
    version = versions.get(shadow.model_version)
    if version is None:
        version = versions[shadow.model_version] = orjson.dumps(shadow.model_version).decode()
    return (
        f'"shadow":{{"model_version":{version},"model_score":{round(shadow.model_score, 4)},'
        f'"risk_score":{round(shadow.risk_score, 4)},"outcome":"{OUTCOME_NAMES[shadow.outcome]}"}},'
    )


def _shadow_event(shadow: ShadowOpinion) -> dict[str, object]:
    return {
        "model_version": shadow.model_version,
        "model_score": round(shadow.model_score, 4),
        "risk_score": round(shadow.risk_score, 4),
        "outcome": OUTCOME_NAMES[shadow.outcome],
    }
