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

from eyescreen.evaluation.predictions import read_predictions
from eyescreen.labels import CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dirs", type=Path, nargs="+")
    parser.add_argument("--fold", type=int, default=1)
    arguments = parser.parse_args()

    # Photo path -> true class, and -> the wrong classes that runs chose for it.
    true_class: dict[str, str] = {}
    wrong_answers: dict[str, list[str]] = defaultdict(list)
    for report_dir in arguments.report_dirs:
        predictions_path = report_dir / f"fold-{arguments.fold}" / "predictions.csv"
        if not predictions_path.is_file():
            raise SystemExit(f"{predictions_path} not found: run fold {arguments.fold} of that report first")
        rows, labels, probabilities = read_predictions(predictions_path)
        paths = {row["path"] for row in rows}
        if true_class and paths != set(true_class):
            raise SystemExit(
                f"{report_dir} scored other photos on fold {arguments.fold} than {arguments.report_dirs[0]}: "
                "compare only reports made with the same --folds and --seed"
            )
        for row, label, predicted in zip(rows, labels, np.argmax(probabilities, axis=1)):
            true_class[row["path"]] = CLASSES[label]
            if predicted != label:
                wrong_answers[row["path"]].append(CLASSES[predicted])

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
