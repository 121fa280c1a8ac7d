"""predictions.csv: one row per scored photo with its label, source, patient and class probabilities.

`eyescreen cv` writes one per fold. With paths relative to the data folder, the file is also a
manifest that `eyescreen evaluate --manifest` reads.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from eyescreen.dataset import Sample
from eyescreen.labels import CLASSES


def write_predictions(path: Path, samples: list[Sample], probabilities: np.ndarray, data_dir: Path) -> None:
    """Write one row per photo, with its path relative to data_dir where the photo lies under it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = data_dir.resolve()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "source", "patient_id", *CLASSES])
        for sample, row in zip(samples, probabilities):
            relative = sample.path.relative_to(root) if sample.path.is_relative_to(root) else sample.path
            writer.writerow([str(relative), sample.label_name, sample.source, sample.patient_id, *(f"{v:.6f}" for v in row)])


def read_predictions(path: Path) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray]:
    """Read predictions.csv into its rows, (N,) integer labels and (N, C) probabilities, in file order."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([CLASSES.index(row["label"]) for row in rows])
    probabilities = np.array([[float(row[name]) for name in CLASSES] for row in rows])
    return rows, labels, probabilities
