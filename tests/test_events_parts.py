"""The decision events' parts that need no server: signatures (checked by the README's receiver example),
event ids and bodies, retry delays, the circuit breaker, webhook URL rules."""

from __future__ import annotations

import hashlib
import hmac
import os
import runpy
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from sentinel.events.body import build_event, event_id, sequence_of
from sentinel.events.retry import CircuitBreaker, CircuitState, retry_delay_s
from sentinel.events.signing import new_secret, signature_header
from sentinel.events.store import InvalidSubscription, check_webhook_url, redacted
from sentinel.v1 import decision_pb2, transaction_pb2

RECEIVER_EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "webhook_receiver.py"


@pytest.fixture(scope="module")
def example_verify() -> Any:
    """``verify`` of docs/examples/webhook_receiver.py, the receiver the README shows, with a known secret."""
    os.environ["SENTINEL_WEBHOOK_SECRET"] = "whsec_known"
    try:
        return runpy.run_path(str(RECEIVER_EXAMPLE), run_name="example")["verify"]
    finally:
        del os.environ["SENTINEL_WEBHOOK_SECRET"]


def test_the_receiver_example_accepts_our_signature_and_rejects_a_wrong_one(example_verify: Any) -> None:
    body, now = b'{"id":"evt_1"}', 1_700_000_000
    assert example_verify(signature_header(["whsec_known"], now, body), body, now)
    assert not example_verify(signature_header(["whsec_other"], now, body), body, now)
    assert not example_verify(signature_header(["whsec_known"], now, body), b'{"id":"evt_2"}', now)
    # a second secret (rotation): the receiver still on the old secret accepts either position
    assert example_verify(signature_header(["whsec_new", "whsec_known"], now, body), body, now)
    assert not example_verify("", body, now)


def test_the_receiver_example_rejects_old_and_future_timestamps(example_verify: Any) -> None:
    body, signed_at = b"{}", 1_700_000_000
    header = signature_header(["whsec_known"], signed_at, body)
    assert example_verify(header, body, signed_at + 299)
    assert not example_verify(header, body, signed_at + 301)
    assert not example_verify(header, body, signed_at - 301)


def test_signature_header_is_hmac_sha256_over_timestamp_and_body() -> None:
    header = signature_header(["s1", "s2"], 42, b"body")
    expected = [hmac.new(key, b"42.body", hashlib.sha256).hexdigest() for key in (b"s1", b"s2")]
    assert header == f"t=42,v1={expected[0]},v1={expected[1]}"


def test_secrets_are_fresh_and_prefixed() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and len(first) == 6 + 43 and first != second


def test_event_ids_round_trip_and_reject_anything_else() -> None:
    assert sequence_of(event_id(12345)) == 12345
    for bad in ("12345", "evt_", "evt_0", "evt_-1", "evt_1a", "evt_١٢"):
        with pytest.raises(ValueError):
            sequence_of(bad)


