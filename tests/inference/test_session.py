"""The bundled ONNX model and the prediction path the server and CLI share."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from eyescreen.errors import ModelLoadError
from eyescreen.imaging import read_image
from eyescreen.inference.predict import predict_image_array, predict_image_bytes
from eyescreen.inference.session import ModelSession, bundled_model_dir, softmax
from eyescreen.labels import CLASSES
from eyescreen.preprocess import prepare_fundus, to_model_input


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

    expected = f"model card '{tmp_path / 'model_card.json'}' not found, so '{tmp_path}' is not a model folder"
    with pytest.raises(ModelLoadError, match=re.escape(expected)):
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


def model_with_card(tmp_path: Path, **fields: object) -> ModelSession:
    """Copy the bundled model into tmp_path with its card changed by fields."""
    card = json.loads((bundled_model_dir() / "model_card.json").read_text())
    card.update(fields)
    shutil.copyfile(bundled_model_dir() / "model.onnx", tmp_path / "model.onnx")
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return ModelSession.from_dir(tmp_path)


def test_temperature_from_card_scales_logits(tmp_path: Path, fundus4_dir: Path) -> None:
    photo = (fundus4_dir / "normal" / "odir_1034_left.jpg").read_bytes()
    (tmp_path / "plain").mkdir()
    (tmp_path / "sharp").mkdir()
    plain = model_with_card(tmp_path / "plain", calibration={"temperature": 1.0})
    sharp = model_with_card(tmp_path / "sharp", calibration={"temperature": 0.5})

    plain_prediction = predict_image_bytes(plain, photo)
    sharp_prediction = predict_image_bytes(sharp, photo)

    assert sharp_prediction.label == plain_prediction.label
    assert max(sharp_prediction.probabilities.values()) > max(plain_prediction.probabilities.values())
    expected = softmax(np.log(np.array([list(plain_prediction.probabilities.values())])) / 0.5)[0]
    np.testing.assert_allclose(list(sharp_prediction.probabilities.values()), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("threshold", "status"),
    [pytest.param(0.0, "ok", id="never-refer"), pytest.param(1.01, "uncertain", id="always-refer")],
)
def test_referral_threshold_sets_status(tmp_path: Path, fundus4_dir: Path, threshold: float, status: str) -> None:
    model = model_with_card(tmp_path, referral={"threshold": threshold})

    prediction = predict_image_bytes(model, (fundus4_dir / "normal" / "odir_1034_left.jpg").read_bytes())

    assert prediction.status == status
    assert prediction.to_dict()["status"] == status


def test_card_with_zero_temperature_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="temperature 0.0"):
        model_with_card(tmp_path, calibration={"temperature": 0.0})


def test_flip_pass_averages_logits_of_photo_and_mirror(tmp_path: Path, fundus4_dir: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    single = model_with_card(tmp_path / "one", test_time_augmentation=["original"])
    both = model_with_card(tmp_path / "two", test_time_augmentation=["original", "horizontal_flip"])
    photo = read_image((fundus4_dir / "glaucoma" / "cataractdataset_Glaucoma_001.png").read_bytes())
    inputs = to_model_input(prepare_fundus(photo, single.image_size))

    logits = single.logits(np.concatenate([inputs, inputs[..., ::-1]]))
    averaged = both.logits(inputs)

    np.testing.assert_allclose(averaged[0], (logits[0] + logits[1]) / 2, atol=1e-4)
    assert not np.allclose(logits[0], logits[1], atol=1e-4)


def test_card_with_unknown_test_time_pass_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="vertical_flip"):
        model_with_card(tmp_path, test_time_augmentation=["original", "vertical_flip"])


def test_model_without_card_logs_defaults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="eyescreen.inference.session")
    path = bundled_model_dir() / "model.onnx"

    model = ModelSession.from_file(path, threads=1)

    assert (model.name, model.version) == ("eyescreen", "unversioned")
    assert f"loaded model eyescreen version unversioned from {path}" in caplog.text
