"""The output half of the compiled request path: decisions and scoring responses as protobuf bytes.

Per micro-batch, after the rules and the model::

    table = RuleTable(...)   # once per rule set: the columns of evaluate_rules' matches, in order
    encoded = encode_decisions(table, ids, keys, scores, matches, review, decline, degraded=...,
                               fail_closed=..., model_version=..., decided_at_seconds=...,
                               decided_at_nanos=...)
    # encoded.decision_bytes[i] == Decision(...).SerializeToString(deterministic=True), as the
    # server's outcome policy (sentinel.server.outcome.outcome_of) and pipeline build it today

    # with a shadow (challenger) model's scores of the same rows, each Decision also carries its
    # opinion (field 13, ShadowScore), decided by the same compiled policy in the same pass:
    encoded = encode_decisions(..., shadow=ShadowModel(version, shadow_scores, review, decline))
    encoded.shadow_outcomes, encoded.shadow_risk_scores   # what the shadow model would have decided

    # with who asked for each row (a batch's rows come from a few calls, one caller each), each Decision
    # also names its caller (field 14): row i's is names[rows[i]]
    encoded = encode_decisions(..., callers=Callers(names, rows))

and per call, once every item is answered::

    score_batch_response(kinds, payloads, ledger_sequences, replayed) -> ScoreBatchResponse bytes

The answer-time fields of a decision (``ledger_sequence``, field 8, and ``replayed``, field 10) are
spliced into their field-number places, so a response is byte for byte ``SerializeToString`` of the
message built with the generated classes (given decision bytes that are a deterministic serialization;
fields 8 and 10 already in them are replaced). The hot path never imports the generated protobuf
modules: ``_respond`` writes the wire format itself and tests/test_decision_encoding.py holds it to
the generated classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from sentinel.hotpath import _respond
from sentinel.hotpath._constants import (
    ACTION_ALLOW,
    ACTION_DECLINE,
    ACTION_REVIEW,
    ACTION_TAG,
    KIND_DECISION,
    KIND_ERROR,
    OUTCOME_APPROVE,
    OUTCOME_DECLINE,
    OUTCOME_REVIEW,
)

_Array = TypeVar("_Array", bound=npt.NDArray[np.generic])
_INT64 = (-(2**63), 2**63 - 1)
_ACTION_REASONS = {
    ACTION_DECLINE: ("RULE_DECLINE", "rule {} v{} matched"),
    ACTION_REVIEW: ("RULE_REVIEW", "rule {} v{} matched"),
    ACTION_ALLOW: ("RULE_ALLOW", "allow-listed by rule {} v{}"),
    ACTION_TAG: ("RULE_TAG", "tagged by rule {} v{}"),
}


class RuleTable:
    """The rules of a rule set as the decision encoder needs them, column j = rule j of the matches.

    Built once per rule set from plain values (for a ``CompiledRuleSet``: ``[r.rule_id for r in
    rules]``, ``[r.version ...]``, ``[r.action.proto ...]``, ``[r.priority ...]``, ``[r.severity ...]``,
    ``[r.shadow ...]``). ``actions`` are decision.proto RuleAction numbers (1 DECLINE, 2 REVIEW,
    3 ALLOW, 4 TAG). The policy visits matched rules by descending priority, ties in column order (a
    stable sort, as ``outcome_of`` does); a CompiledRuleSet's columns are in that order already, any
    other order is sorted here. Each rule's ``rules_fired`` entry and its own reason are serialized
    here, once.
    """

    __slots__ = (
        "actions",
        "hit_entries",
        "order",
        "priorities",
        "reason_entries",
        "rule_ids",
        "severities",
        "shadow",
        "size",
        "versions",
    )

    size: int
    rule_ids: tuple[str, ...]
    versions: tuple[int, ...]
    order: npt.NDArray[np.int64]  # the columns in policy order
    actions: npt.NDArray[np.uint8]
    priorities: npt.NDArray[np.int64]
    severities: npt.NDArray[np.float64]
    shadow: npt.NDArray[np.uint8]
    hit_entries: tuple[bytes, ...]  # column j's RuleHit as a Decision field-5 entry
    reason_entries: tuple[bytes, ...]  # column j's own Reason as a Decision field-6 entry

    def __init__(
        self,
        rule_ids: Sequence[str],
        versions: Sequence[int],
        actions: Sequence[int],
        priorities: Sequence[int],
        severities: Sequence[float],
        shadow: Sequence[bool],
    ) -> None:
        size = len(rule_ids)
        lengths = {len(versions), len(actions), len(priorities), len(severities), len(shadow)}
        if lengths != {size}:
            raise ValueError(
                "rule_ids, versions, actions, priorities, severities and shadow differ in length"
            )
        for name, values in (("versions", versions), ("priorities", priorities)):
            for value in values:
                if not _INT64[0] <= value <= _INT64[1]:
                    raise ValueError(f"{name} must fit in int64, got {value}")
        for action in actions:
            if action not in _ACTION_REASONS:
                raise ValueError(f"actions must be RuleAction numbers 1 to 4, got {action}")
        self.size = size
        self.rule_ids = tuple(str(rule_id) for rule_id in rule_ids)
        self.versions = tuple(int(version) for version in versions)
        self.order = _readonly(
            np.array(sorted(range(size), key=lambda j: -int(priorities[j])), dtype=np.int64)
        )
        self.actions = _readonly(np.array(actions, dtype=np.uint8))
        self.priorities = _readonly(np.array([int(p) for p in priorities], dtype=np.int64))
        self.severities = _readonly(np.array([float(s) for s in severities], dtype=np.float64))
        self.shadow = _readonly(np.array([bool(s) for s in shadow], dtype=np.uint8))
        self.hit_entries = tuple(
            _respond.rule_hit_entry(rule_id, version, int(action), bool(flag))
            for rule_id, version, action, flag in zip(
                self.rule_ids, self.versions, actions, shadow, strict=True
            )
        )
        self.reason_entries = tuple(
            _respond.reason_entry(code, template.format(rule_id, version))
            for rule_id, version, (code, template) in zip(
                self.rule_ids, self.versions, (_ACTION_REASONS[a] for a in actions), strict=True
            )
        )

    def __len__(self) -> int:
        return self.size


class ShadowModel(NamedTuple):
    """A shadow (challenger) model's scores of the batch's rows, with what it needs to decide them.

    ``model_scores``: float32 [n], the same rows as the active model's scores. The thresholds are the
    shadow model's own (its metadata's), not the active model's nor any override of them."""

    model_version: str
    model_scores: npt.NDArray[np.float32]
    review_threshold: float
    decline_threshold: float


