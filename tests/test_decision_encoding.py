"""The compiled decision encoder and response builders (sentinel.hotpath.respond) against the reference:
the outcome policy (sentinel.server.outcome), the generated protobuf classes and the servicer's ``_fill``.

Every decision is compared byte for byte with ``Decision(...).SerializeToString(deterministic=True)``
built the way the pipeline builds it, and every response with the message the servicer builds today.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sentinel.hotpath import TransactionColumnsBuilder, build_features_stateless, evaluate_rules
from sentinel.hotpath.respond import (
    KIND_DECISION,
    KIND_ERROR,
    Callers,
    EncodedDecisions,
    RuleTable,
    ShadowModel,
    encode_decisions,
    score_batch_response,
    score_response,
    stream_responses,
)
from sentinel.server.errors import FieldViolation, item_error
from sentinel.server.outcome import APPROVE, DECLINE, REVIEW, Thresholds, Verdict, outcome_of
from sentinel.server.rules.compiler import CompiledRule, build_rule_set, compile_expression, compile_rule
from sentinel.server.rules.definitions import Rule, RuleAction, RuleMode
from sentinel.server.rules.rulefiles import default_rule_specs
from sentinel.server.stage_score import rule_table
from sentinel.server.stored_decisions import sequence_field as _sequence_field
from sentinel.v1 import decision_pb2, errors_pb2, scoring_pb2


def _fill(
    target: scoring_pb2.ScoreBatchResult | scoring_pb2.ScoreStreamResponse,
    answer: decision_pb2.Decision | errors_pb2.ItemError,
) -> None:
    """The reference response: the answer copied into the result with the generated classes (how the
    servicer built responses before the compiled builders)."""
    if isinstance(answer, decision_pb2.Decision):
        target.decision.CopyFrom(answer)
    else:
        target.error.CopyFrom(answer)


INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
PROGRAM = compile_expression("amount > 1")  # the encoder never runs programs; CompiledRule needs one
REFERENCE_THRESHOLDS = Thresholds(review=0.5, decline=0.9)


# ------------------------------------------------------------------------------------------- reference


def reference_decision(
    rules: Sequence[CompiledRule],
    row: npt.NDArray[np.uint8],
    score: float,
    thresholds: Thresholds,
    *,
    transaction_id: str,
    key: str,
    degraded: bool,
    fail_closed: bool,
    model_version: str,
    decided_at: timestamp_pb2.Timestamp,
    shadow: decision_pb2.ShadowScore | None = None,
) -> tuple[Verdict, bytes]:
    """What server/pipeline.py ``_decide_rows`` computes and stores for one row (with ``shadow``: a
    shadow model's opinion, see reference_shadow)."""
    matched = [rules[int(j)] for j in np.flatnonzero(row)]
    verdict = outcome_of(score, matched, thresholds, degraded=degraded, fail_closed=fail_closed)
    decision = decision_pb2.Decision(
        transaction_id=transaction_id,
        outcome=verdict.outcome,
        risk_score=verdict.risk_score,
        model_score=score,
        rules_fired=verdict.rules_fired,
        reasons=verdict.reasons,
        model_version=model_version,
        degraded=degraded,
        idempotency_key=key,
        decided_at=decided_at,
        shadow=shadow,
    )
    return verdict, decision.SerializeToString(deterministic=True)


def reference_shadow(
    rules: Sequence[CompiledRule],
    row: npt.NDArray[np.uint8],
    score: float,
    thresholds: Thresholds,
    *,
    model_version: str,
    degraded: bool,
    fail_closed: bool,
) -> tuple[Verdict, decision_pb2.ShadowScore]:
    """A shadow model's opinion of one row: the same policy (``outcome_of``) on the same matched rules and
    mode, with its score and its own thresholds."""
    matched = [rules[int(j)] for j in np.flatnonzero(row)]
    verdict = outcome_of(score, matched, thresholds, degraded=degraded, fail_closed=fail_closed)
    return verdict, decision_pb2.ShadowScore(
        model_version=model_version, model_score=score, risk_score=verdict.risk_score, outcome=verdict.outcome
    )


def bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def check_batch(
    rules: Sequence[CompiledRule],
    ids: list[str],
    keys: list[str],
    scores: npt.NDArray[np.float32],
    matches: npt.NDArray[np.uint8],
    thresholds: Thresholds,
    *,
    degraded: bool,
    fail_closed: bool,
    model_version: str = "iforest-7",
    seconds: int = 1_700_000_000,
    nanos: int = 123_456_789,
    shadow: tuple[str, npt.NDArray[np.float32], Thresholds] | None = None,
) -> list[bytes]:
    """Encode a batch and assert every row equals the reference; the decision bytes. ``shadow``: a
    shadow model's version, scores and thresholds (then checked by check_shadow too)."""
    if shadow is not None:
        return check_shadow(
            rules,
            ids,
            keys,
            scores,
            matches,
            thresholds,
            shadow,
            degraded=degraded,
            fail_closed=fail_closed,
            model_version=model_version,
            seconds=seconds,
            nanos=nanos,
        ).decision_bytes
    encoded = encode_decisions(
        rule_table(rules),
        ids,
        keys,
        scores,
        matches,
        thresholds.review,
        thresholds.decline,
        degraded=degraded,
        fail_closed=fail_closed,
        model_version=model_version,
        decided_at_seconds=seconds,
        decided_at_nanos=nanos,
    )
    decided_at = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert encoded.outcomes.dtype == np.uint8 and encoded.outcomes.shape == (len(ids),)
    assert encoded.risk_scores.dtype == np.float64 and encoded.risk_scores.shape == (len(ids),)
    assert len(encoded.decision_bytes) == len(ids)
    for i in range(len(ids)):
        verdict, expected = reference_decision(
            rules,
            matches[i],
            float(scores[i]),
            thresholds,
            transaction_id=ids[i],
            key=keys[i],
            degraded=degraded,
            fail_closed=fail_closed,
            model_version=model_version,
            decided_at=decided_at,
        )
        assert encoded.decision_bytes[i] == expected, (i, decision_pb2.Decision.FromString(expected))
        assert encoded.outcomes[i] == verdict.outcome
        assert bits(float(encoded.risk_scores[i])) == bits(verdict.risk_score)
    assert encoded.shadow_outcomes is None and encoded.shadow_risk_scores is None
    return encoded.decision_bytes


def check_shadow(
    rules: Sequence[CompiledRule],
    ids: list[str],
    keys: list[str],
    scores: npt.NDArray[np.float32],
    matches: npt.NDArray[np.uint8],
    thresholds: Thresholds,
    shadow: tuple[str, npt.NDArray[np.float32], Thresholds],
    *,
    degraded: bool,
    fail_closed: bool,
    model_version: str,
    seconds: int,
    nanos: int,
) -> EncodedDecisions:
    """Encode a batch with a shadow model and assert, row by row:

    - the bytes equal the generated classes' serialization of the reference Decision with its
      ``shadow`` (the policy's Python twin, ``outcome_of``, run with the shadow's score and thresholds);
    - they are the bytes without a shadow followed by field 13 alone: the shadow changes nothing else;
    - the shadow outcomes and risk scores equal what the compiled encoder decides when the shadow model
      is encoded as the active one (its scores, its thresholds, the same rules and mode).
    """
    shadow_version, shadow_scores, shadow_thresholds = shadow
    table = rule_table(rules)
    common: dict[str, Any] = {
        "degraded": degraded,
        "fail_closed": fail_closed,
        "model_version": model_version,
        "decided_at_seconds": seconds,
        "decided_at_nanos": nanos,
    }
    encoded = encode_decisions(
        table,
        ids,
        keys,
        scores,
        matches,
        thresholds.review,
        thresholds.decline,
        **common,
        shadow=ShadowModel(
            shadow_version, shadow_scores, shadow_thresholds.review, shadow_thresholds.decline
        ),
    )
    plain = encode_decisions(
        table, ids, keys, scores, matches, thresholds.review, thresholds.decline, **common
    )
    as_active = encode_decisions(
        table,
        ids,
        keys,
        shadow_scores,
        matches,
        shadow_thresholds.review,
        shadow_thresholds.decline,
        **common,
    )
    assert encoded.shadow_outcomes is not None and encoded.shadow_risk_scores is not None
    assert encoded.shadow_outcomes.dtype == np.uint8 and encoded.shadow_outcomes.shape == (len(ids),)
    assert encoded.shadow_risk_scores.dtype == np.float64 and encoded.shadow_risk_scores.shape == (len(ids),)
    assert encoded.shadow_outcomes.tolist() == as_active.outcomes.tolist()
    assert [bits(r) for r in encoded.shadow_risk_scores.tolist()] == [
        bits(r) for r in as_active.risk_scores.tolist()
    ]
    assert encoded.outcomes.tolist() == plain.outcomes.tolist()
    assert [bits(r) for r in encoded.risk_scores.tolist()] == [bits(r) for r in plain.risk_scores.tolist()]
    decided_at = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    for i in range(len(ids)):
        shadow_verdict, opinion = reference_shadow(
            rules,
            matches[i],
            float(shadow_scores[i]),
            shadow_thresholds,
            model_version=shadow_version,
            degraded=degraded,
            fail_closed=fail_closed,
        )
        verdict, expected = reference_decision(
            rules,
            matches[i],
            float(scores[i]),
            thresholds,
            transaction_id=ids[i],
            key=keys[i],
            degraded=degraded,
            fail_closed=fail_closed,
            model_version=model_version,
            decided_at=decided_at,
            shadow=opinion,
        )
        assert encoded.decision_bytes[i] == expected, (i, decision_pb2.Decision.FromString(expected))
        assert encoded.decision_bytes[i] == plain.decision_bytes[i] + (
            decision_pb2.Decision(shadow=opinion).SerializeToString(deterministic=True)
        )
        assert encoded.outcomes[i] == verdict.outcome
        assert encoded.shadow_outcomes[i] == shadow_verdict.outcome
        assert bits(float(encoded.shadow_risk_scores[i])) == bits(shadow_verdict.risk_score)
    return encoded


# ------------------------------------------------------------------------------------------ strategies
def as_float32(values: list[float]) -> npt.NDArray[np.float32]:
    """The float32 model scores of ``values`` (thresholds beyond the float32 range become infinities)."""
    with np.errstate(over="ignore"):
        return np.array(values, dtype=np.float32)


# float32 values with .3f ties (odd multiples of 1/16: 0.0625 -> "0.062", 0.1875 -> "0.188"), the
# thresholds themselves, 0 and 1 both signs, NaN, infinities, subnormals and values too large for the
# exact fast path (Python formats them)
TIES = [k / 16 for k in range(-33, 34, 2)]
SPECIAL_SCORES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    0.9,
    0.0005,
    0.9995,
    0.4995,
    1e-45,
    -1e-45,
    1e15,
    -1e15,
    3.4028234663852886e38,
    math.inf,
    -math.inf,
    math.nan,
    *TIES,
]
scores_32 = st.one_of(
    st.floats(0.0, 1.0, width=32),
    st.sampled_from(SPECIAL_SCORES).map(lambda v: float(np.float32(v))),
    st.floats(width=32),
)
thresholds_values = st.one_of(
    st.sampled_from([0.5, 0.9, 0.0, 1.0, 0.0625, 0.1875, 0.3, 0.7, 1e300, -1e-300, math.nan, math.inf]),
    st.floats(0.0, 1.0),
    st.floats(),
)
texts = st.one_of(st.text(max_size=20), st.sampled_from(["", "txn-0001", "ключ-é-🙂", "a\x00b"]))
rule_ids = st.one_of(st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True), st.text(max_size=8))
severities = st.one_of(
    st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 0.5, 0.25, 1e-300]), st.floats(allow_nan=True)
)


