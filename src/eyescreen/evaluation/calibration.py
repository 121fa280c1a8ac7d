"""Temperature scaling, expected calibration error and the confidence threshold for "not sure".

All functions take (N, C) softmax probabilities, so they work on stored out-of-fold predictions:
dividing log-probabilities by a temperature T and applying softmax again is the same as dividing
the logits by T.
"""

from __future__ import annotations

import math

import numpy as np

# Smallest probability used inside logarithms, so that a probability of 0 stays finite.
EPSILON = 1e-12


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale (N, C) probabilities as softmax(log(p) / temperature)."""
    logits = np.log(np.clip(probabilities, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exponentials = np.exp(logits)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    chosen = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(chosen, EPSILON, 1.0))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, *, low: float = 0.05, high: float = 20.0) -> float:
    """Find the temperature that minimises the negative log-likelihood, by golden-section search on log T.

    The likelihood is unimodal in log T for softmax outputs, so the search converges to the optimum.
    """
    labels = np.asarray(labels, dtype=np.int64)

    def loss(log_temperature: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, math.exp(log_temperature)), labels)

    ratio = (math.sqrt(5) - 1) / 2
    left, right = math.log(low), math.log(high)
    inner_left = right - ratio * (right - left)
    inner_right = left + ratio * (right - left)
    loss_left, loss_right = loss(inner_left), loss(inner_right)
    for _ in range(80):
        if loss_left < loss_right:
            right, inner_right, loss_right = inner_right, inner_left, loss_left
            inner_left = right - ratio * (right - left)
            loss_left = loss(inner_left)
        else:
            left, inner_left, loss_left = inner_left, inner_right, loss_right
            inner_right = left + ratio * (right - left)
            loss_right = loss(inner_right)
    return float(math.exp((left + right) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> float:
    """Weighted mean gap between confidence and accuracy over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for lower, upper in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lower) & (confidence <= upper)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> list[dict[str, float]]:
    """Return per-bin mean confidence, accuracy and count, for a reliability diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for lower, upper in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lower) & (confidence <= upper)
        if in_bin.any():
            rows.append(
                {
                    "lower": float(lower),
                    "upper": float(upper),
                    "confidence": float(confidence[in_bin].mean()),
                    "accuracy": float(correct[in_bin].mean()),
                    "count": int(in_bin.sum()),
                }
            )
    return rows


def coverage_curve(probabilities: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> list[dict[str, float]]:
    """For each confidence threshold, the coverage (share of photos not referred) and the accuracy on them."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    rows = []
    for threshold in thresholds:
        answered = confidence >= threshold
        rows.append(
            {
                "threshold": float(threshold),
                "coverage": float(answered.mean()),
                "accuracy": float(correct[answered].mean()) if answered.any() else float("nan"),
            }
        )
    return rows


def choose_threshold(probabilities: np.ndarray, labels: np.ndarray, *, target_accuracy: float) -> float:
    """Return the lowest confidence threshold at which the photos not referred reach target_accuracy.

    Returns 1.0, which refers every photo, when no threshold reaches it.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    order = np.argsort(-confidence, kind="stable")
    # Accuracy of the k most confident photos, for every k.
    running_accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    reaching = np.flatnonzero(running_accuracy >= target_accuracy)
    if reaching.size == 0:
        return 1.0
    # The largest k that still reaches the target. Photos tied at its confidence are kept too.
    return float(confidence[order][reaching[-1]])
