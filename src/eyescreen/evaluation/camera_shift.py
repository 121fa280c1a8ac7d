"""Camera-shift test: does the predicted class survive changes that another camera would make?

Each change is applied to the decoded photo before the usual preprocessing, and the share of
photos whose predicted class stays the same is reported per change.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from eyescreen.dataset import load_samples
from eyescreen.imaging import read_image
from eyescreen.inference.predict import predict_image_array
from eyescreen.inference.session import ModelSession

logger = logging.getLogger(__name__)

Change = Callable[[np.ndarray], np.ndarray]


def colour_cast(gains: tuple[float, float, float]) -> Change:
    """Multiply the R, G and B channels by gains, as a different white balance would."""

    def apply(rgb: np.ndarray) -> np.ndarray:
        return np.clip(rgb.astype(np.float32) * np.array(gains, dtype=np.float32), 0, 255).astype(np.uint8)

    return apply


def gamma(value: float) -> Change:
    """Apply output = 255 * (input / 255) ** value, as a different tone curve would."""

    def apply(rgb: np.ndarray) -> np.ndarray:
        return np.clip(255.0 * (rgb.astype(np.float32) / 255.0) ** value, 0, 255).astype(np.uint8)

    return apply


def blur(radius_fraction: float) -> Change:
    """Gaussian blur with a radius given as a share of the image width, as defocus would."""

    def apply(rgb: np.ndarray) -> np.ndarray:
        radius = max(0.5, radius_fraction * rgb.shape[1])
        return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius)))

    return apply


def vignetting(strength: float) -> Change:
    """Darken towards the corners by up to strength, as uneven illumination would."""

    def apply(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        radius = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2)) / np.sqrt(2)
        falloff = 1.0 - strength * radius**2
        return np.clip(rgb.astype(np.float32) * falloff[:, :, None], 0, 255).astype(np.uint8)

    return apply


def jpeg(quality: int) -> Change:
    """Re-encode as JPEG at the given quality, as a lossy upload path would."""

    def apply(rgb: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))

    return apply


def resolution(scale: float) -> Change:
    """Downscale by scale, as a lower-resolution camera would."""

    def apply(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        size = (max(16, round(width * scale)), max(16, round(height * scale)))
        return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))

    return apply


def sensor_noise(sd: float, *, seed: int = 0) -> Change:
    """Add Gaussian noise of sd grey levels inside the field of view, as a noisier sensor would.

    The black surround is left as it is, so that the field of view is still found. The same
    seed gives the same noise, so that a rerun changes the same pixels.
    """

    def apply(rgb: np.ndarray) -> np.ndarray:
        noise = np.random.default_rng(seed).normal(0.0, sd, size=rgb.shape).astype(np.float32)
        inside = rgb.max(axis=2, keepdims=True) > 10
        return np.clip(rgb.astype(np.float32) + noise * inside, 0, 255).astype(np.uint8)

    return apply


CHANGES: dict[str, Change] = {
    "colour cast warm (R x1.12, B x0.88)": colour_cast((1.12, 1.0, 0.88)),
    "colour cast cool (R x0.88, B x1.12)": colour_cast((0.88, 1.0, 1.12)),
    "gamma 0.8": gamma(0.8),
    "gamma 1.25": gamma(1.25),
    "blur (radius 0.4% of width)": blur(0.004),
    "vignetting 40%": vignetting(0.4),
    "JPEG quality 40": jpeg(40),
    "resolution x0.5": resolution(0.5),
    "sensor noise (sd 6 grey levels)": sensor_noise(6.0),
}


def camera_shift_test(model: ModelSession, data_dir: Path, *, manifest: Path | None = None) -> dict[str, Any]:
    """Return, per change, the share of photos whose predicted class is unchanged."""
    samples = load_samples(data_dir, manifest=manifest)
    unchanged_counts = {name: 0 for name in CHANGES}
    for sample in samples:
        rgb = read_image(sample.path.read_bytes())
        reference = predict_image_array(model, rgb).label
        for name, change in CHANGES.items():
            unchanged_counts[name] += predict_image_array(model, change(rgb)).label == reference
    return {
        "model": {"name": model.name, "version": model.version},
        "n": len(samples),
        "unchanged": {name: count / len(samples) for name, count in unchanged_counts.items()},
    }
