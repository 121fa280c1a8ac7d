"""Load an ONNX model once and run batches through ONNX Runtime; never imports torch."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from eyescreen.errors import ModelLoadError
from eyescreen.labels import CLASSES

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
CARD_FILE = "model_card.json"
BUNDLED_MODEL_PACKAGE = "eyescreen.models"
BUNDLED_MODEL_NAME = "fundus4"


def bundled_model_dir() -> Path:
    """Return the folder of the model shipped inside the package."""
    return Path(str(resources.files(BUNDLED_MODEL_PACKAGE).joinpath(BUNDLED_MODEL_NAME)))


# Test-time augmentation passes a model card may list; the logits of all passes are averaged.
TEST_TIME_PASSES = ("original", "horizontal_flip")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Convert (N, C) logits to probabilities along the last axis."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@dataclass
class ModelSession:
    """An ONNX Runtime session with the model card facts needed to feed it."""

    session: ort.InferenceSession
    image_size: int
    name: str = "eyescreen"
    version: str = "unversioned"
    classes: tuple[str, ...] = CLASSES
    card: dict[str, Any] = field(default_factory=dict)
    # Logits are divided by this before softmax; fitted on out-of-fold predictions (1.0 = none).
    temperature: float = 1.0
    # A top-class probability below this makes the prediction "uncertain" (0.0 = never).
    referral_threshold: float = 0.0
    # Each photo runs once per pass; see TEST_TIME_PASSES.
    passes: tuple[str, ...] = ("original",)

    @classmethod
    def from_dir(cls, model_dir: Path | None = None, *, threads: int = 2) -> ModelSession:
        """Load model.onnx and model_card.json from model_dir, or the bundled model when None."""
        folder = model_dir or bundled_model_dir()
        card_path = folder / CARD_FILE
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(
                f"model card {str(card_path)!r} not found, so {str(folder)!r} is not a model folder. "
                "Point --model or EYESCREEN_MODEL_DIR at a folder that contains model.onnx and model_card.json"
            ) from None
        except json.JSONDecodeError as error:
            raise ModelLoadError(f"model card {str(card_path)!r} is not valid JSON: {error}") from error
        return cls.from_file(folder / MODEL_FILE, threads=threads, card=card)

    @classmethod
    def from_file(cls, path: Path, *, threads: int = 2, card: dict[str, Any] | None = None) -> ModelSession:
        """Load an ONNX file; without a card, the input size is read from the graph."""
        if not path.is_file():
            raise ModelLoadError(f"ONNX model {str(path)!r} not found")

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime raises several private exception types.
            raise ModelLoadError(f"ONNX Runtime cannot load {str(path)!r}: {error}") from error

        card = card or {}
        input_shape = session.get_inputs()[0].shape
        image_size = int(card.get("input_size") or input_shape[-1])
        classes = tuple(card.get("classes") or CLASSES)
        if classes != CLASSES:
            raise ModelLoadError(f"model {str(path)!r} predicts {classes}, but eyescreen expects {CLASSES}")

        temperature = float(card.get("calibration", {}).get("temperature", 1.0))
        if not temperature > 0:
            raise ModelLoadError(f"model card of {str(path)!r} has temperature {temperature}; it must be greater than zero")

        passes = tuple(card.get("test_time_augmentation") or ("original",))
        unknown = sorted(set(passes) - set(TEST_TIME_PASSES))
        if unknown:
            raise ModelLoadError(f"model card of {str(path)!r} lists test-time passes {unknown}; known passes are {list(TEST_TIME_PASSES)}")

        name = str(card.get("name", "eyescreen"))
        version = str(card.get("version", "unversioned"))
        logger.info("loaded model %s version %s from %s", name, version, path)
        return cls(
            session=session,
            image_size=image_size,
            name=name,
            version=version,
            classes=classes,
            card=card,
            temperature=temperature,
            referral_threshold=float(card.get("referral", {}).get("threshold", 0.0)),
            passes=passes,
        )

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """Run a (N, 3, S, S) float32 batch once per test-time pass and return the mean (N, C) logits."""
        inputs = inputs.astype(np.float32, copy=False)
        input_name = self.session.get_inputs()[0].name

        # One run per pass, not one batch of all passes. In bench/inference_latency.py a batch
        # of 2 was not faster (7.5 ms against 6.0 ms for two runs), and under load it raised
        # the server's peak memory from at most 184 MiB to about 220 MiB.
        total = np.zeros((len(inputs), len(self.classes)), dtype=np.float64)
        for name in self.passes:
            variant = np.ascontiguousarray(inputs[..., ::-1]) if name == "horizontal_flip" else inputs
            (outputs,) = self.session.run(None, {input_name: variant})
            total += np.asarray(outputs, dtype=np.float64)
        return total / len(self.passes)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Run a (N, 3, S, S) float32 batch and return (N, C) float64 calibrated probabilities."""
        return softmax(self.logits(inputs) / self.temperature)