class Callers(NamedTuple):
    """Who requested each row's decision: row ``i``'s caller is ``names[rows[i]]`` (``rows``: int32 [n]).

    Names and indices rather than a name per row because a batch joins a few calls, each with one
    caller: the pipeline knows the callers per call and the rows per call, never needing a list per
    row."""

    names: list[str]
    rows: npt.NDArray[np.int32]


class EncodedDecisions(NamedTuple):
    """The decisions of a batch: outcome numbers, risk scores and serialized Decisions, by row; with a
    shadow model, also the outcomes and risk scores it would have given (None without one)."""

    outcomes: npt.NDArray[np.uint8]
    risk_scores: npt.NDArray[np.float64]
    decision_bytes: list[bytes]
    shadow_outcomes: npt.NDArray[np.uint8] | None = None
    shadow_risk_scores: npt.NDArray[np.float64] | None = None


def encode_decisions(
    table: RuleTable,
    transaction_ids: list[str],
    idempotency_keys: list[str],
    model_scores: npt.NDArray[np.float32],
    matches: npt.NDArray[np.uint8],
    review_threshold: float,
    decline_threshold: float,
    *,
    degraded: bool,
    fail_closed: bool,
    model_version: str,
    decided_at_seconds: int,
    decided_at_nanos: int,
    shadow: ShadowModel | None = None,
    callers: Callers | None = None,
) -> EncodedDecisions:
    """Decide and serialize every row: ``model_scores`` float32 [n], ``matches`` uint8 [n, len(table)]
    (nonzero: rule j matched row i; r may be 0).

    ``decision_bytes[i]`` is ``Decision(transaction_id, outcome, risk_score, model_score,
    rules_fired, reasons, model_version, degraded, idempotency_key, decided_at)`` with the Verdict of
    ``outcome_of(float(model_scores[i]), matched rules, Thresholds(review, decline), degraded=...,
    fail_closed=...)``, serialized deterministically; ``ledger_sequence`` and ``replayed`` are left
    unset (they are set when answering).

    With ``shadow``, every Decision also gets ``shadow = ShadowScore(model_version, model_score,
    risk_score, outcome)``: ``model_score`` is ``float(shadow.model_scores[i])``, and ``outcome`` and
    ``risk_score`` are those of ``outcome_of(model_score, the same matched rules, Thresholds(shadow's
    review, decline), degraded=..., fail_closed=...)``, computed by the same compiled policy in the same
    pass (its reasons are not kept); they are also returned as ``shadow_outcomes`` and
    ``shadow_risk_scores``. The rest of each Decision is what it is without a shadow.

    With ``callers``, every Decision also gets ``caller = callers.names[callers.rows[i]]`` (field 14,
    the last; left out when the name is empty, as proto3 does).

    ValueError on mismatched lengths or a caller index out of range, OverflowError when
    ``decided_at_nanos`` does not fit in int32 or ``decided_at_seconds`` in int64,
    UnicodeEncodeError for strings with lone surrogates.
    """
    return EncodedDecisions(
        *_respond.encode_decisions(
            table,
            transaction_ids,
            idempotency_keys,
            model_scores,
            matches,
            review_threshold,
            decline_threshold,
            degraded,
            fail_closed,
            model_version,
            decided_at_seconds,
            decided_at_nanos,
            *((None, None, 0.0, 0.0) if shadow is None else shadow),  # version, scores, thresholds
            *((None, None) if callers is None else callers),  # names, each row's index into them
        )
    )


