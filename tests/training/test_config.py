"""TrainConfig checks its augmentation settings when it is made, so every caller gets the check."""

from __future__ import annotations

import pytest

from eyescreen.errors import EyescreenError, TrainingConfigError
from eyescreen.training.config import TrainConfig


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        pytest.param("sensor_noise", -1.0, "sensor_noise must be a standard deviation of 0 or more grey levels, got -1.0", id="negative-noise"),
        pytest.param("channel_gain", 1.0, "channel_gain must be at least 0 and below 1, got 1.0", id="gain-one"),
        pytest.param("jpeg_quality", 96, r"jpeg_quality must be 0 \(off\) or a JPEG quality up to 95, got 96", id="quality-96"),
        pytest.param("jpeg_quality", -5, r"jpeg_quality must be 0 \(off\) or a JPEG quality up to 95, got -5", id="quality-negative"),
    ],
)
def test_train_config_rejects_augmentation_out_of_range(setting: str, value: float, message: str) -> None:
    with pytest.raises(TrainingConfigError, match=message) as raised:
        TrainConfig(**{setting: value})  # type: ignore[arg-type]

    assert isinstance(raised.value, EyescreenError)
    assert isinstance(raised.value, ValueError)


def test_train_config_checks_a_loaded_config() -> None:
    saved = TrainConfig().to_dict()

    assert TrainConfig.from_dict(saved) == TrainConfig()
    with pytest.raises(TrainingConfigError, match="channel_gain must be at least 0 and below 1, got 1.5"):
        TrainConfig.from_dict({**saved, "channel_gain": 1.5})


@pytest.mark.parametrize(
    ("setting", "value"),
    [("sensor_noise", 0.0), ("channel_gain", 0.0), ("channel_gain", 0.99), ("jpeg_quality", 0), ("jpeg_quality", 95)],
)
def test_train_config_accepts_the_limits(setting: str, value: float) -> None:
    assert getattr(TrainConfig(**{setting: value}), setting) == value  # type: ignore[arg-type]
