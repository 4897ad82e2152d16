"""The *outcome* stage: combine the rules that matched and the model score into an outcome.

Policy, in order:
1. Shadow rules never change anything; they are reported (flagged) and counted.
2. An ALLOW rule (allow-list override) approves when no matched DECLINE/REVIEW rule has a higher
   priority than the highest matched ALLOW rule.
3. Otherwise the outcome is the strongest of: matched DECLINE/REVIEW rules, and the model score
   against the thresholds (``decline_threshold`` -> DECLINE, ``review_threshold`` -> REVIEW).
4. Without account state in ``fail_closed`` mode, an APPROVE becomes REVIEW.
The risk score is the noisy-OR of the model score and the severities of matched active rules,
``1 - (1 - model) * prod(1 - severity)``: each matched rule is independent evidence of fraud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sentinel.ledger.records import Outcome as OutcomeName
from sentinel.server.rules.definitions import RuleAction
from sentinel.v1 import decision_pb2

APPROVE, REVIEW, DECLINE = (
    decision_pb2.OUTCOME_APPROVE,
    decision_pb2.OUTCOME_REVIEW,
    decision_pb2.OUTCOME_DECLINE,
)
# Outcome names as logs, metrics and the ledger spell them.
OUTCOME_NAMES: dict[int, OutcomeName] = {APPROVE: "APPROVE", REVIEW: "REVIEW", DECLINE: "DECLINE"}
_RULE_OUTCOME = {RuleAction.DECLINE: DECLINE, RuleAction.REVIEW: REVIEW}
_SEVERITY_ORDER = {APPROVE: 0, REVIEW: 1, DECLINE: 2}


class MatchedRule(Protocol):
    """What the policy needs to know about a rule that matched (a compiled rule provides it)."""

    @property
    def rule_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def action(self) -> RuleAction: ...
    @property
    def priority(self) -> int: ...
    @property
    def severity(self) -> float: ...
    @property
    def shadow(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Model score thresholds (0..1)."""

    review: float
    decline: float


@dataclass(slots=True)
class Verdict:
    """The policy's answer for one transaction."""

    outcome: decision_pb2.Outcome
    risk_score: float
    rules_fired: list[decision_pb2.RuleHit]
    reasons: list[decision_pb2.Reason]


def outcome_of(
    model_score: float,
    matched: Sequence[MatchedRule],
    thresholds: Thresholds,
    *,
    degraded: bool,
    fail_closed: bool,
) -> Verdict:
    """Outcome, risk score, fired rules and reasons for one transaction."""
    reasons: list[decision_pb2.Reason] = []
    ordered = sorted(matched, key=lambda rule: -rule.priority)
    active = [rule for rule in ordered if not rule.shadow]
    risk_complement = 1.0 - model_score
    for rule in active:
        risk_complement *= 1.0 - rule.severity
    risk = min(1.0, max(0.0, 1.0 - risk_complement))

    outcome = APPROVE
    allow = next((rule for rule in active if rule.action is RuleAction.ALLOW), None)
    blocking = [rule for rule in active if rule.action in _RULE_OUTCOME]
    if allow is not None and all(rule.priority <= allow.priority for rule in blocking):
        reasons.append(_reason("RULE_ALLOW", f"allow-listed by rule {allow.rule_id} v{allow.version}"))
    else:
        for rule in blocking:
            rule_outcome = _RULE_OUTCOME[rule.action]
            if _SEVERITY_ORDER[rule_outcome] > _SEVERITY_ORDER[outcome]:
                outcome = rule_outcome
            verb = "DECLINE" if rule_outcome == DECLINE else "REVIEW"
            reasons.append(_reason(f"RULE_{verb}", f"rule {rule.rule_id} v{rule.version} matched"))
        if model_score >= thresholds.decline:
            outcome = DECLINE
            reasons.append(
                _reason(
                    "MODEL_SCORE_HIGH",
                    f"model score {model_score:.3f} >= decline threshold {thresholds.decline:.3f}",
                )
            )
        elif model_score >= thresholds.review:
            if outcome == APPROVE:
                outcome = REVIEW
            reasons.append(
                _reason(
                    "MODEL_SCORE_ELEVATED",
                    f"model score {model_score:.3f} >= review threshold {thresholds.review:.3f}",
                )
            )
    for rule in active:
        if rule.action is RuleAction.TAG:
            reasons.append(_reason("RULE_TAG", f"tagged by rule {rule.rule_id} v{rule.version}"))
    if degraded:
        if fail_closed and outcome == APPROVE:
            outcome = REVIEW
            reasons.append(
                _reason("DEGRADED_FAIL_CLOSED", "account state unavailable: fail-closed to REVIEW")
            )
        else:
            reasons.append(_reason("DEGRADED", "account state unavailable: scored on stateless inputs"))
    if not reasons:
        reasons.append(
            _reason(
                "LOW_RISK", f"model score {model_score:.3f} below review threshold {thresholds.review:.3f}"
            )
        )
    hits = [
        decision_pb2.RuleHit(
            rule_id=r.rule_id, rule_version=r.version, action=f"RULE_ACTION_{r.action.value}", shadow=r.shadow
        )
        for r in ordered
    ]
    return Verdict(outcome, risk, hits, reasons)


def _reason(code: str, description: str) -> decision_pb2.Reason:
    return decision_pb2.Reason(code=code, description=description)
