"""The scoring pipeline behind ScoringService, one micro-batch at a time:

batch -> state (Redis read) -> features (hot path) -> rules + model -> decide -> state (Redis commit)
-> ledger (durable) -> respond.

Every stage pays its overhead once per batch: one Redis read and one atomic commit script, one hot-path
call, one rule evaluation, one onnxruntime run, one hand-off to the ledger writer. Idempotency is
checked three times, cheapest first: requests in flight in this worker share one future, Redis
claims catch retries across workers and restarts, and the ledger's unique key has the final word.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import grpc
import numpy as np
import numpy.typing as npt
import structlog
from google.protobuf import timestamp_pb2
from redis.exceptions import RedisError

from sentinel.config import Settings
from sentinel.hotpath import (
    StateDecodeError,
    TransactionColumnsBuilder,
    build_features,
    build_features_stateless,
    evaluate_rules,
)
from sentinel.ledger.records import (
    FINGERPRINT_BYTES,
    LedgerAck,
    LedgerRecord,
    record_from_messages,
    transaction_fingerprint,
)
from sentinel.model_export.metadata import Thresholds as ModelThresholds
from sentinel.model_export.reloader import ActiveModel
from sentinel.server import metrics
from sentinel.server.batching import MicroBatcher
from sentinel.server.columns import append_transaction
from sentinel.server.decide import OUTCOME_NAMES, Thresholds, decide
from sentinel.server.rules.compiler import CompiledRuleSet
from sentinel.server.state import AccountSnapshot, AccountStateStore, AccountWrite
from sentinel.server.validate import ValidatedTransaction
from sentinel.v1 import decision_pb2

log = structlog.get_logger("sentinel.pipeline")

MAX_STATE_ATTEMPTS = 10
# Between attempts, a random pause up to this x 2^(attempt - 1), at most CONFLICT_BACKOFF_MAX_S ("full
# jitter"): racing writers of a hot account drift apart. The first pauses are short, so the usual single
# conflict costs about a millisecond; later ones outgrow a batch's read-to-commit window even on a
# loaded machine (a pause growing by 1 ms per attempt did not: 200 concurrent calls on one account
# across two workers were refused ABORTED in a CI run).
CONFLICT_BACKOFF_S = 0.001
CONFLICT_BACKOFF_MAX_S = 0.032


@dataclass(frozen=True, slots=True)
class Rejection:
    """A transaction that gets no decision: the gRPC status to answer with, and why."""

    code: grpc.StatusCode
    message: str


Result = decision_pb2.Decision | Rejection


class ScoringRequest(NamedTuple):
    """A validated transaction with its canonical bytes and fingerprint (computed once).

    NamedTuples (here and for _InFlight), not frozen dataclasses: as immutable, and built once per
    transaction at a quarter of the cost."""

    txn: ValidatedTransaction
    transaction_bytes: bytes
    fingerprint: bytes

    @classmethod
    def of(cls, txn: ValidatedTransaction) -> ScoringRequest:
        data = txn.message.SerializeToString(deterministic=True)
        return cls(txn, data, transaction_fingerprint(data))


class _InFlight(NamedTuple):
    """A request being decided in this worker; duplicates of its key wait for its future."""

    fingerprint: bytes
    future: asyncio.Future[Result]


class RuleSource(Protocol):
    """Where the pipeline reads the current compiled rules from (swapped by the hot-reload watcher)."""

    @property
    def current(self) -> CompiledRuleSet:
        """The rule set to evaluate now."""
        ...


class LedgerSink(Protocol):
    """The ledger writer's interface as the pipeline uses it."""

    async def submit(self, records: Sequence[LedgerRecord]) -> list[LedgerAck]:
        """Durably record ``records``; one ack per record, same order."""
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
        self._batcher: MicroBatcher[ScoringRequest, Result] = MicroBatcher(
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
    async def decide(self, transactions: list[ValidatedTransaction]) -> list[Result]:
        """One decision (or rejection) per transaction, in order."""
        requests = [ScoringRequest.of(txn) for txn in transactions]
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
            if fresh.get(request.txn.idempotency_key) is not request:
                result = self._follow(request, entry.fingerprint, result)
            results.append(result)
        return results

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
    async def _process(self, requests: list[ScoringRequest], waits: list[float]) -> list[Result]:
        metrics.BATCH_SIZE.observe(len(requests))
        metrics.STAGE_SECONDS.labels("queue_wait").observe(max(waits))
        results: list[Result | None] = [None] * len(requests)
        decided_at = timestamp_pb2.Timestamp()
        decided_at.GetCurrentTime()
        pending = list(range(len(requests)))
        degraded = not self._state_available()
        replays: dict[int, bytes] = {}  # row -> stored decision from a Redis claim
        serialized: dict[int, bytes] = {}  # row -> its decision's bytes, for the claim and the ledger
        claimed: set[int] = set()  # rows whose idempotency claim this batch wrote
        for attempt in range(MAX_STATE_ATTEMPTS):
            if attempt:
                pause_bound = min(CONFLICT_BACKOFF_MAX_S, CONFLICT_BACKOFF_S * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(0, pause_bound))
            rows = [requests[i] for i in pending]
            snapshots: dict[str, AccountSnapshot] | None = None
            if not degraded:
                read = await self._read_state(rows)
                if read is None:
                    degraded = True
                else:
                    snapshots, claims = read
                    pending = self._answer_claims(requests, pending, claims, results, replays)
                    rows = [requests[i] for i in pending]
            if not rows:
                break
            decisions, new_states, slots = self._score(rows, snapshots, decided_at, degraded)
            encoded = [decision.SerializeToString(deterministic=True) for decision in decisions]
            for row, decision, data in zip(pending, decisions, encoded, strict=True):
                results[row] = decision
                serialized[row] = data
            if degraded or snapshots is None:
                break
            conflicts = await self._commit_state(rows, encoded, snapshots, new_states, slots)
            if conflicts is not None:
                claimed.update(i for i in pending if requests[i].txn.account_id not in conflicts)
            if not conflicts:  # done, or None: Redis failed during the commit and the decisions stand
                break
            pending = [i for i in pending if requests[i].txn.account_id in conflicts]
            for i in pending:
                results[i] = None
        else:
            for i in pending:
                results[i] = Rejection(
                    grpc.StatusCode.ABORTED,
                    f"account {requests[i].txn.account_id!r} is updated concurrently too often; retry",
                )
        return await self._record(requests, results, replays, serialized, claimed)

    def _mark_durable(
        self, requests: list[ScoringRequest], results: list[Result | None], claimed: set[int]
    ) -> None:
        """Rewrite this batch's claims with the committed decisions (ledger sequence included), in the
        background: a later retry is then answered from Redis alone. Losing this write only means that
        retry asks the ledger again."""
        durable = [
            (
                requests[i].txn.account_id,
                requests[i].txn.idempotency_key,
                requests[i].fingerprint + result.SerializeToString(),
            )
            for i in claimed
            if isinstance(result := results[i], decision_pb2.Decision)
            and result.ledger_sequence
            and not result.replayed
        ]
        if durable and self._store is not None:
            task = asyncio.get_running_loop().create_task(self._store.update_claims(durable))
            self._background.add(task)
            task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("claims_not_marked_durable", error=repr(task.exception()))

    def _state_available(self) -> bool:
        return self._store is not None and time.monotonic() >= self._redis_down_until

    def _state_failed(self, exc: BaseException, stage: str) -> None:
        self._redis_down_until = time.monotonic() + self._settings.redis_retry_after_s
        log.warning(
            "state_unavailable", stage=stage, error=repr(exc), retry_in_s=self._settings.redis_retry_after_s
        )

    async def _read_state(
        self, rows: list[ScoringRequest]
    ) -> tuple[dict[str, AccountSnapshot], dict[tuple[str, str], bytes]] | None:
        assert self._store is not None
        accounts = list(dict.fromkeys(r.txn.account_id for r in rows))
        claims = [(r.txn.account_id, r.txn.idempotency_key) for r in rows]
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self._store.read(accounts, claims), self._budget_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._state_failed(exc, "read")
            return None
        finally:
            metrics.STAGE_SECONDS.labels("state").observe(time.perf_counter() - started)

    def _answer_claims(
        self,
        requests: list[ScoringRequest],
        pending: list[int],
        claims: dict[tuple[str, str], bytes],
        results: list[Result | None],
        replays: dict[int, bytes],
    ) -> list[int]:
        """Rows whose idempotency key is already claimed are answered from the claim, not scored."""
        if not claims:
            return pending
        remaining = []
        for i in pending:
            txn = requests[i].txn
            claim = claims.get((txn.account_id, txn.idempotency_key))
            if claim is None:
                remaining.append(i)
            elif claim[:FINGERPRINT_BYTES] != requests[i].fingerprint:
                results[i] = _key_reused(txn.idempotency_key)
            else:
                replays[i] = claim[FINGERPRINT_BYTES:]
        return remaining

    def _score(
        self,
        rows: list[ScoringRequest],
        snapshots: dict[str, AccountSnapshot] | None,
        decided_at: timestamp_pb2.Timestamp,
        degraded: bool,
    ) -> tuple[list[decision_pb2.Decision], list[bytes | None], dict[str, int]]:
        """features -> rules + model -> decide, for rows that are not replays."""
        started = time.perf_counter()
        slots: dict[str, int] = {}
        builder = TransactionColumnsBuilder(len(rows))
        for request in rows:
            slot = slots.setdefault(request.txn.account_id, len(slots))
            append_transaction(builder, slot, request.txn)
        columns = builder.build()
        new_states: list[bytes | None] = []
        if degraded or snapshots is None:
            features = build_features_stateless(columns)
        else:
            states: list[bytes | None] = [snapshots[account].state for account in slots]
            while True:
                try:
                    features, new_states = build_features(columns, states)
                    break
                except StateDecodeError as exc:  # a corrupt blob: start that account afresh
                    log.error("account_state_corrupt", error=str(exc), slot=exc.slot)
                    if exc.slot is None:
                        raise
                    states[exc.slot] = None
        after_features = time.perf_counter()
        metrics.STAGE_SECONDS.labels("features").observe(after_features - started)

        rule_set = self._rules.current
        matches = (
            evaluate_rules(rule_set.program_set, features, columns)
            if len(rule_set)
            else np.zeros((len(rows), 0), dtype=np.uint8)
        )
        after_rules = time.perf_counter()
        metrics.STAGE_SECONDS.labels("rules").observe(after_rules - after_features)

        model = self._model.current
        scores = model.scorer.score(features)
        after_model = time.perf_counter()
        metrics.STAGE_SECONDS.labels("model").observe(after_model - after_rules)

        thresholds = self._thresholds(model.metadata.thresholds)
        decisions: list[decision_pb2.Decision] = []
        hit_rows: npt.NDArray[np.bool_] = (
            np.asarray(matches.any(axis=1)) if matches.shape[1] else np.zeros(len(rows), dtype=np.bool_)
        )
        for index, request in enumerate(rows):
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
            decisions.append(
                decision_pb2.Decision(
                    transaction_id=request.txn.transaction_id,
                    outcome=verdict.outcome,
                    risk_score=verdict.risk_score,
                    model_score=score,
                    rules_fired=verdict.rules_fired,
                    reasons=verdict.reasons,
                    model_version=model.version,
                    degraded=degraded,
                    idempotency_key=request.txn.idempotency_key,
                    decided_at=decided_at,
                )
            )
        if degraded:
            metrics.DEGRADED.labels("state_unavailable").inc(len(rows))
        metrics.STAGE_SECONDS.labels("decide").observe(time.perf_counter() - after_model)
        return decisions, new_states, slots

    def _thresholds(self, model_thresholds: ModelThresholds) -> Thresholds:
        """The model's own thresholds, unless the configuration overrides them."""
        review, decline = self._settings.review_threshold, self._settings.decline_threshold
        return Thresholds(
            review=model_thresholds.review if review is None else review,
            decline=model_thresholds.decline if decline is None else decline,
        )

    async def _commit_state(
        self,
        rows: list[ScoringRequest],
        decisions: list[bytes],
        snapshots: dict[str, AccountSnapshot],
        new_states: list[bytes | None],
        slots: dict[str, int],
    ) -> set[str] | None:
        """Store new states and claim the keys (``decisions``: serialized, one per row); the accounts that
        lost a race (None if Redis failed)."""
        assert self._store is not None
        claims: dict[str, list[tuple[str, bytes]]] = {account: [] for account in slots}
        for request, decision in zip(rows, decisions, strict=True):
            claim = (request.txn.idempotency_key, request.fingerprint + decision)
            claims[request.txn.account_id].append(claim)
        writes = [
            AccountWrite(account, snapshots[account].version, new_states[slot] or b"", claims[account])
            for account, slot in slots.items()
        ]
        started = time.perf_counter()
        try:
            return set(await asyncio.wait_for(self._store.commit(writes), self._budget_s))
        except (RedisError, OSError, TimeoutError) as exc:
            self._state_failed(exc, "commit")
            return None
        finally:
            metrics.STAGE_SECONDS.labels("state").observe(time.perf_counter() - started)

    async def _record(
        self,
        requests: list[ScoringRequest],
        results: list[Result | None],
        replays: dict[int, bytes],
        serialized: dict[int, bytes],
        claimed: set[int],
    ) -> list[Result]:
        """ledger: durably record every decision (new ones with the bytes ``serialized`` holds for them); a
        replay whose claim does not yet say it is durable (it carries no ledger sequence) is submitted
        again, which the ledger's unique key makes safe."""
        rows: list[int] = []
        records: list[LedgerRecord] = []
        for i, request in enumerate(requests):
            result = results[i]
            if i in replays:
                stored = decision_pb2.Decision.FromString(replays[i])
                stored.replayed = True
                results[i] = result = stored
                if stored.ledger_sequence:
                    metrics.REPLAYS.inc()
                    continue
            if isinstance(result, decision_pb2.Decision):
                rows.append(i)
                records.append(_record(request, result, serialized.get(i)))
        started = time.perf_counter()
        try:
            acks = await self._ledger.submit(records) if records else []
        except Exception as exc:  # every ledger failure means "not durable: retry"
            log.error("ledger_unavailable", error=repr(exc), batch=len(records))
            rejection = Rejection(
                grpc.StatusCode.UNAVAILABLE,
                "the decision could not be recorded durably; retry with the same idempotency key",
            )
            return [rejection if isinstance(r, decision_pb2.Decision) or r is None else r for r in results]
        finally:
            metrics.STAGE_SECONDS.labels("ledger").observe(time.perf_counter() - started)
        outcomes: dict[str, int] = {}
        for position, (i, ack) in enumerate(zip(rows, acks, strict=True)):
            decision = results[i]
            assert isinstance(decision, decision_pb2.Decision)
            if ack.conflict:
                results[i] = _key_reused(requests[i].txn.idempotency_key)
                continue
            record = records[position]
            if ack.existed and ack.stored_decision not in (None, record.decision_bytes):
                decision = decision_pb2.Decision.FromString(ack.stored_decision)
                decision.replayed = True
                results[i] = decision
            decision.ledger_sequence = ack.sequence
            if decision.replayed:
                metrics.REPLAYS.inc()
            name = OUTCOME_NAMES[decision.outcome]
            outcomes[name] = outcomes.get(name, 0) + 1
        for name, count in outcomes.items():
            metrics.DECISIONS.labels(name).inc(count)
        self._mark_durable(requests, results, claimed)
        return [r if r is not None else Rejection(grpc.StatusCode.INTERNAL, "no decision") for r in results]


def _key_reused(key: str) -> Rejection:
    return Rejection(
        grpc.StatusCode.ALREADY_EXISTS,
        f"idempotency key {key!r} was already used for a different transaction",
    )


def _record(
    request: ScoringRequest, decision: decision_pb2.Decision, decision_bytes: bytes | None
) -> LedgerRecord:
    """The ledger record of a decision, from what the batch already computed for it."""
    stored = decision
    if decision.replayed:  # the ledger keeps the original, unflagged decision
        stored = decision_pb2.Decision()
        stored.CopyFrom(decision)
        stored.replayed = False
        decision_bytes = None
    return record_from_messages(
        request.txn.message,
        stored,
        transaction_bytes=request.transaction_bytes,
        fingerprint=request.fingerprint,
        decision_bytes=decision_bytes,
        amount=request.txn.amount,
    )
