"""predictions.csv written by cross-validation and read back by its report and the experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eyescreen.dataset import Sample, load_samples
from eyescreen.evaluation.predictions import read_predictions, write_predictions
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