@st.composite
def compiled_rules(draw: st.DrawFn, max_rules: int = 8) -> list[CompiledRule]:
    """0 to ``max_rules`` rules, priorities from a small set (ties), in CompiledRuleSet order or not."""
    count = draw(st.integers(0, max_rules))
    rules = [
        CompiledRule(
            rule_id=draw(rule_ids),
            version=draw(st.one_of(st.integers(1, 50), st.integers(*INT64))),
            action=draw(st.sampled_from(list(RuleAction))),
            priority=draw(st.one_of(st.sampled_from([0, 10, 10, 50, 1000]), st.integers(-5, 5))),
            severity=draw(severities),
            mode=draw(st.sampled_from([RuleMode.ACTIVE, RuleMode.ACTIVE, RuleMode.SHADOW])),
            program=PROGRAM,
        )
        for _ in range(count)
    ]
    if draw(st.booleans()):
        rules = list(build_rule_set(rules, generation=1).rules)  # the server's order
    return rules


@st.composite
def batches(
    draw: st.DrawFn,
) -> tuple[
    list[CompiledRule],
    list[str],
    list[str],
    npt.NDArray[np.float32],
    npt.NDArray[np.uint8],
    Thresholds,
    dict[str, Any],
]:
    """Rules, ids, keys, scores, matches, thresholds and the keyword arguments of check_batch."""
    rules = draw(compiled_rules())
    n = draw(st.integers(0, 10))
    review = draw(thresholds_values)
    decline = draw(st.one_of(thresholds_values, st.just(review)))
    scores = [draw(st.one_of(scores_32, st.sampled_from([review, decline]))) for _ in range(n)]
    cells = st.one_of(st.sampled_from([0, 0, 0, 1]), st.integers(0, 255))
    matches = np.array([[draw(cells) for _ in rules] for _ in range(n)], dtype=np.uint8).reshape(
        n, len(rules)
    )
    options = {
        "degraded": draw(st.booleans()),
        "fail_closed": draw(st.booleans()),
        "model_version": draw(texts),
        "seconds": draw(st.one_of(st.sampled_from([0, 1, 1_700_000_000, INT64[1], -1]), st.integers(*INT64))),
        "nanos": draw(st.one_of(st.sampled_from([0, 1, 999_999_999, -1]), st.integers(*INT32))),
    }
    ids = [draw(texts) for _ in range(n)]
    keys = [draw(texts) for _ in range(n)]
    return rules, ids, keys, as_float32(scores), matches, Thresholds(review, decline), options


