"""Measure per-photo latency of the bundled model: decode, preprocess and ONNX inference at batch 1.

Usage: .venv/bin/python bench/inference_latency.py [IMAGE_DIR] [--repeats N] [--threads T]

Without IMAGE_DIR it uses scikit-image's retina sample. Prints a Markdown table row per step
with the median and 95th percentile in milliseconds.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from eyescreen.imaging import read_image
from eyescreen.inference.session import ModelSession
from eyescreen.preprocess import prepare_fundus, to_model_input


def sample_photos(image_dir: Path | None, count: int) -> list[bytes]:
    if image_dir is not None:
        paths = sorted(path for path in image_dir.rglob("*") if path.suffix.lower() in {".jpg", ".jpeg", ".png"})
        return [path.read_bytes() for path in paths[:count]]
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.retina()).save(buffer, format="JPEG", quality=90)
    return [buffer.getvalue()] * count


def cpu_name() -> str:
    """Return the CPU model from /proc/cpuinfo, where Linux provides it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image_dir", nargs="?", type=Path)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()

    model = ModelSession.from_dir(None, threads=arguments.threads)
    photos = sample_photos(arguments.image_dir, arguments.repeats)
    # Warm-up: the first runs allocate ONNX Runtime's buffers.
    for _ in range(5):
        model.probabilities(to_model_input(np.zeros((model.image_size, model.image_size, 3), np.uint8)))

    timings: dict[str, list[float]] = {"decode": [], "preprocess": [], "inference": [], "total": []}
    for data in photos:
        started = time.perf_counter()
        rgb = read_image(data)
        decoded = time.perf_counter()
        inputs = to_model_input(prepare_fundus(rgb, model.image_size))
        preprocessed = time.perf_counter()
        model.probabilities(inputs)
        finished = time.perf_counter()
        timings["decode"].append((decoded - started) * 1000)
        timings["preprocess"].append((preprocessed - decoded) * 1000)
        timings["inference"].append((finished - preprocessed) * 1000)
        timings["total"].append((finished - started) * 1000)

    source = str(arguments.image_dir) if arguments.image_dir else "skimage.data.retina() as JPEG (1411x1411)"
    print(f"model {model.name} {model.version}, input {model.image_size}px, {arguments.threads} threads, {len(photos)} photos from {source}")
    print(f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| step | median ms | p95 ms |")
    print("|---|---|---|")
    for step, values in timings.items():
        print(f"| {step} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} |")


if __name__ == "__main__":
    main()
