"""Training data: a disk cache of preprocessed photos, augmentation and a torch Dataset."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from eyescreen.dataset import Sample
from eyescreen.imaging import read_image
from eyescreen.preprocess import INPUT_MEAN, INPUT_STD, prepare_fundus
from eyescreen.training.config import JPEG_MAX_QUALITY, check_augmentation

logger = logging.getLogger(__name__)

# Bump when preprocess.py changes what it outputs, so that old cache entries are not reused.
PREPROCESS_VERSION = 1
# Above about half of another photo's amplitude, a mixed photo shows ghost streaks and a
# blotchy texture that no camera makes.
AMPLITUDE_MIX_MAX_WEIGHT = 0.5


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eyescreen" / "preprocessed"


def load_preprocessed(samples: Sequence[Sample], size: int, cache_dir: Path | None = None) -> np.ndarray:
    """Return a (N, size, size, 3) uint8 array of the samples, cropped and resized.

    Each photo is decoded once and stored as .npy under cache_dir, keyed by its content hash,
    the size and PREPROCESS_VERSION, so that later epochs and runs skip decoding.
    """
    folder = (cache_dir or default_cache_dir()) / f"v{PREPROCESS_VERSION}-{size}"
    folder.mkdir(parents=True, exist_ok=True)

    images = np.empty((len(samples), size, size, 3), dtype=np.uint8)
    decoded = 0
    for index, sample in enumerate(samples):
        data = sample.path.read_bytes()
        entry = folder / f"{hashlib.sha1(data).hexdigest()}.npy"
        if entry.is_file():
            images[index] = np.load(entry)
            continue

        images[index] = prepare_fundus(read_image(data), size)
        temporary = entry.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(temporary, images[index])
        temporary.replace(entry)
        decoded += 1

    logger.info("preprocessed %d of %d images (the rest came from %s)", decoded, len(samples), folder)
    return images


def training_augmentation(
    *,
    seed: int | None = None,
    camera_jitter: bool = False,
    sensor_noise: float = 0.0,
    channel_gain: float = 0.0,
    jpeg_quality: int = 0,
) -> A.Compose:
    """Random changes a fundus photo can undergo between cameras, clinics and eyes.

    camera_jitter widens the colour, contrast, sharpness and compression changes, so that the
    look of one camera stops being a reliable sign of a class. sensor_noise above 0 adds
    Gaussian noise to half of the photos, with a standard deviation drawn up to that many grey
    levels, as noisier sensors would. channel_gain above 0 multiplies each of R, G and B of half
    of the photos by its own factor drawn from [1 - channel_gain, 1 + channel_gain], as another
    white balance or flash colour would. jpeg_quality above 0 recompresses half of the photos as
    JPEG at a quality drawn from jpeg_quality to 95, after the noise, as a camera's encoder would.
    """
    check_augmentation(sensor_noise=sensor_noise, channel_gain=channel_gain, jpeg_quality=jpeg_quality)

    # Colour gains, sensor noise and JPEG recompression come last in both variants, in that order.
    optional: list[A.BasicTransform] = []
    if channel_gain > 0:
        optional.append(A.MultiplicativeNoise(multiplier=(1.0 - channel_gain, 1.0 + channel_gain), per_channel=True, p=0.5))
    if sensor_noise > 0:
        optional.append(A.GaussNoise(std_range=(0.0, sensor_noise / 255.0), p=0.5))
    if jpeg_quality > 0:
        optional.append(A.ImageCompression(quality_range=(jpeg_quality, JPEG_MAX_QUALITY), p=0.5))

    if not camera_jitter:
        return A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.Affine(scale=(0.9, 1.1), translate_percent=(-0.04, 0.04), rotate=(-25, 25), border_mode=0, p=0.9),
                A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.8),
                A.RandomGamma(gamma_limit=(80, 125), p=0.5),
                A.HueSaturationValue(hue_shift_limit=6, sat_shift_limit=15, val_shift_limit=0, p=0.5),
                A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.ImageCompression(quality_range=(50, 95))], p=0.3),
                *optional,
            ],
            seed=seed,
        )
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.04, 0.04), rotate=(-180, 180), border_mode=0, p=0.9),
            A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.35, p=0.9),
            A.RandomGamma(gamma_limit=(65, 150), p=0.7),
            A.HueSaturationValue(hue_shift_limit=12, sat_shift_limit=40, val_shift_limit=0, p=0.8),
            A.RGBShift(r_shift_limit=20, g_shift_limit=12, b_shift_limit=12, p=0.5),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 7)),
                    A.Downscale(scale_range=(0.4, 0.8)),
                    A.Sharpen(alpha=(0.1, 0.4)),
                ],
                p=0.6,
            ),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.3),
            A.ImageCompression(quality_range=(30, 95), p=0.5),
            *optional,
        ],
        seed=seed,
    )


def mix_amplitude(image: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    """Move an (H, W, 3) uint8 photo's Fourier amplitude towards another photo's, keeping its phase.

    Per channel, the amplitude spectrum carries much of what a camera adds (colour balance,
    contrast, blur, noise and compression), and the phase carries where the edges are (vessels,
    the optic disc, lesions). weight 0 returns the photo; weight 1 gives it the other photo's amplitude.
    """
    if image.shape != other.shape:
        raise ValueError(f"cannot mix the amplitude of a {image.shape} photo with a {other.shape} photo: both must have the same shape")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"amplitude mix weight must be between 0 and 1, got {weight}")

    spectrum = np.fft.rfft2(image.astype(np.float32), axes=(0, 1))
    other_amplitude = np.abs(np.fft.rfft2(other.astype(np.float32), axes=(0, 1)))
    amplitude = (1.0 - weight) * np.abs(spectrum) + weight * other_amplitude

    mixed = np.fft.irfft2(amplitude * np.exp(1j * np.angle(spectrum)), s=image.shape[:2], axes=(0, 1))
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


class FundusDataset(Dataset[tuple[torch.Tensor, int]]):
    """Preprocessed uint8 photos with labels, augmented on access when a transform is given.

    With amplitude_mix above 0, that share of photos first takes part of the Fourier amplitude
    of another photo from the set, drawn at random whatever its class, with a weight drawn
    uniformly up to AMPLITUDE_MIX_MAX_WEIGHT (see mix_amplitude). The draws come from seed, so that an epoch can
    be repeated.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[int],
        transform: A.Compose | None = None,
        *,
        amplitude_mix: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= amplitude_mix <= 1.0:
            raise ValueError(f"amplitude_mix must be a share between 0 and 1, got {amplitude_mix}")
        self.images = images
        self.labels = list(labels)
        self.transform = transform
        self.amplitude_mix = amplitude_mix
        self.random = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.amplitude_mix > 0 and self.random.random() < self.amplitude_mix:
            other = self.images[self.random.integers(len(self.images))]
            image = mix_amplitude(image, other, AMPLITUDE_MIX_MAX_WEIGHT * float(self.random.random()))
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        tensor = (tensor / 255.0 - INPUT_MEAN) / INPUT_STD
        return tensor, self.labels[index]
