"""``sentinel model compare``: the active model and a challenger side by side, before switching.

Two sources, for two questions:

- **A labelled file** (PaySim CSV): how good is each model where the truth is known? Both score the
  same replayed feature rows; each is judged at its own thresholds (rules are the same for both and
  left out, so the figures are the models' own): PR-AUC, ROC-AUC, precision and recall of
  REVIEW-or-DECLINE and of DECLINE, and how often the two would decide differently.
- **The shadow period** (the ledger): what would switching change on live traffic? Every decision
  recorded while a shadow model ran carries its would-be outcome (``Decision.shadow``); the report
  counts active by shadow outcomes per model pair, without labels (production has none yet).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from sentinel.model_export.evaluation import precision_recall_at
from sentinel.model_export.paysim import read_paysim
from sentinel.model_export.registry import LoadedModel
from sentinel.model_export.training import replay_features
from sentinel.postgres import connect_as_writer
from sentinel.v1 import decision_pb2

OUTCOMES = ("APPROVE", "REVIEW", "DECLINE")
_DECISIONS = "SELECT decision_bytes FROM ledger.decisions WHERE recorded_at >= $1 AND recorded_at < $2"


@dataclass(frozen=True, slots=True)
class ModelOnFile:
    """One model's figures on a labelled file, at its own thresholds."""

    version: str
    kind: str
    review_threshold: float
    decline_threshold: float
    pr_auc: float
    roc_auc: float
    flagged_precision: float
    flagged_recall: float
    decline_precision: float
    decline_recall: float


def model_outcomes(model: LoadedModel, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int8]:
    """0 APPROVE, 1 REVIEW, 2 DECLINE for each score at ``model``'s thresholds (rules left out)."""
    thresholds = model.metadata.thresholds
    return (scores >= thresholds.review).astype(np.int8) + (scores >= thresholds.decline).astype(np.int8)


def compare_on_file(models: list[LoadedModel], data: Path) -> dict[str, Any]:
    """Each model's figures on the labelled PaySim file ``data`` and the outcome agreement matrix of
    the first two (rows: the first model's outcome, columns: the second's)."""
    rows = read_paysim(data)
    labels = rows.is_fraud
    if labels.all() or not labels.any():
        raise ValueError(f"{data}: comparing needs both fraud and legitimate rows")
    features = replay_features(rows)
    figures, outcomes = [], []
    for model in models:
        scores = model.scorer.score(features).astype(np.float64)
        thresholds = model.metadata.thresholds
        flagged = precision_recall_at(scores, labels, thresholds.review)
        declined = precision_recall_at(scores, labels, thresholds.decline)
        figures.append(
            ModelOnFile(
                version=model.version,
                kind=model.metadata.kind,
                review_threshold=thresholds.review,
                decline_threshold=thresholds.decline,
                pr_auc=float(average_precision_score(labels, scores)),
                roc_auc=float(roc_auc_score(labels, scores)),
                flagged_precision=flagged[0],
                flagged_recall=flagged[1],
                decline_precision=declined[0],
                decline_recall=declined[1],
            )
        )
        outcomes.append(model_outcomes(model, scores))
    report: dict[str, Any] = {
        "data": str(data),
        "rows": len(rows),
        "fraud_rows": int(labels.sum()),
        "models": figures,
    }
    if len(outcomes) == 2:
        report["agreement"] = _matrix(Counter(zip(outcomes[0].tolist(), outcomes[1].tolist(), strict=True)))
        report["agreement_share"] = float(np.mean(outcomes[0] == outcomes[1]))
    return report


async def compare_shadow_period(database_url: str, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """Active by shadow outcomes of the decisions recorded in [since, until) that carry a shadow score,
    per (active version, shadow version) pair."""
    connection = await connect_as_writer(
        database_url, connect_timeout_s=10.0, application_name="sentinel-model-compare"
    )
    try:
        records = await connection.fetch(_DECISIONS, since, until)
    finally:
        await connection.close()
    pairs: dict[tuple[str, str], Counter[tuple[int, int]]] = {}
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for record in records:
        decision = decision_pb2.Decision.FromString(record["decision_bytes"])
        if not decision.HasField("shadow"):
            continue
        pair = (decision.model_version, decision.shadow.model_version)
        pairs.setdefault(pair, Counter())[decision.outcome - 1, decision.shadow.outcome - 1] += 1
        scores.setdefault(pair, []).append((decision.model_score, decision.shadow.model_score))
    report = []
    for (active, shadow), counter in sorted(pairs.items()):
        total = sum(counter.values())
        pair_scores = np.array(scores[active, shadow])
        report.append(
            {
                "active_version": active,
                "shadow_version": shadow,
                "decisions": total,
                "agreement": _matrix(counter),
                "agreement_share": sum(counter[i, i] for i in range(3)) / total,
                "mean_model_score": float(pair_scores[:, 0].mean()),
                "mean_shadow_model_score": float(pair_scores[:, 1].mean()),
            }
        )
    return {"since": since.isoformat(), "until": until.isoformat(), "pairs": report}


def _matrix(counter: Counter[tuple[int, int]]) -> dict[str, dict[str, int]]:
    """{first outcome: {second outcome: count}} over all nine pairs."""
    return {OUTCOMES[i]: {OUTCOMES[j]: counter[i, j] for j in range(3)} for i in range(3)}
