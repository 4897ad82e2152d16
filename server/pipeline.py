"""The scoring pipeline behind ScoringService, one micro-batch at a time:

batch -> state (admit: claim keys, append to account journals) -> features (hot path) -> rules + model
-> decide -> ledger (durable) -> respond, then state (settle: decisions into claims, journals folded).

Every stage pays its overhead once per batch: one Redis script to admit and one to settle, one
hot-path call, one rule evaluation, one onnxruntime run, one hand-off to the ledger writer. Account
state never loses to contention: Redis orders each account's transactions as it admits them and every
batch computes on exactly the state placed before its rows (server/state.py, decision 0011).
Idempotency is checked three times, cheapest first: requests in flight in this worker share one
future, Redis claims catch retries across workers and restarts before anything touches the state, and
the ledger's unique key has the final word.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import grpc
import numpy as np
import numpy.typing as npt
import structlog
from google.protobuf import timestamp_pb2
from redis.exceptions import RedisError

from sentinel.config import Settings
from sentinel.hotpath import (
    TransactionColumns,
    TransactionColumnsBuilder,
    build_features_stateless,
    evaluate_rules,
)
from sentinel.hotpath.rows import ROW_SIZE, Records, columns_of, encode_rows
from sentinel.ledger.records import LedgerAck, LedgerRecord, record_from_messages, transaction_fingerprint
from sentinel.model_export.metadata import Thresholds as ModelThresholds
from sentinel.model_export.reloader import ActiveModel
from sentinel.server import metrics
from sentinel.server.batching import MicroBatcher
from sentinel.server.budget import within_budget
from sentinel.server.columns import append_transaction
from sentinel.server.decide import OUTCOME_NAMES, Thresholds, decide
from sentinel.server.rules.compiler import CompiledRuleSet
from sentinel.server.state import (
    AccountStateStore,
    Admission,
    AdmitRow,
    Claim,
    Fold,
    decided_claim,
    features_and_states,
    journal_rows,
)
from sentinel.server.validate import ValidatedTransaction
from sentinel.v1 import decision_pb2

log = structlog.get_logger("sentinel.pipeline")

# While another worker decides a key (its claim is pending), a duplicate asks Redis again after a pause
# that doubles from the first to the last value here.
ORIGINAL_POLL_FIRST_S = 0.002
ORIGINAL_POLL_MAX_S = 0.05


@dataclass(frozen=True, slots=True)
class Rejection:
    """A transaction that gets no decision: the gRPC status to answer with, and why."""

    code: grpc.StatusCode
    message: str


Result = decision_pb2.Decision | Rejection


class AwaitingOriginal(NamedTuple):
    """A batch's answer for a request whose key another worker admitted and has not decided yet."""

    admitted_at: float  # seconds since the epoch


BatchResult = Result | AwaitingOriginal


class ScoringRequest(NamedTuple):
    """A validated transaction with its canonical bytes and fingerprint (computed once).

    NamedTuples (here and for _InFlight), not frozen dataclasses: as immutable, and built once per
    transaction at a quarter of the cost. ``takeover``: decide a request that another worker admitted
    and never decided (it died): score it without appending it to the state a second time."""

    txn: ValidatedTransaction
    transaction_bytes: bytes
    fingerprint: bytes
    takeover: bool = False
    deadline: float = math.inf  # time.monotonic() when the caller gives up

    @classmethod
    def of(cls, txn: ValidatedTransaction, deadline: float) -> ScoringRequest:
        data = txn.message.SerializeToString(deterministic=True)
        return cls(txn, data, transaction_fingerprint(data), False, deadline)


class _InFlight(NamedTuple):
    """A request being decided in this worker; duplicates of its key wait for its future."""

    fingerprint: bytes
    future: asyncio.Future[BatchResult]


