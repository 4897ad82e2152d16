"""Every crash the fuzz targets found (``sentinel fuzz``), as a minimal input, and the fix it led to.

Each test runs its input through the target's harness, which asserts the target's properties (it raised
before the fix), and checks the fixed behaviour itself.
"""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sentinel.clients import make_transaction
from sentinel.config import ConfigError, load_settings
from sentinel.fuzz import ledger_record, request_decoder, rule_parser
from sentinel.hotpath import MAX_EVENT_TIME, WireDecoder
from sentinel.ledger.spool import SpoolCorruptError, decode_frames, decode_record, encode_record
from sentinel.server.rules.definitions import Rule
from sentinel.server.rules.language import RuleExpressionError, check_expression
from sentinel.server.rules.rulefiles import RuleFileError, parse_rule_file, to_toml
from sentinel.server.validate import CURRENCY_EXPONENTS
from sentinel.v1 import scoring_pb2


# --------------------------------------------------------------------------------- request_decoder
def test_the_clock_skew_cannot_reach_past_the_event_times_the_hot_path_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found with a max_clock_skew_s of 1e12 s: validation accepted an event time past MAX_EVENT_TIME
    (1e11, year 5138), whose row the hot path refuses, so decode_batch raised InvalidTransactionValue for
    the whole call (UNKNOWN instead of the item's INVALID_ARGUMENT). The setting now stops at a year."""
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="max_clock_skew_s"):
        load_settings(max_clock_skew_s=1e12)
    assert load_settings(max_clock_skew_s=365 * 86_400).max_clock_skew_s == request_decoder.SKEWS[-1]
    assert time.time() + request_decoder.SKEWS[-1] < MAX_EVENT_TIME / 10
    message = make_transaction(
        transaction_id="t-1",
        account_id="C1",
        amount="1",
        currency="EUR",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    message.event_time.seconds = 2 * 10**11
    body = scoring_pb2.ScoreBatchRequest(transactions=[message]).SerializeToString(deterministic=True)
    (error,) = (
        WireDecoder(CURRENCY_EXPONENTS, request_decoder.SKEWS[-1]).decode_batch(body, time.time()).errors
    )
    assert error == (0, [("transactions[0].event_time", "lies more than 31536000 s in the future")])
    request_decoder.TestOneInput(body)


# ----------------------------------------------------------------------------------- ledger_record
RECORD = decode_record(ledger_record.seeds()[0][1:])  # a record as the server spools it


def payload_with(**fields: object) -> bytes:
    """RECORD's spool payload with some JSON fields replaced (None: left out)."""
    document = json.loads(encode_record(RECORD))
    for name, value in fields.items():
        if value is None:
            del document[name]
        else:
            document[name] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"transaction_id":"t-0",\x01}', id="no JSON (JSONDecodeError)"),
        pytest.param(b'{"account_\xfed":1}', id="no UTF-8 (UnicodeDecodeError)"),
        pytest.param(b"7", id="no object (TypeError)"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested too deeply (RecursionError)"),
        pytest.param(payload_with(counterparty_id=None), id="a field missing (KeyError)"),
        pytest.param(payload_with(extra=1), id="an unknown field"),
        pytest.param(payload_with(counterparty_id=64), id="a number for a text (TypeError)"),
        pytest.param(payload_with(fingerprint=0.5), id="a number for bytes (TypeError)"),
        pytest.param(payload_with(risk_score=True), id="a boolean risk score"),
        pytest.param(payload_with(risk_score="0.5"), id="a text risk score"),
        pytest.param(payload_with(fingerprint="YpSbg+E"), id="base64 padding (binascii.Error)"),
        pytest.param(payload_with(decision_bytes="CgN0é"), id="non-ASCII base64 (ValueError)"),
        pytest.param(payload_with(amount="98[9.64"), id="no number (InvalidOperation)"),
        pytest.param(payload_with(amount="0"), id="a zero amount (the record's ValueError)"),
        pytest.param(payload_with(outcome="EPPROVE"), id="an unknown outcome (the record's ValueError)"),
        pytest.param(payload_with(transaction_id=""), id="an empty id (the record's ValueError)"),
    ],
)
def test_a_spooled_payload_that_is_no_record_is_a_spool_corrupt_error(payload: bytes) -> None:
    """Found: decode_record let whatever json, base64, Decimal or the record raised escape (7 types)."""
    with pytest.raises(SpoolCorruptError, match=r"^no spooled record: "):
        decode_record(payload)
    ledger_record.TestOneInput(bytes([ledger_record.PAYLOAD]) + payload)


def test_a_frame_that_holds_no_record_names_the_segment_and_the_byte() -> None:
    good = encode_record(RECORD)
    frames = b"".join(struct.pack(">II", len(p), zlib.crc32(p)) + p for p in (good, b"[]"))
    with pytest.raises(
        SpoolCorruptError, match=rf"^segment-1: the frame at byte {8 + len(good)}: no spooled"
    ):
        decode_frames(frames, "segment-1")
    ledger_record.TestOneInput(bytes([ledger_record.SEGMENT]) + frames)


