"""The *state* stage: admit a batch to its accounts in Redis before scoring, settle it after the ledger.

``admit`` makes one Redis script call per batch: it claims the idempotency keys and appends the rows of
the keys it claimed to their accounts' journals, and returns what each account held before (decision
0011). A row whose key was claimed already is answered here, from its claim: a replay, a reused key, or
a request another worker is still deciding. ``settle`` runs after the ledger, in the background: the
decisions go into the claims (with their ledger sequence once durable) and the journals are folded.
When Redis does not answer within its budget the batch is scored without state (degraded) and Redis is
left alone for ``redis_retry_after_s``.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from sentinel.config import Settings
from sentinel.hotpath.rows import encode_rows
from sentinel.server import metrics
from sentinel.server.batch import ScoringBatch
from sentinel.server.budget import within_budget
from sentinel.server.redis_errors import REDIS_FAILURES
from sentinel.server.requests import AwaitingOriginal, key_reused
from sentinel.server.state_store import AccountStateStore, Admission, AdmitColumns, Claim, ClaimWrites
from sentinel.server.stored_decisions import stored_decision

log = structlog.get_logger("sentinel.pipeline")


class StateStage:
    """Admission and settling of batches against the account state store."""

    def __init__(self, settings: Settings, store: AccountStateStore | None) -> None:
        self._settings = settings
        self._store = store
        self._budget_s = settings.redis_budget_ms / 1000
        self._down_until = 0.0
        self._settling: set[asyncio.Task[None]] = set()

    def available(self) -> bool:
        """False without a store, or while Redis is left alone after a failure."""
        return self._store is not None and time.monotonic() >= self._down_until

    async def caught_up(self) -> None:
        """Backpressure: no new batch is admitted while more settles than batches in flight are still
        waiting for Redis. Without it a busy Redis queues settles without bound, and every admit waits
        behind them (in the stream benchmark until it ran out of budget)."""
        while len(self._settling) > self._settings.batch_max_in_flight:
            await asyncio.wait(self._settling, return_when=asyncio.FIRST_COMPLETED)

    async def admit(self, batch: ScoringBatch) -> Admission | None:
        """Claim the keys and append the rows to their accounts' journals (None: Redis is not reachable
        within its budget; the batch is scored degraded)."""
        assert self._store is not None
        batch.records = encode_rows(batch.columns)
        rows = AdmitColumns(
            batch.accounts,
            batch.columns.account_slot,
            batch.idempotency_keys,
            batch.fingerprints,
            batch.records,
            ~batch.takeovers,
        )
        started = time.perf_counter()
        try:
            admission = await within_budget(self._store.admit(rows), self._budget_s)
        except REDIS_FAILURES as exc:
            self._down_until = time.monotonic() + self._settings.redis_retry_after_s
            log.warning("state_unavailable", error=repr(exc), retry_in_s=self._settings.redis_retry_after_s)
            return None
        finally:
            metrics.STAGE_SECONDS.labels("state").observe(time.perf_counter() - started)
        batch.keys_claimed = True
        return admission

    @staticmethod
    def answer_claims(batch: ScoringBatch, claims: list[Claim | None]) -> tuple[list[int], list[int]]:
        """Answer the rows whose key was claimed before from their claims; return the rows admitted now
        and the takeovers, which are to be scored."""
        admitted: list[int] = []
        takeovers: list[int] = []
        keys, fingerprints = batch.idempotency_keys, batch.fingerprints
        for i, (takeover, claim) in enumerate(zip(batch.takeovers.tolist(), claims, strict=True)):
            if takeover:
                takeovers.append(i)
            elif claim is None:
                admitted.append(i)
            elif claim.fingerprint != fingerprints[i]:
                batch.results[i] = key_reused(keys[i])
            elif claim.decision is None:
                batch.results[i] = AwaitingOriginal(claim.admitted_at)
            else:
                batch.results[i] = stored_decision(claim.decision)
                batch.replays.add(i)
        return admitted, takeovers

    def settle_later(self, batch: ScoringBatch) -> None:
        """After the ledger: write the decisions into the claims this batch took (with their ledger
        sequence once durable, so later retries are answered from Redis alone) and fold the journals, in
        the background: a retry that comes before waits for the claim, and a lost fold only leaves the
        entries for the next batch to fold."""
        if not batch.keys_claimed:
            return
        claims = ClaimWrites.decided(
            batch.idempotency_keys,
            batch.fingerprints,
            batch.results,
            batch.owners,
            batch.replays,
            batch.resubmitted,
            batch.durable,
        )
        if not claims.keys and not batch.folds:
            return
        task = asyncio.get_running_loop().create_task(self._settle(claims, batch))
        self._settling.add(task)
        task.add_done_callback(self._settled)

    async def _settle(self, claims: ClaimWrites, batch: ScoringBatch) -> None:
        assert self._store is not None
        started = time.perf_counter()
        try:
            await self._store.settle(claims, batch.folds)
        finally:
            metrics.STAGE_SECONDS.labels("settle").observe(time.perf_counter() - started)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("state_not_settled", error=repr(task.exception()))

    async def close(self) -> None:
        """Wait for the settles still running."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