@dataclass(slots=True)
class _Batch:
    """One micro-batch on its way through the stages: the requests and, by row, what each stage found."""

    requests: list[ScoringRequest]
    columns: TransactionColumns
    records: Records = field(init=False)  # the rows as journal records (set when state is admitted)
    decided_at: timestamp_pb2.Timestamp = field(init=False)
    results: list[BatchResult | None] = field(init=False)
    # row -> its decision as stored (unflagged, no ledger sequence), serialized: the one made now, or the
    # ledger's when the key was recorded already
    decided: dict[int, bytes] = field(default_factory=dict)
    replays: set[int] = field(default_factory=set)  # rows answered from a decided claim
    resubmitted: set[int] = field(default_factory=set)  # replays whose claim had no ledger sequence
    owners: dict[int, tuple[bytes | None, bytes | None]] = field(default_factory=dict)  # ledger conflicts
    folds: list[Fold] = field(default_factory=list)
    durable: bool = False  # the ledger acknowledged the batch's records
    keys_claimed: bool = False  # Redis claimed its keys (admitted): the ledger's spool may acknowledge it
    deadline: float = field(init=False)  # the earliest of its callers' deadlines

    def __post_init__(self) -> None:
        self.results = [None] * len(self.requests)
        self.decided_at = timestamp_pb2.Timestamp()
        self.decided_at.GetCurrentTime()
        self.deadline = min(request.deadline for request in self.requests)

    def answers(self) -> list[BatchResult]:
        """Every row's result (a row no stage answered is an internal error, never silence)."""
        missing = Rejection(grpc.StatusCode.INTERNAL, "no decision")
        return [r if r is not None else missing for r in self.results]


class RuleSource(Protocol):
    """Where the pipeline reads the current compiled rules from (swapped by the hot-reload watcher)."""

    @property
    def current(self) -> CompiledRuleSet:
        """The rule set to evaluate now."""
        ...


class LedgerSink(Protocol):
    """The ledger writer's interface as the pipeline uses it."""

    async def submit(
        self,
        records: Sequence[LedgerRecord],
        ack: str | None = None,
        deadline: float | None = None,
        *,
        keys_checked: bool = True,
    ) -> list[LedgerAck]:
        """Durably record ``records``; one ack per record, same order; Postgres gets less time than
        the commit timeout when ``deadline`` (``time.monotonic()``) needs the spool to answer first;
        ``keys_checked=False``: no Redis claim holds the keys, so only Postgres may acknowledge them."""
        ...


