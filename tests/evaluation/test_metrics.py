"""Tests of the numpy metrics against scikit-learn and against a small example worked by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from eyescreen.evaluation.metrics import classification_report, confusion_matrix, roc_auc, roc_curve

sklearn_metrics = pytest.importorskip("sklearn.metrics")

CLASSES = ("normal", "cataract", "glaucoma", "retina_disease")
SEEDS = [0, 1, 2, 3, 4]


def random_scores(seed: int, n: int = 300, n_classes: int = 4, *, absent: int | None = None):
    """Draw labels and probabilities rounded to 0.1, so scores and argmax both have many ties."""
    rng = np.random.default_rng(seed)
    classes = [index for index in range(n_classes) if index != absent]
    true = rng.choice(classes, size=n)
    probabilities = rng.dirichlet(np.ones(n_classes), size=n)
    # Shift some probability towards the true class, so the scores are better than chance.
    probabilities[np.arange(n), true] += rng.uniform(0, 0.5, size=n)
    probabilities = np.round(probabilities / probabilities.sum(axis=1, keepdims=True), 1)
    return true, probabilities


def test_random_scores_have_ties() -> None:
    # Guards the premise of the comparisons below: scores and argmax both contain ties.
    _, probabilities = random_scores(0)

    assert len(np.unique(probabilities[:, 0])) < 12
    row_maxima = probabilities.max(axis=1, keepdims=True)
    assert ((probabilities == row_maxima).sum(axis=1) > 1).any()


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)
    predicted = probabilities.argmax(axis=1)

    matrix = confusion_matrix(true, predicted, 4)

    expected = sklearn_metrics.confusion_matrix(true, predicted, labels=range(4))
    np.testing.assert_array_equal(matrix, expected)


def test_confusion_matrix_counts_unused_class() -> None:
    matrix = confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)

    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)

    for index in range(4):
        expected = sklearn_metrics.roc_auc_score(true == index, probabilities[:, index])
        assert roc_auc(true == index, probabilities[:, index]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("is_positive", "scores", "expected"),
    [
        # Positive-negative pairs: (0.9, 0.5) won, (0.9, 0.1) won, (0.4, 0.5) lost, (0.4, 0.1) won.
        pytest.param([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1], 3 / 4, id="one-pair-lost"),
        pytest.param([1, 0], [0.5, 0.5], 0.5, id="tie-counts-half"),
        pytest.param([1, 1, 0], [0.7, 0.3, 0.3], (1 + 0.5) / 2, id="one-tie-one-win"),
        pytest.param([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0, id="perfect"),
        pytest.param([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0, id="reversed"),
    ],
)
def test_roc_auc_hand_worked(is_positive: list[int], scores: list[float], expected: float) -> None:
    assert roc_auc(np.array(is_positive), np.array(scores)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "is_positive",
    [pytest.param([1, 1, 1], id="only-positives"), pytest.param([0, 0], id="only-negatives"), pytest.param([], id="empty")],
)
def test_roc_auc_single_class_nan(is_positive: list[int]) -> None:
    assert math.isnan(roc_auc(np.array(is_positive), np.linspace(0, 1, len(is_positive))))


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_curve_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)

    fpr, tpr = roc_curve(true == 2, probabilities[:, 2])

    expected_fpr, expected_tpr, _ = sklearn_metrics.roc_curve(true == 2, probabilities[:, 2], drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_accuracy_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)

    report = classification_report(true, probabilities, CLASSES)

    expected = sklearn_metrics.accuracy_score(true, probabilities.argmax(axis=1))
    assert report.accuracy == pytest.approx(expected, abs=1e-12)
    assert report.n == len(true)


@pytest.mark.parametrize("absent", [None, 3, 0])
@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_balanced_accuracy_matches_sklearn(seed: int, absent: int | None) -> None:
    true, probabilities = random_scores(seed, absent=absent)

    report = classification_report(true, probabilities, CLASSES)

    # scikit-learn averages recall over the classes present in the true labels. It warns when
    # a prediction names a class that is absent from them, which is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = sklearn_metrics.balanced_accuracy_score(true, probabilities.argmax(axis=1))
    assert report.balanced_accuracy == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("absent", [None, 3, 0])
@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_macro_f1_matches_sklearn(seed: int, absent: int | None) -> None:
    true, probabilities = random_scores(seed, absent=absent)
    present = sorted(set(true.tolist()))

    report = classification_report(true, probabilities, CLASSES)

    expected = sklearn_metrics.f1_score(true, probabilities.argmax(axis=1), labels=present, average="macro")
    assert report.macro_f1 == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_sensitivity_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)

    report = classification_report(true, probabilities, CLASSES)

    expected = sklearn_metrics.recall_score(true, probabilities.argmax(axis=1), labels=range(4), average=None)
    for index, name in enumerate(CLASSES):
        assert report.sensitivity[name] == pytest.approx(expected[index], abs=1e-12), name


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_specificity_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)

    report = classification_report(true, probabilities, CLASSES)

    per_class = sklearn_metrics.multilabel_confusion_matrix(true, probabilities.argmax(axis=1), labels=range(4))
    for index, name in enumerate(CLASSES):
        (true_negative, false_positive), _ = per_class[index]
        expected = true_negative / (true_negative + false_positive)
        assert report.specificity[name] == pytest.approx(expected, abs=1e-12), name


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_auc_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)

    report = classification_report(true, probabilities, CLASSES)

    expected = [sklearn_metrics.roc_auc_score(true == index, probabilities[:, index]) for index in range(4)]
    for index, name in enumerate(CLASSES):
        assert report.auc[name] == pytest.approx(expected[index], abs=1e-12), name
    assert report.macro_auc == pytest.approx(np.mean(expected), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_confusion_matrix_matches_sklearn(seed: int) -> None:
    true, probabilities = random_scores(seed)

    report = classification_report(true, probabilities, CLASSES)

    expected = sklearn_metrics.confusion_matrix(true, probabilities.argmax(axis=1), labels=range(4))
    assert report.confusion_matrix == expected.tolist()


def test_classification_report_absent_class_excluded() -> None:
    true, probabilities = random_scores(0, absent=3)

    report = classification_report(true, probabilities, CLASSES)

    assert math.isnan(report.sensitivity["retina_disease"])
    assert math.isnan(report.auc["retina_disease"])
    present_auc = [report.auc[name] for name in CLASSES[:3]]
    assert report.macro_auc == pytest.approx(np.mean(present_auc))


# A 3-class example worked by hand. The argmax of each row gives predicted = [0, 1, 1, 1, 2, 0].
HAND_TRUE = np.array([0, 0, 1, 1, 2, 2])
HAND_PROBABILITIES = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.6, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.2, 0.7],
        [0.5, 0.1, 0.4],
    ]
)
HAND_CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def hand_report():
    return classification_report(HAND_TRUE, HAND_PROBABILITIES, HAND_CLASSES)


def test_classification_report_hand_confusion_matrix(hand_report) -> None:
    # Row a: one right, one taken for b. Row b: both right. Row c: one right, one taken for a.
    assert hand_report.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_classification_report_hand_accuracy(hand_report) -> None:
    assert hand_report.accuracy == pytest.approx(4 / 6)


def test_classification_report_hand_sensitivity(hand_report) -> None:
    assert hand_report.sensitivity == pytest.approx({"a": 1 / 2, "b": 2 / 2, "c": 1 / 2})


def test_classification_report_hand_specificity(hand_report) -> None:
    # a: 1 false positive among 4 negatives. b: 1 among 4. c: none among 4.
    assert hand_report.specificity == pytest.approx({"a": 3 / 4, "b": 3 / 4, "c": 4 / 4})


def test_classification_report_hand_balanced_accuracy(hand_report) -> None:
    assert hand_report.balanced_accuracy == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)


def test_classification_report_hand_macro_f1(hand_report) -> None:
    # F1 = 2 TP / (actual + predicted): a = 2/4, b = 4/5, c = 2/3.
    assert hand_report.macro_f1 == pytest.approx((2 / 4 + 4 / 5 + 2 / 3) / 3)


def test_classification_report_hand_auc(hand_report) -> None:
    # a: positives score 0.7, 0.3 against negatives 0.1, 0.2, 0.1, 0.5 -> wins 4 + 3 = 7 of 8.
    # b: positives 0.8, 0.5 against 0.2, 0.6, 0.2, 0.1 -> wins 4 + 3 = 7 of 8.
    # c: positives 0.7, 0.4 against 0.1, 0.1, 0.1, 0.3 -> wins 4 + 4 = 8 of 8.
    assert hand_report.auc == pytest.approx({"a": 7 / 8, "b": 7 / 8, "c": 1.0})
    assert hand_report.macro_auc == pytest.approx((7 / 8 + 7 / 8 + 1) / 3)


def test_classification_report_to_dict_round_trip(hand_report) -> None:
    as_dict = hand_report.to_dict()

    assert as_dict["classes"] == list(HAND_CLASSES)
    assert as_dict["n"] == 6
    assert as_dict["confusion_matrix"] == hand_report.confusion_matrix
