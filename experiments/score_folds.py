"""Score the fold models of an `eyescreen cv` run on their held-out photos, with optional changes.

Usage: .venv/bin/python experiments/score_folds.py REPORT_DIR DATA_DIR [--flip] [--rim-mask R]
       [--folds 1,2,3,4]

Each fold-K folder needs model.onnx, model_card.json and predictions.csv (the fold's held-out
photos). --flip averages the logits of each photo and its mirror image. --rim-mask R blacks out
each photo outside R times the field of view's radius before inference, to measure how much a
model relies on the rim. Prints pooled balanced accuracy, macro AUC and per-class
sensitivity over the chosen folds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from eyescreen.evaluation.metrics import classification_report
from eyescreen.evaluation.predictions import read_predictions
from eyescreen.imaging import read_image
from eyescreen.inference.session import TEST_TIME_PASSES, ModelSession
from eyescreen.labels import CLASSES
from eyescreen.preprocess import prepare_fundus, to_model_input
from eyescreen.training.filters import circular_mask


def rim_mask(size: int, radius: float) -> np.ndarray:
    """Return a (size, size, 1) uint8 array that is 1 inside the mask FundusNet uses for radius."""
    return circular_mask(size, radius)[0, 0, :, :, None].numpy().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--flip", action="store_true", help="average over the photo and its mirror image")
    parser.add_argument("--rim-mask", type=float, default=0.0, help="black out outside this share of the radius")
    parser.add_argument("--folds", default="0,1,2,3,4", help="comma-separated fold numbers (default all five)")
    arguments = parser.parse_args()

    labels, probabilities = [], []
    for fold in (int(number) for number in arguments.folds.split(",")):
        fold_dir = arguments.report_dir / f"fold-{fold}"
        model = ModelSession.from_dir(fold_dir)
        model.passes = TEST_TIME_PASSES if arguments.flip else TEST_TIME_PASSES[:1]
        mask = rim_mask(model.image_size, arguments.rim_mask) if arguments.rim_mask else 1
        rows, _, _ = read_predictions(fold_dir / "predictions.csv")
        for row in rows:
            image = prepare_fundus(read_image((arguments.data_dir / row["path"]).read_bytes()), model.image_size) * mask
            probabilities.append(model.probabilities(to_model_input(image.astype(np.uint8)))[0])
            labels.append(CLASSES.index(row["label"]))

    report = classification_report(np.array(labels), np.array(probabilities), CLASSES)
    sensitivity = ", ".join(f"{name} {value:.3f}" for name, value in report.sensitivity.items())
    print(f"folds {arguments.folds}, flip {arguments.flip}, rim mask {arguments.rim_mask or 'none'}, {len(labels)} photos")
    print(f"balanced accuracy {report.balanced_accuracy:.3f}, macro AUC {report.macro_auc:.3f}; sensitivity: {sensitivity}")


if __name__ == "__main__":
    main()
