"""Would per-class offsets on the logits raise balanced accuracy? Cross-fitted over the folds.

Usage: .venv/bin/python experiments/logit_adjustment.py REPORT_DIR [--folds 5]

For each fold, offsets for cataract, glaucoma and retina_disease (normal stays at 0) are chosen
on a grid to maximise balanced accuracy on the other folds' out-of-fold predictions, then
applied to this fold. Choosing and scoring on the same photos would flatter the result.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from eyescreen.evaluation.metrics import classification_report
from eyescreen.evaluation.predictions import read_predictions
from eyescreen.labels import CLASSES

OFFSETS = np.arange(-1.5, 1.51, 0.25)


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([(predicted[labels == k] == k).mean() for k in np.unique(labels)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    arguments = parser.parse_args()

    label_parts, logit_parts, fold_parts = [], [], []
    for fold in range(arguments.folds):
        _, fold_labels, probabilities = read_predictions(arguments.report_dir / f"fold-{fold}" / "predictions.csv")
        label_parts.append(fold_labels)
        logit_parts.append(np.log(np.maximum(probabilities, 1e-9)))
        fold_parts.append(np.full(len(fold_labels), fold))
    labels_array, logits, folds = np.concatenate(label_parts), np.concatenate(logit_parts), np.concatenate(fold_parts)

    adjusted = np.zeros(len(labels_array), dtype=np.int64)
    for fold in range(arguments.folds):
        others = folds != fold
        best_score, best_offsets = -1.0, np.zeros(len(CLASSES))
        for candidate in itertools.product(OFFSETS, repeat=len(CLASSES) - 1):
            offsets = np.array([0.0, *candidate])
            score = balanced_accuracy(labels_array[others], (logits[others] + offsets).argmax(axis=1))
            if score > best_score:
                best_score, best_offsets = score, offsets
        adjusted[folds == fold] = (logits[folds == fold] + best_offsets).argmax(axis=1)
        print(f"fold {fold}: offsets {best_offsets.tolist()} (balanced accuracy {best_score:.3f} on the other folds)")

    for name, predicted in (("as trained", logits.argmax(axis=1)), ("offsets, cross-fitted", adjusted)):
        one_hot = np.eye(len(CLASSES))[predicted]
        report = classification_report(labels_array, one_hot, CLASSES)
        sensitivity = ", ".join(f"{label} {value:.3f}" for label, value in report.sensitivity.items())
        print(f"{name}: balanced accuracy {report.balanced_accuracy:.3f}; sensitivity: {sensitivity}")


if __name__ == "__main__":
    main()
