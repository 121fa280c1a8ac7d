"""predictions.csv: one row per scored photo with its label, source, patient and class probabilities.

`eyescreen cv` writes one per fold. With paths relative to the data folder, the file is also a
manifest that `eyescreen evaluate --manifest` reads.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eyescreen.dataset import Sample
from eyescreen.errors import DatasetError
from eyescreen.labels import CLASSES


def write_predictions(path: Path, samples: list[Sample], probabilities: np.ndarray, data_dir: Path) -> None:
    """Write one row per photo, with its path relative to data_dir where the photo lies under it."""
    root = data_dir.resolve()
    rows = [
        {
            "path": str(sample.path.relative_to(root) if sample.path.is_relative_to(root) else sample.path),
            "label": sample.label_name,
            "source": sample.source,
            "patient_id": sample.patient_id,
        }
        for sample in samples
    ]
    write_prediction_rows(path, rows, probabilities)


def write_prediction_rows(path: Path, rows: Sequence[dict[str, str]], probabilities: np.ndarray) -> None:
    """Write rows that hold path, label, source and patient_id, each with its class probabilities."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "source", "patient_id", *CLASSES])
        for row, values in zip(rows, probabilities):
            writer.writerow([row["path"], row["label"], row["source"], row["patient_id"], *(f"{v:.6f}" for v in values)])


def read_predictions(path: Path) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray]:
    """Read predictions.csv into its rows, (N,) integer labels and (N, C) probabilities, in file order."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([CLASSES.index(row["label"]) for row in rows])
    probabilities = np.array([[float(row[name]) for name in CLASSES] for row in rows])
    return rows, labels, probabilities


def read_aligned_predictions(prediction_paths: Sequence[Path], *, hint: str) -> tuple[list[dict[str, str]], np.ndarray, list[np.ndarray]]:
    """Read several predictions.csv files of the same photos, sorted by photo path.

    Returns the first file's rows, their (N,) labels and one (N, C) probability array per file.
    Raises FileNotFoundError for a missing file, and DatasetError, ending with hint, for a file
    that scored other photos than the first.
    """
    rows: list[dict[str, str]] = []
    labels = np.empty(0, dtype=np.int64)
    probabilities: list[np.ndarray] = []
    for predictions_path in prediction_paths:
        if not predictions_path.is_file():
            raise FileNotFoundError(f"{predictions_path} not found: {hint}")
        file_rows, file_labels, file_probabilities = read_predictions(predictions_path)
        order = np.argsort([row["path"] for row in file_rows], kind="stable")
        sorted_rows = [file_rows[i] for i in order]
        if probabilities and [row["path"] for row in sorted_rows] != [row["path"] for row in rows]:
            raise DatasetError(f"{predictions_path} scored other photos than {prediction_paths[0]}: {hint}")
        if not probabilities:
            rows, labels = sorted_rows, file_labels[order]
        probabilities.append(file_probabilities[order])
    return rows, labels, probabilities


def read_fold_of_reports(report_dirs: Sequence[Path], fold: int) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Read fold-N/predictions.csv of several `eyescreen cv` reports, sorted by photo path.

    Returns the photo paths, their (N,) labels and one (N, C) probability array per report.
    Raises FileNotFoundError for a report without that fold, and DatasetError for a report whose
    fold scored other photos, because only reports with the same --folds and --seed compare.
    """
    rows, labels, probabilities = read_aligned_predictions(
        [report_dir / f"fold-{fold}" / "predictions.csv" for report_dir in report_dirs],
        hint=f"run fold {fold} of every report, and compare only reports made with the same --folds and --seed",
    )
    return [row["path"] for row in rows], labels, probabilities
