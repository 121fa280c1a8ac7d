"""Confusion-matrix and ROC plots as PNG files (needs matplotlib, from eyescreen[train])."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eyescreen.evaluation.metrics import confusion_matrix, roc_auc, roc_curve


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError:
        raise ImportError('plots need matplotlib: pip install "eyescreen[train]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def plot_confusion_matrix(true: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...], path: Path, title: str) -> None:
    """Draw the confusion matrix of argmax predictions, with counts in the cells."""
    pyplot = _pyplot()
    matrix = confusion_matrix(true, probabilities.argmax(axis=1), len(classes))
    figure, axes = pyplot.subplots(figsize=(5.5, 4.8))
    axes.imshow(matrix, cmap="Blues")
    for row in range(len(classes)):
        for column in range(len(classes)):
            colour = "white" if matrix[row, column] > matrix.max() / 2 else "black"
            axes.text(column, row, str(matrix[row, column]), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def plot_roc_curves(true: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...], path: Path, title: str) -> None:
    """Draw one-vs-rest ROC curves, one per class, with their AUC in the legend."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(5.5, 4.8))
    for index, name in enumerate(classes):
        is_positive = np.asarray(true) == index
        if not is_positive.any() or is_positive.all():
            continue
        fpr, tpr = roc_curve(is_positive, probabilities[:, index])
        axes.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(is_positive, probabilities[:, index]):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def plot_reliability(
    true: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str, *, bins: int = 10
) -> None:
    """Draw accuracy against mean confidence per confidence bin, one line per set of probabilities."""
    from eyescreen.evaluation.calibration import reliability_bins

    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(5.0, 4.6))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for label, probabilities in curves.items():
        rows = reliability_bins(probabilities, true, bins=bins)
        axes.plot([row["confidence"] for row in rows], [row["accuracy"] for row in rows], marker="o", label=label)
    axes.set_xlabel("confidence (top-class probability)")
    axes.set_ylabel("accuracy")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