# ---------------------------------------------------------------------------------------- the decisions
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_decisions_equal_the_reference_bytes(
    batch: tuple[
        list[CompiledRule],
        list[str],
        list[str],
        npt.NDArray[np.float32],
        npt.NDArray[np.uint8],
        Thresholds,
        dict[str, Any],
    ],
) -> None:
    rules, ids, keys, scores, matches, thresholds, options = batch
    check_batch(rules, ids, keys, scores, matches, thresholds, **options)


@st.composite
def shadows(draw: st.DrawFn, n: int) -> tuple[str, npt.NDArray[np.float32], Thresholds]:
    """A shadow model's version, scores of ``n`` rows and thresholds."""
    review = draw(thresholds_values)
    decline = draw(st.one_of(thresholds_values, st.just(review)))
    values = [draw(st.one_of(scores_32, st.sampled_from([review, decline]))) for _ in range(n)]
    version = draw(st.one_of(texts, st.just("x" * 200)))  # a length of 2 varint bytes too
    return version, as_float32(values), Thresholds(review, decline)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_decisions_with_a_shadow_model_equal_the_reference_bytes(
    batch: tuple[
        list[CompiledRule],
        list[str],
        list[str],
        npt.NDArray[np.float32],
        npt.NDArray[np.uint8],
        Thresholds,
        dict[str, Any],
    ],
    data: st.DataObject,
) -> None:
    """Field 13 (ShadowScore) after decided_at, byte for byte the generated classes' serialization, its
    outcome and risk by the same policy as the Decision's with the shadow's score and thresholds."""
    rules, ids, keys, scores, matches, thresholds, options = batch
    shadow = data.draw(shadows(len(ids)))
    check_batch(rules, ids, keys, scores, matches, thresholds, **options, shadow=shadow)


