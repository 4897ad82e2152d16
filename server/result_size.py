"""How large a ScoreBatch response can grow, known before anything is decided or recorded.

A batch whose response would pass the message limit must be refused up front: refused after its
decisions were committed, the caller holds no answer for decisions the ledger has (issue 14). A
Decision's size is bounded: ids by validation, rules fired and reasons by the rule set in force, the
shadow model's opinion by the longest model version.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from sentinel.server.outcome import DECLINE, Thresholds, outcome_of
from sentinel.server.rules.compiler import CompiledRuleSet, RuleSource
from sentinel.server.validate import MAX_ID_LENGTH
from sentinel.v1 import decision_pb2, scoring_pb2


def result_size(result: scoring_pb2.ScoreBatchResult) -> int:
    """Bytes ``result`` takes in a ScoreBatchResponse, its tag and length included."""
    return scoring_pb2.ScoreBatchResponse(results=[result]).ByteSize()


# Thresholds print with 3 decimals, so their values do not change a reason's length.
_ANY_THRESHOLDS = Thresholds(review=0.5, decline=0.9)
_MODEL_VERSION_LENGTH = 64  # at most, by sentinel.model_export.metadata.VERSION_PATTERN


def _largest_result(rule_set: CompiledRuleSet) -> int:
    """Bytes the largest decision ``outcome_of`` can make under ``rule_set`` takes as a batch result: ids
    of the longest valid length, every field at its widest, every rule fired with the reason it gives
    alone (one per rule at most; a shadow rule's LOW_RISK only adds), and the longest set of reasons
    that name no rule. A rejection's item error (key reused, not recorded) is always shorter."""
    decision = decision_pb2.Decision(
        transaction_id="x" * MAX_ID_LENGTH,
        idempotency_key="x" * MAX_ID_LENGTH,
        outcome=DECLINE,
        risk_score=0.5,
        model_score=0.5,
        model_version="x" * _MODEL_VERSION_LENGTH,
        ledger_sequence=-1,  # the widest varint
        degraded=True,
        replayed=True,
        decided_at=timestamp_pb2.Timestamp(seconds=-1, nanos=999_999_999),
        # Whether a shadow model is set or not (a replay may carry one from earlier).
        shadow=decision_pb2.ShadowScore(
            model_version="x" * _MODEL_VERSION_LENGTH, model_score=0.5, risk_score=0.5, outcome=DECLINE
        ),
    )
    for rule in rule_set.rules:
        alone = outcome_of(0.0, [rule], _ANY_THRESHOLDS, degraded=False, fail_closed=False)
        decision.rules_fired.extend(alone.rules_fired)
        decision.reasons.extend(alone.reasons)
    unnamed = (
        outcome_of(score, [], _ANY_THRESHOLDS, degraded=degraded, fail_closed=fail_closed).reasons
        for score in (0.0, 0.7, 1.0)
        for degraded, fail_closed in ((False, False), (True, False), (True, True))
    )
    decision.reasons.extend(
        max(unnamed, key=lambda reasons: decision_pb2.Decision(reasons=reasons).ByteSize())
    )
    return result_size(scoring_pb2.ScoreBatchResult(decision=decision))


class ResultSizes:
    """The bound of one batch result, computed once per rule-set generation. A replayed decision was
    made under an earlier rule set, so the largest bound seen so far holds."""

    def __init__(self, rules: RuleSource) -> None:
        self._rules = rules
        self._rule_set: CompiledRuleSet | None = None
        self._largest = 0

    def largest(self) -> int:
        """Bytes one result with the longest ids can take (see ``_largest_result``)."""
        rule_set = self._rules.current
        if rule_set is not self._rule_set:
            self._largest = max(self._largest, _largest_result(rule_set))
            self._rule_set = rule_set
        return self._largest
