"""Would an ensemble of recipes score better? Every subset of runs on one shared test fold.

Usage: .venv/bin/python experiments/ensemble_fold.py REPORT_DIR [REPORT_DIR ...] [--fold 1]

Each REPORT_DIR is an `eyescreen cv` report with the same plan (folds and seed), so its fold
models trained on the same patients and its fold-N/predictions.csv scores the same photos. A
subset's ensemble averages the members' log-probabilities, which is what averaging their
logits before the softmax would give.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from eyescreen.evaluation.metrics import classification_report
from eyescreen.evaluation.predictions import read_predictions
from eyescreen.labels import CLASSES


def read_sorted_predictions(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read photo paths, integer labels and log-probabilities from predictions.csv, sorted by path."""
    rows, labels, probabilities = read_predictions(path)
    order = np.argsort([row["path"] for row in rows], kind="stable")
    log_probabilities = np.log(np.maximum(probabilities[order], 1e-9))
    return [rows[i]["path"] for i in order], labels[order], log_probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dirs", type=Path, nargs="+")
    parser.add_argument("--fold", type=int, default=1)
    arguments = parser.parse_args()

    members = {}
    reference: tuple[list[str], np.ndarray] | None = None
    for report_dir in arguments.report_dirs:
        predictions_path = report_dir / f"fold-{arguments.fold}" / "predictions.csv"
        if not predictions_path.is_file():
            raise SystemExit(f"{predictions_path} not found: run fold {arguments.fold} of that report first")
        paths, labels, log_probabilities = read_sorted_predictions(predictions_path)
        if reference is not None and paths != reference[0]:
            raise SystemExit(
                f"{report_dir} scored other photos on fold {arguments.fold} than {arguments.report_dirs[0]}: "
                "compare only reports made with the same --folds and --seed"
            )
        reference = (paths, labels)
        members[report_dir.name] = log_probabilities
    assert reference is not None

    print("members | balanced accuracy | macro AUC | sensitivity " + " / ".join(CLASSES))
    for size in range(1, len(members) + 1):
        for names in itertools.combinations(members, size):
            averaged = np.mean([members[name] for name in names], axis=0)
            probabilities = np.exp(averaged - averaged.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)

            report = classification_report(reference[1], probabilities, CLASSES)
            sensitivity = " / ".join(f"{report.sensitivity[name]:.3f}" for name in CLASSES)
            print(f"{' + '.join(names)} | {report.balanced_accuracy:.3f} | {report.macro_auc:.3f} | {sensitivity}")


if __name__ == "__main__":
    main()
