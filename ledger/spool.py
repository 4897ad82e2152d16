"""The local spool: where decisions go, durably, while Postgres is down or too slow.

An append-only directory of segment files under ``<data_dir>/ledger-spool``. A group of records is
appended as framed JSON lines (length, CRC-32, payload) with one write and one fsync, so an
acknowledgement given after ``append`` survives a crash of the process or the machine. A crash in the
middle of an append can only leave a torn last frame, never acknowledged, which ``read`` ignores.
Replay seals the current segment (new appends start a new one), writes the sealed segments to
Postgres in order and deletes each once it is in: a crash mid-replay replays the segment again, which
the idempotency keys make harmless.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sentinel.ledger.records import LedgerRecord

_FRAME = struct.Struct(">II")  # payload length, CRC-32 of the payload
_SEGMENT_GLOB = "segment-*.spool"
# The JSON fields of a record (encode_record): strings, base64 strings, and the risk score, a number.
_TEXT_FIELDS = (
    "transaction_id",
    "idempotency_key",
    "account_id",
    "counterparty_id",
    "amount",
    "currency",
    "outcome",
)
_BLOB_FIELDS = ("fingerprint", "transaction_bytes", "decision_bytes")
_FIELDS = frozenset((*_TEXT_FIELDS, *_BLOB_FIELDS, "risk_score"))


class SpoolFullError(RuntimeError):
    """The spool holds its configured maximum: new decisions cannot be recorded durably."""


class SpoolCorruptError(RuntimeError):
    """A segment holds a damaged frame before its end (its checksum fails: the file was damaged on disk),
    or a frame whose payload is no record (see decode_record)."""


def encode_record(record: LedgerRecord) -> bytes:
    """One record as JSON (bytes base64, the amount as its exact decimal string)."""
    return json.dumps(
        {
            "transaction_id": record.transaction_id,
            "idempotency_key": record.idempotency_key,
            "fingerprint": base64.b64encode(record.fingerprint).decode(),
            "account_id": record.account_id,
            "counterparty_id": record.counterparty_id,
            "amount": str(record.amount),
            "currency": record.currency,
            "outcome": record.outcome,
            "risk_score": record.risk_score,
            "transaction_bytes": base64.b64encode(record.transaction_bytes).decode(),
            "decision_bytes": base64.b64encode(record.decision_bytes).decode(),
        },
        separators=(",", ":"),
    ).encode()


def decode_record(payload: bytes) -> LedgerRecord:
    """The inverse of encode_record; SpoolCorruptError for a payload it cannot have written.

    Such a payload passed its frame's checksum, so it is on disk as it was written: a foreign or edited
    file, never a crash. It is refused whole (every field present with encode_record's type, nothing
    else, and the record's own checks), never guessed into a record that would fail replay later."""
    try:
        fields = json.loads(payload)
        if not isinstance(fields, dict) or fields.keys() != _FIELDS:
            raise ValueError(f"not a JSON object of the fields {', '.join(sorted(_FIELDS))}")
        wrong = [name for name in (*_TEXT_FIELDS, *_BLOB_FIELDS) if type(fields[name]) is not str]
        if type(fields["risk_score"]) is not float:
            wrong.append("risk_score")
        if wrong:
            raise ValueError(f"wrong JSON types for {', '.join(wrong)}")
        return LedgerRecord(
            transaction_id=fields["transaction_id"],
            idempotency_key=fields["idempotency_key"],
            fingerprint=base64.b64decode(fields["fingerprint"], validate=True),
            account_id=fields["account_id"],
            counterparty_id=fields["counterparty_id"],
            amount=Decimal(fields["amount"]),
            currency=fields["currency"],
            outcome=fields["outcome"],
            risk_score=fields["risk_score"],
            transaction_bytes=base64.b64decode(fields["transaction_bytes"], validate=True),
            decision_bytes=base64.b64decode(fields["decision_bytes"], validate=True),
        )
    # JSON, UTF-8 and base64 errors and the record's checks are ValueErrors, Decimal's are ArithmeticErrors,
    # and JSON nested too deeply is a RecursionError.
    except (ValueError, ArithmeticError, RecursionError) as exc:
        raise SpoolCorruptError(f"no spooled record: {exc}") from None


def encode_frames(records: list[LedgerRecord]) -> bytes:
    """Records as the frames of a segment: payload length, CRC-32 of the payload, encode_record's payload."""
    frames = []
    for record in records:
        payload = encode_record(record)
        frames.append(_FRAME.pack(len(payload), zlib.crc32(payload)) + payload)
    return b"".join(frames)


def decode_frames(data: bytes, source: str) -> list[LedgerRecord]:
    """The records of a segment's bytes, in order, without a torn final frame; SpoolCorruptError (naming
    ``source`` and the byte) for a damaged frame before the end or a frame that holds no record."""
    records, offset = [], 0
    while offset + _FRAME.size <= len(data):
        length, checksum = _FRAME.unpack_from(data, offset)
        payload = data[offset + _FRAME.size : offset + _FRAME.size + length]
        if len(payload) < length:
            break  # torn final frame: the append never completed, so nobody was acknowledged
        if zlib.crc32(payload) != checksum:
            if offset + _FRAME.size + length >= len(data):
                break
            raise SpoolCorruptError(f"{source}: bad checksum in the frame at byte {offset}")
        try:
            records.append(decode_record(payload))
        except SpoolCorruptError as exc:
            raise SpoolCorruptError(f"{source}: the frame at byte {offset}: {exc}") from None
        offset += _FRAME.size + length
    return records


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable (the file's own fsync does not cover it)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class Spool:
    """Segments of spooled records; blocking file I/O (the writer runs it in a thread)."""

    directory: Path
    max_bytes: int
    _current: Path | None = field(default=None, init=False)
    _size: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._size = sum(path.stat().st_size for path in self.segments())

    def segments(self) -> list[Path]:
        """Every segment on disk, oldest first."""
        return sorted(self.directory.glob(_SEGMENT_GLOB))

    @property
    def size_bytes(self) -> int:
        """Bytes currently spooled."""
        return self._size

    def is_empty(self) -> bool:
        """True when nothing waits for replay."""
        return self._size == 0 and not self.segments()

    def append(self, records: list[LedgerRecord]) -> None:
        """Append ``records`` and fsync; raises SpoolFullError (nothing written) past ``max_bytes``."""
        data = encode_frames(records)
        others = self._siblings_bytes()
        if others + self._size + len(data) > self.max_bytes:
            raise SpoolFullError(
                f"the ledger spools in {self.directory.parent} hold {others + self._size} bytes; "
                f"{len(data)} more would pass their bound of {self.max_bytes} (ledger_spool_max_bytes)"
            )
        created = self._current is None
        if self._current is None:
            self._current = self._next_segment()
        try:
            with self._current.open("ab") as segment:
                segment.write(data)
                segment.flush()
                os.fsync(segment.fileno())
            if created:
                _fsync_directory(self.directory)
        except OSError:
            self._current = None  # a torn frame may end this segment: later appends go to a new one
            raise
        self._size += len(data)

    def _siblings_bytes(self) -> int:
        """Bytes spooled by the other writers beside this one (one directory per worker process): the
        bound is on the whole server's disk use, not each worker's."""
        total = 0
        for sibling in self.directory.parent.iterdir():
            if sibling == self.directory or not sibling.is_dir():
                continue
            for segment in sibling.glob(_SEGMENT_GLOB):
                with contextlib.suppress(FileNotFoundError):  # replayed and removed meanwhile
                    total += segment.stat().st_size
        return total

    def _next_segment(self) -> Path:
        existing = self.segments()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        return self.directory / f"segment-{number:012d}.spool"

    def adopt(self, other: Path) -> int:
        """Move the segments of another (abandoned, locked by the caller) spool behind ours.

        Used for the spool of a writer name that no longer runs (fewer workers than before), so its
        acknowledged decisions still reach Postgres. Returns the number of segments moved.
        """
        moved = 0
        for segment in sorted(other.glob(_SEGMENT_GLOB)):
            target = self._next_segment()
            os.rename(segment, target)  # same file system: atomic
            self._size += target.stat().st_size
            moved += 1
        if moved:
            _fsync_directory(self.directory)
            _fsync_directory(other)
        return moved

    def seal(self) -> list[Path]:
        """Close the current segment (later appends start a new one); returns all segments to replay."""
        self._current = None
        return self.segments()

    def read(self, segment: Path) -> list[LedgerRecord]:
        """The records of a segment, in order, without a torn final frame."""
        return decode_frames(segment.read_bytes(), str(segment))

    def remove(self, segment: Path) -> None:
        """Delete a replayed segment."""
        size = segment.stat().st_size
        segment.unlink()
        self._size = max(0, self._size - size)
