"""Load a gRPC server from Python (grpcio, asyncio): a new transaction id in every call.

h2load repeats one request body, so against SentinelStream every call after the first is an
idempotent replay, a cheaper path than scoring; ghz makes ids unique per call but is not
installable everywhere. This driver sends distinct transactions in every call: it keeps a pool of
realistic transactions serialized *without* their id and prefixes a fresh ``transaction_id`` field
to each (protobuf fields may come in any order), so a call costs the client a few byte joins, not
a protobuf build. It sees every gRPC status (trailers included) and every per-item error, and
reports the transaction ids of every call that ended OK (the overload scenario looks them up in the ledger).
Without a rate (a closed loop), a caller whose call was refused with a retry pushback (a shed call)
waits that long before its next call, as a gRPC client's retry policy would.

For a scenario with live event times (``hot-account``) the pool also leaves out ``event_time`` and
every call is stamped with the time it is sent: the pool is reused round-robin by every client
process, so its own event times would jump back and repeat, while one account's state expects
its clock to move forward as in a real burst.

Its price is CPU: the client processes share the machine with the server. The ceiling is measured
with the same driver and settings, so the ratio stays fair, but absolute figures are lower than
with h2load; the record says which tool produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentinel.bench.measurement import LoadResult, LoadSettings, percentiles_ms
from sentinel.bench.scenarios import Scenario
from sentinel.server.errors import RETRY_PUSHBACK_KEY
from sentinel.v1 import transaction_pb2

CALL_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 30.0
RESULT_MARGIN_S = 120.0  # bound on waiting for a client process beyond the run's duration
_TRANSACTION_ID_TAG = b"\x0a"  # field 1, length-delimited: Transaction.transaction_id
_EVENT_TIME_TAG = b"\x3a"  # field 7, length-delimited: Transaction.event_time (a Timestamp)
_SECONDS_TAG = b"\x08"  # Timestamp field 1, varint
_NANOS_TAG = b"\x10"  # Timestamp field 2, varint
_MESSAGE_TAG = b"\x0a"  # field 1, length-delimited: the transaction(s) of every request message


class ClientError(RuntimeError):
    """A client process could not connect, failed, or gave no result in time."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def transaction_pool(
    transactions: list[transaction_pb2.Transaction], *, live_event_times: bool = False
) -> list[bytes]:
    """The transactions serialized without their id (and event time, if stamped live), for ``with_id``."""
    pool = []
    for transaction in transactions:
        anonymous = transaction_pb2.Transaction()
        anonymous.CopyFrom(transaction)
        anonymous.ClearField("transaction_id")
        if live_event_times:
            anonymous.ClearField("event_time")
        pool.append(anonymous.SerializeToString(deterministic=True))
    return pool


def with_id(transaction_without_id: bytes, transaction_id: str) -> bytes:
    """A serialized Transaction with ``transaction_id`` set."""
    return _field(_TRANSACTION_ID_TAG, transaction_id.encode()) + transaction_without_id


def with_event_time(transaction: bytes, seconds: float) -> bytes:
    """A serialized Transaction (without event_time) with ``event_time`` set to ``seconds``."""
    whole = int(seconds)
    nanos = int((seconds - whole) * 1e9)
    timestamp = _SECONDS_TAG + _varint(whole) + (_NANOS_TAG + _varint(nanos) if nanos else b"")
    return _field(_EVENT_TIME_TAG, timestamp) + transaction


def request_message(transactions: list[bytes]) -> bytes:
    """ScoreRequest / ScoreStreamRequest (one transaction) or ScoreBatchRequest (many): field 1."""
    return b"".join(_field(_MESSAGE_TAG, transaction) for transaction in transactions)


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """What one client process does."""

    address: str
    method: str
    path: str
    transactions_per_call: int
    pool: list[bytes]
    id_prefix: str
    concurrency: int
    channels: int
    duration_s: float | None
    total_calls: int | None
    rate: float | None  # calls per second of this process
    live_event_times: bool  # stamp every transaction with the time its call is sent
    ca_pem: bytes | None = None  # the CA of a TLS target; None: plaintext


