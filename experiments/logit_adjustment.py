"""Would per-class offsets on the logits raise balanced accuracy? Cross-fitted over the folds.

Usage: .venv/bin/python experiments/logit_adjustment.py REPORT_DIR [--folds 5] [--objective lowest-sensitivity]

For each fold, offsets for cataract, glaucoma and retina_disease (normal stays at 0) are chosen
on a grid to maximise balanced accuracy on the other folds' out-of-fold predictions, then
applied to this fold. With --objective lowest-sensitivity they maximise the lowest class
sensitivity instead, with balanced accuracy breaking ties. Choosing and scoring on the same
photos would flatter the result.
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


def lowest_sensitivity(labels: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    sensitivities = [(predicted[labels == k] == k).mean() for k in np.unique(labels)]
    return float(min(sensitivities)), float(np.mean(sensitivities))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--objective", choices=("balanced-accuracy", "lowest-sensitivity"), default="balanced-accuracy")
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
        best_score, best_offsets = (-1.0, -1.0), np.zeros(len(CLASSES))
        for candidate in itertools.product(OFFSETS, repeat=len(CLASSES) - 1):
            offsets = np.array([0.0, *candidate])
            predicted = (logits[others] + offsets).argmax(axis=1)
            if arguments.objective == "lowest-sensitivity":
                score = lowest_sensitivity(labels_array[others], predicted)
            else:
                score = (balanced_accuracy(labels_array[others], predicted), 0.0)
            if score > best_score:
                best_score, best_offsets = score, offsets
        adjusted[folds == fold] = (logits[folds == fold] + best_offsets).argmax(axis=1)
        print(f"fold {fold}: offsets {best_offsets.tolist()} ({arguments.objective} {best_score[0]:.3f} on the other folds)")

    for name, predicted in (("as trained", logits.argmax(axis=1)), ("offsets, cross-fitted", adjusted)):
        one_hot = np.eye(len(CLASSES))[predicted]
        report = classification_report(labels_array, one_hot, CLASSES)
        sensitivity = ", ".join(f"{label} {value:.3f}" for label, value in report.sensitivity.items())
        print(f"{name}, pooled: balanced accuracy {report.balanced_accuracy:.3f}, sensitivity {sensitivity}")

        # Mean and standard deviation over folds, as the cross-validation report gives them.
        per_fold = []
        for fold in range(arguments.folds):
            in_fold = folds == fold
            sensitivities = [(predicted[in_fold][labels_array[in_fold] == k] == k).mean() for k in range(len(CLASSES))]
            per_fold.append([float(np.mean(sensitivities)), *sensitivities])
        means, deviations = np.mean(per_fold, axis=0), np.std(per_fold, axis=0, ddof=1)
        summary = ", ".join(f"{label} {means[k + 1]:.3f} ± {deviations[k + 1]:.3f}" for k, label in enumerate(CLASSES))
        print(f"{name}, over folds: balanced accuracy {means[0]:.3f} ± {deviations[0]:.3f}, sensitivity {summary}")


if __name__ == "__main__":
    main()
