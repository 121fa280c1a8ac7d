"""Score an ONNX model on a labelled folder with the same code path as the web service."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from eyescreen.dataset import load_samples
from eyescreen.evaluation.metrics import classification_report, reports_by_source
from eyescreen.inference.predict import predict_image_bytes
from eyescreen.inference.session import ModelSession

logger = logging.getLogger(__name__)


def evaluate_folder(model: ModelSession, data_dir: Path, *, manifest: Path | None = None) -> dict[str, Any]:
    """Classify every labelled photo in data_dir and return overall and per-source metrics.

    Photos that cannot be decoded are listed under "failed" and left out of the metrics.
    """
    samples = load_samples(data_dir, manifest=manifest)
    labels, probabilities, sources, failed = [], [], [], []
    for sample in samples:
        try:
            prediction = predict_image_bytes(model, sample.path.read_bytes())
        except Exception as error:  # one bad file must not end a long evaluation
            logger.warning("could not classify %s: %s", sample.path, error)
            failed.append({"file": str(sample.path), "error": str(error)})
            continue
        labels.append(sample.label)
        probabilities.append([prediction.probabilities[name] for name in model.classes])
        sources.append(sample.source)

    label_array = np.array(labels, dtype=np.int64)
    probability_array = np.array(probabilities, dtype=np.float64).reshape(-1, len(model.classes))
    result: dict[str, Any] = classification_report(label_array, probability_array, model.classes).to_dict()
    result["model"] = {"name": model.name, "version": model.version}
    result["failed"] = failed

    if len(set(sources)) > 1 or (sources and sources[0] != "unknown"):
        result["by_source"] = reports_by_source(label_array, probability_array, np.array(sources), model.classes)
    return result


def format_evaluation(result: dict[str, Any]) -> str:
    """Render an evaluate_folder result as plain-text tables for the terminal."""
    classes = result["classes"]
    lines = [
        f"model {result['model']['name']} {result['model']['version']}, {result['n']} photos"
        + (f" ({len(result['failed'])} could not be read)" if result["failed"] else ""),
        "",
        f"accuracy           {result['accuracy']:.3f}",
        f"balanced accuracy  {result['balanced_accuracy']:.3f}",
        f"macro-F1           {result['macro_f1']:.3f}",
        f"macro ROC AUC      {result['macro_auc']:.3f}",
        "",
        f"{'class':<16}{'sensitivity':>12}{'specificity':>12}{'AUC':>8}",
    ]
    for name in classes:
        lines.append(
            f"{name:<16}{result['sensitivity'][name]:>12.3f}{result['specificity'][name]:>12.3f}{result['auc'][name]:>8.3f}"
        )

    lines += ["", "confusion matrix (rows true, columns predicted)", f"{'':<16}" + "".join(f"{name[:10]:>11}" for name in classes)]
    for name, row in zip(classes, result["confusion_matrix"]):
        lines.append(f"{name:<16}" + "".join(f"{value:>11}" for value in row))

    if "by_source" in result:
        lines += ["", f"{'source':<18}{'n':>6}{'accuracy':>10}" + "".join(f"{'sens ' + name[:9]:>16}" for name in classes)]
        for source, report in result["by_source"].items():
            sensitivities = "".join(
                f"{'-':>16}" if np.isnan(report["sensitivity"][name]) else f"{report['sensitivity'][name]:>16.3f}" for name in classes
            )
            lines.append(f"{source:<18}{report['n']:>6}{report['accuracy']:>10.3f}{sensitivities}")
    return "\n".join(lines)
