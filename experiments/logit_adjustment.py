"""Would per-class offsets on the logits raise balanced accuracy? Cross-fitted over the folds.

Usage: .venv/bin/python experiments/logit_adjustment.py REPORT_DIR [--folds 5]

For each fold, offsets for cataract, glaucoma and retina_disease (normal stays at 0) are chosen
on a grid to maximise balanced accuracy on the other folds' out-of-fold predictions, then
applied to this fold. Choosing and scoring on the same photos would flatter the result.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np

from eyescreen.evaluation.metrics import classification_report
from eyescreen.labels import CLASSES

OFFSETS = np.arange(-1.5, 1.51, 0.25)


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([(predicted[labels == k] == k).mean() for k in np.unique(labels)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    arguments = parser.parse_args()

    labels, log_probabilities, fold_of = [], [], []
    for fold in range(arguments.folds):
        with (arguments.report_dir / f"fold-{fold}" / "predictions.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                labels.append(CLASSES.index(row["label"]))
                log_probabilities.append([np.log(max(float(row[name]), 1e-9)) for name in CLASSES])
                fold_of.append(fold)
    labels_array, logits, folds = np.array(labels), np.array(log_probabilities), np.array(fold_of)

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
