"""Detection quality measured through a live SentinelStream: PaySim replayed over gRPC, decisions scored.

``sentinel train`` evaluates the Isolation Forest alone, offline. What callers get is the whole path:
validation, account state in Redis, rules, the model, the outcome policy and the ledger. This module
sends a labelled PaySim file to a running server with ``ScoreBatch``, in event order and with the
replay's event times (``paysim.read_paysim``, the same ones training used), and measures the Decisions
against the labels. Replaying the file again against the same server (a second *pass*: same accounts,
same event times, new transaction ids) shows what the accumulated account state does to the figures.

Nothing here imports the server: the service is only reached through its public contract.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf.timestamp_pb2 import Timestamp
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)

from sentinel.model_export.paysim import PaySimRows
from sentinel.v1 import decision_pb2, scoring_pb2, scoring_pb2_grpc, transaction_pb2

CURRENCY = "USD"  # PaySim has no currency; USD's 2 fraction digits fit its amounts
DEFAULT_BATCH_SIZE = 500
DEFAULT_CALL_TIMEOUT_S = 60.0
CALL_ATTEMPTS = 3  # per ScoreBatch call, for the statuses below only
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
RETRY_PAUSE_S = 0.5
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
OUTCOMES = ("APPROVE", "REVIEW", "DECLINE")
BALANCE_FRACTION_DIGITS = 8  # what BalanceSnapshot strings allow

Decisions = list[decision_pb2.Decision | None]  # one per row, in event order; None: not decided


# --- building the transactions -------------------------------------------------------------------


def new_run_id() -> str:
    """A prefix no earlier run used: transaction ids and idempotency keys are unique per server forever
    (the ledger keeps every key), so each run needs its own."""
    return f"eval-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


def transaction_id(run_id: str, pass_number: int, row: int) -> str:
    """The id of ``row`` in ``pass_number``: distinct per row and per pass, so a second pass is scored
    as new transactions instead of being answered as an idempotent replay of the first."""
    return f"{run_id}-p{pass_number}-{row}"


def _timestamp(seconds: float) -> Timestamp:
    """An exact Timestamp of a float time, so every pass sends bit-identical event times."""
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return Timestamp(seconds=whole, nanos=nanos)


def _balance(value: float) -> str:
    """A balance as the contract's decimal string (no exponent, at most 8 fraction digits); the
    shortest repr, so the string is the CSV's text for PaySim's 2-digit values."""
    return np.format_float_positional(
        value, precision=BALANCE_FRACTION_DIGITS, unique=True, fractional=True, trim="-"
    )


def build_transactions(rows: PaySimRows, run_id: str, pass_number: int) -> list[transaction_pb2.Transaction]:
    """One Transaction per row in event order with everything PaySim has: the server's features (balance
    consistency, drained accounts, mule destinations, per-account history) need all of it, and the
    evaluation should see what a caller sending full data would get."""
    transactions = []
    for row in range(len(rows)):
        identifier = transaction_id(run_id, pass_number, row)
        message = transaction_pb2.Transaction(
            transaction_id=identifier,
            idempotency_key=f"k-{identifier}",
            account_id=rows.origin[row],
            counterparty_id=rows.destination[row],
            type=int(rows.type[row]),  # type: ignore[arg-type]
            amount=transaction_pb2.Money(amount=f"{rows.amount[row]:.2f}", currency=CURRENCY),
            event_time=_timestamp(float(rows.event_time[row])),
            balances=transaction_pb2.BalanceSnapshot(
                origin_before=_balance(rows.origin_before[row]),
                origin_after=_balance(rows.origin_after[row]),
                destination_before=_balance(rows.destination_before[row]),
                destination_after=_balance(rows.destination_after[row]),
            ),
        )
        transactions.append(message)
    return transactions


# --- replaying ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowFailure:
    """A row the service did not decide: an item error of ScoreBatch or the status of a failed call."""

    row: int
    transaction_id: str
    code: str  # gRPC status code name
    message: str


@dataclass(slots=True)
class Replay:
    """What one pass got back: a decision or a failure for every row, and how long it took."""

    decisions: Decisions
    failures: list[RowFailure]
    calls: int = 0
    retried_calls: int = 0
    wall_time_s: float = 0.0


def open_stub(target: str) -> tuple[grpc.Channel, scoring_pb2_grpc.ScoringServiceStub]:
    """A plaintext channel whose receive limit fits the largest ScoreBatch answer (10,000 decisions)."""
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    return channel, scoring_pb2_grpc.ScoringServiceStub(channel)


def _status_name(code: int) -> str:
    """grpc.StatusCode name of an ItemError's code number."""
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return str(status.name)
    return f"CODE_{code}"