def test_shadow_model_with_the_default_rules() -> None:
    """The shipped rules, every subset matching, every mode: the shadow's outcome is the active policy's
    with its score and thresholds; a shadow with the active model's scores and thresholds agrees."""
    created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    compiled = [
        compile_rule(Rule(spec, version=i + 3, author="test", created_at=created))
        for i, spec in enumerate(default_rule_specs())
    ]
    rules = build_rule_set(compiled, generation=1).rules
    r = len(rules)
    subsets = np.array([[(m >> j) & 1 for j in range(r)] for m in range(1 << min(r, 8))], dtype=np.uint8)
    if r > 8:
        subsets = np.concatenate((subsets, np.ones((len(subsets), r - 8), np.uint8)), axis=1)
    n = len(subsets)
    ids, keys = [f"txn-{i}" for i in range(n)], [f"key-{i}" for i in range(n)]
    for score, shadow_score in ((0.3, 0.95), (0.95, 0.3), (0.6, 0.6), (0.0, 1.0)):
        for degraded in (False, True):
            for fail_closed in (False, True):
                active_scores = np.full(n, score, dtype=np.float32)
                encoded = check_shadow(
                    rules,
                    ids,
                    keys,
                    active_scores,
                    subsets,
                    REFERENCE_THRESHOLDS,
                    ("challenger-2", np.full(n, shadow_score, dtype=np.float32), Thresholds(0.55, 0.65)),
                    degraded=degraded,
                    fail_closed=fail_closed,
                    model_version="iforest-7",
                    seconds=1_700_000_000,
                    nanos=5,
                )
                same = check_shadow(
                    rules,
                    ids,
                    keys,
                    active_scores,
                    subsets,
                    REFERENCE_THRESHOLDS,
                    ("twin", active_scores, REFERENCE_THRESHOLDS),
                    degraded=degraded,
                    fail_closed=fail_closed,
                    model_version="iforest-7",
                    seconds=1_700_000_000,
                    nanos=5,
                )
                assert same.shadow_outcomes is not None and encoded.shadow_outcomes is not None
                assert same.shadow_outcomes.tolist() == same.outcomes.tolist()
                # Row 0 matches no rule: its shadow outcome is the shadow score against the shadow's
                # thresholds (0.55, 0.65), never the active ones (0.5, 0.9).
                by_thresholds = (
                    DECLINE if shadow_score >= 0.65 else REVIEW if shadow_score >= 0.55 else APPROVE
                )
                if degraded and fail_closed and by_thresholds == APPROVE:
                    by_thresholds = REVIEW
                assert encoded.shadow_outcomes[0] == by_thresholds


def test_shadow_model_inputs_are_checked() -> None:
    table = RuleTable(["a"], [1], [1], [0], [0.5], [False])
    scores = np.zeros(2, np.float32)
    arguments: dict[str, Any] = {
        "degraded": False,
        "fail_closed": False,
        "model_version": "m",
        "decided_at_seconds": 0,
        "decided_at_nanos": 0,
    }
    with pytest.raises(ValueError, match="shadow model scores"):
        encode_decisions(
            table, ["a", "b"], ["k", "l"], scores, np.zeros((2, 1), np.uint8), 0.5, 0.9, **arguments,
            shadow=ShadowModel("s", np.zeros(3, np.float32), 0.5, 0.9),
        )  # fmt: skip
    with pytest.raises(ValueError):  # a float64 array is not silently rounded
        encode_decisions(
            table, ["a", "b"], ["k", "l"], scores, np.zeros((2, 1), np.uint8), 0.5, 0.9, **arguments,
            shadow=ShadowModel("s", np.zeros(2), 0.5, 0.9),  # type: ignore[arg-type]
        )  # fmt: skip
    from sentinel.hotpath import _respond

    with pytest.raises(ValueError, match="version and its scores"):
        _respond.encode_decisions(
            table, ["a", "b"], ["k", "l"], scores, np.zeros((2, 1), np.uint8), 0.5, 0.9, False, False, "m",
            0, 0, None, np.zeros(2, np.float32),
        )  # fmt: skip
    empty = encode_decisions(
        table, [], [], np.zeros(0, np.float32), np.zeros((0, 1), np.uint8), 0.5, 0.9, **arguments,
        shadow=ShadowModel("s", np.zeros(0, np.float32), 0.5, 0.9),
    )  # fmt: skip
    assert empty.decision_bytes == [] and empty.shadow_outcomes is not None
    assert empty.shadow_outcomes.shape == (0,)


@st.composite
def callers_of(draw: st.DrawFn, n: int) -> Callers:
    """A batch's callers: a few names (empty, long, non-ASCII included) and each of ``n`` rows' index."""
    names = draw(st.lists(st.one_of(texts, st.just("svc-" + "x" * 200)), min_size=1, max_size=4))
    rows = [draw(st.integers(0, len(names) - 1)) for _ in range(n)]
    return Callers(names, np.array(rows, dtype=np.int32))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_decisions_name_their_callers(
    batch: tuple[
        list[CompiledRule],
        list[str],
        list[str],
        npt.NDArray[np.float32],
        npt.NDArray[np.uint8],
        Thresholds,
        dict[str, Any],
    ],
    data: st.DataObject,
) -> None:
    """Field 14 (caller) last, after the shadow when there is one, byte for byte the generated classes'
    serialization; the rest of each Decision and every outcome are what they are without callers."""
    rules, ids, keys, scores, matches, thresholds, options = batch
    callers = data.draw(callers_of(len(ids)))
    drawn = data.draw(st.one_of(st.none(), shadows(len(ids))))
    shadow = None if drawn is None else ShadowModel(drawn[0], drawn[1], drawn[2].review, drawn[2].decline)
    seconds, nanos = options.pop("seconds"), options.pop("nanos")
    arguments: dict[str, Any] = {
        **options,
        "decided_at_seconds": seconds,
        "decided_at_nanos": nanos,
        "shadow": shadow,
    }
    table = rule_table(rules)
    common = (table, ids, keys, scores, matches, thresholds.review, thresholds.decline)
    encoded = encode_decisions(*common, **arguments, callers=callers)
    plain = encode_decisions(*common, **arguments)
    assert encoded.outcomes.tolist() == plain.outcomes.tolist()
    for i, row_bytes in enumerate(encoded.decision_bytes):
        name = callers.names[int(callers.rows[i])]
        expected = decision_pb2.Decision.FromString(plain.decision_bytes[i])
        expected.caller = name
        assert row_bytes == expected.SerializeToString(deterministic=True)
        assert row_bytes == plain.decision_bytes[i] + decision_pb2.Decision(caller=name).SerializeToString()


