"""predictions.csv written by cross-validation and read back by its report and the experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyescreen.dataset import Sample, load_samples
from eyescreen.errors import DatasetError
from eyescreen.evaluation.predictions import read_fold_of_reports, read_predictions, write_predictions
from eyescreen.labels import CLASSES


def test_predictions_round_trip(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    samples = [
        Sample(path=data_dir / "normal" / "odir_7_left.jpg", label=0, source="odir", patient_id="odir:7"),
        Sample(path=data_dir / "glaucoma" / "extra_3.png", label=2, source="extra", patient_id="extra:3"),
    ]
    probabilities = np.array([[0.7, 0.1, 0.15, 0.05], [0.05, 0.05, 0.8, 0.1]])
    path = tmp_path / "fold-0" / "predictions.csv"

    write_predictions(path, samples, probabilities, data_dir)
    rows, labels, read_back = read_predictions(path)

    assert [row["path"] for row in rows] == ["normal/odir_7_left.jpg", "glaucoma/extra_3.png"]
    assert [row["patient_id"] for row in rows] == ["odir:7", "extra:3"]
    assert labels.tolist() == [0, 2]
    np.testing.assert_allclose(read_back, probabilities, atol=1e-6)


def test_predictions_file_is_a_manifest(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    photo = data_dir / "cataract" / "odir_9_right.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"")
    sample = Sample(path=photo.resolve(), label=CLASSES.index("cataract"), source="odir", patient_id="odir:9")

    write_predictions(data_dir / "predictions.csv", [sample], np.array([[0.1, 0.6, 0.2, 0.1]]), data_dir)
    loaded = load_samples(data_dir, manifest=data_dir / "predictions.csv")

    assert loaded == [sample]


def write_fold(report_dir: Path, names: list[str], probabilities: np.ndarray) -> None:
    data_dir = report_dir / "data"
    samples = [Sample(path=data_dir / "normal" / name, label=0, source="odir", patient_id=name) for name in names]
    write_predictions(report_dir / "fold-1" / "predictions.csv", samples, probabilities, data_dir)


def test_fold_of_reports_aligned_by_path(tmp_path: Path) -> None:
    first = np.array([[0.9, 0.05, 0.03, 0.02], [0.1, 0.2, 0.3, 0.4]])
    write_fold(tmp_path / "a", ["b.jpg", "a.jpg"], first)
    write_fold(tmp_path / "b", ["a.jpg", "b.jpg"], first[::-1])

    paths, labels, probabilities = read_fold_of_reports([tmp_path / "a", tmp_path / "b"], 1)

    assert paths == ["normal/a.jpg", "normal/b.jpg"]
    assert labels.tolist() == [0, 0]
    np.testing.assert_allclose(probabilities[0], first[::-1], atol=1e-6)
    np.testing.assert_allclose(probabilities[1], first[::-1], atol=1e-6)


def test_fold_of_reports_rejects_other_photos(tmp_path: Path) -> None:
    probabilities = np.array([[0.9, 0.05, 0.03, 0.02]])
    write_fold(tmp_path / "a", ["a.jpg"], probabilities)
    write_fold(tmp_path / "b", ["c.jpg"], probabilities)

    with pytest.raises(DatasetError, match=r"b/fold-1/predictions.csv scored other photos than .*a/fold-1/predictions.csv: run fold 1"):
        read_fold_of_reports([tmp_path / "a", tmp_path / "b"], 1)
    with pytest.raises(FileNotFoundError, match=r"fold-2/predictions.csv not found: run fold 2 of every report"):
        read_fold_of_reports([tmp_path / "a"], 2)
