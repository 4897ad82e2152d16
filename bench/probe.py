"""Check, with a real gRPC client, that the calls a load tool sends are answered correctly.

h2load cannot see grpc-status in trailers nor look inside answers, so before and after every
measured run the benchmark sends the very same request bytes a few times with grpcio and checks
the status, the per-item errors of ScoreBatch/ScoreStream answers and whether decisions came back
as idempotent replays. A load run whose probes fail is reported as failed, whatever its speed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from sentinel.bench.scenarios import Scenario
from sentinel.v1 import scoring_pb2

PROBE_CALLS = 3
PROBE_TIMEOUT_S = 30.0


@dataclass(slots=True)
class ProbeResult:
    """What the probe calls got back."""

    calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    decisions: int = 0
    item_errors: int = 0
    replayed: int = 0
    first_error: str = ""

    @property
    def ok(self) -> bool:
        """Every call OK and every item decided."""
        return self.statuses.get("OK", 0) == self.calls and self.item_errors == 0

    def summary(self) -> dict[str, object]:
        """JSON-ready description."""
        return {
            "calls": self.calls,
            "statuses": dict(self.statuses),
            "decisions": self.decisions,
            "item_errors": self.item_errors,
            "replayed_decisions": self.replayed,
            "first_error": self.first_error,
        }


def _count_answer(result: ProbeResult, scenario: Scenario, answer: bytes) -> None:
    if scenario.method == "Score":
        decision = scoring_pb2.ScoreResponse.FromString(answer).decision
        result.decisions += 1
        result.replayed += decision.replayed
    elif scenario.method == "ScoreBatch":
        for item in scoring_pb2.ScoreBatchResponse.FromString(answer).results:
            _count_item(result, item)
    else:
        _count_item(result, scoring_pb2.ScoreStreamResponse.FromString(answer))


def _count_item(
    result: ProbeResult, item: scoring_pb2.ScoreBatchResult | scoring_pb2.ScoreStreamResponse
) -> None:
    if item.HasField("error"):
        result.item_errors += 1
        result.first_error = result.first_error or f"item error {item.error.code}: {item.error.message}"
    else:
        result.decisions += 1
        result.replayed += item.decision.replayed


def probe(
    address: str,
    scenario: Scenario,
    messages: list[bytes],
    calls: int = PROBE_CALLS,
    ca_file: Path | None = None,
) -> ProbeResult:
    """Send ``calls`` calls of ``messages`` (serialized request messages) and check the answers;
    ``ca_file``: the CA of a TLS target (plaintext without)."""
    result = ProbeResult()
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if ca_file is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca_file.read_bytes()), options)
    with channel:
        for _ in range(calls):
            result.calls += 1
            try:
                # No (de)serializers: the exact request bytes go out, answers come back as bytes.
                if scenario.streaming:
                    call = channel.stream_stream(scenario.path, None, None)
                    for answer in call(iter(messages), timeout=PROBE_TIMEOUT_S):
                        _count_answer(result, scenario, answer)
                else:
                    unary = channel.unary_unary(scenario.path, None, None)
                    _count_answer(result, scenario, unary(messages[0], timeout=PROBE_TIMEOUT_S))
                result.statuses["OK"] += 1
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
                result.statuses[code.name] += 1
                details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                result.first_error = result.first_error or f"{code.name}: {details}"
    return result
