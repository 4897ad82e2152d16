"""The decision policy: rule priorities, allow-list override, shadow rules, thresholds, degraded modes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sentinel.server.outcome import APPROVE, DECLINE, REVIEW, Thresholds, outcome_of
from sentinel.server.rules.definitions import RuleAction

T = Thresholds(review=0.6, decline=0.8)


@dataclass(frozen=True)
class Matched:
    rule_id: str
    version: int
    action: RuleAction
    priority: int
    severity: float
    shadow: bool


def rule(
    rule_id: str, action: RuleAction, priority: int = 10, severity: float = 0.5, shadow: bool = False
) -> Matched:
    return Matched(rule_id, 3, action, priority, severity, shadow)


def codes(verdict) -> list[str]:  # type: ignore[no-untyped-def]
    return [reason.code for reason in verdict.reasons]


def test_low_score_no_rules_approves() -> None:
    verdict = outcome_of(0.2, [], T, degraded=False, fail_closed=False)
    assert verdict.outcome == APPROVE
    assert verdict.risk_score == pytest.approx(0.2)
    assert codes(verdict) == ["LOW_RISK"]


@pytest.mark.parametrize(("score", "outcome"), [(0.59, APPROVE), (0.6, REVIEW), (0.8, DECLINE)])
def test_model_thresholds(score: float, outcome: int) -> None:
    assert outcome_of(score, [], T, degraded=False, fail_closed=False).outcome == outcome


def test_strongest_rule_wins_and_risk_is_noisy_or() -> None:
    matched = [
        rule("r1", RuleAction.REVIEW, severity=0.5),
        rule("d1", RuleAction.DECLINE, priority=5, severity=0.5),
    ]
    verdict = outcome_of(0.2, matched, T, degraded=False, fail_closed=False)
    assert verdict.outcome == DECLINE
    assert verdict.risk_score == pytest.approx(1 - 0.8 * 0.5 * 0.5)
    assert [hit.rule_id for hit in verdict.rules_fired] == ["r1", "d1"]  # by priority
    assert codes(verdict) == ["RULE_REVIEW", "RULE_DECLINE"]


def test_allow_list_overrides_lower_priority_rules_and_model() -> None:
    matched = [
        rule("vip", RuleAction.ALLOW, priority=100, severity=0.0),
        rule("d1", RuleAction.DECLINE, priority=50),
    ]
    verdict = outcome_of(0.95, matched, T, degraded=False, fail_closed=False)
    assert verdict.outcome == APPROVE
    assert codes(verdict) == ["RULE_ALLOW"]


def test_allow_list_loses_to_higher_priority_decline() -> None:
    matched = [
        rule("vip", RuleAction.ALLOW, priority=10),
        rule("sanctions", RuleAction.DECLINE, priority=900),
    ]
    assert outcome_of(0.1, matched, T, degraded=False, fail_closed=False).outcome == DECLINE


def test_shadow_rules_are_reported_but_never_acted_on() -> None:
    matched = [rule("new-idea", RuleAction.DECLINE, severity=0.9, shadow=True)]
    verdict = outcome_of(0.1, matched, T, degraded=False, fail_closed=False)
    assert verdict.outcome == APPROVE
    assert verdict.risk_score == pytest.approx(0.1)
    assert verdict.rules_fired[0].shadow is True


def test_tag_rule_only_labels() -> None:
    verdict = outcome_of(0.1, [rule("t", RuleAction.TAG, severity=0.0)], T, degraded=False, fail_closed=False)
    assert verdict.outcome == APPROVE
    assert codes(verdict) == ["RULE_TAG"]


def test_degraded_fail_open_and_fail_closed() -> None:
    assert outcome_of(0.1, [], T, degraded=True, fail_closed=False).outcome == APPROVE
    closed = outcome_of(0.1, [], T, degraded=True, fail_closed=True)
    assert closed.outcome == REVIEW
    assert codes(closed) == ["DEGRADED_FAIL_CLOSED"]
    assert outcome_of(0.9, [], T, degraded=True, fail_closed=True).outcome == DECLINE
