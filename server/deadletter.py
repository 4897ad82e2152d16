"""Rejected input, kept for the people who must fix the sender: a capped Redis stream.

Every transaction rejected by validation is appended to ``sentinel:dead-letters`` (XADD with an
approximate MAXLEN, so the stream never grows without bound) with the method, the field violations and
the transaction *without* what could identify a person or a device: account, counterparty, device and IP
are replaced by short unsalted SHA-256 prefixes (enough to group rejects by sender, not meant as
anonymisation), attribute values are dropped (keys kept).
Writing is fire-and-forget: a slow or absent Redis never delays an answer. A stopping worker drains the
appends under way (``DeadLetters.drain``) after its last call and before it closes Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

import structlog
from google.protobuf import json_format
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sentinel.server.errors import FieldViolation
from sentinel.server.redis_errors import REDIS_FAILURES
from sentinel.v1 import transaction_pb2

log = structlog.get_logger("sentinel.deadletters")

STREAM_KEY = "sentinel:dead-letters"
_REDACTED_IDS = ("accountId", "counterpartyId", "deviceId", "ipAddress")


def _digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def redact(message: transaction_pb2.Transaction) -> dict[str, Any]:
    """The transaction as JSON with personal identifiers hashed and attribute values dropped."""
    body = _as_dict(message)
    for name in _REDACTED_IDS:
        if name in body:
            body[name] = _digest(str(body[name]))
    if "attributes" in body:
        body["attributes"] = sorted(body["attributes"])
    return body


def _as_dict(message: transaction_pb2.Transaction) -> dict[str, Any]:
    """The transaction in proto3 JSON form, never raising: an event time outside what JSON can show
    (years 1 to 9999, nanos 0 to 999,999,999) is given as its raw seconds and nanos, since such
    timestamps are among the rejects this stream exists to show."""
    try:
        return json_format.MessageToDict(message)
    except json_format.SerializeToJsonError:  # the event time is the only field that can fail
        stamp = message.event_time
        shown = transaction_pb2.Transaction()
        shown.CopyFrom(message)
        shown.ClearField("event_time")
        return {
            **json_format.MessageToDict(shown),
            "eventTime": {"seconds": str(stamp.seconds), "nanos": stamp.nanos},
        }


class DeadLetters:
    """Appends rejected transactions to the capped stream without waiting for Redis."""

    def __init__(self, client: Redis | RedisCluster, *, max_entries: int) -> None:
        self._client = client
        self._max_entries = max_entries
        self._pending: set[asyncio.Task[None]] = set()

    def record(
        self, method: str, violations: Sequence[FieldViolation], message: transaction_pb2.Transaction
    ) -> None:
        """Queue one rejected transaction for the stream."""
        entry = {
            "time": f"{time.time():.3f}",
            "method": method,
            "transaction_id": message.transaction_id[:128],
            "violations": json.dumps([{"field": v.field, "description": v.description} for v in violations]),
            "transaction": json.dumps(redact(message)),
        }
        task = asyncio.get_running_loop().create_task(self._append(entry))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _append(self, entry: dict[str, str]) -> None:
        try:
            await self._client.xadd(STREAM_KEY, entry, maxlen=self._max_entries, approximate=True)  # type: ignore[arg-type]
        except REDIS_FAILURES as exc:
            log.warning("dead_letter_not_recorded", error=repr(exc), transaction_id=entry["transaction_id"])

    async def drain(self) -> None:
        """Wait for the appends under way (shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def read_dead_letters(client: Redis, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` entries, newest first, decoded."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrevrange(STREAM_KEY, count=count)  # type: ignore[assignment]
    return [
        {
            "id": entry_id.decode(),
            **{
                key.decode(): value.decode()
                for key, value in fields.items()
                if key not in (b"violations", b"transaction")
            },
            "violations": json.loads(fields[b"violations"]),
            "transaction": json.loads(fields[b"transaction"]),
        }
        for entry_id, fields in entries
    ]
