"""The bundled ONNX model and the prediction path the server and CLI share."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescreen.errors import ModelLoadError
from eyescreen.inference.predict import predict_image_array, predict_image_bytes
from eyescreen.inference.session import ModelSession, bundled_model_dir, softmax
from eyescreen.labels import CLASSES


@pytest.fixture(scope="module")
def model() -> ModelSession:
    return ModelSession.from_dir(None)


def test_bundled_model_loads_with_card(model: ModelSession) -> None:
    assert model.classes == CLASSES
    assert model.image_size == model.card["input_size"]
    assert model.name and model.version


def test_softmax_rows_sum_to_one() -> None:
    probabilities = softmax(np.array([[1000.0, 0.0, -1000.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))

    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(probabilities[1], 0.25)


def test_predict_image_bytes_real_photo(model: ModelSession, fundus4_dir: Path) -> None:
    prediction = predict_image_bytes(model, (fundus4_dir / "normal" / "odir_1034_left.jpg").read_bytes())

    assert prediction.label in CLASSES
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.__getitem__)
    assert prediction.timings_ms["total"] >= prediction.timings_ms["inference"] > 0


def test_predict_same_photo_any_size_close(model: ModelSession) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    retina = skimage_data.retina()
    small = retina[::4, ::4]

    large_prediction = predict_image_array(model, retina)
    small_prediction = predict_image_array(model, small)

    for name in CLASSES:
        assert abs(large_prediction.probabilities[name] - small_prediction.probabilities[name]) < 0.15


def test_model_dir_without_card_raises(tmp_path: Path) -> None:
    shutil.copyfile(bundled_model_dir() / "model.onnx", tmp_path / "model.onnx")

    with pytest.raises(ModelLoadError, match="model_card.json"):
        ModelSession.from_dir(tmp_path)


def test_model_with_wrong_classes_raises(tmp_path: Path) -> None:
    shutil.copyfile(bundled_model_dir() / "model.onnx", tmp_path / "model.onnx")
    (tmp_path / "model_card.json").write_text(json.dumps({"classes": ["cat", "dog", "bird", "fish"]}))

    with pytest.raises(ModelLoadError, match="cat"):
        ModelSession.from_dir(tmp_path)


def test_corrupt_onnx_raises(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "model_card.json").write_text("{}")

    with pytest.raises(ModelLoadError, match="cannot load"):
        ModelSession.from_dir(tmp_path)