def call_transactions(plan: ClientPlan, first_number: int, sent_at: float) -> list[bytes]:
    """The transactions of one call, numbered from ``first_number``: pool entries round-robin, each
    with the id ``<id_prefix>-<number>`` and, with live event times, stamped ``sent_at``."""
    pool = plan.pool
    chosen = []
    for number in range(first_number, first_number + plan.transactions_per_call):
        transaction = with_id(pool[number % len(pool)], f"{plan.id_prefix}-{number}")
        chosen.append(with_event_time(transaction, sent_at) if plan.live_event_times else transaction)
    return chosen


class _Calls:
    """Shared state of one process's concurrent callers: ids, quota, pacing, results."""

    def __init__(self, plan: ClientPlan) -> None:
        self.plan = plan
        self.started = time.perf_counter()
        self.deadline = None if plan.duration_s is None else self.started + plan.duration_s
        self.issued = 0
        self.next_transaction = 0
        self.latencies_ms: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.item_errors = 0
        self.accepted_from: list[int] = []  # the first transaction number of every OK call

    def claim_call(self) -> int | None:
        """The number of the next call, or None when the run is over."""
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        if self.plan.total_calls is not None and self.issued >= self.plan.total_calls:
            return None
        self.issued += 1
        return self.issued - 1

    def transactions(self) -> list[bytes]:
        """The next call's transactions, each with a new id (and live event times stamped now)."""
        chosen = call_transactions(self.plan, self.next_transaction, time.time())
        self.next_transaction += len(chosen)
        return chosen

    async def pace(self, call_number: int) -> bool:
        """With a rate limit, wait until this call's slot; False when that slot lies past the end of a
        timed run (callers claim their next call ahead of its slot: sent, it would overrun the rate)."""
        if self.plan.rate:
            slot = self.started + call_number / self.plan.rate
            if self.deadline is not None and slot >= self.deadline:
                return False
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        return True


def _count_item_errors(method: str, answer: bytes) -> int:
    from sentinel.v1 import scoring_pb2

    if method == "ScoreBatch":
        return sum(r.HasField("error") for r in scoring_pb2.ScoreBatchResponse.FromString(answer).results)
    if method == "ScoreStream":
        return int(scoring_pb2.ScoreStreamResponse.FromString(answer).HasField("error"))
    return 0


def _pushback_s(error: Any) -> float:
    """The retry pushback a refused call carries (``grpc-retry-pushback-ms``, as gRPC retry policies obey
    it), in seconds; 0 without one or when it says never to retry."""
    for key, value in error.trailing_metadata() or ():
        if key == RETRY_PUSHBACK_KEY:
            with contextlib.suppress(ValueError):
                return max(0.0, int(value) / 1000)
    return 0.0


async def _caller(calls: _Calls, channel: Any) -> None:
    import grpc

    plan = calls.plan
    streaming = plan.method == "ScoreStream"
    multicallable = channel.stream_stream(plan.path) if streaming else channel.unary_unary(plan.path)
    while (number := calls.claim_call()) is not None:
        if not await calls.pace(number):
            break
        first = calls.next_transaction
        transactions = calls.transactions()
        started = time.perf_counter()
        try:
            if streaming:

                async def messages(items: list[bytes] = transactions) -> AsyncIterator[bytes]:
                    for item in items:
                        yield request_message([item])

                async for answer in multicallable(messages(), timeout=CALL_TIMEOUT_S):
                    calls.item_errors += _count_item_errors(plan.method, answer)
            else:
                answer = await multicallable(request_message(transactions), timeout=CALL_TIMEOUT_S)
                calls.item_errors += _count_item_errors(plan.method, answer)
            calls.statuses["OK"] += 1
            calls.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            calls.accepted_from.append(first)
        except grpc.aio.AioRpcError as exc:
            calls.statuses[exc.code().name] += 1
            if not plan.rate:  # a closed loop waits as long as the server asks before its next call
                await asyncio.sleep(_pushback_s(exc))


async def _run_plan(plan: ClientPlan, ready: Any, go: Any) -> dict[str, Any]:
    import grpc

    options = [
        ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, not one shared
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]
    if plan.ca_pem is None:
        channels = [grpc.aio.insecure_channel(plan.address, options=options) for _ in range(plan.channels)]
    else:
        credentials = grpc.ssl_channel_credentials(plan.ca_pem)
        channels = [
            grpc.aio.secure_channel(plan.address, credentials, options=options) for _ in range(plan.channels)
        ]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), READY_TIMEOUT_S)
        ready.set()
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, go.wait, READY_TIMEOUT_S):
            raise ClientError("the benchmark did not start this client")
        calls = _Calls(plan)
        await asyncio.gather(*(_caller(calls, channels[i % len(channels)]) for i in range(plan.concurrency)))
        return {
            "duration_s": time.perf_counter() - calls.started,
            "latencies_ms": np.asarray(calls.latencies_ms, dtype=float),
            "statuses": dict(calls.statuses),
            "item_errors": calls.item_errors,
            "id_prefix": plan.id_prefix,
            "accepted_from": calls.accepted_from,
        }
    finally:
        await asyncio.gather(*(c.close(None) for c in channels))


