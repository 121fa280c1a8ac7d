"""What makes a model call scikit-image's healthy retina sample diseased?

Usage: .venv/bin/python experiments/probe_sample.py [--model MODEL_DIR] [--data FUNDUS4_DIR]

Scores the sample after changes that remove one kind of camera cue each (colour, saturation,
magnification, compression), then hides one cell of an 8 x 8 grid at a time to see where the
evidence lies. With --data, it also tests whether the sample lies outside the fundus4 photos in
the features that the model's head reads: per class, a Gaussian over the first 30 principal
components, and the sample's distance to the nearest class against the photos' own distances.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data

from eyescreen.dataset import load_samples
from eyescreen.evaluation.camera_shift import jpeg, sensor_noise
from eyescreen.imaging import read_image_file
from eyescreen.inference.session import ModelSession, bundled_model_dir
from eyescreen.labels import CLASSES
from eyescreen.preprocess import prepare_fundus, to_model_input

GRID = 8
COMPONENTS = 30


def changed_samples(sample: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Apply changes that each remove or add one kind of camera cue, and return them by name.

    Blur and noise are applied at the model's input size, where their strength is measured.
    """
    image = Image.fromarray(sample)
    grey = np.asarray(image.convert("L"))
    square = prepare_fundus(sample, 1024)
    changes = {
        "as shipped": sample,
        "grey": np.stack([grey] * 3, axis=-1),
        "saturation x0.3": np.asarray(ImageEnhance.Color(image).enhance(0.3)),
        "central 80% (magnified)": square[102:922, 102:922],
        "central 60% (magnified)": square[205:819, 205:819],
    }
    changes["400 px, JPEG quality 75"] = jpeg(75)(prepare_fundus(sample, 400))

    model_size = prepare_fundus(sample, size)
    for radius in (1, 3):
        changes[f"Gaussian blur, radius {radius} px"] = np.asarray(Image.fromarray(model_size).filter(ImageFilter.GaussianBlur(radius)))
    for sigma in (3, 6, 10):
        changes[f"Gaussian noise, sd {sigma} grey levels"] = sensor_noise(float(sigma))(model_size)
    return changes


def occlusion_drops(model: ModelSession, sample: np.ndarray, target: int) -> np.ndarray:
    """Drop of the target class probability when each grid cell is filled with its mean colour."""
    size = model.image_size
    image = prepare_fundus(sample, size).astype(np.float32)
    cell = size // GRID
    base = model.probabilities(to_model_input(image.astype(np.uint8)))[0, target]

    drops = np.zeros((GRID, GRID))
    for row in range(GRID):
        for column in range(GRID):
            hidden = image.copy()
            block = hidden[row * cell : (row + 1) * cell, column * cell : (column + 1) * cell]
            inside = block.max(axis=-1, keepdims=True) > 10
            if not inside.any():
                continue
            block[:] = np.where(inside, block[inside[..., 0]].mean(axis=0), 0)
            drops[row, column] = base - model.probabilities(to_model_input(hidden.astype(np.uint8)))[0, target]
    return drops


def head_features(model_path: Path, images: list[np.ndarray], size: int) -> np.ndarray:
    """Compute the features that the model's final Gemm reads, one row per image (no mirrored pass)."""
    graph = onnx.load(str(model_path))
    head = next(node for node in graph.graph.node if node.op_type == "Gemm" and "logits" in node.output)
    graph.graph.output.append(onnx.helper.make_tensor_value_info(head.input[0], onnx.TensorProto.FLOAT, None))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    rows = [session.run(None, {input_name: to_model_input(prepare_fundus(image, size))})[1].reshape(-1) for image in images]
    return np.array(rows)


