"""Scoring requests straight from their wire bytes to a batch: the typed side of ``_wire``.

``WireDecoder`` (compiled, ``_wire.pyx``) reads a ScoreBatchRequest body, or ScoreRequest /
ScoreStreamRequest bodies, in one call and returns a DecodedTransactions: the valid items as
TransactionColumns with their ids, canonical bytes and fingerprints, and the violations of the
invalid ones. It replaces, per transaction, protobuf parsing, ``validate_transaction``,
``append_transaction`` and the deterministic re-serialization + sha256 of the scoring pipeline, with
exactly their results (tests/test_wire_decode.py compares both on generated transactions).

The limits the validation applies are defined here, below the server, so that the compiled decoder
needs nothing from ``sentinel.server``; ``server/validate.py`` (the Python twin) uses the same values.

How the decoder works (details in ``_wire.pyx``): it walks the protobuf wire format itself, refusing
exactly what upb (the protobuf runtime of the Python package) refuses, and checks whether each
Transaction is already encoded the way the deterministic serializer encodes it. That is what clients
send (the generated code's ``SerializeToString(deterministic=True)``), and then the bytes the ledger
stores and fingerprints are a slice of the request. Anything else (unknown fields, fields out of order,
repeated singular fields to merge, map entries out of order ...) goes through ``canonical_transaction``
below, i.e. through protobuf itself, and the decoder reads the canonical bytes it returns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from sentinel.hotpath.columns import TransactionColumns
from sentinel.v1 import transaction_pb2

MAX_ID_LENGTH = 128  # characters of transaction ids and idempotency keys
MAX_PRINTABLE_ID_LENGTH = 128  # characters of account and counterparty ids
MAX_DEVICE_ID_LENGTH = 128  # characters
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY_LENGTH = 64  # characters
MAX_ATTRIBUTE_VALUE = 256  # characters
# Largest serialized transaction stored in the ledger. Above the largest one whose every field is valid
# (about 37 KB: 32 attributes of 256 four-byte characters), so it refuses only what slips between the
# field checks (an IPv6 scope id has no length limit) and no transaction the ledger already holds.
MAX_TRANSACTION_BYTES = 40 * 1024
EARLIEST_EVENT_TIME = 946_684_800  # 2000-01-01T00:00:00Z
# upb refuses a message nested deeper than this: each sub-message and each (unknown) group takes one
# level from the request message's budget, and one more would make it a DecodeError.
MAX_WIRE_DEPTH = 100


# How an item whose bytes are no message at all is described (its one violation, on field
# "transaction", starts with this); the server answers it as undecodable, not as an invalid transaction.
UNDECODABLE = "the request could not be parsed: "


class WireDecodeError(ValueError):
    """A request body is no valid protobuf message of the method's request type (where protobuf's
    ``FromString`` raises DecodeError); the message says what is wrong and at which byte."""


class DecodedTransactions(NamedTuple):
    """The items of one request (or of several single-transaction requests), decoded and validated.

    Row ``r`` of ``columns`` and of every per-row list is the valid item ``items[r]``; ``errors`` names
    the invalid ones. The ``account_slot`` column indexes ``accounts``. ``transaction_bytes[r]`` is the
    deterministic serialization of the transaction without unknown fields (what the ledger stores) and
    ``fingerprints[r]`` its sha256 digest.
    """

    # items in the request(s), valid and invalid (the field hides tuple.count, which nobody needs here)
    count: int  # type: ignore[assignment]
    columns: TransactionColumns  # valid items only, in item order
    accounts: list[str]  # distinct account ids of the valid items, in order of first appearance
    items: npt.NDArray[np.intp]  # for each valid row: its item index
    transaction_ids: list[str]
    idempotency_keys: list[str]  # the transaction id where the key was empty
    account_ids: list[str]
    counterparty_ids: list[str]
    currencies: list[str]
    amounts: list[str]  # the amount text as sent (exact: the ledger parses a Decimal from it)
    transaction_bytes: list[bytes]
    fingerprints: list[bytes]
    # (item index, [(field path, description), ...]) for each invalid item, in item order
    errors: list[tuple[int, list[tuple[str, str]]]]


def canonical_transaction(data: bytes) -> bytes:
    """The canonical form of serialized Transaction bytes that the decoder found not canonical: parsed
    by protobuf, unknown fields dropped, serialized deterministically (exactly what the Python path
    stores). Called only for bytes the decoder has checked, so the WireDecodeError for bytes protobuf
    cannot parse should never be raised."""
    try:
        message = transaction_pb2.Transaction.FromString(data)
    except DecodeError as exc:
        raise WireDecodeError(f"a transaction could not be parsed: {exc}") from exc
    message.DiscardUnknownFields()
    return message.SerializeToString(deterministic=True)


__all__ = [
    "EARLIEST_EVENT_TIME",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_KEY_LENGTH",
    "MAX_ATTRIBUTE_VALUE",
    "MAX_DEVICE_ID_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_PRINTABLE_ID_LENGTH",
    "MAX_TRANSACTION_BYTES",
    "MAX_WIRE_DEPTH",
    "UNDECODABLE",
    "DecodedTransactions",
    "WireDecodeError",
    "canonical_transaction",
]
