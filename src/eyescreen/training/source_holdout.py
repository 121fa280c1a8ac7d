"""`eyescreen source-holdout`: train without one source of a class and test on that source.

Cross-validation mixes every source into every fold, so a model can score well by recognising
the camera. Here, for each class with photos from more than one source, each source's photos
of such classes are held out in turn. The model trains on everything else, including the
class's other sources, and is scored on the held-out photos: a model that learned the disease
still finds it, one that learned the camera does not.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from eyescreen.dataset import Sample, load_samples
from eyescreen.errors import DatasetError
from eyescreen.evaluation.card import json_safe
from eyescreen.evaluation.predictions import write_predictions
from eyescreen.labels import CLASSES
from eyescreen.training.config import TrainConfig
from eyescreen.training.data import load_preprocessed
from eyescreen.training.loop import predict_probabilities, train

logger = logging.getLogger(__name__)


def shared_classes(samples: list[Sample]) -> dict[str, list[str]]:
    """Map each class that has photos from two or more sources to those sources, sorted."""
    sources: dict[str, set[str]] = {}
    for sample in samples:
        sources.setdefault(sample.label_name, set()).add(sample.source)
    return {label: sorted(found) for label, found in sources.items() if len(found) > 1}


def holdout_rows(samples: list[Sample], source: str, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Split row numbers into (train, test) for holding out source's photos of labels.

    Every photo of a held-out patient leaves the training rows, so that the patient's other
    eye cannot stand in for the held-out one.
    """
    test = [i for i, s in enumerate(samples) if s.source == source and s.label_name in labels]
    held_patients = {samples[i].patient_id for i in test}
    train_rows = [i for i, s in enumerate(samples) if s.patient_id not in held_patients]
    return np.array(train_rows, dtype=np.int64), np.array(test, dtype=np.int64)


def run_source_holdout(
    data_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    *,
    cache_dir: Path | None = None,
    only_sources: list[str] | None = None,
) -> dict[str, Any]:
    """Train one model per held-out source and write holdout.json and report.md to out_dir.

    A source whose result.json exists is skipped, so an interrupted run resumes. With
    only_sources, only those sources are trained. The report lists every source already done, so
    processes that hold out different sources can share out_dir, and a last run without
    only_sources completes the report.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = load_samples(data_dir)
    shared = shared_classes(samples)
    if not shared:
        raise DatasetError(f"no class in {data_dir} has photos from more than one source, so no source can be held out")

    all_sources = sorted({source for found in shared.values() for source in found})
    unknown = sorted(set(only_sources or []) - set(all_sources))
    if unknown:
        raise DatasetError(
            f"cannot hold out {', '.join(unknown)}: the sources that share a class in {data_dir} are {', '.join(all_sources)}. "
            "Choose from those"
        )

    images = load_preprocessed(samples, config.image_size, cache_dir)
    labels = np.array([sample.label for sample in samples])

    results = []
    for source in all_sources:
        held_labels = [label for label, found in shared.items() if source in found]
        run_dir = out_dir / f"without-{source}"
        result_path = run_dir / "result.json"
        if result_path.is_file():
            logger.info("holding out %s: already done, skipping", source)
            results.append(json.loads(result_path.read_text(encoding="utf-8")))
            continue
        if only_sources is not None and source not in only_sources:
            logger.info("holding out %s: not requested in this run, skipping", source)
            continue

        train_rows, test_rows = holdout_rows(samples, source, held_labels)
        logger.info(
            "holding out %s's %s photos: training on %d, testing on %d", source, "/".join(held_labels), len(train_rows), len(test_rows)
        )
        trained = train(
            config, images[train_rows], labels[train_rows], checkpoint_path=run_dir / "checkpoint.pt", resume=True
        )
        probabilities = predict_probabilities(trained.model, images[test_rows], flip=config.test_time_flip)
        write_predictions(run_dir / "predictions.csv", [samples[i] for i in test_rows], probabilities, data_dir)
        trained_on = {label: int(sum(1 for i in train_rows if samples[i].label_name == label)) for label in held_labels}
        result = score_holdout(source, held_labels, labels[test_rows], probabilities, trained_on)
        result["seconds"] = trained.seconds
        result_path.write_text(json.dumps(json_safe(result), indent=2) + "\n", encoding="utf-8")
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)
        results.append(result)

    summary = {"config": config.to_dict(), "shared_classes": shared, "holdouts": results}
    write_holdout_report(out_dir, summary)
    return summary


def score_holdout(
    source: str,
    held_labels: list[str],
    labels: np.ndarray,
    probabilities: np.ndarray,
    trained_on: dict[str, int],
) -> dict[str, Any]:
    """Per held-out class: photos, sensitivity, the predicted classes and how many of the class's photos the model trained on."""
    predicted = probabilities.argmax(axis=1)
    by_class = {}
    for label in held_labels:
        index = CLASSES.index(label)
        rows = labels == index
        counts = Counter(CLASSES[p] for p in predicted[rows])
        by_class[label] = {
            "n": int(rows.sum()),
            "sensitivity": float((predicted[rows] == index).mean()) if rows.any() else float("nan"),
            "predicted": {name: counts.get(name, 0) for name in CLASSES},
            "trained_on": trained_on[label],
        }
    return {"held_out_source": source, "classes": by_class}


def write_holdout_report(out_dir: Path, summary: dict[str, Any], *, description: str = "") -> None:
    """Write summary as holdout.json and its Markdown rendering as report.md into out_dir."""
    (out_dir / "holdout.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_holdout_report(summary, description=description), encoding="utf-8")


def render_holdout_report(summary: dict[str, Any], *, description: str = "") -> str:
    """Render the source hold-out results as Markdown, with an optional paragraph under the title."""
    lines = ["# Leave-one-source-out", ""]
    if description:
        lines += [description, ""]
    lines += [
        "Each row trains a model without one source's photos of the classes that have several",
        "sources (and without any other photo of those patients), then scores the held-out photos.",
        "",
        "| held-out source | class | photos | trained on (other sources) | sensitivity | predicted as |",
        "|---|---|---|---|---|---|",
    ]
    for holdout in summary["holdouts"]:
        for label, row in holdout["classes"].items():
            predicted = ", ".join(f"{name} {count}" for name, count in row["predicted"].items() if count)
            lines.append(
                f"| {holdout['held_out_source']} | {label} | {row['n']} | {row['trained_on']} | {row['sensitivity']:.3f} | {predicted} |"
            )
    return "\n".join(lines) + "\n"
