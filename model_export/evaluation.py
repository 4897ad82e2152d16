"""Held-out evaluation of a model's score against fraud labels, and thresholds chosen by stated targets.

The labels measure the score on rows the model was not fitted on: PR-AUC (average precision: the
figure that matters when fraud is rare), ROC-AUC, and the recall reached while 95 % of what it flags
is fraud. Thresholds are chosen, not guessed, from targets an operations team states
(``PolicyTargets``):

- DECLINE: the lowest score whose validation precision is at least ``decline_precision`` (a decline
  is a customer refused: it has to be right). When the score never gets there, the lowest score with
  the best precision among those catching at least MIN_DECLINE_RECALL of the fraud, and the stored
  rule says so.
- REVIEW: the lowest score whose validation precision is at least ``review_precision`` (an analyst's
  queue that is mostly fraud). When the score never gets there, the score above which at most
  ``review_legit_rate`` of legitimate traffic lands (analyst capacity), and the rule says so.

REVIEW never sits above DECLINE. The figures at the chosen thresholds are stored with the model, so
``sentinel model list`` shows what the thresholds were worth on validation data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from sentinel.model_export.metadata import Metrics, Thresholds

MIN_DECLINE_RECALL = 0.01


@dataclass(frozen=True, slots=True)
class PolicyTargets:
    """What the thresholds must achieve on validation data."""

    decline_precision: float = 0.995
    review_precision: float = 0.98
    review_legit_rate: float = 0.01  # the fallback when review_precision is out of reach

    def __post_init__(self) -> None:
        for name in ("decline_precision", "review_precision", "review_legit_rate"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float) -> tuple[float, float]:
    """Best recall among thresholds whose precision is at least ``precision``, and that threshold.

    (0.0, inf) when no threshold reaches the precision.
    """
    precisions, recalls, thresholds = precision_recall_curve(labels, scores)
    # The last (precision, recall) pair has no threshold: it is the "flag nothing" point.
    reaching = np.flatnonzero(precisions[:-1] >= precision)
    if len(reaching) == 0:
        return 0.0, float("inf")
    best = reaching[np.argmax(recalls[reaching])]
    return float(recalls[best]), float(thresholds[best])


def _most_precise_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    precisions, recalls, thresholds = precision_recall_curve(labels, scores)
    candidates = np.flatnonzero(recalls[:-1] >= MIN_DECLINE_RECALL)
    best = candidates[np.flatnonzero(precisions[candidates] == precisions[candidates].max())[0]]
    return float(thresholds[best])


def precision_recall_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """Precision and recall of flagging every score at or above ``threshold``."""
    flagged = scores >= threshold
    true_positives = int(np.sum(flagged & labels))
    precision = true_positives / int(flagged.sum()) if flagged.any() else 0.0
    recall = true_positives / int(labels.sum()) if labels.any() else 0.0
    return precision, recall


def _decline_threshold(scores: np.ndarray, labels: np.ndarray, targets: PolicyTargets) -> tuple[float, str]:
    _, threshold = recall_at_precision(scores, labels, targets.decline_precision)
    if np.isfinite(threshold):
        return threshold, f"lowest score with validation precision >= {targets.decline_precision:.1%}"
    return _most_precise_threshold(scores, labels), (
        f"validation precision never reaches {targets.decline_precision:.1%}: lowest score with the best "
        f"precision among those catching at least {MIN_DECLINE_RECALL:.0%} of the fraud"
    )


def _review_threshold(scores: np.ndarray, labels: np.ndarray, targets: PolicyTargets) -> tuple[float, str]:
    _, threshold = recall_at_precision(scores, labels, targets.review_precision)
    if np.isfinite(threshold):
        return threshold, f"lowest score with validation precision >= {targets.review_precision:.1%}"
    quantile = float(np.quantile(scores[~labels], 1.0 - targets.review_legit_rate))
    return quantile, (
        f"validation precision never reaches {targets.review_precision:.1%}: score above "
        f"{1.0 - targets.review_legit_rate:.0%} of legitimate validation rows"
    )


def evaluate(
    scores: np.ndarray, labels: np.ndarray, targets: PolicyTargets | None = None
) -> tuple[Metrics, Thresholds]:
    """Metrics of ``scores`` (risk, higher = more suspicious) against boolean ``labels``, and the
    thresholds that meet ``targets`` (default PolicyTargets()) on them."""
    targets = targets or PolicyTargets()
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("evaluation needs both fraud and legitimate rows")
    decline, decline_rule = _decline_threshold(scores, labels, targets)
    review, review_rule = _review_threshold(scores, labels, targets)
    review = min(review, decline)
    review_precision, review_recall = precision_recall_at(scores, labels, review)
    decline_precision, decline_recall = precision_recall_at(scores, labels, decline)
    metrics = Metrics(
        pr_auc=float(average_precision_score(labels, scores)),
        roc_auc=float(roc_auc_score(labels, scores)),
        recall_at_95_precision=recall_at_precision(scores, labels, 0.95)[0],
        validation_rows=len(scores),
        validation_fraud_rows=int(labels.sum()),
        review_precision=review_precision,
        review_recall=review_recall,
        decline_precision=decline_precision,
        decline_recall=decline_recall,
    )
    thresholds = Thresholds(
        review=review,
        decline=decline,
        rule=f"review: {review_rule}; decline: {decline_rule}. Action when score >= threshold.",
        review_precision_target=targets.review_precision,
        decline_precision_target=targets.decline_precision,
    )
    return metrics, thresholds