def test_a_lone_surrogate_never_reaches_the_ledger() -> None:
    """Found: JSON's escape "\\ud800" decoded into a record that LedgerRecord accepted, though no
    database text holds it: its replay fails (entry hash, Postgres) and takes the whole group along."""
    payload = payload_with(idempotency_key="\ud800t-0")
    assert b'"\\ud800t-0"' in payload
    with pytest.raises(SpoolCorruptError, match="lone surrogates"):
        decode_record(payload)
    ledger_record.TestOneInput(bytes([ledger_record.PAYLOAD]) + payload)
    for name in ("transaction_id", "idempotency_key", "account_id", "counterparty_id"):
        with pytest.raises(ValueError, match="NUL characters or lone surrogates"):
            replace(RECORD, **{name: "a\udfff"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "storable"),
    [
        ("1E+131071", True),  # 131,072 digits before the point: PostgreSQL's numeric bound
        ("1E+131072", False),
        ("1E-16383", True),  # 16,383 digits after the point
        ("1E-16384", False),
        ("9839.64", True),
    ],
)
def test_amounts_beyond_postgresql_numeric_are_refused(amount: str, storable: bool) -> None:
    """Found ("9839.64E-99999"): finite amounts PostgreSQL's numeric refuses passed the record's check, so
    their replay would fail the whole group they joined."""
    if storable:
        assert replace(RECORD, amount=Decimal(amount)).amount == Decimal(amount)
    else:
        with pytest.raises(ValueError, match="PostgreSQL's bounds"):
            replace(RECORD, amount=Decimal(amount))
    ledger_record.TestOneInput(bytes([ledger_record.PAYLOAD]) + payload_with(amount=amount))


def test_a_currency_code_with_a_line_break_is_refused() -> None:
    """Found: the check ``^[A-Z]{3}$`` matched "EUR\\n" ($ matches before a final line break)."""
    with pytest.raises(ValueError, match="ISO 4217"):
        replace(RECORD, currency="EUR\n")
    with pytest.raises(SpoolCorruptError, match="ISO 4217"):
        decode_record(payload_with(currency="EUR\n"))


# ------------------------------------------------------------------------------------- rule_parser
@pytest.mark.parametrize(
    ("expression", "message"),
    [
        # found: str.splitlines ended a line at the form feed, which Python reads as whitespace
        ("i(*\x0c_ED", "syntax error: the expression ends too early ('(' was never closed) at column 8"),
        (
            'country in ["A\x0c"] or x@',
            "syntax error: the expression ends too early (invalid syntax) at column 24",
        ),
        (
            "amount > 1 and\x0cspead_kmh > 3",
            "unknown name 'spead_kmh' at column 16 — did you mean 'speed_kmh'?",
        ),
        (
            'device == "a\u2028b" and ammount > 1',
            "unknown name 'ammount' at column 21 — did you mean 'amount'?",
        ),
        (
            "amount > 5\r\n and ammount > 1",
            "unknown name 'ammount' at line 2, column 6 — did you mean 'amount'?",
        ),
    ],
)
def test_error_positions_count_lines_as_python_does(expression: str, message: str) -> None:
    """Found: an expression with a form feed (or \\x85, \\u2028 ... in a string) got errors located on a
    line Python never saw ("line 2" of a one-line expression), at a column of the wrong text."""
    with pytest.raises(RuleExpressionError) as caught:
        check_expression(expression)
    assert str(caught.value) == message
    rule_parser.TestOneInput(bytes([rule_parser.EXPRESSION]) + expression.encode())


@pytest.mark.parametrize(
    ("description", "in_toml"),
    [
        # found: a carriage return went into a multi-line literal string, where TOML refuses it
        (
            "sent to an account whose rep\rted balance\nis zero",
            r'"sent to an account whose rep\rted balance\nis zero"',
        ),
        # found while fixing: JSON escapes it as a surrogate pair, which TOML refuses
        ("a chargeback 😀 pattern", '"a chargeback 😀 pattern"'),
        # and the other escapes of a basic string
        ("x\x7fy", r'"x\u007Fy"'),
        ('quotes " and \\ backslashes\tand a tab', r'"quotes \" and \\ backslashes\tand a tab"'),
    ],
)
def test_exported_rules_read_back_whatever_their_text(description: str, in_toml: str) -> None:
    """Found: ``to_toml`` (``sentinel rules show``) wrote rule texts as TOML that parse_rule_file refuses."""
    rule_file = f"[[rule]]\nid = 'r-1'\nexpression = 'amount > 1'\naction = 'TAG'\ndescription = {in_toml}\n"
    (spec,) = parse_rule_file(rule_file)
    assert spec.description == description
    exported = to_toml(Rule(spec, 1, "analyst", datetime(2026, 1, 1, tzinfo=UTC)))
    assert parse_rule_file(exported) == [spec]
    rule_parser.TestOneInput(bytes([rule_parser.RULE_FILE]) + rule_file.encode())


@pytest.mark.parametrize(
    ("rule_file", "message"),
    [
        # found: tomllib recursed into the nesting until RecursionError
        ("x = " + "[" * 2000 + "]" * 2000, "not valid TOML: arrays or tables nested too deeply"),
        # found while fixing: a rule that is no table raised AttributeError ('int' object has no 'get')
        ("rule = [1]", "rule #1 is not a table"),
        ("rule = [[{id = 'r'}]]", "rule #1 is not a table"),
    ],
)
def test_rule_files_nested_too_deeply_or_without_tables_are_rule_file_errors(
    rule_file: str, message: str
) -> None:
    with pytest.raises(RuleFileError, match=re.escape(f"<rules>: {message}")):
        parse_rule_file(rule_file)
    rule_parser.TestOneInput(bytes([rule_parser.RULE_FILE]) + rule_file.encode())
