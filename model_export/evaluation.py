"""Held-out evaluation of the anomaly score against fraud labels, and the thresholds it suggests.

The labels never train the Isolation Forest; they only measure it here, on rows it did not see:
PR-AUC (average precision: the figure that matters when fraud is rare), ROC-AUC, and the recall the
score reaches while 95 % of what it flags is fraud. The suggested thresholds follow two rules an
operations team can reason about: REVIEW takes at most REVIEW_LEGIT_RATE of legitimate traffic
(analyst capacity); DECLINE needs DECLINE_PRECISION on the validation data or, when the score never
gets there, sits where the score is most precise (catching at least MIN_DECLINE_RECALL of the fraud):
an Isolation Forest's very highest scores are often unusual legitimate payments, so "the top 0.1 %"
would decline more customers than fraudsters.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from sentinel.model_export.metadata import Metrics, Thresholds

TARGET_PRECISION = 0.95
REVIEW_LEGIT_RATE = 0.01
DECLINE_PRECISION = 0.95
MIN_DECLINE_RECALL = 0.01


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


def _precision_recall(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    flagged = scores >= threshold
    true_positives = int(np.sum(flagged & labels))
    precision = true_positives / int(flagged.sum()) if flagged.any() else 0.0
    recall = true_positives / int(labels.sum()) if labels.any() else 0.0
    return precision, recall


def evaluate(scores: np.ndarray, labels: np.ndarray) -> tuple[Metrics, Thresholds]:
    """Metrics of ``scores`` (risk, higher = more anomalous) against boolean ``labels``."""
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("evaluation needs both fraud and legitimate rows")
    legitimate = scores[~labels]
    review = float(np.quantile(legitimate, 1.0 - REVIEW_LEGIT_RATE))
    recall_95, precision_threshold = recall_at_precision(scores, labels, DECLINE_PRECISION)
    if np.isfinite(precision_threshold):
        decline = precision_threshold
        decline_rule = f"lowest score with validation precision >= {DECLINE_PRECISION:.0%}"
    else:
        decline = _most_precise_threshold(scores, labels)
        decline_rule = (
            f"validation precision never reaches {DECLINE_PRECISION:.0%}: lowest score with the best "
            f"precision among those catching at least {MIN_DECLINE_RECALL:.0%} of the fraud"
        )
    review = min(review, decline)
    review_precision, review_recall = _precision_recall(scores, labels, review)
    decline_precision, decline_recall = _precision_recall(scores, labels, decline)
    metrics = Metrics(
        pr_auc=float(average_precision_score(labels, scores)),
        roc_auc=float(roc_auc_score(labels, scores)),
        recall_at_95_precision=recall_95,
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
        rule=(
            f"review: score above {1.0 - REVIEW_LEGIT_RATE:.0%} of legitimate validation rows; "
            f"decline: {decline_rule}. Action when score >= threshold."
        ),
    )
    return metrics, thresholds
