"""Measure per-photo latency of a model: decode, preprocess and ONNX inference at batch 1.

Usage: .venv/bin/python bench/inference_latency.py [IMAGE_DIR] [--repeats N] [--threads T]
       [--model DIR] [--write-card]

Without IMAGE_DIR it uses scikit-image's retina sample; without --model, the bundled model.
Prints a Markdown table row per step with the median and 95th percentile in milliseconds.
"network pass" is one run of the network on one photo; "inference" is all the test-time passes
the model card lists. --write-card stores the figures under "speed" in the model's card.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from eyescreen.evaluation.card import write_model_card
from eyescreen.imaging import read_image
from eyescreen.inference.session import CARD_FILE, ModelSession, bundled_model_dir
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
    parser.add_argument("--model", type=Path, help="folder with model.onnx and model_card.json (default: bundled model)")
    parser.add_argument("--write-card", action="store_true", help='store the figures under "speed" in the model card')
    arguments = parser.parse_args()

    model_dir = arguments.model or bundled_model_dir()
    model = ModelSession.from_dir(model_dir, threads=arguments.threads)
    photos = sample_photos(arguments.image_dir, arguments.repeats)
    blank = to_model_input(np.zeros((model.image_size, model.image_size, 3), np.uint8))
    # Warm-up: the first runs allocate ONNX Runtime's buffers.
    for _ in range(5):
        model.probabilities(blank)

    timings: dict[str, list[float]] = {"network pass": [], "decode": [], "preprocess": [], "inference": [], "total": []}
    input_name = model.session.get_inputs()[0].name
    for _ in photos:
        started = time.perf_counter()
        model.session.run(None, {input_name: blank})
        timings["network pass"].append((time.perf_counter() - started) * 1000)

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
    machine = f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} cores"
    passes = ", ".join(model.passes)
    print(f"model {model.name} {model.version}, input {model.image_size}px, passes: {passes}, {arguments.threads} threads, {len(photos)} photos from {source}")
    print(f"machine: {machine}, Python {platform.python_version()}")
    print("| step | median ms | p95 ms |")
    print("|---|---|---|")
    for step, values in timings.items():
        print(f"| {step} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} |")

    if arguments.write_card:
        card = json.loads((model_dir / CARD_FILE).read_text(encoding="utf-8"))
        card["speed"] = {
            "batch_size": 1,
            "threads": arguments.threads,
            "test_time_passes": list(model.passes),
            "network_pass_ms_median": round(statistics.median(timings["network pass"]), 2),
            "network_pass_ms_p95": round(percentile(timings["network pass"], 0.95), 2),
            "inference_ms_median": round(statistics.median(timings["inference"]), 2),
            "total_ms_median": round(statistics.median(timings["total"]), 2),
            "photos": source,
            "machine": machine,
            "onnxruntime": ort.__version__,
            "command": "python bench/inference_latency.py " + " ".join(sys.argv[1:]),
        }
        write_model_card(card, model_dir)
        print(f"wrote the speed figures to the model card in {model_dir}")


if __name__ == "__main__":
    main()