def score_batch_response(
    kinds: npt.NDArray[np.uint8],
    payloads: list[bytes],
    ledger_sequences: npt.NDArray[np.int64],
    replayed: npt.NDArray[np.uint8],
) -> bytes:
    """A serialized ScoreBatchResponse: one ScoreBatchResult per item, in order.

    ``kinds[i]`` is KIND_DECISION (``payloads[i]``: a serialized Decision, answered with
    ``ledger_sequences[i]`` and ``replayed[i]`` != 0) or KIND_ERROR (a serialized ItemError, the
    other two ignored). ValueError for another kind, mismatched lengths or decision bytes that are not
    a protobuf message.
    """
    return _respond.score_batch_response(kinds, payloads, ledger_sequences, replayed)


def score_response(payload: bytes, ledger_sequence: int, replayed: bool) -> bytes:
    """A serialized ScoreResponse around a serialized Decision, answered with the two fields."""
    return _respond.score_response(payload, ledger_sequence, replayed)


def stream_responses(
    transaction_ids: list[str],
    kinds: npt.NDArray[np.uint8],
    payloads: list[bytes],
    ledger_sequences: npt.NDArray[np.int64],
    replayed: npt.NDArray[np.uint8],
) -> list[bytes]:
    """One serialized ScoreStreamResponse per item (``transaction_id`` and decision or error)."""
    return _respond.stream_responses(transaction_ids, kinds, payloads, ledger_sequences, replayed)


def _readonly(array: _Array) -> _Array:
    array.setflags(write=False)
    return array


__all__ = [
    "ACTION_ALLOW",
    "ACTION_DECLINE",
    "ACTION_REVIEW",
    "ACTION_TAG",
    "KIND_DECISION",
    "KIND_ERROR",
    "OUTCOME_APPROVE",
    "OUTCOME_DECLINE",
    "OUTCOME_REVIEW",
    "Callers",
    "EncodedDecisions",
    "RuleTable",
    "ShadowModel",
    "encode_decisions",
    "score_batch_response",
    "score_response",
    "stream_responses",
]