def test_callers_are_checked() -> None:
    table = RuleTable(["a"], [1], [1], [0], [0.5], [False])
    arguments: dict[str, Any] = {
        "degraded": False,
        "fail_closed": False,
        "model_version": "m",
        "decided_at_seconds": 0,
        "decided_at_nanos": 0,
    }
    common = (table, ["a", "b"], ["k", "l"], np.zeros(2, np.float32), np.zeros((2, 1), np.uint8), 0.5, 0.9)
    with pytest.raises(ValueError, match="caller indices for 2 rows"):
        encode_decisions(*common, **arguments, callers=Callers(["x"], np.zeros(3, np.int32)))
    for index in (1, -1):
        with pytest.raises(ValueError, match=f"caller index {index} is not one of 1 names"):
            encode_decisions(*common, **arguments, callers=Callers(["x"], np.array([0, index], np.int32)))
    from sentinel.hotpath import _respond

    with pytest.raises(ValueError, match="their names and each row's index"):
        _respond.encode_decisions(*common, False, False, "m", 0, 0, None, None, 0.0, 0.0, ["x"], None)


@settings(max_examples=300, deadline=None)
@given(st.lists(scores_32, min_size=1, max_size=50), thresholds_values, thresholds_values)
@example([k / 16 for k in range(17)], 0.5, 0.9)
@example([0.0005, 0.0015, 0.0025, 0.9995, 0.4995, 0.5005], 0.0005, 0.9995)
def test_model_score_texts_equal_python_format(scores: list[float], review: float, decline: float) -> None:
    """Every model reason (HIGH, ELEVATED, LOW_RISK) formats the score and thresholds as Python does."""
    values = np.array(scores, dtype=np.float32)
    n = len(values)
    check_batch(
        [],
        [f"t{i}" for i in range(n)],
        [f"k{i}" for i in range(n)],
        values,
        np.zeros((n, 0), dtype=np.uint8),
        Thresholds(review, decline),
        degraded=False,
        fail_closed=False,
    )


def test_every_float32_tie_and_its_neighbours() -> None:
    """Exact .3f ties (odd multiples of 1/16) round half to even, their float32 neighbours away from the
    tie; in [-2, 2]: the whole range of tie values a score can take near the thresholds."""
    ties = np.arange(-31, 32, 2, dtype=np.float32) / np.float32(16)
    values = np.concatenate(
        (ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf)))
    ).astype(np.float32)
    ids = [""] * len(values)
    check_batch(
        [],
        ids,
        ids,
        values,
        np.zeros((len(values), 0), np.uint8),
        Thresholds(5.0, 6.0),
        degraded=False,
        fail_closed=False,
    )


def test_a_dense_sweep_of_scores_formats_like_python() -> None:
    """Every float32 in [0, 1] at a stride (plus one ulp either side of many .xxx5 decimals)."""
    grid = np.arange(0, 1 << 30, 997, dtype=np.uint32)
    values = grid.view(np.float32)  # bit patterns from 0 up to 2.0
    halves = (np.arange(0, 2000, dtype=np.float64) / 1000 + 0.0005).astype(np.float32)
    values = np.concatenate((values[values <= 2.0], halves, np.nextafter(halves, np.float32(0))))
    n = len(values)
    table = RuleTable([], [], [], [], [], [])
    encoded = encode_decisions(
        table,
        [""] * n,
        [""] * n,
        values,
        np.zeros((n, 0), np.uint8),
        5.0,
        6.0,
        degraded=False,
        fail_closed=False,
        model_version="",
        decided_at_seconds=0,
        decided_at_nanos=0,
    )
    for value, data in zip(values.tolist(), encoded.decision_bytes, strict=True):
        (reason,) = decision_pb2.Decision.FromString(data).reasons
        assert reason.description == f"model score {value:.3f} below review threshold 5.000"


def test_policy_cases_with_the_default_rules() -> None:
    """The shipped rules, compiled as the server does, every subset of them matching, every mode."""
    created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    compiled = [
        compile_rule(Rule(spec, version=i + 3, author="test", created_at=created))
        for i, spec in enumerate(default_rule_specs())
    ]
    rules = build_rule_set(compiled, generation=1).rules
    r = len(rules)
    assert r >= 2
    subsets = np.array([[(m >> j) & 1 for j in range(r)] for m in range(1 << min(r, 8))], dtype=np.uint8)
    if r > 8:
        subsets = np.concatenate((subsets, np.ones((len(subsets), r - 8), np.uint8)), axis=1)
    for score in (0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0):
        n = len(subsets)
        for degraded in (False, True):
            for fail_closed in (False, True):
                check_batch(
                    rules,
                    [f"txn-{i}" for i in range(n)],
                    [f"key-{i}" for i in range(n)],
                    np.full(n, score, dtype=np.float32),
                    subsets,
                    REFERENCE_THRESHOLDS,
                    degraded=degraded,
                    fail_closed=fail_closed,
                )


def test_allow_against_blocking_priorities() -> None:
    """ALLOW wins unless an active DECLINE/REVIEW rule has a strictly higher priority; shadow rules and
    ties in priority keep their column order (the policy's stable sort)."""

    def rule(rule_id: str, action: RuleAction, priority: int, shadow: bool = False) -> CompiledRule:
        mode = RuleMode.SHADOW if shadow else RuleMode.ACTIVE
        return CompiledRule(rule_id, 1, action, priority, 0.4, mode, PROGRAM)

    rules = [
        rule("d-high", RuleAction.DECLINE, 100, shadow=True),
        rule("a-mid", RuleAction.ALLOW, 50),
        rule("r-mid", RuleAction.REVIEW, 50),
        rule("a-mid-2", RuleAction.ALLOW, 50),
        rule("t-mid", RuleAction.TAG, 50),
        rule("d-low", RuleAction.DECLINE, 10),
        rule("r-top", RuleAction.REVIEW, 60),  # out of order on purpose: RuleTable sorts stably
    ]
    n = 1 << len(rules)
    matches = np.array([[(m >> j) & 1 for j in range(len(rules))] for m in range(n)], dtype=np.uint8)
    for score in (0.2, 0.6, 0.95):
        check_batch(
            rules,
            ["t"] * n,
            ["k"] * n,
            np.full(n, score, np.float32),
            matches,
            REFERENCE_THRESHOLDS,
            degraded=False,
            fail_closed=True,
        )