class ScoringPipeline:
    """Decides validated transactions through micro-batches; implements the DecisionMaker protocol."""

    def __init__(
        self,
        settings: Settings,
        *,
        state_store: AccountStateStore | None,
        model: ActiveModel,
        rules: RuleSource,
        ledger: LedgerSink,
    ) -> None:
        self._settings = settings
        self._store = state_store
        self._model = model
        self._rules = rules
        self._ledger = ledger
        self._budget_s = settings.redis_budget_ms / 1000
        self._fail_closed = settings.degraded_mode == "fail_closed"
        self._redis_down_until = 0.0
        self._in_flight: dict[str, _InFlight] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._batcher: MicroBatcher[ScoringRequest, BatchResult] = MicroBatcher(
            self._process,
            max_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            max_in_flight=settings.batch_max_in_flight,
        )

    def start(self) -> None:
        """Start the micro-batcher (needs the running event loop)."""
        self._batcher.start()

    async def close(self) -> None:
        """Finish the queued and in-flight batches and their background claim updates."""
        await self._batcher.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # ----------------------------------------------------------------------------- entry point
    async def decide(
        self, transactions: list[ValidatedTransaction], deadline: float | None = None
    ) -> list[Result]:
        """One decision (or rejection) per transaction, in order."""
        until = math.inf if deadline is None else deadline
        requests = [ScoringRequest.of(txn, until) for txn in transactions]
        fresh: dict[str, ScoringRequest] = {}
        for request in requests:
            key = request.txn.idempotency_key
            if key not in self._in_flight and key not in fresh:
                fresh[key] = request
        futures = self._batcher.submit_many(list(fresh.values())) if fresh else []
        for (key, request), future in zip(fresh.items(), futures, strict=True):
            entry = _InFlight(request.fingerprint, future)
            self._in_flight[key] = entry
            future.add_done_callback(functools.partial(self._release, key, entry))
        entries = [(request, self._in_flight[request.txn.idempotency_key]) for request in requests]
        results: list[Result] = []
        for request, entry in entries:
            # shield: a caller that gives up must not cancel the work others wait for too
            result = await asyncio.shield(entry.future)
            if isinstance(result, AwaitingOriginal):
                result = await self._after_original(request, result)
            elif fresh.get(request.txn.idempotency_key) is not request:
                result = self._follow(request, entry.fingerprint, result)
            results.append(result)
        return results

    async def _after_original(self, request: ScoringRequest, pending: AwaitingOriginal) -> Result:
        """Answer a request whose key another worker admitted and is still deciding: ask again until its
        claim holds the decision, then answer as any replay. A claim pending for ``claim_takeover_s``
        means the worker that admitted it died before deciding: decide it here (a takeover), without
        appending it to the account's state again; the ledger's unique key keeps one decision."""
        pause = ORIGINAL_POLL_FIRST_S
        while True:
            takeover = time.time() - pending.admitted_at >= self._settings.claim_takeover_s
            if not takeover:
                await asyncio.sleep(pause)
                pause = min(pause * 2, ORIGINAL_POLL_MAX_S)
            (future,) = self._batcher.submit_many([request._replace(takeover=takeover)])
            result = await future
            if not isinstance(result, AwaitingOriginal):
                return result
            pending = result

    def _release(self, key: str, entry: _InFlight, _future: object) -> None:
        if self._in_flight.get(key) is entry:
            del self._in_flight[key]

    @staticmethod
    def _follow(request: ScoringRequest, first_fingerprint: bytes, first: Result) -> Result:
        """The answer for a duplicate of a request that was in flight."""
        if first_fingerprint != request.fingerprint:
            return _key_reused(request.txn.idempotency_key)
        if isinstance(first, Rejection):
            return first
        replay = decision_pb2.Decision()
        replay.CopyFrom(first)
        replay.replayed = True
        metrics.REPLAYS.inc()
        return replay

    # ------------------------------------------------------------------------------- one batch
    async def _process(self, requests: list[ScoringRequest], waits: list[float]) -> list[BatchResult]:
        metrics.BATCH_SIZE.observe(len(requests))
        metrics.STAGE_SECONDS.labels("queue_wait").observe(max(waits))
        batch = _Batch(requests, self._columns(requests))
        await self._settles_caught_up()
        admission = await self._admit(batch) if self._state_available() else None
        batch.keys_claimed = admission is not None
        if admission is None:
            self._score_degraded(batch)
        else:
            self._score_admitted(batch, admission)
        results = await self._record(batch)
        if admission is not None:
            self._settle_later(batch)
        return results

    @staticmethod
    def _columns(requests: list[ScoringRequest]) -> TransactionColumns:
        """The batch's transactions as hot-path columns, one account slot per distinct account."""
        slots: dict[str, int] = {}
        builder = TransactionColumnsBuilder(len(requests))
        for request in requests:
            append_transaction(builder, slots.setdefault(request.txn.account_id, len(slots)), request.txn)
        return builder.build()

    def _state_available(self) -> bool:
        return self._store is not None and time.monotonic() >= self._redis_down_until

    async def _settles_caught_up(self) -> None:
        """Backpressure: no new batch is admitted while more settles than batches in flight are still
        waiting for Redis. Without it a busy Redis queues settles without bound, and every admit waits
        behind them (in the stream benchmark until it ran out of budget)."""
        while len(self._background) > self._settings.batch_max_in_flight:
            await asyncio.wait(self._background, return_when=asyncio.FIRST_COMPLETED)

    async def _admit(self, batch: _Batch) -> Admission | None:
        """state: claim the keys and append the rows to their accounts' journals (None: Redis is not
        reachable within its budget; the batch is scored degraded)."""
        assert self._store is not None
        batch.records = encode_rows(batch.columns)
        records = batch.records.tobytes()
        rows = [
            AdmitRow(
                request.txn.account_id,
                request.txn.idempotency_key,
                request.fingerprint,
                records[i * ROW_SIZE : (i + 1) * ROW_SIZE],
                not request.takeover,
            )
            for i, request in enumerate(batch.requests)
        ]
        started = time.perf_counter()
        try:
            return await within_budget(self._store.admit(rows), self._budget_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_down_until = time.monotonic() + self._settings.redis_retry_after_s
            log.warning(
                "state_unavailable", error=repr(exc), retry_in_s=self._settings.redis_retry_after_s
            )
            return None
        finally:
            metrics.STAGE_SECONDS.labels("state").observe(time.perf_counter() - started)

    def _score_degraded(self, batch: _Batch) -> None:
        """features (stateless) -> rules + model -> decide, for every row: Redis is out of reach."""
        started = time.perf_counter()
        features = build_features_stateless(batch.columns)
        metrics.STAGE_SECONDS.labels("features").observe(time.perf_counter() - started)
        rows = list(range(len(batch.requests)))
        self._decide_rows(batch, rows, features, batch.columns, degraded=True)
        metrics.DEGRADED.labels("state_unavailable").inc(len(rows))

    def _score_admitted(self, batch: _Batch, admission: Admission) -> None:
        """Answer the rows whose key was claimed already; score the admitted rows on the state Redis
        placed before them (base + earlier journal rows), and takeovers on the state after them."""
        admitted, takeovers = self._answer_claims(batch, admission.claims)
        started = time.perf_counter()
        accounts = admission.accounts
        slot_of = {account: slot for slot, account in enumerate(accounts)}
        states: list[bytes | None] = [value.base for value in accounts.values()]
        prefix_records, prefix_slots = journal_rows(
            {account: value.journal for account, value in accounts.items()}, slot_of
        )
        prefix = len(prefix_records)
        if not prefix and len(admitted) == len(batch.requests):
            columns = batch.columns  # the usual case: nothing to apply first, no row answered already
        else:
            own = np.asarray(admitted, dtype=np.intp)
            records = np.concatenate((prefix_records, batch.records[own]))
            columns = columns_of(records, np.concatenate((prefix_slots, batch.columns.account_slot[own])))
        features, new_states = features_and_states(columns, states)
        metrics.STAGE_SECONDS.labels("features").observe(time.perf_counter() - started)
        if admitted:
            own_columns = columns if not prefix else columns.take(slice(prefix, None))
            self._decide_rows(batch, admitted, features[prefix:], own_columns)
        if takeovers:
            # A takeover's transaction is already in the state: its features are read, not applied.
            taken = batch.columns.take(np.asarray(takeovers, dtype=np.intp))
            takeover_features, _ = features_and_states(taken, list(new_states))
            self._decide_rows(batch, takeovers, takeover_features, taken)
        appended = Counter(batch.requests[i].txn.account_id for i in admitted)
        for account, slot in slot_of.items():
            value, state = accounts[account], new_states[slot]
            rows = len(value.journal) // ROW_SIZE + appended[account]
            if rows and state is not None:
                batch.folds.append(Fold(account, value.version, state, rows))

    def _answer_claims(self, batch: _Batch, claims: list[Claim | None]) -> tuple[list[int], list[int]]:
        """Rows whose key was claimed before are answered from the claim; the rows admitted now and the
        takeovers are returned to be scored."""
        admitted: list[int] = []
        takeovers: list[int] = []
        for i, (request, claim) in enumerate(zip(batch.requests, claims, strict=True)):
            if request.takeover:
                takeovers.append(i)
            elif claim is None:
                admitted.append(i)
            elif claim.fingerprint != request.fingerprint:
                batch.results[i] = _key_reused(request.txn.idempotency_key)
            elif claim.decision is None:
                batch.results[i] = AwaitingOriginal(claim.admitted_at)
            else:
                stored = decision_pb2.Decision.FromString(claim.decision)
                stored.replayed = True
                batch.results[i] = stored
                batch.replays.add(i)
        return admitted, takeovers

    def _decide_rows(
        self,
        batch: _Batch,
        rows: list[int],
        features: npt.NDArray[np.float32],
        columns: TransactionColumns,
        *,
        degraded: bool = False,
    ) -> None:
        """rules + model -> decide for ``rows`` of the batch (``features``/``columns``: theirs, in order)."""
        started = time.perf_counter()
        rule_set = self._rules.current
        matches = (
            evaluate_rules(rule_set.program_set, features, columns)
            if len(rule_set)
            else np.zeros((len(rows), 0), dtype=np.uint8)
        )
        after_rules = time.perf_counter()
        metrics.STAGE_SECONDS.labels("rules").observe(after_rules - started)

        model = self._model.current
        scores = model.scorer.score(features)
        after_model = time.perf_counter()
        metrics.STAGE_SECONDS.labels("model").observe(after_model - after_rules)

        thresholds = self._thresholds(model.metadata.thresholds)
        hit_rows: npt.NDArray[np.bool_] = (
            np.asarray(matches.any(axis=1)) if matches.shape[1] else np.zeros(len(rows), dtype=np.bool_)
        )
        for index, row in enumerate(rows):
            request = batch.requests[row]
            matched = [rule_set.rules[j] for j in np.flatnonzero(matches[index])] if hit_rows[index] else []
            score = float(scores[index])
            verdict = decide(score, matched, thresholds, degraded=degraded, fail_closed=self._fail_closed)
            for rule in matched:
                metrics.RULE_HITS.labels(rule.rule_id, "shadow" if rule.shadow else "active").inc()
                if rule.shadow:
                    log.info(
                        "shadow_rule_matched",
                        rule_id=rule.rule_id,
                        rule_version=rule.version,
                        transaction_id=request.txn.transaction_id,
                    )
            decision = decision_pb2.Decision(
                transaction_id=request.txn.transaction_id,
                outcome=verdict.outcome,
                risk_score=verdict.risk_score,
                model_score=score,
                rules_fired=verdict.rules_fired,
                reasons=verdict.reasons,
                model_version=model.version,
                degraded=degraded,
                idempotency_key=request.txn.idempotency_key,
                decided_at=batch.decided_at,
            )
            batch.results[row] = decision
            batch.decided[row] = decision.SerializeToString(deterministic=True)
        metrics.STAGE_SECONDS.labels("decide").observe(time.perf_counter() - after_model)

    def _thresholds(self, model_thresholds: ModelThresholds) -> Thresholds:
        """The model's own thresholds, unless the configuration overrides them."""
        review, decline = self._settings.review_threshold, self._settings.decline_threshold
        return Thresholds(
            review=model_thresholds.review if review is None else review,
            decline=model_thresholds.decline if decline is None else decline,
        )

    async def _record(self, batch: _Batch) -> list[BatchResult]:
        """ledger: durably record every decision made now (with the bytes already serialized for it) and
        every replay whose claim does not yet say it is durable (no ledger sequence), which the ledger's
        unique key makes safe."""
        rows: list[int] = []
        records: list[LedgerRecord] = []
        for i, request in enumerate(batch.requests):
            result = batch.results[i]
            if not isinstance(result, decision_pb2.Decision):
                continue
            if i in batch.replays:
                if result.ledger_sequence:
                    metrics.REPLAYS.inc()
                    continue
                batch.resubmitted.add(i)
            rows.append(i)
            records.append(_record(request, result, batch.decided.get(i)))
        started = time.perf_counter()
        try:
            deadline = None if math.isinf(batch.deadline) else batch.deadline
            acks = (
                await self._ledger.submit(records, deadline=deadline, keys_checked=batch.keys_claimed)
                if records
                else []
            )
        except Exception as exc:  # every ledger failure means "not durable: retry"
            log.error("ledger_unavailable", error=repr(exc), batch=len(records))
            rejection = Rejection(
                grpc.StatusCode.UNAVAILABLE,
                "the decision could not be recorded durably; retry with the same idempotency key",
            )
            return [rejection if isinstance(r, decision_pb2.Decision) else r for r in batch.answers()]
        finally:
            metrics.STAGE_SECONDS.labels("ledger").observe(time.perf_counter() - started)
        outcomes: dict[str, int] = {}
        for position, (i, ack) in enumerate(zip(rows, acks, strict=True)):
            decision = batch.results[i]
            assert isinstance(decision, decision_pb2.Decision)
            if ack.conflict:
                batch.results[i] = _key_reused(batch.requests[i].txn.idempotency_key)
                batch.owners[i] = (ack.stored_fingerprint, ack.stored_decision)
                continue
            record = records[position]
            if ack.existed and ack.stored_decision not in (None, record.decision_bytes):
                decision = decision_pb2.Decision.FromString(ack.stored_decision)
                decision.replayed = True
                batch.results[i] = decision
                batch.decided[i] = ack.stored_decision
            decision.ledger_sequence = ack.sequence
            if decision.replayed:
                metrics.REPLAYS.inc()
            name = OUTCOME_NAMES[decision.outcome]
            outcomes[name] = outcomes.get(name, 0) + 1
        for name, count in outcomes.items():
            metrics.DECISIONS.labels(name).inc(count)
        batch.durable = True
        return batch.answers()

    def _settle_later(self, batch: _Batch) -> None:
        """state, after the ledger: write the decisions into the claims this batch took (with their
        ledger sequence once durable, so later retries are answered from Redis alone) and fold the
        journals, in the background: a retry that comes before waits for the claim, and a lost fold only
        leaves the entries for the next batch to fold."""
        claims: list[tuple[str, bytes]] = []
        for i, request in enumerate(batch.requests):
            if i in batch.owners:  # the ledger knows the key for another transaction: the claim is its
                fingerprint, decision = batch.owners[i]
                if fingerprint is not None and decision is not None:
                    claims.append((request.txn.idempotency_key, decided_claim(fingerprint, decision)))
                continue
            result = batch.results[i]
            if i not in batch.decided and i not in batch.resubmitted:
                continue
            if i in batch.decided:
                value = batch.decided[i]
                if batch.durable and isinstance(result, decision_pb2.Decision) and result.ledger_sequence:
                    value += _sequence_field(result.ledger_sequence)
            elif batch.durable and isinstance(result, decision_pb2.Decision):
                value = _unflagged(result).SerializeToString()
            else:
                continue
            claims.append((request.txn.idempotency_key, decided_claim(request.fingerprint, value)))
        if not claims and not batch.folds:
            return
        assert self._store is not None
        task = asyncio.get_running_loop().create_task(self._settle(claims, batch.folds))
        self._background.add(task)
        task.add_done_callback(self._background_done)

    async def _settle(self, claims: list[tuple[str, bytes]], folds: list[Fold]) -> None:
        assert self._store is not None
        started = time.perf_counter()
        try:
            await self._store.settle(claims, folds)
        finally:
            metrics.STAGE_SECONDS.labels("settle").observe(time.perf_counter() - started)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("state_not_settled", error=repr(task.exception()))


def _key_reused(key: str) -> Rejection:
    return Rejection(
        grpc.StatusCode.ALREADY_EXISTS,
        f"idempotency key {key!r} was already used for a different transaction",
    )


def _sequence_field(sequence: int) -> bytes:
    """``ledger_sequence`` alone, serialized. Appended to a serialized Decision it sets that field when
    parsed (a later field wins), so a claim gets its sequence without serializing the decision again."""
    return decision_pb2.Decision(ledger_sequence=sequence).SerializeToString()


def _unflagged(decision: decision_pb2.Decision) -> decision_pb2.Decision:
    """The decision as stored (ledger, claims): the original, not flagged as a replay."""
    if not decision.replayed:
        return decision
    stored = decision_pb2.Decision()
    stored.CopyFrom(decision)
    stored.replayed = False
    return stored


def _record(
    request: ScoringRequest, decision: decision_pb2.Decision, decision_bytes: bytes | None
) -> LedgerRecord:
    """The ledger record of a decision, from what the batch already computed for it."""
    stored = _unflagged(decision)
    if stored is not decision:
        decision_bytes = None
    return record_from_messages(
        request.txn.message,
        stored,
        transaction_bytes=request.transaction_bytes,
        fingerprint=request.fingerprint,
        decision_bytes=decision_bytes,
        amount=request.txn.amount,
    )