def score_batch(
    stub: scoring_pb2_grpc.ScoringServiceStub,
    batch: Sequence[transaction_pb2.Transaction],
    timeout_s: float,
) -> tuple[list[scoring_pb2.ScoreBatchResult] | grpc.RpcError, int]:
    """One ScoreBatch call with its deadline; retried (same transactions, so the same idempotency keys:
    a retry can never apply a row twice) only on UNAVAILABLE and DEADLINE_EXCEEDED. Returns the
    results, or the last error, and the number of retries."""
    request = scoring_pb2.ScoreBatchRequest(transactions=batch)
    retries = 0
    while True:
        try:
            return list(stub.ScoreBatch(request, timeout=timeout_s).results), retries
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE_CODES or retries + 1 >= CALL_ATTEMPTS:
                return exc, retries
            retries += 1
            time.sleep(RETRY_PAUSE_S)


def replay(
    stub: scoring_pb2_grpc.ScoringServiceStub,
    transactions: Sequence[transaction_pb2.Transaction],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> Replay:
    """Send ``transactions`` in order, ``batch_size`` per call, one call at a time: a batch leaves only
    after the previous one was answered, so the server sees each account's transactions in event order
    (concurrent calls could be admitted in either order). Every row ends up decided or in ``failures``,
    never dropped."""
    result = Replay(decisions=[None] * len(transactions), failures=[])
    started = time.perf_counter()
    for start in range(0, len(transactions), batch_size):
        batch = transactions[start : start + batch_size]
        answer, retries = score_batch(stub, batch, timeout_s)
        result.calls += 1
        result.retried_calls += retries > 0
        if isinstance(answer, grpc.RpcError):
            name = answer.code().name if answer.code() is not None else "UNKNOWN"
            for offset, message in enumerate(batch):
                failure = RowFailure(start + offset, message.transaction_id, name, str(answer.details()))
                result.failures.append(failure)
            continue
        if len(answer) != len(batch):
            raise RuntimeError(f"ScoreBatch answered {len(answer)} results for {len(batch)} transactions")
        for offset, item in enumerate(answer):
            row = start + offset
            if item.HasField("decision"):
                result.decisions[row] = item.decision
            else:
                error = item.error
                result.failures.append(
                    RowFailure(row, batch[offset].transaction_id, _status_name(error.code), error.message)
                )
    result.wall_time_s = time.perf_counter() - started
    return result


# --- figures --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BinaryFigures:
    """Precision, recall and the confusion counts of one yes/no reading of the outcome."""

    precision: float | None  # None when nothing was flagged
    recall: float | None  # None when there is no fraud
    tp: int
    fp: int
    fn: int
    tn: int


@dataclass(slots=True)
class PassFigures:
    """The detection figures of one pass (JSON: ``asdict``)."""

    pass_number: int
    rows: int
    frauds: int
    decided: int
    errors: int
    errors_by_code: dict[str, int]
    first_error: dict[str, Any] | None
    flagged: BinaryFigures  # REVIEW or DECLINE
    declined: BinaryFigures  # DECLINE alone
    risk_pr_auc: float | None
    risk_roc_auc: float | None
    model_pr_auc: float | None
    model_roc_auc: float | None
    outcomes: dict[str, dict[str, int]]  # outcome -> {"fraud": n, "legit": n}
    degraded: int
    replayed: int
    rule_hits: dict[str, dict[str, dict[str, int]]]  # "active"/"shadow" -> rule -> {"fraud", "legit"}
    model_versions: dict[str, int]
    wall_time_s: float
    transactions_per_s: float
    calls: int
    retried_calls: int
    changes: dict[str, Any] | None = field(default=None)  # against the previous pass


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def binary_figures(labels: npt.NDArray[np.bool_], predicted: npt.NDArray[np.bool_]) -> BinaryFigures:
    """Confusion counts and precision/recall of ``predicted`` (scikit-learn); None where a ratio has no
    denominator, so "nothing flagged" is not reported as a precision of 0."""
    if len(labels) == 0:  # every row failed: no figure, but no crash before the failures are reported
        return BinaryFigures(None, None, 0, 0, 0, 0)
    tn, fp, fn, tp = (int(n) for n in confusion_matrix(labels, predicted, labels=[False, True]).ravel())
    precision = precision_score(labels, predicted, zero_division=np.nan) if tp + fp else math.nan
    recall = recall_score(labels, predicted, zero_division=np.nan) if tp + fn else math.nan
    return BinaryFigures(_none_if_nan(precision), _none_if_nan(recall), tp, fp, fn, tn)


def ranking_figures(
    labels: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]
) -> tuple[float | None, float | None]:
    """PR-AUC (average precision: the figure that matters when fraud is rare) and ROC-AUC of a score;
    None when the labels have a single class and neither is defined."""
    if labels.all() or not labels.any():
        return None, None
    return float(average_precision_score(labels, scores)), float(roc_auc_score(labels, scores))


