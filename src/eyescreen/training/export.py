"""Export a trained model to ONNX and check that ONNX Runtime reproduces PyTorch's output."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from eyescreen.inference.session import ModelSession
from eyescreen.preprocess import to_model_input

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# Largest tolerated difference between PyTorch and ONNX Runtime softmax probabilities.
PROBABILITY_TOLERANCE = 1e-4


class ExportMismatchError(RuntimeError):
    """ONNX Runtime's output differs from PyTorch's beyond the tolerance."""


def export_onnx(model: torch.nn.Module, path: Path, *, image_size: int) -> None:
    """Write the model as an ONNX graph with a dynamic batch axis: (N, 3, S, S) -> (N, C) logits."""
    model = model.eval().to(memory_format=torch.contiguous_format)
    example = torch.zeros(1, 3, image_size, image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # torch 2.13 warns that the TorchScript-based exporter is deprecated. It is used because
        # the dynamo exporter needs onnxscript, one more dependency for the same graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    model.to(memory_format=torch.channels_last)
    logger.info("exported ONNX model to %s (%.1f MB)", path, path.stat().st_size / 1e6)


def check_onnx_matches(model: torch.nn.Module, path: Path, images: np.ndarray) -> float:
    """Compare PyTorch and ONNX Runtime probabilities on (N, S, S, 3) uint8 images.

    Returns the largest absolute difference, and raises ExportMismatchError above
    PROBABILITY_TOLERANCE.
    """
    inputs = to_model_input(images)
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(inputs)), dim=1).numpy()

    session = ModelSession.from_file(path, threads=2)
    actual = session.probabilities(inputs)
    difference = float(np.abs(actual - expected).max())
    if difference > PROBABILITY_TOLERANCE:
        raise ExportMismatchError(
            f"ONNX Runtime probabilities differ from PyTorch's by {difference:.2e} (tolerance {PROBABILITY_TOLERANCE:.0e})"
        )
    logger.info("ONNX Runtime matches PyTorch on %d images (max difference %.2e)", len(images), difference)
    return difference