def _client_main(plan: ClientPlan, ready: Any, go: Any, results: Any) -> None:
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        results.put(uvloop.run(_run_plan(plan, ready, go)))
    except Exception as exc:  # reported to the benchmark, which fails the run with it
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def run_grpcio(
    address: str,
    scenario: Scenario,
    pool: list[bytes],
    id_prefix: str,
    load: LoadSettings,
    *,
    warmup: bool = False,
) -> LoadResult | None:
    """Run the load from one client process per core (at most one per connection); warm-up: None."""
    processes = max(1, min(load.connections, os.cpu_count() or 1))
    concurrency = _split(load.streams_per_connection * load.connections, processes)
    channels = _split(load.connections, processes)
    totals = _split(load.total_calls, processes) if load.total_calls and not warmup else [None] * processes
    duration = load.warmup_s if warmup else load.duration_s
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    started = []
    for index in range(processes):
        plan = ClientPlan(
            address=address,
            method=scenario.method,
            path=scenario.path,
            transactions_per_call=scenario.transactions_per_call,
            pool=pool,
            id_prefix=f"{id_prefix}-{'w' if warmup else 'm'}{index}",
            concurrency=concurrency[index],
            channels=channels[index],
            duration_s=duration if totals[index] is None else None,
            total_calls=totals[index],
            rate=None if load.rate is None else load.rate / processes,
            live_event_times=scenario.live_event_times,
            ca_pem=None if load.ca_file is None else load.ca_file.read_bytes(),
        )
        ready = context.Event()
        process = context.Process(
            target=_client_main, args=(plan, ready, go, results), name=f"sentinel-bench-client-{index}"
        )
        process.start()
        started.append((process, ready))
    try:
        for process, ready in started:
            if not ready.wait(READY_TIMEOUT_S):
                raise ClientError(f"{process.name} could not connect to {address}")
        go.set()
        limit = (duration or 0.0) + RESULT_MARGIN_S
        outcomes = [results.get(timeout=limit) for _ in started]
    except queue.Empty:
        raise ClientError(f"a grpcio client process gave no result within {limit:.0f}s") from None
    finally:
        for process, _ in started:
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join()
    failures = [outcome["error"] for outcome in outcomes if "error" in outcome]
    if failures:
        raise ClientError(f"grpcio client failed: {failures[0]}")
    if warmup:
        return None
    return _result(outcomes, scenario)


def _result(outcomes: list[dict[str, Any]], scenario: Scenario) -> LoadResult:
    statuses: Counter[str] = Counter()
    for outcome in outcomes:
        statuses.update(outcome["statuses"])
    latencies = np.concatenate([outcome["latencies_ms"] for outcome in outcomes])
    errors = {f"grpc-status {code}": calls for code, calls in statuses.items() if code != "OK"}
    item_errors = sum(outcome["item_errors"] for outcome in outcomes)
    if item_errors:
        errors["transactions answered with an ItemError"] = item_errors
    notes = [
        f"{len(outcomes)} grpcio client processes on this machine; a new transaction id in every "
        f"call ({scenario.transactions_per_call} per call)"
    ]
    if scenario.live_event_times:
        notes.append("event times stamped with the clock when each call is sent")
    per_call = scenario.transactions_per_call
    accepted_ids = [
        f"{outcome['id_prefix']}-{number}"
        for outcome in outcomes
        for first in outcome["accepted_from"]
        for number in range(first, first + per_call)
    ]
    return LoadResult(
        tool="grpcio",
        duration_s=max(outcome["duration_s"] for outcome in outcomes),
        calls_completed=sum(statuses.values()),
        calls_ok=statuses.get("OK", 0),
        status_codes=dict(statuses),
        errors=errors,
        percentiles_ms=percentiles_ms(latencies),
        latencies_ms=latencies,
        notes=notes,
        accepted_ids=accepted_ids,
    )
