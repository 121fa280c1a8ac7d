"""Do different recipes miss the same photos? Per class, how many runs misclassify each photo.

Usage: .venv/bin/python experiments/shared_errors.py REPORT_DIR [REPORT_DIR ...] [--fold 1]

Each REPORT_DIR is an `eyescreen cv` report with the same plan (folds and seed), so that its
fold-N/predictions.csv scores the same photos. Photos that every run misclassifies are listed
with the classes the runs chose, so that they can be looked at by eye.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from eyescreen.evaluation.predictions import read_fold_of_reports
from eyescreen.labels import CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dirs", type=Path, nargs="+")
    parser.add_argument("--fold", type=int, default=1)
    arguments = parser.parse_args()

    try:
        paths, labels, probabilities = read_fold_of_reports(arguments.report_dirs, arguments.fold)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None

    # Photo path -> true class, and -> the wrong classes that runs chose for it.
    true_class = {path: CLASSES[label] for path, label in zip(paths, labels)}
    wrong_answers: dict[str, list[str]] = defaultdict(list)
    for report_probabilities in probabilities:
        for path, label, predicted in zip(paths, labels, np.argmax(report_probabilities, axis=1)):
            if predicted != label:
                wrong_answers[path].append(CLASSES[predicted])

    runs = len(arguments.report_dirs)
    print(f"class | photos | missed by k of {runs} runs, for k = 1 .. {runs}")
    for name in CLASSES:
        photos = [path for path, label in true_class.items() if label == name]
        misses = Counter(len(wrong_answers[path]) for path in photos if wrong_answers[path])
        counts = " / ".join(str(misses.get(k, 0)) for k in range(1, runs + 1))
        print(f"{name} | {len(photos)} | {counts}")

    print(f"\nmissed by all {runs} runs:")
    for path in sorted(path for path, answers in wrong_answers.items() if len(answers) == runs):
        chosen = ", ".join(f"{label} {count}" for label, count in Counter(wrong_answers[path]).most_common())
        print(f"{path} ({true_class[path]}): {chosen}")


if __name__ == "__main__":
    main()
