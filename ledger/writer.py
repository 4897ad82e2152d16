"""The group-commit ledger writer: many concurrent ``submit`` calls, one transaction per group.

Submissions wait in one in-memory queue. Each of ``ledger_writer_connections`` lanes takes whatever
has accumulated (up to ``ledger_batch_max_records``, after waiting at most
``ledger_batch_max_wait_ms`` for a group to fill) and writes it in one transaction, so the commit
cost is shared by everyone in the group and grows with load instead of with requests.

Outage: when a group fails because Postgres is unreachable, shutting down, out of resources or
slower than ``ledger_commit_timeout_s`` (or than its callers' deadlines allow, see ``submit``), the
writer switches to the local spool (fsync'd; see spool.py) and answers from there; every later group
is spooled too, so the spool keeps arrival order, until a replay task has written the whole spool
back to Postgres in order. Replay relies on
the idempotency keys: a group whose COMMIT outcome was unknown is spooled as well, and replaying it
when it did commit inserts nothing. Past ``ledger_spool_max_bytes`` submissions fail with
LedgerUnavailableError (the server's UNAVAILABLE: retry later with the same key).

Several writers (one per server worker process) share a database: each needs its own ``name``,
which is the name of its spool directory, locked while the writer runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from sentinel.config import Settings
from sentinel.ledger.lane import EntryOutcome, LedgerLane, is_unavailable
from sentinel.ledger.migrate import check_schema, migrate
from sentinel.ledger.records import AckStatus, LedgerAck, LedgerRecord
from sentinel.ledger.spool import Spool, SpoolFullError
from sentinel.postgres import connect_as_writer

log = structlog.get_logger(__name__)

ACK_MODES = ("durable", "async")
# The least a group waits for Postgres, however close its callers' deadlines: a healthy commit takes a few
# milliseconds, and a shorter wait would send healthy traffic to the spool whenever callers set tight
# deadlines.
MIN_COMMIT_WAIT_S = 0.1
# How long a starting writer waits for its own spool's lock: another writer starting at the same
# moment may hold it for the few milliseconds it takes to adopt the segments in it.
_OWN_SPOOL_LOCK_WAIT_S = 2.0


class LedgerUnavailableError(RuntimeError):
    """The decision cannot be recorded durably right now (Postgres down and the spool full or
    unwritable, or the writer stopped). Map to gRPC UNAVAILABLE; the caller retries with the same key."""


class LedgerWriteError(RuntimeError):
    """Postgres rejected the records for a reason other than availability (a defect, not an outage).
    Map to gRPC INTERNAL."""


_UNCHECKED_KEYS = (
    "Postgres is unavailable and Redis was not reachable to check the idempotency keys, so the "
    "decisions cannot be recorded as answered"
)


@dataclass(slots=True)
class _Submission:
    records: list[LedgerRecord]
    future: asyncio.Future[list[LedgerAck]] | None  # None: ack=async, nobody waits
    deadline: float | None = None  # time.monotonic() when the submitter's caller gives up
    # False: nothing checked the keys before Postgres (Redis was out of reach too), so the spool must not
    # acknowledge them: a key Postgres already holds would be acknowledged for another transaction
    spoolable: bool = True


def _try_lock(directory: Path) -> int | None:
    """An exclusive flock on ``directory``/.lock (released when the descriptor closes or the process
    dies), or None when another process holds it."""
    descriptor = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _acks(records: Sequence[LedgerRecord], outcomes: Sequence[EntryOutcome]) -> list[LedgerAck]:
    # Positional arguments: a group builds thousands of these, and keywords double the cost of each.
    return [
        LedgerAck(
            record.idempotency_key,
            AckStatus.COMMITTED,
            outcome.sequence,
            True,
            outcome.stored_fingerprint,
            outcome.stored_decision,
            outcome.stored_fingerprint != record.fingerprint,
        )
        if outcome.existed
        else LedgerAck(record.idempotency_key, AckStatus.COMMITTED, outcome.sequence)
        for record, outcome in zip(records, outcomes, strict=True)
    ]


class LedgerWriter:
    """Records decisions in the Postgres ledger; see the module docstring for the guarantees.

    Usage: ``writer = LedgerWriter(settings, name="worker-0"); await writer.start()``, then
    ``acks = await writer.submit(records)`` from any number of tasks, and ``await writer.close()``
    (which writes or spools everything queued).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        name: str = "writer",
        dsn: str | None = None,
        admin_dsn: str | None = None,
    ) -> None:
        dsn = dsn or settings.database_url
        if not dsn:
            raise ValueError("the ledger needs a Postgres URL: set database_url (SENTINEL_DATABASE_URL)")
        self._dsn = dsn
        self._admin_dsn = admin_dsn or settings.ledger_admin_url or dsn
        self._settings = settings
        self._name = name
        self._ack = settings.ledger_ack
        self._max_records = settings.ledger_batch_max_records
        self._max_wait_s = settings.ledger_batch_max_wait_ms / 1000
        self._queue_max = settings.ledger_queue_max_records
        self._commit_timeout_s = settings.ledger_commit_timeout_s
        self._retry_interval_s = settings.ledger_retry_interval_s
        self._spool_directory = Path(settings.data_dir) / "ledger-spool" / name
        self._spool: Spool | None = None
        self._spool_lock_file: int | None = None
        self._spool_mutex = asyncio.Lock()
        self._spool_in_flight = 0
        self._spooled_total = 0
        self._spooling = False
        self._replayed = asyncio.Event()  # set while not spooling
        self._replayed.set()
        self._pending: collections.deque[_Submission] = collections.deque()
        self._pending_records = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        lanes = range(settings.ledger_writer_connections)
        self._lanes = [self._new_lane(f"{name}-{index}") for index in lanes]
        self._replay_lane = self._new_lane(f"{name}-replay")
        self._lane_tasks: list[asyncio.Task[None]] = []
        self._replay_task: asyncio.Task[None] | None = None
        self._replay_chunk = self._max_records
        self._replay_offsets: dict[Path, int] = {}  # segment -> records already committed
        self._running = False
        self._closing = False

    def _new_lane(self, name: str) -> LedgerLane:
        return LedgerLane(
            self._dsn,
            name=name,
            connect_timeout_s=self._settings.ledger_connect_timeout_s,
            partitions_ahead=self._settings.ledger_partitions_ahead,
        )

    # --- life cycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Lock the spool directory, bring the schema up to date, start the lanes and any replay.

        When Postgres is unreachable at start-up the writer still starts, in spooling mode (the schema
        is checked once replay reaches Postgres).
        """
        self._spool = await asyncio.to_thread(self._open_spool)
        try:
            await self._prepare_schema()
        except Exception as exc:
            if not is_unavailable(exc):
                self._release_spool()
                raise
            log.warning("ledger_unreachable_at_start", error=repr(exc))
            self._enter_spooling()
        if not self._spool.is_empty():
            self._enter_spooling()
        self._running = True
        self._lane_tasks = [asyncio.create_task(self._lane_loop(lane)) for lane in self._lanes]
        if self._spooling:
            self._start_replay()
        log.info("ledger_writer_started", name=self._name, lanes=len(self._lanes), spooling=self._spooling)

    def _open_spool(self) -> Spool:
        """Lock our spool directory and adopt the spools of writer names that no longer run."""
        self._spool_directory.mkdir(parents=True, exist_ok=True)
        descriptor = _try_lock(self._spool_directory)
        deadline = time.monotonic() + _OWN_SPOOL_LOCK_WAIT_S
        while descriptor is None and time.monotonic() < deadline:  # a sibling may be adopting it
            time.sleep(0.05)
            descriptor = _try_lock(self._spool_directory)
        if descriptor is None:
            raise RuntimeError(
                f"ledger spool {self._spool_directory} is in use by another writer: give each writer "
                "process its own name"
            )
        self._spool_lock_file = descriptor
        spool = Spool(self._spool_directory, self._settings.ledger_spool_max_bytes)
        for sibling in sorted(self._spool_directory.parent.iterdir()):
            if sibling == self._spool_directory or not sibling.is_dir():
                continue
            sibling_lock = _try_lock(sibling)
            if sibling_lock is None:
                continue  # a running writer owns it
            try:
                moved = spool.adopt(sibling)
            finally:
                os.close(sibling_lock)
            if moved:
                log.warning("ledger_spool_adopted", source=str(sibling), segments=moved)
        return spool

    def _release_spool(self) -> None:
        if self._spool_lock_file is not None:
            os.close(self._spool_lock_file)  # releases the flock
            self._spool_lock_file = None

    async def _prepare_schema(self) -> None:
        if self._settings.ledger_migrate_on_start:
            await migrate(self._admin_dsn)
            return
        connection = await connect_as_writer(
            self._dsn,
            connect_timeout_s=self._settings.ledger_connect_timeout_s,
            application_name=f"sentinel-ledger-{self._name}",
        )
        try:
            await check_schema(connection)
        finally:
            await connection.close()

    async def close(self) -> None:
        """Stop accepting, write (or spool) everything queued, stop replaying, close connections.

        Records still in the spool stay there and are replayed by the next start().
        """
        if not self._running:
            return
        self._closing = True
        self._arrived.set()
        self._room.set()
        await asyncio.gather(*self._lane_tasks, return_exceptions=True)
        if self._replay_task is not None:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task
        await asyncio.gather(*(lane.close() for lane in [*self._lanes, self._replay_lane]))
        self._release_spool()
        self._running = False
        log.info("ledger_writer_closed", name=self._name, spooled_bytes=self.spool_bytes)

    # --- state -----------------------------------------------------------------------------------------

    @property
    def spooling(self) -> bool:
        """True while decisions go to the local spool instead of Postgres."""
        return self._spooling

    @property
    def spool_bytes(self) -> int:
        """Bytes waiting in the spool for replay."""
        return self._spool.size_bytes if self._spool is not None else 0

    @property
    def records_spooled(self) -> int:
        """Records this writer has put in the spool since it started (for metrics)."""
        return self._spooled_total

    @property
    def queued_records(self) -> int:
        """Records submitted and not yet taken by a lane."""
        return self._pending_records

    # --- submitting ------------------------------------------------------------------------------------

    async def submit(
        self,
        records: Sequence[LedgerRecord],
        ack: str | None = None,
        deadline: float | None = None,
        *,
        keys_checked: bool = True,
    ) -> list[LedgerAck]:
        """Record ``records``; one ack each, in order.

        ``deadline`` (``time.monotonic()``): when the caller waiting for the answer gives up. A group
        waits for Postgres at most half of what remains of its earliest deadline (never less than
        MIN_COMMIT_WAIT_S, never more than ``ledger_commit_timeout_s``) before it goes to the spool, so
        that a hung Postgres is answered from the spool while the caller still listens.

        ``ack="durable"`` (default from ``ledger_ack``) returns once the records are committed in
        Postgres or fsync'd to the spool; ``ack="async"`` returns once they are queued (status QUEUED).
        ``keys_checked=False``: nothing has checked the idempotency keys yet (the caller's Redis claims
        were out of reach), so only Postgres may acknowledge them; while Postgres is away they are
        refused (LedgerUnavailableError) instead of spooled, because the spool cannot know the keys
        Postgres already holds and its replay would have to drop an acknowledged decision.

        Raises LedgerUnavailableError when they cannot be recorded durably (see the class) and
        LedgerWriteError when Postgres rejects them.
        """
        mode = ack or self._ack
        if mode not in ACK_MODES:
            raise ValueError(f"ack must be one of {ACK_MODES} (got {mode!r})")
        if not self._running or self._closing:
            raise LedgerUnavailableError("the ledger writer is not running")
        if not records:
            return []
        if self._spooling and not keys_checked and mode == "durable":
            raise LedgerUnavailableError(_UNCHECKED_KEYS)
        if self._spooling and self.spool_bytes >= self._settings.ledger_spool_max_bytes:
            raise LedgerUnavailableError(
                f"Postgres is unavailable and the ledger spool is full ({self.spool_bytes} bytes, "
                "ledger_spool_max_bytes)"
            )
        while self._pending_records >= self._queue_max and not self._closing:
            self._room.clear()
            await self._room.wait()
        if self._closing:
            raise LedgerUnavailableError("the ledger writer is closing")
        future = asyncio.get_running_loop().create_future() if mode == "durable" else None
        self._pending.append(_Submission(list(records), future, deadline, keys_checked))
        self._pending_records += len(records)
        self._arrived.set()
        if future is None:
            return [LedgerAck(record.idempotency_key, AckStatus.QUEUED) for record in records]
        return await future

    # --- lanes -----------------------------------------------------------------------------------------

    async def _take_group(self) -> list[_Submission] | None:
        """The next group: submissions up to max_records, after at most max_wait for it to fill."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closing:
                    return None
                self._arrived.clear()
                await self._arrived.wait()
            if self._max_wait_s > 0 and not self._closing:
                deadline = loop.time() + self._max_wait_s
                while self._pending_records < self._max_records and not self._closing:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        async with asyncio.timeout(remaining):
                            await self._arrived.wait()
                    except TimeoutError:
                        break
            group: list[_Submission] = []
            count = 0
            while self._pending and (not group or count + len(self._pending[0].records) <= self._max_records):
                submission = self._pending.popleft()
                group.append(submission)
                count += len(submission.records)
            if group:
                self._pending_records -= count
                if self._pending_records < self._queue_max:
                    self._room.set()
                return group

    async def _lane_loop(self, lane: LedgerLane) -> None:
        while (group := await self._take_group()) is not None:
            try:
                await self._record_group(lane, group)
            except Exception as exc:  # never let a lane die with submissions unanswered
                log.exception("ledger_lane_error")
                self._fail(group, LedgerWriteError(f"ledger writer failed: {exc!r}"))

    async def _record_group(self, lane: LedgerLane, group: list[_Submission]) -> None:
        records = [record for submission in group for record in submission.records]
        if not self._spooling:
            try:
                async with asyncio.timeout(self._commit_wait(group)):
                    outcomes = await lane.write(records)
            except Exception as exc:
                lane.discard()
                if not is_unavailable(exc):
                    await self._isolate_failure(lane, group, exc)
                    return
                log.warning("ledger_postgres_unavailable", error=repr(exc), records=len(records))
                self._enter_spooling()
                self._start_replay()
            else:
                offset = 0
                for submission in group:
                    end = offset + len(submission.records)
                    self._resolve(submission, _acks(submission.records, outcomes[offset:end]))
                    offset = end
                return
        await self._spool_group(group)

    def _commit_wait(self, group: list[_Submission]) -> float:
        """How long ``group`` may wait for Postgres before it is spooled (see ``submit``)."""
        deadlines = [submission.deadline for submission in group if submission.deadline is not None]
        if not deadlines:
            return self._commit_timeout_s
        remaining = min(deadlines) - time.monotonic()
        return min(self._commit_timeout_s, max(MIN_COMMIT_WAIT_S, remaining / 2))

    async def _isolate_failure(self, lane: LedgerLane, group: list[_Submission], exc: Exception) -> None:
        """Postgres rejected the group: retry each submission alone so that only the culprit fails."""
        if len(group) == 1:
            log.error("ledger_write_rejected", error=repr(exc), records=len(group[0].records))
            self._fail(group, LedgerWriteError(f"Postgres rejected the decisions: {exc}"))
            return
        for submission in group:
            await self._record_group(lane, [submission])

    async def _spool_group(self, group: list[_Submission]) -> None:
        assert self._spool is not None
        unchecked = [s for s in group if not s.spoolable and s.future is not None]
        if unchecked:
            self._fail(unchecked, LedgerUnavailableError(_UNCHECKED_KEYS))
            group = [submission for submission in group if submission not in unchecked]
            if not group:
                return
        records = [record for submission in group for record in submission.records]
        self._spool_in_flight += 1  # before any await: replay must not declare the spool drained
        try:
            async with self._spool_mutex:
                await asyncio.to_thread(self._spool.append, records)
        except SpoolFullError as exc:
            self._fail(group, LedgerUnavailableError(f"Postgres is unavailable and {exc}"))
        except OSError as exc:
            self._fail(group, LedgerUnavailableError(f"Postgres is unavailable and the spool failed: {exc}"))
        else:
            self._spooled_total += len(records)
            for submission in group:
                self._resolve(
                    submission, [LedgerAck(r.idempotency_key, AckStatus.SPOOLED) for r in submission.records]
                )
        finally:
            self._spool_in_flight -= 1

    def _resolve(self, submission: _Submission, acks: list[LedgerAck]) -> None:
        if submission.future is None:
            conflicts = [ack.idempotency_key for ack in acks if ack.conflict]
            if conflicts:
                log.warning("ledger_async_key_conflicts", keys=conflicts[:20], count=len(conflicts))
        elif not submission.future.done():  # the caller may have given up (cancelled)
            submission.future.set_result(acks)

    def _fail(self, group: list[_Submission], exc: Exception) -> None:
        for submission in group:
            if submission.future is None:
                log.error(
                    "ledger_async_records_lost",
                    error=str(exc),
                    keys=[r.idempotency_key for r in submission.records][:20],
                )
            elif not submission.future.done():
                submission.future.set_exception(exc)

    # --- replay ----------------------------------------------------------------------------------------

    def _enter_spooling(self) -> None:
        self._spooling = True
        self._replayed.clear()

    async def wait_until_replayed(self) -> None:
        """Return once nothing waits in the spool (at once when Postgres never went away)."""
        await self._replayed.wait()

    def _start_replay(self) -> None:
        if self._replay_task is None or self._replay_task.done():
            self._replay_task = asyncio.create_task(self._replay_loop())

    async def _replay_segment(self, segment: Path) -> None:
        """Write one segment in chunks, resuming after the last chunk Postgres committed.

        The chunk halves after a timeout (Postgres is slow: smaller steps still make progress) and
        grows back after every success.
        """
        assert self._spool is not None
        records = await asyncio.to_thread(self._spool.read, segment)
        start = self._replay_offsets.get(segment, 0)
        while start < len(records):
            chunk = records[start : start + self._replay_chunk]
            try:
                async with asyncio.timeout(self._commit_timeout_s):
                    outcomes = await self._replay_lane.write(chunk)
            except TimeoutError:
                self._replay_chunk = max(1, self._replay_chunk // 2)
                raise
            conflicts = [
                (record, ack.stored_fingerprint)
                for record, ack in zip(chunk, _acks(chunk, outcomes), strict=True)
                if ack.conflict
            ]
            if conflicts:
                # Acknowledged from the spool, yet the key is the ledger's for another transaction (its
                # Redis claim had expired): keep the decision as answered, never drop it.
                async with asyncio.timeout(self._commit_timeout_s):
                    await self._replay_lane.keep_conflicts(conflicts)
                log.error(
                    "ledger_replay_key_conflicts",
                    keys=[record.idempotency_key for record, _ in conflicts][:20],
                    count=len(conflicts),
                    kept_in="ledger.replay_conflicts",
                )
            start += len(chunk)
            self._replay_offsets[segment] = start
            self._replay_chunk = min(self._max_records, self._replay_chunk * 2)
        async with self._spool_mutex:
            await asyncio.to_thread(self._spool.remove, segment)
        self._replay_offsets.pop(segment, None)
        log.info("ledger_spool_segment_replayed", segment=segment.name, records=len(records))

    async def _replay_loop(self) -> None:
        """Write the spool back to Postgres, oldest segment first, until it is empty."""
        assert self._spool is not None
        schema_checked = False
        while True:
            try:
                if not schema_checked:
                    await self._prepare_schema()
                    schema_checked = True
                async with self._spool_mutex:
                    segments = await asyncio.to_thread(self._spool.seal)
                for segment in segments:
                    await self._replay_segment(segment)
                # No await between this check and the switch: no group can slip into the spool unseen.
                if self._spool_in_flight == 0 and self._spool.is_empty():
                    self._spooling = False
                    self._replayed.set()
                    log.info("ledger_spool_drained", name=self._name)
                    return
            except Exception as exc:
                self._replay_lane.discard()
                if is_unavailable(exc):
                    log.info("ledger_replay_waiting", error=repr(exc))
                else:
                    log.error("ledger_replay_failed", error=repr(exc))
                await asyncio.sleep(self._retry_interval_s)
