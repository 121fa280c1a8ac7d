"""The training loop: one epoch at a time, with a checkpoint after each so a run can resume."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from eyescreen.evaluation.metrics import classification_report
from eyescreen.labels import CLASSES
from eyescreen.training.config import TrainConfig
from eyescreen.training.data import FundusDataset, training_augmentation
from eyescreen.training.model import build_model, set_train_mode

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A trained model and the per-epoch history of loss and validation metrics."""

    model: torch.nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Weight each class by n / (n_classes * count), so that every class adds equally to the loss."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def predict_probabilities(
    model: torch.nn.Module, images: np.ndarray, *, batch_size: int = 64, flip: bool = False
) -> np.ndarray:
    """Run the model in eval mode on (N, S, S, 3) uint8 images and return (N, C) softmax probabilities.

    With flip, the logits of each photo and its horizontal mirror are averaged, as the ONNX
    session does for a model card that lists "horizontal_flip".
    """
    model.eval()
    dataset = FundusDataset(images, [0] * len(images))
    outputs = []
    with torch.no_grad():
        for batch, _ in DataLoader(dataset, batch_size=batch_size):
            logits = model(batch.contiguous(memory_format=torch.channels_last))
            if flip:
                mirrored = model(batch.flip(dims=[3]).contiguous(memory_format=torch.channels_last))
                logits = (logits + mirrored) / 2
            outputs.append(torch.softmax(logits, dim=1).numpy())
    return np.concatenate(outputs) if outputs else np.empty((0, len(CLASSES)), dtype=np.float32)


def train(
    config: TrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    checkpoint_path: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Fine-tune the classifier on (N, S, S, 3) uint8 images and N integer labels.

    After every epoch the model, optimizer, schedule and history go to checkpoint_path (when
    given). With resume, a run continues from the checkpoint found there.
    """
    started = time.monotonic()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    labels = np.asarray(labels, dtype=np.int64)

    # 1. Model, optimizer and a per-step schedule: linear warm-up, then cosine decay to zero.
    model = build_model(config)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(labels) / config.batch_size)
    total_steps = max(1, steps_per_epoch * config.epochs)
    warmup_steps = int(steps_per_epoch * config.warmup_epochs)

    def learning_rate_factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor)
    weights = class_weights(labels, len(CLASSES)) if config.class_balanced_loss else None
    loss_function = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)

    # 2. Resume from the last finished epoch, if asked and a checkpoint exists.
    history: list[dict[str, Any]] = []
    first_epoch = 0
    earlier_seconds = 0.0
    if resume and checkpoint_path is not None and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        first_epoch = state["epoch"] + 1
        earlier_seconds = state.get("seconds", 0.0)
        logger.info("resumed from %s after epoch %d", checkpoint_path, first_epoch)

    for epoch in range(first_epoch, config.epochs):
        epoch_started = time.monotonic()
        # Seeding per epoch makes a resumed run draw the same batches and augmentations.
        epoch_seed = config.seed * 1000 + epoch
        torch.manual_seed(epoch_seed)
        transform = None
        if config.augment:
            transform = training_augmentation(
                seed=epoch_seed,
                camera_jitter=config.camera_jitter,
                sensor_noise=config.sensor_noise,
                channel_gain=config.channel_gain,
                jpeg_quality=config.jpeg_quality,
            )
        loader = DataLoader(
            FundusDataset(
                images,
                labels.tolist(),
                transform,
                amplitude_mix=config.amplitude_mix if config.augment else 0.0,
                seed=epoch_seed,
            ),
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=len(labels) > config.batch_size,
            generator=torch.Generator().manual_seed(epoch_seed),
        )

        # 3. One pass over the training images.
        set_train_mode(model, config.frozen_blocks)
        total_loss = 0.0
        seen = 0
        for batch, batch_labels in loader:
            optimizer.zero_grad(set_to_none=True)
            logits = model(batch.contiguous(memory_format=torch.channels_last))
            loss = loss_function(logits, batch_labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(batch_labels)
            seen += len(batch_labels)

        # 4. Validation metrics, when there is a validation set.
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": total_loss / max(1, seen)}
        if val_images is not None and val_labels is not None and len(val_labels):
            report = classification_report(val_labels, predict_probabilities(model, val_images), CLASSES)
            record.update(
                val_accuracy=report.accuracy, val_balanced_accuracy=report.balanced_accuracy, val_macro_auc=report.macro_auc
            )
        record["seconds"] = time.monotonic() - epoch_started
        history.append(record)
        logger.info("epoch %d/%d %s", epoch + 1, config.epochs, _format_record(record))

        # 5. Checkpoint, written to a temporary file first so a crash never leaves half a file.
        if checkpoint_path is not None:
            checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = checkpoint_path.with_suffix(".tmp")
            torch.save(
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                    "config": config.to_dict(),
                    "seconds": earlier_seconds + time.monotonic() - started,
                },
                temporary,
            )
            temporary.replace(checkpoint_path)

    model.eval()
    # Seconds of every session that trained this model, so a resumed run reports its full cost.
    return TrainResult(model=model, history=history, seconds=earlier_seconds + time.monotonic() - started)


def _format_record(record: dict[str, Any]) -> str:
    parts = [f"loss {record['loss']:.4f}"]
    if "val_balanced_accuracy" in record:
        parts.append(f"val balanced accuracy {record['val_balanced_accuracy']:.3f}")
        parts.append(f"val macro AUC {record['val_macro_auc']:.3f}")
    parts.append(f"({record['seconds']:.0f} s)")
    return ", ".join(parts)
