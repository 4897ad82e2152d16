"""The *features*, *rules*, *model* and *outcome* stages: from a batch's columns and its accounts' state
to serialized decisions, one compiled call each per batch.

features: the hot path computes each admitted row's features on exactly the state Redis placed before
it (base + earlier journal rows) and the accounts' states after the batch (folded later by the state
stage). rules: the compiled rule programs. model: one onnxruntime run. shadow (only while a shadow
model is set): one onnxruntime run of the shadow model on the same features. outcome: the policy of
``server/outcome.py`` (its Python twin), compiled, writes each row's Decision bytes, with the shadow
model's opinion (same policy and rule matches, its own thresholds) in each Decision's ``shadow`` field
and the caller who asked for the row (the batch keeps them per call) in its ``caller`` field.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import structlog

from sentinel.config import Settings
from sentinel.hotpath import (
    RuleTable,
    TransactionColumns,
    build_features_stateless,
    encode_decisions,
    evaluate_rules,
)
from sentinel.hotpath.respond import Callers, EncodedDecisions, ShadowModel
from sentinel.hotpath.rows import ROW_SIZE, columns_of
from sentinel.model_export.metadata import score_bin_counts
from sentinel.model_export.registry import LoadedModel
from sentinel.model_export.reloader import ActiveModel
from sentinel.server import metrics
from sentinel.server.batch import ScoringBatch
from sentinel.server.outcome import OUTCOME_NAMES
from sentinel.server.requests import Decided, ShadowOpinion
from sentinel.server.rules.compiler import CompiledRule, CompiledRuleSet, RuleSource
from sentinel.server.state_store import Admission, Fold, features_and_states, journal_rows

log = structlog.get_logger("sentinel.pipeline")


def rule_table(rules: Sequence[CompiledRule]) -> RuleTable:
    """Compiled rules (a rule set's columns, in order) as the compiled outcome stage reads them."""
    return RuleTable(
        [rule.rule_id for rule in rules],
        [rule.version for rule in rules],
        [rule.action.proto for rule in rules],
        [rule.priority for rule in rules],
        [rule.severity for rule in rules],
        [rule.shadow for rule in rules],
    )


class ScoreStage:
    """Scores batches: stateless when Redis is out of reach, else on the state their admission read."""

    def __init__(self, settings: Settings, *, model: ActiveModel, rules: RuleSource) -> None:
        self._settings = settings
        self._model = model
        self._rules = rules
        self._fail_closed = settings.degraded_mode == "fail_closed"
        self._tables: tuple[CompiledRuleSet, RuleTable] | None = None

    def degraded(self, batch: ScoringBatch) -> None:
        """Every row, on stateless features: Redis is out of reach."""
        started = time.perf_counter()
        features = build_features_stateless(batch.columns)
        metrics.STAGE_SECONDS.labels("features").observe(time.perf_counter() - started)
        rows = np.arange(batch.size, dtype=np.intp)
        self._decide(batch, rows, features, batch.columns, degraded=True)
        metrics.DEGRADED.labels("state_unavailable").inc(len(rows))

    def admitted(
        self, batch: ScoringBatch, admitted: list[int], takeovers: list[int], admission: Admission
    ) -> None:
        """The admitted rows on the state Redis placed before them, takeovers on the state after them,
        and the folds the state stage settles."""
        started = time.perf_counter()
        versions, states, journals = admission.split()
        prefix_records, prefix_slots = journal_rows(journals, batch.accounts)
        prefix = len(prefix_records)
        own = np.asarray(admitted, dtype=np.intp)
        if not prefix and len(admitted) == batch.size:
            columns = batch.columns  # the usual case: nothing to apply first, no row answered already
        else:
            records = np.concatenate((prefix_records, batch.records[own]))
            columns = columns_of(records, np.concatenate((prefix_slots, batch.columns.account_slot[own])))
        features, new_states = features_and_states(columns, states)
        metrics.STAGE_SECONDS.labels("features").observe(time.perf_counter() - started)
        if admitted:
            own_columns = columns if not prefix else columns.take(slice(prefix, None))
            self._decide(batch, own, features[prefix:], own_columns)
        if takeovers:
            # A takeover's transaction is already in the state: its features are read, not applied.
            rows = np.asarray(takeovers, dtype=np.intp)
            taken = batch.columns.take(rows)
            takeover_features, _ = features_and_states(taken, list(new_states))
            self._decide(batch, rows, takeover_features, taken)
        journal_lengths = np.fromiter(map(len, journals), dtype=np.intp, count=len(journals)) // ROW_SIZE
        journal_lengths += np.bincount(batch.columns.account_slot[own], minlength=len(batch.accounts))
        lengths = journal_lengths.tolist()  # Python ints: the settle arithmetic is per account
        for slot in np.flatnonzero(journal_lengths).tolist():
            state = new_states[slot]
            if state is not None:
                batch.folds.append(Fold(batch.accounts[slot], versions[slot], state, lengths[slot]))

    def _table(self, rule_set: CompiledRuleSet) -> RuleTable:
        if self._tables is None or self._tables[0] is not rule_set:
            self._tables = (rule_set, rule_table(rule_set.rules))
        return self._tables[1]

    def _decide(
        self,
        batch: ScoringBatch,
        rows: npt.NDArray[np.intp],
        features: npt.NDArray[np.float32],
        columns: TransactionColumns,
        *,
        degraded: bool = False,
    ) -> None:
        """rules + model -> outcome for ``rows`` of the batch (``features``/``columns``: theirs, in order)."""
        started = time.perf_counter()
        rule_set = self._rules.current
        matches = (
            evaluate_rules(rule_set.program_set, features, columns)
            if len(rule_set)
            else np.zeros((len(rows), 0), dtype=np.uint8)
        )
        after_rules = time.perf_counter()
        metrics.STAGE_SECONDS.labels("rules").observe(after_rules - started)

        model, shadow_model = self._model.current, self._model.shadow
        scores = model.scorer.score(features)
        after_model = time.perf_counter()
        metrics.STAGE_SECONDS.labels("model").observe(after_model - after_rules)
        shadow = None
        if shadow_model is not None:
            shadow = self._shadow_scores(shadow_model, features)
            after_shadow = time.perf_counter()
            metrics.STAGE_SECONDS.labels("shadow").observe(after_shadow - after_model)
            after_model = after_shadow

        review, decline = self._settings.review_threshold, self._settings.decline_threshold
        ids, keys = batch.transaction_ids, batch.idempotency_keys
        if len(rows) < len(ids):
            ids, keys = [ids[i] for i in rows.tolist()], [keys[i] for i in rows.tolist()]
        encoded = encode_decisions(
            self._table(rule_set),
            ids,
            keys,
            scores,
            matches,
            model.metadata.thresholds.review if review is None else review,
            model.metadata.thresholds.decline if decline is None else decline,
            degraded=degraded,
            fail_closed=self._fail_closed,
            model_version=model.version,
            decided_at_seconds=batch.decided_at_ns // 1_000_000_000,
            decided_at_nanos=batch.decided_at_ns % 1_000_000_000,
            shadow=shadow,
            callers=Callers(batch.callers.names, batch.callers.rows[rows]),
        )
        results, version = batch.results, model.version
        if shadow is None:
            for row, decision, outcome, risk in zip(
                rows.tolist(),
                encoded.decision_bytes,
                encoded.outcomes.tolist(),
                encoded.risk_scores.tolist(),
                strict=True,
            ):
                results[row] = Decided(decision, outcome, risk, degraded, version)
        else:
            self._shadow_results(batch, rows, encoded, shadow, degraded, version)
        if matches.shape[1]:
            self._count_hits(rule_set, matches, ids)
        for bin_counter, count in zip(metrics.MODEL_SCORE_BINS, score_bin_counts(scores), strict=True):
            if count:
                bin_counter.inc(count)
        metrics.STAGE_SECONDS.labels("outcome").observe(time.perf_counter() - after_model)

    @staticmethod
    def _shadow_scores(shadow_model: LoadedModel, features: npt.NDArray[np.float32]) -> ShadowModel | None:
        """The shadow model's scores of the batch with its own thresholds (never the settings' overrides,
        which are the active model's); None, logged, when it fails: a shadow model never fails a batch."""
        try:
            shadow_scores = shadow_model.scorer.score(features)
        except Exception as exc:
            log.error("shadow_model_failed", version=shadow_model.version, error=str(exc))
            return None
        thresholds = shadow_model.metadata.thresholds
        return ShadowModel(shadow_model.version, shadow_scores, thresholds.review, thresholds.decline)

    @staticmethod
    def _shadow_results(
        batch: ScoringBatch,
        rows: npt.NDArray[np.intp],
        encoded: EncodedDecisions,
        shadow: ShadowModel,
        degraded: bool,
        version: str,
    ) -> None:
        """The rows' answers with the shadow model's opinion, and the batch's (active, shadow) outcome
        pairs counted (one bincount, one counter increment per pair that occurs)."""
        assert encoded.shadow_outcomes is not None and encoded.shadow_risk_scores is not None
        results, shadow_version = batch.results, shadow.model_version
        for row, decision, outcome, risk, shadow_score, shadow_outcome, shadow_risk in zip(
            rows.tolist(),
            encoded.decision_bytes,
            encoded.outcomes.tolist(),
            encoded.risk_scores.tolist(),
            shadow.model_scores.tolist(),
            encoded.shadow_outcomes.tolist(),
            encoded.shadow_risk_scores.tolist(),
            strict=True,
        ):
            opinion = ShadowOpinion(shadow_version, shadow_score, shadow_outcome, shadow_risk)
            results[row] = Decided(decision, outcome, risk, degraded, version, shadow=opinion)
        pairs = np.bincount(
            encoded.outcomes.astype(np.intp) * 4 + encoded.shadow_outcomes, minlength=16
        ).tolist()
        for pair, count in enumerate(pairs):
            if count:
                metrics.SHADOW_OUTCOMES.labels(OUTCOME_NAMES[pair // 4], OUTCOME_NAMES[pair % 4]).inc(count)

    @staticmethod
    def _count_hits(rule_set: CompiledRuleSet, matches: npt.NDArray[np.uint8], ids: list[str]) -> None:
        """Rule hit metrics per rule and batch; one log event per shadow rule that matched in the batch,
        naming its transactions (shadow rules are watched before they are switched on)."""
        for column, hits in enumerate(np.count_nonzero(matches, axis=0).tolist()):
            if not hits:
                continue
            rule = rule_set.rules[column]
            metrics.RULE_HITS.labels(rule.rule_id, "shadow" if rule.shadow else "active").inc(hits)
            if rule.shadow:
                log.info(
                    "shadow_rule_matched",
                    rule_id=rule.rule_id,
                    rule_version=rule.version,
                    transaction_ids=[ids[i] for i in np.flatnonzero(matches[:, column]).tolist()],
                )
