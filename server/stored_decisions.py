"""Decisions read back from where they are stored (a Redis claim, the ledger) to be answered again.

Rare next to decisions made now (a retry, a takeover, a key the ledger already held), so these parse
the protobuf message instead of taking the compiled path.
"""

from __future__ import annotations

from sentinel.server.requests import Decided, ShadowOpinion
from sentinel.v1 import decision_pb2


def stored_decision(data: bytes, ledger_sequence: int = 0) -> Decided:
    """A stored decision answered as a replay. ``data`` may carry its ledger sequence (a claim's value
    has it appended, see ``sequence_field``); ``ledger_sequence`` is used when it does not."""
    message = decision_pb2.Decision.FromString(data)
    sequence = message.ledger_sequence or ledger_sequence
    message.ledger_sequence = 0
    message.replayed = False
    shadow = message.shadow if message.HasField("shadow") else None
    return Decided(
        message.SerializeToString(deterministic=True),
        message.outcome,
        message.risk_score,
        message.degraded,
        message.model_version,
        sequence,
        True,
        None
        if shadow is None
        else ShadowOpinion(shadow.model_version, shadow.model_score, shadow.outcome, shadow.risk_score),
    )


def sequence_field(sequence: int) -> bytes:
    """``ledger_sequence`` alone, serialized. Appended to a serialized Decision it sets that field when
    parsed (a later field wins), so a claim gets its sequence without serializing the decision again.
    The scoring path writes it compiled (``sentinel.hotpath.settle_claims``, held equal to this one by
    tests/test_claims_compiled.py); this is its definition, and ``tests/test_decision_encoding.py`` holds
    it equal to what protobuf serializes."""
    if sequence <= 0:
        return decision_pb2.Decision(ledger_sequence=sequence).SerializeToString()
    field = bytearray(_SEQUENCE_TAG)
    while sequence > 0x7F:
        field.append(sequence & 0x7F | 0x80)
        sequence >>= 7
    field.append(sequence)
    return bytes(field)


_SEQUENCE_TAG = bytes([decision_pb2.Decision.LEDGER_SEQUENCE_FIELD_NUMBER << 3])  # wire type 0: varint
