"""Classification metrics in plain numpy: confusion matrix, balanced accuracy, macro-F1, ROC AUC."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Count (n_classes, n_classes) outcomes, rows are true classes and columns predictions."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Compute the area under the ROC curve with the rank-sum formula, ties counted as half.

    Returns NaN when only one class is present.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    n_positive = int(is_positive.sum())
    n_negative = is_positive.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")

    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    rank_sum = ranks[is_positive].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def roc_curve(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compute (false positive rate, true positive rate) points at every distinct threshold."""
    is_positive = np.asarray(is_positive, dtype=bool)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores = np.asarray(scores)[order]
    sorted_positive = is_positive[order]

    true_positives = np.cumsum(sorted_positive)
    false_positives = np.cumsum(~sorted_positive)
    # Keep the last point of each run of equal scores.
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    tpr = np.r_[0.0, true_positives[last_of_run] / max(1, is_positive.sum())]
    fpr = np.r_[0.0, false_positives[last_of_run] / max(1, (~is_positive).sum())]
    return fpr, tpr


def _mean_of_defined(values: list[float]) -> float:
    """Average the values that are not NaN, or return NaN when none is defined."""
    defined = [value for value in values if not np.isnan(value)]
    return float(np.mean(defined)) if defined else float("nan")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


@dataclass
class ClassificationReport:
    """Summary metrics of one set of predictions against true labels."""

    n: int
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    macro_auc: float
    sensitivity: dict[str, float]
    specificity: dict[str, float]
    auc: dict[str, float]
    confusion_matrix: list[list[int]]
    classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_report(
    true: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...] | list[str]
) -> ClassificationReport:
    """Score (N, C) class probabilities against N integer labels.

    Sensitivity, specificity and AUC are one-vs-rest per class. Balanced accuracy is the mean
    sensitivity over the classes that occur in true, and macro AUC the mean AUC over them.
    """
    true = np.asarray(true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = len(classes)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(true, predicted, n_classes)

    sensitivity: dict[str, float] = {}
    specificity: dict[str, float] = {}
    auc: dict[str, float] = {}
    f1_scores = []
    present = []
    for index, name in enumerate(classes):
        true_positive = matrix[index, index]
        actual = matrix[index].sum()
        predicted_count = matrix[:, index].sum()
        negatives = matrix.sum() - actual
        false_positive = predicted_count - true_positive

        sensitivity[name] = float(true_positive / actual) if actual else float("nan")
        specificity[name] = float((negatives - false_positive) / negatives) if negatives else float("nan")
        auc[name] = roc_auc(true == index, probabilities[:, index])
        if actual:
            present.append(name)
            denominator = actual + predicted_count
            f1_scores.append(2 * true_positive / denominator if denominator else 0.0)

    total = int(matrix.sum())
    return ClassificationReport(
        n=total,
        accuracy=float(np.trace(matrix) / total) if total else float("nan"),
        balanced_accuracy=float(np.mean([sensitivity[name] for name in present])) if present else float("nan"),
        macro_f1=float(np.mean(f1_scores)) if f1_scores else float("nan"),
        macro_auc=_mean_of_defined([auc[name] for name in present]),
        sensitivity=sensitivity,
        specificity=specificity,
        auc=auc,
        confusion_matrix=matrix.tolist(),
        classes=list(classes),
    )


def reports_by_source(
    true: np.ndarray, probabilities: np.ndarray, sources: np.ndarray, classes: tuple[str, ...] | list[str]
) -> dict[str, dict[str, Any]]:
    """Score the predictions of each source separately, keyed by source name in sorted order."""
    sources = np.asarray(sources)
    return {
        str(source): classification_report(true[sources == source], probabilities[sources == source], classes).to_dict()
        for source in sorted(set(sources.tolist()))
    }


def mean_and_sd(values: list[float]) -> dict[str, float]:
    """Summarise per-fold values as mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.mean(array)), "sd": float(np.std(array, ddof=1)) if array.size > 1 else 0.0}

