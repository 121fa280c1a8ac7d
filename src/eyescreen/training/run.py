"""`eyescreen train`: fit on a data folder, export ONNX, write the model card and plots."""

from __future__ import annotations

import json
import logging
import platform
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from eyescreen.dataset import Sample, load_samples
from eyescreen.evaluation.card import INTENDED_USE, LIMITATIONS, NOT_A_MEDICAL_DEVICE, add_cross_validation, write_model_card
from eyescreen.evaluation.metrics import classification_report
from eyescreen.evaluation.plots import plot_confusion_matrix, plot_roc_curves
from eyescreen.inference.session import CARD_FILE, MODEL_FILE, ModelSession
from eyescreen.labels import CLASSES
from eyescreen.preprocess import to_model_input
from eyescreen.training.config import TrainConfig, prediction_passes
from eyescreen.training.data import load_preprocessed
from eyescreen.training.export import check_onnx_matches, export_onnx
from eyescreen.training.loop import train
from eyescreen.training.splits import validation_split

logger = logging.getLogger(__name__)

# How many images the ONNX-versus-PyTorch check runs on.
EXPORT_CHECK_IMAGES = 16


def describe_data(samples: list[Sample], data_dir: Path) -> dict[str, Any]:
    """Summarise a training set for the model card: counts per class and per source."""
    return {
        # The folder name only: an absolute path would leak the training machine's layout.
        "path": data_dir.resolve().name,
        "n": len(samples),
        "classes": {name: sum(1 for sample in samples if sample.label == index) for index, name in enumerate(CLASSES)},
        "sources": dict(sorted(Counter(sample.source for sample in samples).items())),
        "patients": len({sample.patient_id for sample in samples}),
    }


def run_training(
    data_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    *,
    cache_dir: Path | None = None,
    resume: bool = False,
    cv_report: Path | None = None,
    name: str = "eyescreen-fundus4",
    version: str | None = None,
) -> dict[str, Any]:
    """Train, export and document one model in out_dir; returns the model card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = load_samples(data_dir)
    config.save(out_dir / "train_config.json")

    # 1. Split by patient, unless every image is for training.
    if config.val_fraction > 0:
        train_index, val_index = validation_split(samples, config.val_fraction, seed=config.seed)
    else:
        train_index, val_index = np.arange(len(samples)), np.array([], dtype=np.int64)
    (out_dir / "split.json").write_text(
        json.dumps({"validation": [str(samples[i].path) for i in val_index]}, indent=1) + "\n", encoding="utf-8"
    )

    # 2. Preprocess (or load from the cache) and train.
    images = load_preprocessed(samples, config.image_size, cache_dir)
    labels = np.array([sample.label for sample in samples])
    has_validation = len(val_index) > 0
    result = train(
        config,
        images[train_index],
        labels[train_index],
        val_images=images[val_index] if has_validation else None,
        val_labels=labels[val_index] if has_validation else None,
        checkpoint_path=out_dir / "checkpoint.pt",
        resume=resume,
    )

    # 3. Export to ONNX and check it against PyTorch on real photos.
    model_path = out_dir / MODEL_FILE
    export_onnx(result.model, model_path, image_size=config.image_size)
    check_rows = val_index if has_validation else train_index
    max_difference = check_onnx_matches(result.model, model_path, images[check_rows[:EXPORT_CHECK_IMAGES]])

    # 4. Model card, with validation metrics from the ONNX model and cross-validation if given.
    card: dict[str, Any] = {
        "name": name,
        "version": version or datetime.now(timezone.utc).strftime("%Y.%m.%d"),
        "architecture": config.architecture,
        "classes": list(CLASSES),
        "input_size": config.image_size,
        "input_scaling": "(x / 255 - 0.5) / 0.5 per RGB channel, NCHW float32",
        "preprocessing": "crop to the circular field of view, pad with black to a square, bilinear resize",
        "field_of_view_mask_radius": config.fov_mask_radius,
        "local_contrast": config.local_contrast,
        "colour_balance": config.colour_balance,
        "optic_disc_crop": {"size": config.disc_crop_size, "fraction": config.disc_crop_fraction} if config.disc_crop_size else None,
        "test_time_augmentation": prediction_passes(config),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training_seconds": round(result.seconds, 1),
        "training_hardware": f"{platform.machine()} CPU, {config.threads} thread{'s' if config.threads != 1 else ''}",
        "training_config": config.to_dict(),
        "training_data": describe_data([samples[i] for i in train_index], data_dir),
        "onnx_max_probability_difference": max_difference,
        "history": result.history,
        "intended_use": INTENDED_USE,
        "not_a_medical_device": NOT_A_MEDICAL_DEVICE,
        "limitations": LIMITATIONS,
    }
    if has_validation:
        session = ModelSession.from_file(model_path, threads=config.threads)
        probabilities = session.probabilities(to_model_input(images[val_index]))
        report = classification_report(labels[val_index], probabilities, CLASSES)
        card["validation"] = {
            "description": f"Patient-grouped held-out split of {len(val_index)} photos, scored by the exported ONNX model.",
            **report.to_dict(),
        }
        plot_confusion_matrix(labels[val_index], probabilities, CLASSES, out_dir / "confusion_matrix.png", "validation split")
        plot_roc_curves(labels[val_index], probabilities, CLASSES, out_dir / "roc.png", "validation split")
    if cv_report is not None:
        # Without a validation split, the cross-validation's out-of-fold plots describe the recipe.
        add_cross_validation(card, cv_report, None if has_validation else out_dir)

    write_model_card(card, out_dir)
    logger.info("wrote %s and %s to %s", MODEL_FILE, CARD_FILE, out_dir)
    return card
