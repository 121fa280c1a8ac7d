"""Classify one photo: decode, preprocess and run the model, with the time each step took."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from eyescreen.imaging import DEFAULT_MAX_PIXELS, read_image
from eyescreen.inference.session import ModelSession
from eyescreen.preprocess import prepare_fundus, to_model_input


@dataclass(frozen=True)
class Prediction:
    """The model's prediction for one photo."""

    label: str
    # "ok", or "uncertain" when the top probability is below the model's referral threshold.
    status: str
    probabilities: dict[str, float]
    model_name: str
    model_version: str
    timings_ms: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape that the API and `eyescreen predict --json` share."""
        return {
            "label": self.label,
            "status": self.status,
            "probabilities": self.probabilities,
            "model": {"name": self.model_name, "version": self.model_version},
            "timings_ms": self.timings_ms,
        }


def predict_image_array(model: ModelSession, rgb: np.ndarray, *, decode_ms: float = 0.0) -> Prediction:
    """Classify an (H, W, 3) uint8 RGB photo."""
    started = time.perf_counter()
    inputs = to_model_input(prepare_fundus(rgb, model.image_size))
    preprocessed = time.perf_counter()
    probabilities = model.probabilities(inputs)[0]
    finished = time.perf_counter()

    preprocess_ms = (preprocessed - started) * 1000
    inference_ms = (finished - preprocessed) * 1000
    top_probability = float(np.max(probabilities))
    return Prediction(
        label=model.classes[int(np.argmax(probabilities))],
        status="uncertain" if top_probability < model.referral_threshold else "ok",
        probabilities={name: round(float(value), 6) for name, value in zip(model.classes, probabilities)},
        model_name=model.name,
        model_version=model.version,
        timings_ms={
            "decode": round(decode_ms, 2),
            "preprocess": round(preprocess_ms, 2),
            "inference": round(inference_ms, 2),
            "total": round(decode_ms + preprocess_ms + inference_ms, 2),
        },
    )


def predict_image_bytes(model: ModelSession, data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Prediction:
    """Decode image bytes and classify them; raises the ImageError subclasses of read_image."""
    started = time.perf_counter()
    rgb = read_image(data, max_pixels=max_pixels)
    decode_ms = (time.perf_counter() - started) * 1000
    return predict_image_array(model, rgb, decode_ms=decode_ms)
