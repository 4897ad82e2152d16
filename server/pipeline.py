"""The scoring pipeline behind ScoringService, one micro-batch at a time:

validate (the servicer's compiled decoder) -> batch -> state (admit) -> features -> rules + model ->
outcome -> ledger -> respond, then state (settle), each stage in its own module and named as its metric:

- ``batching.MicroBatcher`` coalesces the requests of concurrent calls (*queue_wait*);
- ``stage_state.StateStage`` admits a batch to its accounts in Redis (*state*) and settles it after the
  ledger (*settle*);
- ``stage_score.ScoreStage`` computes features, rules, the model score and the outcome (*features*,
  *rules*, *model*, *outcome*);
- ``stage_record.RecordStage`` records the decisions durably (*ledger*).

Every stage pays its overhead once per batch. Idempotency is checked three times, cheapest first:
requests in flight in this worker share one future (here), Redis claims catch retries across workers
and restarts before anything touches the state, and the ledger's unique key has the final word.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import math
import time

import numpy as np

from sentinel.config import Settings
from sentinel.hotpath import DecodedTransactions
from sentinel.model_export.reloader import ActiveModel
from sentinel.server import metrics
from sentinel.server.batch import ScoringBatch
from sentinel.server.batching import MicroBatcher, Span
from sentinel.server.requests import (
    AwaitingOriginal,
    BatchResult,
    Rejection,
    Result,
    Submission,
    key_reused,
)
from sentinel.server.rules.compiler import RuleSource
from sentinel.server.stage_record import LedgerSink, RecordStage
from sentinel.server.stage_score import ScoreStage
from sentinel.server.stage_state import StateStage
from sentinel.server.state_store import AccountStateStore

# While another worker decides a key (its claim is pending), a duplicate asks Redis again after a pause
# that doubles from the first to the last value here.
ORIGINAL_POLL_FIRST_S = 0.002
ORIGINAL_POLL_MAX_S = 0.05


class _InFlight:
    """A submission being decided in this worker: duplicates of its keys wait for its future and read
    their key's result (and compare fingerprints) at the key's position in the submission."""

    __slots__ = ("_positions", "fingerprints", "future", "keys")

    def __init__(
        self, keys: list[str], fingerprints: list[bytes], future: asyncio.Future[list[BatchResult]]
    ) -> None:
        self.keys = keys
        self.fingerprints = fingerprints
        self.future = future
        self._positions: dict[str, int] | None = None

    def position(self, key: str) -> int:
        """Where ``key`` is in the submission (the map is built on the first duplicate, which is rare)."""
        if self._positions is None:
            self._positions = {key: index for index, key in enumerate(self.keys)}
        return self._positions[key]


class ScoringPipeline:
    """Decides decoded transactions through micro-batches; implements the DecisionMaker protocol."""

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
        self._state = StateStage(settings, state_store)
        self._score = ScoreStage(settings, model=model, rules=rules)
        self._record = RecordStage(ledger)
        self._in_flight: dict[str, _InFlight] = {}
        self._batcher: MicroBatcher[Submission, BatchResult] = MicroBatcher(
            self._process,
            max_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            max_in_flight=settings.batch_max_in_flight,
        )

    def start(self) -> None:
        """Start the micro-batcher (needs the running event loop)."""
        self._batcher.start()

    async def close(self) -> None:
        """Finish the queued and in-flight batches and their background settles."""
        await self._batcher.close()
        await self._state.close()

    # ----------------------------------------------------------------------------- entry point
    async def decide(
        self, transactions: DecodedTransactions, deadline: float | None = None, *, caller: str
    ) -> list[Result]:
        """One decision (or rejection) per valid row of ``transactions``, in row order, each recorded as
        requested by ``caller``."""
        until = math.inf if deadline is None else deadline
        keys = transactions.idempotency_keys
        if not keys:
            return []
        in_flight = self._in_flight
        if in_flight.keys().isdisjoint(keys) and len(set(keys)) == len(keys):  # the usual case
            future = self._submit(Submission(transactions, None, until, False, caller), keys)
            # shield: a caller that gives up must not cancel the work that duplicates may wait for too
            results: list[BatchResult] = await asyncio.shield(future)
            if AwaitingOriginal not in map(type, results):  # a C-level scan, no step per row
                return results  # type: ignore[return-value]  # no AwaitingOriginal among them
            return [
                await self._after_original(transactions, row, until, caller, result)
                if isinstance(result, AwaitingOriginal)
                else result
                for row, result in enumerate(results)
            ]
        return await self._decide_with_duplicates(transactions, until, caller)

    async def _decide_with_duplicates(
        self, transactions: DecodedTransactions, until: float, caller: str
    ) -> list[Result]:
        """``decide`` for a call holding keys that are in flight in this worker or repeated in the call:
        the new keys are submitted, every other row is answered from its key's first request."""
        in_flight = self._in_flight
        keys = transactions.idempotency_keys
        fresh: dict[str, int] = {}  # key -> its row, for the keys submitted now
        for row, key in enumerate(keys):
            if key not in in_flight and key not in fresh:
                fresh[key] = row
        if fresh:
            rows = np.fromiter(fresh.values(), dtype=np.intp, count=len(fresh))
            self._submit(Submission(transactions, rows, until, False, caller), list(fresh))
        entries = [in_flight[key] for key in keys]
        answered: dict[asyncio.Future[list[BatchResult]], list[BatchResult]] = {}
        for entry in entries:
            if entry.future not in answered:
                # shield: a caller that gives up must not cancel the work others wait for too
                answered[entry.future] = await asyncio.shield(entry.future)
        results: list[Result] = []
        for row, (key, entry) in enumerate(zip(keys, entries, strict=True)):
            position = entry.position(key)
            result = answered[entry.future][position]
            if isinstance(result, AwaitingOriginal):
                result = await self._after_original(transactions, row, until, caller, result)
            elif fresh.get(key) != row:
                result = self._follow(transactions, row, entry.fingerprints[position], result)
            results.append(result)
        return results

    def _submit(self, submission: Submission, keys: list[str]) -> asyncio.Future[list[BatchResult]]:
        """Queue a submission whose ``keys`` are not in flight and mark them in flight until it is done."""
        future = self._batcher.submit(submission, submission.size)
        fingerprints = submission.block.fingerprints
        if submission.rows is not None:
            fingerprints = list(map(fingerprints.__getitem__, submission.rows.tolist()))
        self._in_flight.update(dict.fromkeys(keys, _InFlight(keys, fingerprints, future)))
        future.add_done_callback(functools.partial(self._release, keys))
        return future

    async def _after_original(
        self,
        transactions: DecodedTransactions,
        row: int,
        until: float,
        caller: str,
        pending: AwaitingOriginal,
    ) -> Result:
        """Answer a request whose key another worker admitted and is still deciding: ask again until its
        claim holds the decision, then answer as any replay. A claim pending for ``claim_takeover_s``
        means the worker that admitted it died before deciding: decide it here (a takeover), without
        appending it to the account's state again; the ledger's unique key keeps one decision."""
        pause = ORIGINAL_POLL_FIRST_S
        rows = np.array([row], dtype=np.intp)
        while True:
            takeover = time.time() - pending.admitted_at >= self._settings.claim_takeover_s
            if not takeover:
                await asyncio.sleep(pause)
                pause = min(pause * 2, ORIGINAL_POLL_MAX_S)
            submission = Submission(transactions, rows, until, takeover, caller)
            (result,) = await self._batcher.submit(submission, 1)
            if not isinstance(result, AwaitingOriginal):
                return result
            pending = result

    def _release(self, keys: list[str], future: asyncio.Future[list[BatchResult]]) -> None:
        """The submission is done: its keys are no longer in flight (only it marked them: a key is
        marked only when it is not in flight already)."""
        in_flight = self._in_flight
        collections.deque(map(in_flight.pop, keys, itertools.repeat(None)), maxlen=0)

    @staticmethod
    def _follow(
        transactions: DecodedTransactions, row: int, first_fingerprint: bytes, first: Result
    ) -> Result:
        """The answer for a duplicate of a request that was in flight."""
        if first_fingerprint != transactions.fingerprints[row]:
            return key_reused(transactions.idempotency_keys[row])
        if isinstance(first, Rejection):
            return first
        metrics.REPLAYS.inc()
        return first._replace(replayed=True)

    # ------------------------------------------------------------------------------- one batch
    async def _process(self, spans: list[Span[Submission]], waits: list[float]) -> list[BatchResult]:
        """batch -> state -> features -> rules + model -> outcome -> ledger, then settle in the background."""
        batch = ScoringBatch(spans)
        metrics.BATCH_SIZE.observe(batch.size)
        metrics.STAGE_SECONDS.labels("queue_wait").observe(max(waits))
        await self._state.caught_up()
        admission = await self._state.admit(batch) if self._state.available() else None
        if admission is None:
            self._score.degraded(batch)
        else:
            admitted, takeovers = self._state.answer_claims(batch, admission.claims)
            self._score.admitted(batch, admitted, takeovers, admission)
        results = await self._record.record(batch)
        self._state.settle_later(batch)
        return results