def colour_statistics(image: np.ndarray) -> np.ndarray:
    """Mean and log spread of each channel inside the field of view at 256 px, and log sharpness."""
    square = prepare_fundus(image, 256).astype(np.float32)
    rows, columns = np.mgrid[:256, :256]
    inside = (rows - 127.5) ** 2 + (columns - 127.5) ** 2 <= (0.9 * 128) ** 2
    pixels = square[inside]
    green = square[..., 1]
    laplacian = 4 * green[1:-1, 1:-1] - green[:-2, 1:-1] - green[2:, 1:-1] - green[1:-1, :-2] - green[1:-1, 2:]
    sharpness = np.log(laplacian[inside[1:-1, 1:-1]].std() + 1e-3)
    return np.r_[pixels.mean(axis=0), np.log(pixels.std(axis=0) + 1), sharpness]


def flagged_share_per_held_out_source(statistics: np.ndarray, sources: np.ndarray) -> dict[str, float]:
    """Per source: share of its photos beyond the other sources' 99th percentile of Gaussian distance."""
    shares = {}
    for source in np.unique(sources):
        known = statistics[sources != source]
        centre = known.mean(axis=0)
        precision = np.linalg.inv(np.cov(known.T))

        def distance(rows: np.ndarray) -> np.ndarray:
            return np.einsum("ij,jk,ik->i", rows - centre, precision, rows - centre)

        limit = np.quantile(distance(known), 0.99)
        shares[str(source)] = float((distance(statistics[sources == source]) > limit).mean())
    return shares


def nearest_class_distance(features: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each query to the nearest class, in principal components."""
    distances = []
    for label in np.unique(labels):
        members = features[labels == label]
        centre = members.mean(axis=0)
        _, singular, axes = np.linalg.svd(members - centre, full_matrices=False)
        variance = singular[:COMPONENTS] ** 2 / (len(members) - 1)
        projected = (queries - centre) @ axes[:COMPONENTS].T
        distances.append((projected**2 / variance).sum(axis=1))
    return np.min(distances, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=None, help="fundus4 folder, for the feature distance")
    arguments = parser.parse_args()

    model_dir = arguments.model or bundled_model_dir()
    model = ModelSession.from_dir(model_dir)
    sample = data.retina()

    # 1. The sample under changes that remove one camera cue each.
    print("change | " + " / ".join(CLASSES))
    for name, image in changed_samples(sample, model.image_size).items():
        probabilities = model.probabilities(to_model_input(prepare_fundus(image, model.image_size)))[0]
        print(f"{name} | " + " / ".join(f"{value:.2f}" for value in probabilities))

    # 2. Where the evidence for the predicted class lies.
    predicted = int(np.argmax(model.probabilities(to_model_input(prepare_fundus(sample, model.image_size)))[0]))
    drops = occlusion_drops(model, sample, predicted)
    print(f"\nhiding one of {GRID} x {GRID} cells, drop of {CLASSES[predicted]} probability:")
    print(f"largest {drops.max():.3f}, cells with a drop above 0.05: {int((drops > 0.05).sum())}")

    # 3. Is the sample outside the training photos in feature space?
    if arguments.data is not None:
        samples = load_samples(arguments.data)
        images = [read_image_file(item.path) for item in samples]
        features = head_features(model_dir / "model.onnx", [*images, sample], model.image_size)
        labels = np.array([item.label for item in samples])
        distances = nearest_class_distance(features[:-1], labels, features)
        share = float((distances[:-1] >= distances[-1]).mean())
        print(f"\nfeature distance to the nearest class: sample {distances[-1]:.1f}")
        print(f"fundus4 photos: median {np.median(distances[:-1]):.1f}, 99th percentile {np.quantile(distances[:-1], 0.99):.1f}")
        print(f"share of fundus4 photos at least as far as the sample: {share:.3f}")

        # 4. Do plain colour statistics tell an unseen camera? One source out at a time.
        statistics = np.array([colour_statistics(image) for image in images])
        shares = flagged_share_per_held_out_source(statistics, np.array([item.source for item in samples]))
        print("\nheld-out source | share flagged by colour statistics at a 1% false alarm rate")
        for source, flagged in shares.items():
            print(f"{source} | {flagged:.3f}")


if __name__ == "__main__":
    main()