def test_proto3_defaults_and_edge_encodings() -> None:
    """What the serializer leaves out or writes: empty strings and zero numbers out, -0.0 in (upb writes
    every double whose bits are not all 0), decided_at written even when it is the epoch (``62 00``),
    negative nanos and versions as 10-byte varints."""
    rules = [CompiledRule("", 0, RuleAction.TAG, 0, 0.0, RuleMode.ACTIVE, PROGRAM)]
    scores = np.array([0.0, -0.0, 0.25], dtype=np.float32)
    data = check_batch(
        rules,
        ["", "", "x"],
        ["", "", ""],
        scores,
        np.array([[1], [0], [1]], np.uint8),
        Thresholds(0.0, 1.0),
        degraded=False,
        fail_closed=False,
        model_version="",
        seconds=0,
        nanos=0,
    )
    assert data[0].endswith(b"\x62\x00")
    assert b"\x21" + struct.pack("<d", -0.0) in data[1]
    check_batch(
        [CompiledRule("neg", -1, RuleAction.REVIEW, -3, 1.0, RuleMode.SHADOW, PROGRAM)],
        ["a"],
        ["b"],
        np.array([0.5], np.float32),
        np.array([[1]], np.uint8),
        Thresholds(0.4, 0.6),
        degraded=True,
        fail_closed=True,
        seconds=-62_135_596_800,
        nanos=-1,
    )


def test_non_contiguous_and_empty_inputs() -> None:
    rules = [
        CompiledRule(
            f"r{j}",
            j + 1,
            RuleAction.REVIEW if j % 2 else RuleAction.TAG,
            10 - j,
            0.1 * j,
            RuleMode.ACTIVE,
            PROGRAM,
        )
        for j in range(4)
    ]
    wide = np.tile(np.array([[1, 0, 1, 1, 0, 1, 0, 0]], np.uint8), (6, 1))
    scores = np.linspace(0, 1, 12, dtype=np.float32)[::2]  # strided
    check_batch(
        rules,
        ["i"] * 6,
        ["k"] * 6,
        scores,
        wide[:, ::2],
        REFERENCE_THRESHOLDS,
        degraded=False,
        fail_closed=False,
    )
    empty = encode_decisions(
        rule_table(rules),
        [],
        [],
        np.zeros(0, np.float32),
        np.zeros((0, 4), np.uint8),
        0.5,
        0.9,
        degraded=False,
        fail_closed=False,
        model_version="m",
        decided_at_seconds=0,
        decided_at_nanos=0,
    )
    assert empty.decision_bytes == [] and empty.outcomes.shape == (0,) and empty.risk_scores.shape == (0,)


def test_matches_from_the_rule_evaluator_feed_the_encoder() -> None:
    """The shape and dtype evaluate_rules returns are what encode_decisions takes."""
    builder = TransactionColumnsBuilder(3)
    for i, amount in enumerate((10.0, 9_000.0, 250_000.0)):
        builder.append(
            0, amount, 1 + i, 1_700_000_000.0, country="DE", origin_before=amount, origin_after=0.0
        )
    columns = builder.build()
    created = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rule_set = build_rule_set(
        [
            compile_rule(Rule(spec, version=1, author="t", created_at=created))
            for spec in default_rule_specs()
        ],
        generation=1,
    )
    matches = evaluate_rules(rule_set.program_set, build_features_stateless(columns), columns)
    check_batch(
        list(rule_set.rules),
        ["a", "b", "c"],
        ["1", "2", "3"],
        np.full(3, 0.6, np.float32),
        matches,
        REFERENCE_THRESHOLDS,
        degraded=True,
        fail_closed=False,
    )


def test_rule_table_checks_its_columns() -> None:
    with pytest.raises(ValueError, match="length"):
        RuleTable(["a"], [1, 2], [1], [0], [0.5], [False])
    with pytest.raises(ValueError, match="RuleAction"):
        RuleTable(["a"], [1], [0], [0], [0.5], [False])
    with pytest.raises(ValueError, match="int64"):
        RuleTable(["a"], [2**63], [1], [0], [0.5], [False])
    table = RuleTable(["a", "b"], [1, 1], [1, 4], [0, 5], [0.5, 0.1], [False, True])
    assert len(table) == 2 and table.order.tolist() == [1, 0]
    scores = np.zeros(1, np.float32)

    def encode(**changes: Any) -> None:
        """One row of valid arguments, with ``changes`` (the argument under test) applied."""
        arguments: dict[str, Any] = {
            "ids": ["a"],
            "keys": ["k"],
            "scores": scores,
            "matches": np.zeros((1, 2), np.uint8),
            "decided_at_nanos": 0,
        } | changes
        encode_decisions(
            table,
            arguments["ids"],
            arguments["keys"],
            arguments["scores"],
            arguments["matches"],
            0.5,
            0.9,
            degraded=False,
            fail_closed=False,
            model_version="",
            decided_at_seconds=0,
            decided_at_nanos=arguments["decided_at_nanos"],
        )

    with pytest.raises(ValueError, match="columns"):
        encode(matches=np.zeros((1, 3), np.uint8))
    with pytest.raises(ValueError, match="as many"):
        encode(ids=["a", "b"])
    with pytest.raises(OverflowError):
        encode(decided_at_nanos=2**31)
    with pytest.raises(ValueError):  # a float64 array is not silently rounded
        encode(scores=np.zeros(1))
    with pytest.raises(UnicodeEncodeError):
        encode(ids=["\ud800"])


# ---------------------------------------------------------------------------------------- the responses
def answered(payload: bytes, sequence: int, replayed: bool) -> decision_pb2.Decision:
    """A stored decision as the pipeline answers it: parsed, then the answer-time fields set."""
    decision = decision_pb2.Decision.FromString(payload)
    decision.ledger_sequence = sequence
    decision.replayed = replayed
    return decision


