"""The per-transaction CPU work: state codec, feature builder and compiled-rule evaluator.

Typical use on the server, once per micro-batch::

    builder = TransactionColumnsBuilder(capacity=256)
    for txn in batch:                       # validated transactions
        builder.append(slot_of[txn.account_id], amount, type_code, event_time, ...)
    columns = builder.build()
    features, new_states = build_features(columns, states)   # states[slot]: bytes or None
    matches = evaluate_rules(rule_set, features, columns)    # uint8 [rows, rules]
    encoded = encode_decisions(rule_table, ids, keys, scores, matches, ...)  # Decision bytes by row

The builder loop (and the protobuf parsing and validation before it) can be one call instead:
``WireDecoder(...).decode_batch(body, now)`` goes from a ScoreBatchRequest's bytes to its columns, ids,
canonical transaction bytes and violations (``wire``). After the outcome stage, ``ledger_records`` makes
the batch's ledger records and the ledger lane's ``entry_rows`` chains a group's rows (``_ledger``);
``pending_claims`` and ``settle_claims`` write the Redis claims of the state stage (``_claims``).

Everything here is compiled (Cython, ``_*.pyx``) and has a pure-Python reference with exactly the
same results in ``reference_codec``, ``reference_features`` and ``reference_rules`` (``_ledger``'s
references are the checked ``LedgerRecord`` constructor and ``sentinel.ledger.chain.entry_hash``,
``_claims``'s the claim definitions of ``sentinel.server.state_store`` and
``stored_decisions.sequence_field``); the numbers both share (state layout, bounds, feature columns,
field numbers, opcodes) are defined once, in ``_constants.pxd``. Design and layouts:
docs/decisions/0003-account-state-and-features.md and 0004-rule-program.md.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sentinel.hotpath import _features, _rules
from sentinel.hotpath._claims import pending_claims, settle_claims
from sentinel.hotpath._codec import decode_state, encode_state
from sentinel.hotpath._columns import TransactionColumnsBuilder
from sentinel.hotpath._constants import (
    ALL_BALANCES_KNOWN,
    DESTINATION_AFTER_KNOWN,
    DESTINATION_BEFORE_KNOWN,
    FEATURE_COUNT,
    MAX_AMOUNT,
    MAX_EVENT_TIME,
    MAX_STACK_DEPTH,
    ORIGIN_AFTER_KNOWN,
    ORIGIN_BEFORE_KNOWN,
    STATE_SIZE,
    STATE_VERSION,
)
from sentinel.hotpath._ledger import entry_rows, ledger_records
from sentinel.hotpath._wire import WireDecoder
from sentinel.hotpath.columns import TransactionColumns
from sentinel.hotpath.errors import (
    HotpathError,
    InvalidRuleProgram,
    InvalidTransactionValue,
    StateDecodeError,
)
from sentinel.hotpath.hashing import country_code, id_value, stable_hash
from sentinel.hotpath.program import (
    Op,
    ProgramBuilder,
    RuleProgram,
    RuleSet,
    field_value,
)
from sentinel.hotpath.respond import (
    KIND_DECISION,
    KIND_ERROR,
    EncodedDecisions,
    RuleTable,
    encode_decisions,
    score_batch_response,
    score_response,
    stream_responses,
)
from sentinel.hotpath.schema import (
    CHANNELS,
    FEATURE_DOCS,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURE_SCHEMA_HASH,
    FEATURE_SCHEMA_VERSION,
    STATEFUL_FEATURES,
    TRANSACTION_FIELD_DOCS,
    TRANSACTION_FIELDS,
    TRANSACTION_TYPES,
    VELOCITY_HALF_LIVES_S,
)
from sentinel.hotpath.state import AccountState
from sentinel.hotpath.wire import DecodedTransactions, WireDecodeError


def build_features(
    columns: TransactionColumns, states: list[bytes | None]
) -> tuple[npt.NDArray[np.float32], list[bytes | None]]:
    """Feature matrix (float32 [rows, FEATURE_COUNT]) of a batch and the new account states.

    ``states[slot]`` is the encoded state of the account of the rows whose ``account_slot`` is
    ``slot`` (None: the account is new). Rows of one account are applied in row order, each seeing
    the state left by the one before. ``new_states[slot]`` is the state after the slot's last row,
    or ``states[slot]`` unchanged when no row refers to the slot. Also writes
    ``columns.home_country`` (the account's home country before each row) for the rule evaluator.

    For "test a rule" (features of one transaction without keeping anything), simply discard
    ``new_states``. Raises InvalidTransactionValue (field and row) before computing anything,
    StateDecodeError (with ``slot``) for a bad blob, TypeError when a state is not bytes/None.
    """
    return _features.build_features(columns, states)


def build_features_stateless(columns: TransactionColumns) -> npt.NDArray[np.float32]:
    """Features without per-account state: the degraded mode when the state store is unavailable.

    Stateless features are computed as usual; stateful ones take their neutral values (see
    FEATURE_DOCS) and ``state_known`` is 0 so the model and rules can tell. ``account_slot`` is
    ignored and ``columns.home_country`` is set to 0 (unknown).
    """
    return _features.build_features_stateless(columns)


def evaluate_rules(
    rules: RuleSet, features: npt.NDArray[np.float32], columns: TransactionColumns
) -> npt.NDArray[np.uint8]:
    """Which rules match each row: uint8 [rows, len(rules)], 1 where rule j matched row i.

    ``features`` and ``columns`` are the outputs/inputs of the same ``build_features`` call (the
    ``home_country`` field comes from it). Runs without the GIL; never executes Python code.
    """
    return _rules.evaluate_rules(rules, features, columns)


__all__ = [
    "ALL_BALANCES_KNOWN",
    "CHANNELS",
    "DESTINATION_AFTER_KNOWN",
    "DESTINATION_BEFORE_KNOWN",
    "FEATURE_COUNT",
    "FEATURE_DOCS",
    "FEATURE_INDEX",
    "FEATURE_NAMES",
    "FEATURE_SCHEMA_HASH",
    "FEATURE_SCHEMA_VERSION",
    "KIND_DECISION",
    "KIND_ERROR",
    "MAX_AMOUNT",
    "MAX_EVENT_TIME",
    "MAX_STACK_DEPTH",
    "ORIGIN_AFTER_KNOWN",
    "ORIGIN_BEFORE_KNOWN",
    "STATEFUL_FEATURES",
    "STATE_SIZE",
    "STATE_VERSION",
    "TRANSACTION_FIELDS",
    "TRANSACTION_FIELD_DOCS",
    "TRANSACTION_TYPES",
    "VELOCITY_HALF_LIVES_S",
    "AccountState",
    "DecodedTransactions",
    "EncodedDecisions",
    "HotpathError",
    "InvalidRuleProgram",
    "InvalidTransactionValue",
    "Op",
    "ProgramBuilder",
    "RuleProgram",
    "RuleSet",
    "RuleTable",
    "StateDecodeError",
    "TransactionColumns",
    "TransactionColumnsBuilder",
    "WireDecodeError",
    "WireDecoder",
    "build_features",
    "build_features_stateless",
    "country_code",
    "decode_state",
    "encode_decisions",
    "encode_state",
    "entry_rows",
    "evaluate_rules",
    "field_value",
    "id_value",
    "ledger_records",
    "pending_claims",
    "score_batch_response",
    "score_response",
    "settle_claims",
    "stable_hash",
    "stream_responses",
]
