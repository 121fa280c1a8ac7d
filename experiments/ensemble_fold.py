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
from eyescreen.evaluation.predictions import read_fold_of_reports
from eyescreen.labels import CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dirs", type=Path, nargs="+")
    parser.add_argument("--fold", type=int, default=1)
    arguments = parser.parse_args()

    try:
        _, labels, probabilities = read_fold_of_reports(arguments.report_dirs, arguments.fold)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    members = {
        report_dir.name: np.log(np.maximum(report_probabilities, 1e-9))
        for report_dir, report_probabilities in zip(arguments.report_dirs, probabilities)
    }

    print("members | balanced accuracy | macro AUC | sensitivity " + " / ".join(CLASSES))
    for size in range(1, len(members) + 1):
        for names in itertools.combinations(members, size):
            averaged = np.mean([members[name] for name in names], axis=0)
            ensemble = np.exp(averaged - averaged.max(axis=1, keepdims=True))
            ensemble /= ensemble.sum(axis=1, keepdims=True)

            report = classification_report(labels, ensemble, CLASSES)
            sensitivity = " / ".join(f"{report.sensitivity[name]:.3f}" for name in CLASSES)
            print(f"{' + '.join(names)} | {report.balanced_accuracy:.3f} | {report.macro_auc:.3f} | {sensitivity}")


if __name__ == "__main__":
    main()