def _by_label(counter: Counter[tuple[str, bool]], keys: Sequence[str]) -> dict[str, dict[str, int]]:
    return {key: {"fraud": counter[key, True], "legit": counter[key, False]} for key in keys}


def rule_hits(
    decisions: Sequence[decision_pb2.Decision], labels: npt.NDArray[np.bool_]
) -> dict[str, dict[str, dict[str, int]]]:
    """Hits per rule on frauds and non-frauds, active and shadow rules apart: a shadow rule's figures are
    what it would do if activated, an active rule's what it does."""
    counts: dict[str, Counter[tuple[str, bool]]] = {"active": Counter(), "shadow": Counter()}
    for decision, fraud in zip(decisions, labels, strict=True):
        for hit in decision.rules_fired:
            counts["shadow" if hit.shadow else "active"][hit.rule_id, bool(fraud)] += 1
    return {
        mode: _by_label(counter, sorted({rule for rule, _ in counter})) for mode, counter in counts.items()
    }


def outcome_name(decision: decision_pb2.Decision) -> str:
    """APPROVE / REVIEW / DECLINE (UNSPECIFIED should never come from a server)."""
    return decision_pb2.Outcome.Name(decision.outcome).removeprefix("OUTCOME_")


def _failure_figures(replay_result: Replay) -> tuple[dict[str, int], dict[str, Any] | None]:
    failures = sorted(replay_result.failures, key=lambda failure: failure.row)
    by_code = dict(Counter(failure.code for failure in failures))
    return by_code, asdict(failures[0]) if failures else None