def test_body_is_versioned_json_with_exact_amounts() -> None:
    transaction = transaction_pb2.Transaction(
        transaction_id="t-1", account_id="C1", type=transaction_pb2.TRANSACTION_TYPE_PAYMENT
    )
    transaction.event_time.FromSeconds(1_700_000_000)
    decision = decision_pb2.Decision(
        transaction_id="t-1",
        outcome=decision_pb2.OUTCOME_DECLINE,
        model_version="m7",
        reasons=[decision_pb2.Reason(code="RULE", description="too much")],
        rules_fired=[
            decision_pb2.RuleHit(rule_id="big", rule_version=3, action=decision_pb2.RULE_ACTION_DECLINE),
            decision_pb2.RuleHit(rule_id="trial", rule_version=1, shadow=True),
        ],
    )
    recorded_at = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    event = build_event(
        {
            "sequence": 77,
            "recorded_at": recorded_at,
            "account_id": "C1",
            "counterparty_id": "M1",
            "amount": "12345678901234567.10",
            "currency": "EUR",
            "outcome": "DECLINE",
            "risk_score": 0.97,
            "transaction_bytes": transaction.SerializeToString(),
            "decision_bytes": decision.SerializeToString(),
        }
    )
    body = orjson.loads(event.body)
    assert (event.event_id, event.routing_key, event.account_id) == (
        "evt_77",
        "decision.recorded.decline",
        "C1",
    )
    assert {k: body[k] for k in ("id", "type", "api_version", "created")} == {
        "id": "evt_77",
        "type": "decision.recorded",
        "api_version": "v1",
        "created": "2025-01-31T12:00:00.123456Z",
    }
    data = body["data"]
    assert Decimal(data["amount"]) == Decimal("12345678901234567.10") and isinstance(data["amount"], str)
    assert data["rules"] == [{"rule_id": "big", "rule_version": 3, "action": "DECLINE"}]  # no shadow rule
    assert (data["ledger_sequence"], data["outcome"], data["transaction_type"]) == (77, "DECLINE", "PAYMENT")
    assert data["reasons"] == [{"code": "RULE", "description": "too much"}]


def test_retry_delay_is_full_jitter_under_an_exponential_cap() -> None:
    assert retry_delay_s(1, 1.0, 100.0, rng=lambda: 0.999) == pytest.approx(0.999)
    assert retry_delay_s(4, 1.0, 100.0, rng=lambda: 0.5) == pytest.approx(4.0)
    assert retry_delay_s(40, 1.0, 100.0, rng=lambda: 1.0) == 100.0
    assert retry_delay_s(3, 1.0, 100.0, rng=lambda: 0.0) == 0.0


def test_circuit_opens_after_consecutive_failures_then_lets_one_probe_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, cooldown_s=10.0, clock=lambda: now[0])
    breaker.record(succeeded=0, failed=2)
    assert breaker.state is CircuitState.CLOSED
    breaker.record(succeeded=0, failed=1)
    assert breaker.state is CircuitState.OPEN and breaker.wait_s() == 10.0
    now[0] = 10.0
    assert breaker.state is CircuitState.HALF_OPEN and breaker.wait_s() == 0.0
    breaker.record(succeeded=0, failed=1)  # the probe failed: a whole cool-down again
    assert breaker.state is CircuitState.OPEN and breaker.wait_s() == 10.0
    now[0] = 20.0
    breaker.record(succeeded=1, failed=0)
    assert breaker.state is CircuitState.CLOSED
    breaker.record(succeeded=0, failed=2)
    assert breaker.state is CircuitState.CLOSED  # the success reset the count


@pytest.mark.parametrize(
    ("url", "loopback_allowed", "accepted"),
    [
        ("https://hooks.example.com/sentinel", False, True),
        ("http://hooks.example.com/sentinel", True, False),
        ("http://127.0.0.1:8080/hook", False, False),
        ("http://127.0.0.1:8080/hook", True, True),
        ("http://[::1]:8080/hook", True, True),
        ("http://localhost:8080/hook", True, True),
        ("http://127.0.0.1.example.com/hook", True, False),
        ("https://user:pw@hooks.example.com/", False, False),
        ("ftp://hooks.example.com/", True, False),
        ("https://hooks.example.com:99999/", False, False),
        ("", False, False),
    ],
)
def test_webhook_urls(url: str, loopback_allowed: bool, accepted: bool) -> None:
    if accepted:
        assert check_webhook_url(url, loopback_allowed) == url
    else:
        with pytest.raises(InvalidSubscription):
            check_webhook_url(url, loopback_allowed)


def test_broker_url_is_listed_without_its_password() -> None:
    assert (
        redacted("amqp://sentinel:s3cret@mq.internal:5672/prod")
        == "amqp://sentinel:***@mq.internal:5672/prod"
    )
    assert redacted("amqp://mq.internal/") == "amqp://mq.internal/"
