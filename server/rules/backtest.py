"""Backtest: run rules over past transactions with the same feature builder and evaluator as the server.

Transactions come from a PaySim CSV (labels: ``isFraud``) or from the ledger since a date (no
labels). They are replayed in event order through ``sentinel.hotpath.build_features`` with
per-account state kept in memory (the state the server keeps in Redis), then through
``sentinel.hotpath.evaluate_rules`` with the compiled rule set: a rule hits in a backtest exactly
where it would have hit in production on the same history. Precision and recall are reported where
labels exist (``None`` otherwise). ``tps`` counts transactions per second of the replay (features
with per-account state, then rule evaluation); reading and converting the input is timed as
``load_seconds``, and ``end_to_end_tps`` counts both.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sentinel.hotpath import (
    ALL_BALANCES_KNOWN,
    TransactionColumns,
    TransactionColumnsBuilder,
    build_features,
    evaluate_rules,
    stable_hash,
)
from sentinel.model_export.paysim import read_paysim
from sentinel.postgres import connect_as_writer
from sentinel.server.rules.compiler import CompiledRuleSet
from sentinel.server.validate import validate_recorded
from sentinel.server.wire_columns import append_transaction

CHUNK_ROWS = 262_144
SAMPLE_HITS = 5


@dataclass(frozen=True, slots=True)
class Transactions:
    """Past transactions in event order: hot-path columns, account ids and optional fraud labels.

    ``account_slot`` of ``columns`` indexes ``accounts``; ``ids`` names each row for sample hits.
    """

    columns: TransactionColumns
    accounts: list[str]
    ids: list[str]
    labels: npt.NDArray[np.bool_] | None
    source: str


@dataclass(slots=True)
class RuleResult:
    """What one rule did over the replay."""

    rule_id: str
    version: int
    mode: str
    hits: int
    true_positives: int | None
    precision: float | None
    recall: float | None
    sample_hits: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class BacktestReport:
    """The figures of one backtest (``to_json`` is what ``--json`` prints)."""

    source: str
    transactions: int
    labelled_frauds: int | None
    load_seconds: float
    seconds: float
    rules: list[RuleResult]
    any_active: RuleResult

    @property
    def tps(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        def one(result: RuleResult) -> dict[str, Any]:
            return {
                "rule_id": result.rule_id,
                "version": result.version,
                "mode": result.mode,
                "hits": result.hits,
                "true_positives": result.true_positives,
                "precision": result.precision,
                "recall": result.recall,
                "sample_hits": result.sample_hits,
            }

        return {
            "source": self.source,
            "transactions": self.transactions,
            "labelled_frauds": self.labelled_frauds,
            "load_seconds": round(self.load_seconds, 4),
            "seconds": round(self.seconds, 4),
            "tps": round(self.tps, 1),
            "end_to_end_tps": round(self.transactions / (self.seconds + self.load_seconds), 1),
            "rules": {result.rule_id: one(result) for result in self.rules},
            "any_active_rule": one(self.any_active),
        }


def paysim_transactions(path: Path) -> Transactions:
    """The rows of a PaySim CSV (original layout) as hot-path columns, in event order, with labels."""
    rows = read_paysim(path)
    slot_of: dict[str, int] = {}
    slots = np.fromiter((slot_of.setdefault(name, len(slot_of)) for name in rows.origin), np.int32, len(rows))
    n = len(rows)
    counterparty = np.fromiter((stable_hash(name) for name in rows.destination), dtype=np.uint64, count=n)
    columns = TransactionColumns(
        account_slot=slots,
        amount=rows.amount,
        type=rows.type,
        event_time=rows.event_time,
        geo_known=np.zeros(n, np.uint8),
        latitude=np.zeros(n),
        longitude=np.zeros(n),
        country=np.zeros(n, np.uint16),
        channel=np.zeros(n, np.uint8),
        counterparty=counterparty,
        device=np.zeros(n, np.uint64),
        balances_known=np.full(n, ALL_BALANCES_KNOWN, np.uint8),
        origin_before=rows.origin_before,
        origin_after=rows.origin_after,
        destination_before=rows.destination_before,
        destination_after=rows.destination_after,
    )
    return Transactions(columns, list(slot_of), list(rows.origin), rows.is_fraud, f"paysim:{path}")


async def ledger_transactions(dsn: str, since: dt.datetime) -> Transactions:
    """The transactions the ledger recorded since ``since``, in event order (no labels)."""
    connection = await connect_as_writer(dsn, connect_timeout_s=10.0, application_name="sentinel-backtest")
    try:
        rows = await connection.fetch(
            "SELECT transaction_bytes FROM ledger.decisions WHERE recorded_at >= $1 ORDER BY sequence", since
        )
    finally:
        await connection.close()
    validated = [validate_recorded(row["transaction_bytes"]) for row in rows]
    validated.sort(key=lambda txn: txn.event_time)
    slots: dict[str, int] = {}
    builder = TransactionColumnsBuilder(max(len(validated), 1))
    for txn in validated:
        append_transaction(builder, slots.setdefault(txn.account_id, len(slots)), txn)
    return Transactions(
        builder.build(),
        list(slots),
        [txn.transaction_id for txn in validated],
        None,
        f"ledger since {since.isoformat()}",
    )


def replay(transactions: Transactions, rule_set: CompiledRuleSet) -> npt.NDArray[np.uint8]:
    """matches[row, rule] over the whole history, state carried from chunk to chunk."""
    columns = transactions.columns
    n = len(columns)
    matches = np.zeros((n, len(rule_set)), dtype=np.uint8)
    states: dict[int, bytes | None] = {}
    for start in range(0, n, CHUNK_ROWS):
        chunk = columns.take(slice(start, min(start + CHUNK_ROWS, n)))
        # Local slots: only this chunk's accounts are handed to the feature builder.
        global_slots, local_slots = np.unique(chunk.account_slot, return_inverse=True)
        chunk.account_slot = local_slots.astype(np.int32)
        slot_list = global_slots.tolist()
        features, new_states = build_features(chunk, [states.get(slot) for slot in slot_list])
        states.update(zip(slot_list, new_states, strict=True))
        if len(rule_set):
            matches[start : start + len(chunk)] = evaluate_rules(rule_set.program_set, features, chunk)
    return matches


def _result(
    rule_id: str, version: int, mode: str, hit_rows: npt.NDArray[np.bool_], transactions: Transactions
) -> RuleResult:
    labels = transactions.labels
    hits = int(hit_rows.sum())
    true_positives = precision = recall = None
    if labels is not None:
        true_positives = int((hit_rows & labels).sum())
        precision = true_positives / hits if hits else None
        positives = int(labels.sum())
        recall = true_positives / positives if positives else None
    columns = transactions.columns
    samples = []
    for row in np.flatnonzero(hit_rows)[:SAMPLE_HITS].tolist():
        samples.append(
            {
                "row": row,
                "id": transactions.ids[row],
                "amount": float(columns.amount[row]),
                "type": int(columns.type[row]),
                "fraud": None if labels is None else bool(labels[row]),
            }
        )
    return RuleResult(rule_id, version, mode, hits, true_positives, precision, recall, samples)


def run_backtest(
    transactions: Transactions, rule_set: CompiledRuleSet, load_seconds: float = 0.0
) -> BacktestReport:
    """Replay ``transactions`` through ``rule_set``; per-rule hits, precision, recall, sample hits."""
    started = time.perf_counter()
    matches = replay(transactions, rule_set)
    seconds = time.perf_counter() - started
    hit_matrix = matches.astype(np.bool_)
    results = [
        _result(rule.rule_id, rule.version, rule.mode.value, hit_matrix[:, j], transactions)
        for j, rule in enumerate(rule_set.rules)
    ]
    active_columns = np.flatnonzero(rule_set.active_mask)
    any_active: npt.NDArray[np.bool_] = np.zeros(len(transactions.columns), dtype=np.bool_)
    if len(active_columns):
        any_active = np.asarray(hit_matrix[:, active_columns].any(axis=1), dtype=np.bool_)
    labels = transactions.labels
    return BacktestReport(
        source=transactions.source,
        transactions=len(transactions.columns),
        labelled_frauds=None if labels is None else int(labels.sum()),
        load_seconds=load_seconds,
        seconds=seconds,
        rules=results,
        any_active=_result("(any active rule)", 0, "active", any_active, transactions),
    )
