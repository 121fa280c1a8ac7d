"""Training settings, saved next to every exported model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from eyescreen.errors import TrainingConfigError
from eyescreen.inference.session import TEST_TIME_PASSES

# Highest quality that the JPEG recompression augmentation draws.
JPEG_MAX_QUALITY = 95


def check_augmentation(*, sensor_noise: float, channel_gain: float, jpeg_quality: int) -> None:
    """Raise TrainingConfigError, naming the setting and its value, for an augmentation out of range."""
    if sensor_noise < 0:
        raise TrainingConfigError(f"sensor_noise must be a standard deviation of 0 or more grey levels, got {sensor_noise}")
    if not 0.0 <= channel_gain < 1.0:
        raise TrainingConfigError(f"channel_gain must be at least 0 and below 1, got {channel_gain}")
    if not 0 <= jpeg_quality <= JPEG_MAX_QUALITY:
        raise TrainingConfigError(f"jpeg_quality must be 0 (off) or a JPEG quality up to {JPEG_MAX_QUALITY}, got {jpeg_quality}")


@dataclass
class TrainConfig:
    """Every setting that decides a training run's result."""

    architecture: str = "efficientnet-lite0"
    image_size: int = 256
    # Stem and the first N MBConv blocks keep their ImageNet weights and batch-norm statistics.
    # On a CPU this cuts training time about threefold, because those layers run at the
    # highest resolutions.
    frozen_blocks: int = 3
    # The network blacks out everything outside this share of the field of view's radius, to
    # hide camera-specific rims (0 = no mask). See FundusNet.
    fov_mask_radius: float = 0.9
    # Subtract a blurred copy of the input inside the network (Graham's method). See FundusNet.
    local_contrast: bool = False
    # Scale each photo's channels to a fixed mean colour inside the network. See FundusNet.
    colour_balance: bool = False
    # Side in pixels of a second branch's input: a close-up of the optic disc (0 = no branch).
    # See DiscViewNet.
    disc_crop_size: int = 0
    # Side of that close-up as a share of the photo's side.
    disc_crop_fraction: float = 0.3
    # With the disc branch, the whole photo is down-scaled to this size (0 = image_size).
    whole_image_size: int = 0
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    class_balanced_loss: bool = True
    dropout: float = 0.2
    val_fraction: float = 0.15
    seed: int = 0
    threads: int = 2
    augment: bool = True
    # Wider colour, sharpness and compression changes during training; see training_augmentation.
    camera_jitter: bool = False
    # Share of training photos that take part of another photo's Fourier amplitude; see FundusDataset.
    amplitude_mix: float = 0.0
    # Largest standard deviation, in grey levels, of the noise added to half of the training photos.
    sensor_noise: float = 8.0
    # Largest change of each channel's gain on half of the training photos (0.15: x0.85 to x1.15).
    channel_gain: float = 0.15
    # Lowest JPEG quality of the recompression of half of the training photos (0: no recompression).
    jpeg_quality: int = 30
    # Average the logits of each photo and its horizontal mirror when predicting.
    test_time_flip: bool = True

    def __post_init__(self) -> None:
        check_augmentation(sensor_noise=self.sensor_noise, channel_gain=self.channel_gain, jpeg_quality=self.jpeg_quality)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {field.name for field in fields(cls)}
        settings = {key: value for key, value in values.items() if key in known}
        # Configs saved before the mask existed trained without it.
        settings.setdefault("fov_mask_radius", 0.0)
        settings.setdefault("test_time_flip", False)
        # Configs saved before sensor noise existed trained without it.
        settings.setdefault("sensor_noise", 0.0)
        # Configs saved before channel gain and JPEG recompression existed trained without them.
        settings.setdefault("channel_gain", 0.0)
        settings.setdefault("jpeg_quality", 0)
        return cls(**settings)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def prediction_passes(config: TrainConfig) -> list[str]:
    """Return the passes that a model card lists under "test_time_augmentation" for this config."""
    return list(TEST_TIME_PASSES) if config.test_time_flip else list(TEST_TIME_PASSES[:1])