def pass_figures(pass_number: int, is_fraud: npt.NDArray[np.bool_], replay_result: Replay) -> PassFigures:
    """All figures of one pass, over the rows the service decided (failed rows are counted apart: a
    figure over fewer rows than the file must say so)."""
    decided_rows = np.array([d is not None for d in replay_result.decisions], dtype=bool)
    decisions = [d for d in replay_result.decisions if d is not None]
    labels = is_fraud[decided_rows]
    outcomes = np.array([outcome_name(d) for d in decisions], dtype=object)
    risk = np.array([d.risk_score for d in decisions], dtype=np.float64)
    model = np.array([d.model_score for d in decisions], dtype=np.float64)
    flagged = np.isin(outcomes, ("REVIEW", "DECLINE"))
    risk_pr, risk_roc = ranking_figures(labels, risk)
    model_pr, model_roc = ranking_figures(labels, model)
    errors_by_code, first_error = _failure_figures(replay_result)
    wall = replay_result.wall_time_s
    return PassFigures(
        pass_number=pass_number,
        rows=len(is_fraud),
        frauds=int(is_fraud.sum()),
        decided=len(decisions),
        errors=len(replay_result.failures),
        errors_by_code=errors_by_code,
        first_error=first_error,
        flagged=binary_figures(labels, flagged),
        declined=binary_figures(labels, outcomes == "DECLINE"),
        risk_pr_auc=risk_pr,
        risk_roc_auc=risk_roc,
        model_pr_auc=model_pr,
        model_roc_auc=model_roc,
        outcomes=_by_label(Counter(zip(outcomes.tolist(), labels.tolist(), strict=True)), OUTCOMES),
        degraded=sum(d.degraded for d in decisions),
        replayed=sum(d.replayed for d in decisions),
        rule_hits=rule_hits(decisions, labels),
        model_versions=dict(Counter(d.model_version for d in decisions)),
        wall_time_s=round(wall, 3),
        transactions_per_s=round(len(is_fraud) / wall, 1) if wall > 0 else 0.0,
        calls=replay_result.calls,
        retried_calls=replay_result.retried_calls,
    )


def pass_changes(previous: Decisions, current: Decisions, is_fraud: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """How the same rows were decided differently from the previous pass: outcome transitions, and for
    legitimate rows that became flagged (new false positives) the reasons and rules behind them and how
    the model score moved. That is the evidence of what accumulated account state does."""
    transitions: Counter[tuple[str, bool]] = Counter()
    new_fp_reasons: Counter[str] = Counter()
    new_fp_rules: Counter[str] = Counter()
    score_change: dict[bool, list[float]] = {True: [], False: []}
    new_fp = resolved_fp = 0
    for before, after, fraud in zip(previous, current, is_fraud.tolist(), strict=True):
        if before is None or after is None:
            continue
        was, now = outcome_name(before), outcome_name(after)
        score_change[fraud].append(after.model_score - before.model_score)
        if was != now:
            transitions[f"{was}->{now}", fraud] += 1
        if fraud:
            continue
        if was == "APPROVE" and now != "APPROVE":
            new_fp += 1
            new_fp_reasons.update(reason.code for reason in after.reasons)
            new_fp_rules.update(
                hit.rule_id + (" (shadow)" if hit.shadow else "") for hit in after.rules_fired
            )
        elif was != "APPROVE" and now == "APPROVE":
            resolved_fp += 1

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 6) if values else None

    return {
        "outcome_transitions": _by_label(transitions, sorted({key for key, _ in transitions})),
        "new_false_positives": new_fp,
        "resolved_false_positives": resolved_fp,
        "new_false_positive_reasons": dict(new_fp_reasons.most_common()),
        "new_false_positive_rules": dict(new_fp_rules.most_common()),
        "mean_model_score_change": {"fraud": mean(score_change[True]), "legit": mean(score_change[False])},
    }


# --- the whole evaluation ------------------------------------------------------------------------


def evaluate_live(
    stub: scoring_pb2_grpc.ScoringServiceStub,
    rows: PaySimRows,
    *,
    passes: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    run_id: str | None = None,
    on_pass: Callable[[PassFigures], None] | None = None,
) -> tuple[str, list[PassFigures]]:
    """Replay ``rows`` ``passes`` times against one server and measure each pass; passes run one after
    the other so that pass n+1 finds the account state pass n left. Returns the run id (the prefix of
    every transaction id) and the figures; ``on_pass`` hears each pass as it ends (progress)."""
    run_id = run_id or new_run_id()
    figures: list[PassFigures] = []
    previous: Decisions | None = None
    for pass_number in range(1, passes + 1):
        transactions = build_transactions(rows, run_id, pass_number)
        replay_result = replay(stub, transactions, batch_size=batch_size, timeout_s=timeout_s)
        result = pass_figures(pass_number, rows.is_fraud, replay_result)
        if previous is not None:
            result.changes = pass_changes(previous, replay_result.decisions, rows.is_fraud)
        previous = replay_result.decisions
        figures.append(result)
        if on_pass is not None:
            on_pass(result)
    return run_id, figures
