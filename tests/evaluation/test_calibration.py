"""Temperature scaling, calibration error and the referral threshold."""

from __future__ import annotations

import numpy as np
import pytest

from eyescreen.evaluation.calibration import (
    apply_temperature,
    choose_threshold,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)


def calibrated_sample(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw labels from known probabilities, so the probabilities are calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (count, 4))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in probabilities])
    return probabilities, labels


def test_apply_temperature_one_is_identity() -> None:
    probabilities, _ = calibrated_sample(50, 0)

    np.testing.assert_allclose(apply_temperature(probabilities, 1.0), probabilities, atol=1e-9)


def test_apply_temperature_keeps_ranking_and_sums() -> None:
    probabilities, _ = calibrated_sample(50, 1)

    for temperature in (0.5, 2.0):
        scaled = apply_temperature(probabilities, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
        assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()


def test_fit_temperature_recovers_sharpening() -> None:
    probabilities, labels = calibrated_sample(4000, 2)
    overconfident = apply_temperature(probabilities, 1 / 2.5)

    temperature = fit_temperature(overconfident, labels)

    assert temperature == pytest.approx(2.5, rel=0.15)


def test_fit_temperature_lowers_likelihood_and_ece() -> None:
    probabilities, labels = calibrated_sample(3000, 3)
    overconfident = apply_temperature(probabilities, 0.4)

    fixed = apply_temperature(overconfident, fit_temperature(overconfident, labels))

    assert negative_log_likelihood(fixed, labels) < negative_log_likelihood(overconfident, labels)
    assert expected_calibration_error(fixed, labels) < expected_calibration_error(overconfident, labels) / 2


def test_expected_calibration_error_perfect_and_worst() -> None:
    labels = np.array([0, 1, 2, 3])
    certain_right = np.eye(4)
    certain_wrong = np.roll(np.eye(4), 1, axis=1)

    assert expected_calibration_error(certain_right, labels) == pytest.approx(0.0)
    assert expected_calibration_error(certain_wrong, labels) == pytest.approx(1.0)


def test_reliability_bins_count_every_photo() -> None:
    probabilities, labels = calibrated_sample(500, 4)

    rows = reliability_bins(probabilities, labels, bins=10)

    assert sum(row["count"] for row in rows) == 500
    assert all(row["lower"] < row["confidence"] <= row["upper"] for row in rows)


def test_choose_threshold_reaches_target() -> None:
    probabilities, labels = calibrated_sample(2000, 5)

    threshold = choose_threshold(probabilities, labels, target_accuracy=0.9)
    (point,) = coverage_curve(probabilities, labels, np.array([threshold]))

    assert point["accuracy"] >= 0.9
    assert 0.0 < point["coverage"] < 1.0


def test_choose_threshold_unreachable_answers_nothing() -> None:
    labels = np.array([0, 0, 0, 0])
    always_wrong = np.tile([0.1, 0.9, 0.0, 0.0], (4, 1))

    assert choose_threshold(always_wrong, labels, target_accuracy=0.5) == 1.0


def test_coverage_curve_zero_threshold_answers_all() -> None:
    probabilities, labels = calibrated_sample(100, 6)

    (point,) = coverage_curve(probabilities, labels, np.array([0.0]))

    assert point["coverage"] == 1.0
    assert point["accuracy"] == pytest.approx((probabilities.argmax(axis=1) == labels).mean())