decisions = st.builds(
    decision_pb2.Decision,
    transaction_id=texts,
    outcome=st.sampled_from([1, 2, 3]),
    risk_score=st.floats(0.0, 1.0),
    model_score=st.floats(width=32, allow_nan=False),  # NaN != NaN would fail the message comparisons
    rules_fired=st.lists(
        st.builds(
            decision_pb2.RuleHit,
            rule_id=texts,
            rule_version=st.integers(*INT64),
            action=st.integers(0, 4),
            shadow=st.booleans(),
        ),
        max_size=3,
    ),
    reasons=st.lists(st.builds(decision_pb2.Reason, code=texts, description=texts), max_size=3),
    model_version=texts,
    ledger_sequence=st.sampled_from([0, 0, 7]),  # stored decisions have none; a few have one anyway
    degraded=st.booleans(),
    replayed=st.sampled_from([False, False, True]),
    idempotency_key=texts,
    decided_at=st.builds(timestamp_pb2.Timestamp, seconds=st.integers(*INT64), nanos=st.integers(*INT32)),
    shadow=st.one_of(
        st.none(),
        st.builds(
            decision_pb2.ShadowScore,
            model_version=texts,
            model_score=st.floats(width=32, allow_nan=False),
            risk_score=st.floats(0.0, 1.0),
            outcome=st.sampled_from([1, 2, 3]),
        ),
    ),
)
errors = st.builds(
    errors_pb2.ItemError,
    code=st.integers(*INT32),
    message=texts,
    field_violations=st.lists(
        st.builds(errors_pb2.FieldViolation, field=texts, description=texts), max_size=2
    ),
)
sequences = st.one_of(st.sampled_from([0, 1, 127, 128, 2**32, INT64[1], -1, INT64[0]]), st.integers(*INT64))


@st.composite
def items(
    draw: st.DrawFn,
) -> tuple[list[decision_pb2.Decision | errors_pb2.ItemError], list[int], list[bool]]:
    answers: list[decision_pb2.Decision | errors_pb2.ItemError] = draw(
        st.lists(
            st.one_of(decisions, errors, st.just(errors_pb2.ItemError()), st.just(decision_pb2.Decision())),
            max_size=8,
        )
    )
    return answers, [draw(sequences) for _ in answers], [draw(st.booleans()) for _ in answers]


def wire_inputs(
    answers: Sequence[decision_pb2.Decision | errors_pb2.ItemError],
    seqs: list[int],
    flags: list[bool],
    appended_sequence: bool = False,
) -> tuple[npt.NDArray[np.uint8], list[bytes], npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    payloads = []
    for answer in answers:
        payload = answer.SerializeToString(deterministic=True)
        if appended_sequence and isinstance(answer, decision_pb2.Decision):
            payload += _sequence_field(99)  # as a claim stores it
        payloads.append(payload)
    kinds = np.array(
        [KIND_DECISION if isinstance(a, decision_pb2.Decision) else KIND_ERROR for a in answers], np.uint8
    )
    return kinds, payloads, np.array(seqs, np.int64), np.array(flags, np.uint8)


def expected_answers(
    answers: Sequence[decision_pb2.Decision | errors_pb2.ItemError], seqs: list[int], flags: list[bool]
) -> list[decision_pb2.Decision | errors_pb2.ItemError]:
    return [
        answered(a.SerializeToString(), s, f) if isinstance(a, decision_pb2.Decision) else a
        for a, s, f in zip(answers, seqs, flags, strict=True)
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items(), st.booleans())
def test_score_batch_response_equals_the_servicer_message(
    drawn: tuple[list[decision_pb2.Decision | errors_pb2.ItemError], list[int], list[bool]], appended: bool
) -> None:
    """Byte for byte the response ScoreBatch builds with ``_fill`` (option a: fields 8 and 10 spliced in
    place), also from decision bytes that carry fields 8/10 already (they are replaced)."""
    answers, seqs, flags = drawn
    response = scoring_pb2.ScoreBatchResponse()
    for answer in expected_answers(answers, seqs, flags):
        _fill(response.results.add(), answer)
    data = score_batch_response(*wire_inputs(answers, seqs, flags, appended))
    assert data == response.SerializeToString(deterministic=True)
    assert data == response.SerializeToString()
    assert scoring_pb2.ScoreBatchResponse.FromString(data) == response


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items(), st.lists(texts, min_size=8, max_size=8), st.booleans())
def test_stream_responses_equal_the_servicer_messages(
    drawn: tuple[list[decision_pb2.Decision | errors_pb2.ItemError], list[int], list[bool]],
    ids: list[str],
    appended: bool,
) -> None:
    answers, seqs, flags = drawn
    ids = ids[: len(answers)]
    kinds, payloads, sequences_array, replayed = wire_inputs(answers, seqs, flags, appended)
    got = stream_responses(ids, kinds, payloads, sequences_array, replayed)
    assert len(got) == len(answers)
    for transaction_id, answer, data in zip(ids, expected_answers(answers, seqs, flags), got, strict=True):
        response = scoring_pb2.ScoreStreamResponse(transaction_id=transaction_id)
        _fill(response, answer)
        assert data == response.SerializeToString(deterministic=True)
        assert scoring_pb2.ScoreStreamResponse.FromString(data) == response


@settings(max_examples=200, deadline=None)
@given(decisions, sequences, st.booleans(), st.booleans())
def test_score_response_equals_the_servicer_message(
    decision: decision_pb2.Decision, sequence: int, replayed: bool, appended: bool
) -> None:
    payload = decision.SerializeToString(deterministic=True)
    if appended:
        payload += _sequence_field(5)
    response = scoring_pb2.ScoreResponse()
    response.decision.CopyFrom(answered(payload, sequence, replayed))
    assert score_response(payload, sequence, replayed) == response.SerializeToString(deterministic=True)


