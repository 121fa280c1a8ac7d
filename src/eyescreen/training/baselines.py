"""Baselines scored on the same folds as the CNN, to show what simpler models already reach.

- image statistics: a gradient-boosted model on width, height, file size, colour statistics and
  black-border share. It uses no anatomy, so its score is what a camera or dataset
  shortcut alone could explain.
- linear probe: logistic regression on frozen ImageNet EfficientNet-Lite0 features (global
  average pool), showing what fine-tuning adds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from eyescreen.dataset import Sample
from eyescreen.evaluation.metrics import classification_report, mean_and_sd
from eyescreen.imaging import read_image
from eyescreen.labels import CLASSES
from eyescreen.preprocess import to_model_input
from eyescreen.training.config import TrainConfig
from eyescreen.training.model import build_model

logger = logging.getLogger(__name__)

# Brightest-channel level below which a pixel counts as black border.
BORDER_LEVEL = 10
PROBE_IMAGE_SIZE = 320


def image_statistics(samples: Sequence[Sample]) -> np.ndarray:
    """Return (N, 12) features per photo: width, height, bytes, RGB mean and sd, border share, brightness."""
    rows = []
    for sample in samples:
        data = sample.path.read_bytes()
        rgb = read_image(data).astype(np.float32)
        height, width = rgb.shape[:2]
        brightness = rgb.max(axis=2)
        inside = brightness > BORDER_LEVEL
        pixels = rgb[inside] if inside.any() else rgb.reshape(-1, 3)
        rows.append(
            [width, height, len(data), *pixels.mean(axis=0), *pixels.std(axis=0), 1.0 - inside.mean(), float(brightness.mean())]
        )
    return np.asarray(rows, dtype=np.float64)


def frozen_features(images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Return (N, 1280) globally pooled ImageNet EfficientNet-Lite0 features of (N, S, S, 3) uint8 images."""
    config = TrainConfig(image_size=images.shape[1], frozen_blocks=0)
    model = build_model(config).eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(to_model_input(images[start : start + batch_size]))
            features = model.extract_features(batch.contiguous(memory_format=torch.channels_last))
            outputs.append(features.mean(dim=(2, 3)).numpy())
    return np.concatenate(outputs)


def score_on_folds(features: np.ndarray, labels: np.ndarray, assignment: np.ndarray, make_model: Any) -> dict[str, Any]:
    """Fit make_model() on all but one fold and score the held-out fold, for every fold."""
    folds = sorted(set(assignment.tolist()))
    probabilities = np.zeros((len(labels), len(CLASSES)))
    per_fold = []
    for fold in folds:
        train_rows = assignment != fold
        model = make_model()
        model.fit(features[train_rows], labels[train_rows])
        fold_probabilities = np.zeros((int((~train_rows).sum()), len(CLASSES)))
        fold_probabilities[:, model.classes_] = model.predict_proba(features[~train_rows])
        probabilities[~train_rows] = fold_probabilities
        report = classification_report(labels[~train_rows], fold_probabilities, CLASSES)
        per_fold.append({"fold": fold, "balanced_accuracy": report.balanced_accuracy, "macro_auc": report.macro_auc, "accuracy": report.accuracy})

    pooled = classification_report(labels, probabilities, CLASSES).to_dict()
    summary: dict[str, Any] = {"folds": per_fold, "pooled": pooled}
    for key in ("accuracy", "balanced_accuracy", "macro_auc"):
        summary[key] = mean_and_sd([fold[key] for fold in per_fold])
    return summary


def run_baselines(samples: Sequence[Sample], assignment: np.ndarray, probe_images: np.ndarray, *, seed: int) -> dict[str, Any]:
    """Score both baselines on the given fold assignment."""
    labels = np.array([sample.label for sample in samples])

    logger.info("baseline: image statistics of %d photos", len(samples))
    statistics = image_statistics(samples)
    results = {
        "image_statistics": score_on_folds(
            statistics,
            labels,
            assignment,
            lambda: HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, class_weight="balanced", random_state=seed),
        )
    }

    logger.info("baseline: frozen EfficientNet-Lite0 features at %d px", probe_images.shape[1])
    features = frozen_features(probe_images)
    results["linear_probe"] = score_on_folds(
        features,
        labels,
        assignment,
        lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced")),
    )
    return results
