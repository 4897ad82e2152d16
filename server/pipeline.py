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
import functools
import math
import time
from typing import NamedTuple

from sentinel.config import Settings
from sentinel.hotpath import DecodedTransactions
from sentinel.model_export.reloader import ActiveModel
from sentinel.server import metrics
from sentinel.server.batch import ScoringBatch
from sentinel.server.batching import MicroBatcher
from sentinel.server.requests import (
    AwaitingOriginal,
    BatchResult,
    Rejection,
    Result,
    ScoringRequest,
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


class _InFlight(NamedTuple):
    """A request being decided in this worker; duplicates of its key wait for its submission's future
    and read the result at ``position``."""

    fingerprint: bytes
    future: asyncio.Future[list[BatchResult]]
    position: int


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
        requests = [
            ScoringRequest(transactions, row, until, False, caller)
            for row in range(len(transactions.transaction_ids))
        ]
        in_flight = self._in_flight
        keys = transactions.idempotency_keys
        fresh: dict[str, int] = {}  # key -> its request's index among those submitted now
        for row, key in enumerate(keys):
            if key not in in_flight and key not in fresh:
                fresh[key] = row
        fingerprints = transactions.fingerprints
        every_key_new = 0 < len(fresh) == len(keys)  # the usual case
        if fresh:
            submitted = requests if every_key_new else [requests[row] for row in fresh.values()]
            future = self._batcher.submit_many(submitted)
            for index, (key, row) in enumerate(fresh.items()):
                in_flight[key] = _InFlight(fingerprints[row], future, index)
            future.add_done_callback(functools.partial(self._release, list(fresh)))
        if every_key_new:  # answered in row order by that one future, without the bookkeeping below
            results: list[Result] = []
            # shield: a caller that gives up must not cancel the work that duplicates may wait for too
            for request, result in zip(requests, await asyncio.shield(future), strict=True):
                if isinstance(result, AwaitingOriginal):  # a key another worker is deciding
                    result = await self._after_original(request, result)
                results.append(result)
            return results
        entries = [in_flight[key] for key in keys]
        answered: dict[asyncio.Future[list[BatchResult]], list[BatchResult]] = {}
        for entry in entries:
            if entry.future not in answered:
                # shield: a caller that gives up must not cancel the work others wait for too
                answered[entry.future] = await asyncio.shield(entry.future)
        results = []
        for row, (request, entry) in enumerate(zip(requests, entries, strict=True)):
            result = answered[entry.future][entry.position]
            if isinstance(result, AwaitingOriginal):
                result = await self._after_original(request, result)
            elif fresh.get(request.idempotency_key) != row:
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
            result = await self._batcher.submit(request._replace(takeover=takeover))
            if not isinstance(result, AwaitingOriginal):
                return result
            pending = result

    def _release(self, keys: list[str], future: asyncio.Future[list[BatchResult]]) -> None:
        in_flight = self._in_flight
        for key in keys:
            entry = in_flight.get(key)
            if entry is not None and entry.future is future:
                del in_flight[key]

    @staticmethod
    def _follow(request: ScoringRequest, first_fingerprint: bytes, first: Result) -> Result:
        """The answer for a duplicate of a request that was in flight."""
        if first_fingerprint != request.fingerprint:
            return key_reused(request.idempotency_key)
        if isinstance(first, Rejection):
            return first
        metrics.REPLAYS.inc()
        return first._replace(replayed=True)

    # ------------------------------------------------------------------------------- one batch
    async def _process(self, requests: list[ScoringRequest], waits: list[float]) -> list[BatchResult]:
        """batch -> state -> features -> rules + model -> outcome -> ledger, then settle in the background."""
        metrics.BATCH_SIZE.observe(len(requests))
        metrics.STAGE_SECONDS.labels("queue_wait").observe(max(waits))
        batch = ScoringBatch(requests)
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