def test_responses_around_encoded_decisions() -> None:
    """The whole output path: encode_decisions' bytes answered in a batch mixed with item errors."""
    rules = [
        CompiledRule("big", 2, RuleAction.REVIEW, 100, 0.3, RuleMode.ACTIVE, PROGRAM),
        CompiledRule("vip", 1, RuleAction.ALLOW, 50, 0.0, RuleMode.ACTIVE, PROGRAM),
        CompiledRule("watch", 9, RuleAction.TAG, 50, 0.1, RuleMode.SHADOW, PROGRAM),
    ]
    n = 6
    matches = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1], [0, 0, 1], [1, 0, 0]], np.uint8)
    data = check_batch(
        rules,
        [f"t{i}" for i in range(n)],
        [f"k{i}" for i in range(n)],
        np.linspace(0, 1, n, dtype=np.float32),
        matches,
        REFERENCE_THRESHOLDS,
        degraded=False,
        fail_closed=False,
    )
    error = item_error(
        grpc.StatusCode.INVALID_ARGUMENT, "bad", [FieldViolation("transactions[1].amount", "x")]
    )
    answers: list[decision_pb2.Decision | errors_pb2.ItemError] = [
        decision_pb2.Decision.FromString(d) for d in data
    ]
    answers.insert(1, error)
    seqs = [0, 0, 1, 2**40, 3, 0, 12]
    flags = [False, False, True, False, True, True, False]
    response = scoring_pb2.ScoreBatchResponse()
    for answer in expected_answers(answers, seqs, flags):
        _fill(response.results.add(), answer)
    kinds, payloads, sequences_array, replayed = wire_inputs(answers, seqs, flags)
    assert payloads[0] == data[0]
    assert score_batch_response(kinds, payloads, sequences_array, replayed) == response.SerializeToString()


def test_responses_around_decisions_with_a_shadow() -> None:
    """The answer-time fields 8 and 10 are spliced before field 13: every response equals the generated
    classes' message with the answered decision, shadow included."""
    rules = [
        CompiledRule("big", 2, RuleAction.REVIEW, 100, 0.3, RuleMode.ACTIVE, PROGRAM),
        CompiledRule("watch", 9, RuleAction.DECLINE, 50, 0.1, RuleMode.SHADOW, PROGRAM),
    ]
    n = 4
    data = check_batch(
        rules,
        [f"t{i}" for i in range(n)],
        [f"k{i}" for i in range(n)],
        np.linspace(0, 1, n, dtype=np.float32),
        np.array([[1, 0], [0, 1], [0, 0], [1, 1]], np.uint8),
        REFERENCE_THRESHOLDS,
        degraded=False,
        fail_closed=False,
        shadow=("challenger", np.linspace(1, 0, n, dtype=np.float32), Thresholds(0.3, 0.6)),
    )
    answers: list[decision_pb2.Decision | errors_pb2.ItemError] = [
        decision_pb2.Decision.FromString(d) for d in data
    ]
    assert all(answer.HasField("shadow") for answer in answers)
    seqs, flags = [0, 7, 2**40, 1], [False, True, True, False]
    response = scoring_pb2.ScoreBatchResponse()
    for answer in expected_answers(answers, seqs, flags):
        _fill(response.results.add(), answer)
    kinds, payloads, sequences_array, replayed = wire_inputs(answers, seqs, flags)
    assert payloads == data
    assert score_batch_response(kinds, payloads, sequences_array, replayed) == response.SerializeToString()
    for payload, sequence, flag in zip(data, seqs, flags, strict=True):
        single = scoring_pb2.ScoreResponse()
        single.decision.CopyFrom(answered(payload, sequence, flag))
        assert score_response(payload, sequence, flag) == single.SerializeToString(deterministic=True)
    streamed = stream_responses([f"t{i}" for i in range(n)], kinds, payloads, sequences_array, replayed)
    for i, (message, answer) in enumerate(zip(streamed, expected_answers(answers, seqs, flags), strict=True)):
        expected = scoring_pb2.ScoreStreamResponse(transaction_id=f"t{i}")
        _fill(expected, answer)
        assert message == expected.SerializeToString(deterministic=True)


def test_response_builders_check_their_inputs() -> None:
    one = np.zeros(1, np.int64)
    flag = np.zeros(1, np.uint8)
    with pytest.raises(ValueError, match="kind"):
        score_batch_response(np.array([3], np.uint8), [b""], one, flag)
    with pytest.raises(ValueError, match="as many"):
        score_batch_response(np.array([1, 1], np.uint8), [b""], one, flag)
    with pytest.raises(TypeError):
        score_batch_response(np.array([1], np.uint8), ["not bytes"], one, flag)  # type: ignore[list-item]
    for malformed in (b"\x0a\x05ab", b"\x80", b"\x00\x01", b"\x0b", b"\x19\x00\x00"):
        with pytest.raises(ValueError, match="not a valid protobuf"):
            score_response(malformed, 1, True)
    # an ItemError payload is copied as it is, never parsed
    assert score_batch_response(np.array([2], np.uint8), [b"\xff"], one, flag) == b"\x0a\x03\x12\x01\xff"
    with pytest.raises(ValueError, match="transaction ids"):
        stream_responses([], np.array([1], np.uint8), [b""], one, flag)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_claims_sequence_field_is_what_protobuf_serializes(sequence: int) -> None:
    """The settle stage appends ``ledger_sequence`` to stored decisions with bytes of its own making."""
    expected = decision_pb2.Decision(ledger_sequence=sequence).SerializeToString()
    assert _sequence_field(sequence) == expected
    assert (
        decision_pb2.Decision.FromString(b"\x08\x01" + _sequence_field(sequence)).ledger_sequence == sequence
    )
