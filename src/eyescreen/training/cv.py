"""`eyescreen cv`: patient-grouped, stratified K-fold cross-validation that resumes fold by fold."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eyescreen.dataset import Sample, load_samples
from eyescreen.errors import DatasetError
from eyescreen.evaluation.calibration import (
    apply_temperature,
    choose_threshold,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from eyescreen.evaluation.card import json_safe
from eyescreen.evaluation.metrics import classification_report, mean_and_sd, reports_by_source
from eyescreen.evaluation.plots import plot_confusion_matrix, plot_reliability, plot_roc_curves
from eyescreen.evaluation.predictions import read_predictions, write_predictions
from eyescreen.inference.session import CARD_FILE, MODEL_FILE
from eyescreen.labels import CLASSES
from eyescreen.training.baselines import PROBE_IMAGE_SIZE, run_baselines
from eyescreen.training.config import TrainConfig, prediction_passes
from eyescreen.training.data import load_preprocessed
from eyescreen.training.export import export_onnx
from eyescreen.training.loop import predict_probabilities, train
from eyescreen.training.model import build_model
from eyescreen.training.splits import assign_folds

logger = logging.getLogger(__name__)

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
# Photos whose calibrated top-class probability is below the referral threshold are reported as
# "uncertain". The threshold is the lowest at which the photos not referred reach this accuracy.
REFERRAL_TARGET_ACCURACY = 0.95
COVERAGE_THRESHOLDS = np.round(np.arange(0.30, 0.96, 0.05), 2)


def run_cross_validation(
    data_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    *,
    folds: int = 5,
    only_folds: Sequence[int] | None = None,
    cache_dir: Path | None = None,
    with_baselines: bool = True,
) -> dict[str, Any] | None:
    """Train and score one model per fold, skipping folds whose result is already written.

    Each fold trains on the other folds for config.epochs epochs (no early stopping) and is
    scored on its held-out patients every epoch. Returns the summary once every fold is done,
    else None.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = load_samples(data_dir)
    assignment = assign_folds(samples, folds, seed=config.seed)
    _write_plan(out_dir, samples, assignment, config, folds, data_dir)

    images = load_preprocessed(samples, config.image_size, cache_dir)
    labels = np.array([sample.label for sample in samples])

    baselines_path = out_dir / "baselines.json"
    if with_baselines and not baselines_path.is_file():
        probe_images = load_preprocessed(samples, PROBE_IMAGE_SIZE, cache_dir)
        baselines = run_baselines(samples, assignment, probe_images, seed=config.seed)
        baselines_path.write_text(json.dumps(baselines, indent=2) + "\n", encoding="utf-8")

    for fold in only_folds if only_folds is not None else range(folds):
        fold_dir = out_dir / f"fold-{fold}"
        if (fold_dir / "result.json").is_file():
            logger.info("fold %d already done, skipping", fold)
            continue

        logger.info("fold %d/%d: training on %d photos, testing on %d", fold + 1, folds, (assignment != fold).sum(), (assignment == fold).sum())
        train_rows = np.flatnonzero(assignment != fold)
        test_rows = np.flatnonzero(assignment == fold)
        result = train(
            config,
            images[train_rows],
            labels[train_rows],
            val_images=images[test_rows],
            val_labels=labels[test_rows],
            checkpoint_path=fold_dir / "checkpoint.pt",
            resume=True,
        )

        probabilities = predict_probabilities(result.model, images[test_rows], flip=config.test_time_flip)
        write_predictions(fold_dir / "predictions.csv", [samples[i] for i in test_rows], probabilities, data_dir)
        report = classification_report(labels[test_rows], probabilities, CLASSES)
        fold_result = {"fold": fold, "seconds": result.seconds, "history": result.history, **report.to_dict()}
        (fold_dir / "result.json").write_text(json.dumps(fold_result, indent=2) + "\n", encoding="utf-8")
        # The fold's weights stay for later analysis (test-time augmentation, ensembles); the
        # optimizer state in the checkpoint is no longer needed.
        torch.save(result.model.state_dict(), fold_dir / "model.pt")
        (fold_dir / "checkpoint.pt").unlink(missing_ok=True)
        logger.info("fold %d: balanced accuracy %.3f, macro AUC %.3f", fold, report.balanced_accuracy, report.macro_auc)

    export_fold_models(out_dir, config)
    return write_report(out_dir, folds)


def export_fold_models(out_dir: Path, config: TrainConfig) -> None:
    """Export each finished fold's weights to fold-K/model.onnx with a minimal model card.

    `eyescreen evaluate DATA_DIR --manifest fold-K/predictions.csv --model fold-K` then scores
    the fold's held-out photos with the model that never saw them.
    """
    for weights in sorted(out_dir.glob("fold-*/model.pt")):
        fold_dir = weights.parent
        if (fold_dir / MODEL_FILE).is_file():
            continue
        model = build_model(config, pretrained=False)
        model.load_state_dict(torch.load(weights, map_location="cpu"))
        export_onnx(model, fold_dir / MODEL_FILE, image_size=config.image_size)
        card = {
            "name": f"cv-{fold_dir.name}",
            "version": "cv",
            "classes": list(CLASSES),
            "input_size": config.image_size,
            "test_time_augmentation": prediction_passes(config),
        }
        (fold_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def _write_plan(
    out_dir: Path, samples: list[Sample], assignment: np.ndarray, config: TrainConfig, folds: int, data_dir: Path
) -> None:
    root = data_dir.resolve()
    names = [str(s.path.relative_to(root)) if s.path.is_relative_to(root) else str(s.path) for s in samples]
    plan = {"folds": folds, "config": config.to_dict(), "assignment": dict(zip(names, map(int, assignment)))}
    plan_path = out_dir / "plan.json"
    if plan_path.is_file():
        previous = json.loads(plan_path.read_text(encoding="utf-8"))
        differences = _plan_differences(previous, plan)
        if differences:
            raise DatasetError(
                f"{plan_path} was written for another configuration ({'; '.join(differences)}). "
                "Run with the options of that report, or choose a new --out folder"
            )
    plan_path.write_text(json.dumps(plan, indent=1) + "\n", encoding="utf-8")


def _plan_differences(previous: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """List the settings that differ between a saved plan and a new one, as 'name saved, now new'.

    A plan saved before a setting existed gets the value that TrainConfig.from_dict gives old
    configs. The thread count changes speed, not results, so a rerun may use another one.
    """
    differences = []
    if previous["folds"] != plan["folds"]:
        differences.append(f"folds {previous['folds']}, now {plan['folds']}")
    saved_config = TrainConfig.from_dict(previous["config"]).to_dict()
    for name in sorted(plan["config"]):
        if name == "threads":
            continue
        saved, new = saved_config.get(name), plan["config"][name]
        if saved != new:
            differences.append(f"{name} {saved}, now {new}")
    return differences


def write_report(out_dir: Path, folds: int, *, description: str = "") -> dict[str, Any] | None:
    """Write report.md and cv.json from the finished folds; returns the summary when all are done.

    description, when given, is added to the report's first paragraph: what was cross-validated.
    """
    results = []
    for fold in range(folds):
        path = out_dir / f"fold-{fold}" / "result.json"
        if path.is_file():
            results.append(json.loads(path.read_text(encoding="utf-8")))
    if not results:
        return None

    # Pooled out-of-fold predictions: every photo scored by the model that never saw its patient.
    rows: list[dict[str, str]] = []
    label_parts, probability_parts = [], []
    for result in results:
        fold_rows, fold_labels, fold_probabilities = read_predictions(out_dir / f"fold-{result['fold']}" / "predictions.csv")
        rows += fold_rows
        label_parts.append(fold_labels)
        probability_parts.append(fold_probabilities)
    labels = np.concatenate(label_parts)
    probabilities = np.concatenate(probability_parts)
    pooled = classification_report(labels, probabilities, CLASSES)

    summary: dict[str, Any] = {
        "description": (
            f"{folds}-fold patient-grouped, stratified cross-validation on {len(labels)} photos"
            + ("" if len(results) == folds else f" ({len(results)} folds finished)")
            + ": "
            "mean ± sd over folds, each fold scored on patients its model never saw."
            + (f" {description}" if description else "")
        ),
        "folds_done": len(results),
        "folds": folds,
        "n": int(len(labels)),
    }
    for key in SUMMARY_METRICS:
        summary[key] = mean_and_sd([result[key] for result in results])
    for key in ("sensitivity", "specificity"):
        summary[key] = {name: mean_and_sd([result[key][name] for result in results]) for name in CLASSES}
    summary["pooled"] = pooled.to_dict()

    summary["by_source"] = reports_by_source(labels, probabilities, np.array([row["source"] for row in rows]), CLASSES)

    epochs = min(len(result["history"]) for result in results)
    summary["epoch_curve"] = [
        {
            "epoch": epoch + 1,
            "balanced_accuracy": float(np.mean([r["history"][epoch]["val_balanced_accuracy"] for r in results])),
            "macro_auc": float(np.mean([r["history"][epoch]["val_macro_auc"] for r in results])),
        }
        for epoch in range(epochs)
    ]

    summary.update(calibrate(labels, probabilities))
    plot_reliability(
        labels,
        {
            "before": probabilities,
            "after temperature scaling": apply_temperature(probabilities, summary["calibration"]["temperature"]),
        },
        out_dir / "reliability.png",
        "out-of-fold, pooled",
    )
    plot_confusion_matrix(labels, probabilities, CLASSES, out_dir / "confusion_matrix.png", "out-of-fold, pooled")
    plot_roc_curves(labels, probabilities, CLASSES, out_dir / "roc.png", "out-of-fold, pooled")
    baselines_path = out_dir / "baselines.json"
    if baselines_path.is_file():
        summary["baselines"] = {
            name: {key: result[key] for key in ("accuracy", "balanced_accuracy", "macro_auc")}
            for name, result in json.loads(baselines_path.read_text(encoding="utf-8")).items()
        }
    cv_text = json.dumps(json_safe({"summary": summary, "folds": results}), indent=2, allow_nan=False)
    (out_dir / "cv.json").write_text(cv_text + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_report(summary, results), encoding="utf-8")
    return summary if len(results) == folds else None


def calibrate(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Fit temperature scaling and the referral threshold on pooled out-of-fold predictions."""
    temperature = fit_temperature(probabilities, labels)
    calibrated = apply_temperature(probabilities, temperature)
    threshold = choose_threshold(calibrated, labels, target_accuracy=REFERRAL_TARGET_ACCURACY)
    (at_threshold,) = coverage_curve(calibrated, labels, np.array([threshold]))
    return {
        "calibration": {
            "method": "temperature scaling fitted on the pooled out-of-fold predictions",
            "temperature": temperature,
            "ece_before": expected_calibration_error(probabilities, labels),
            "ece_after": expected_calibration_error(calibrated, labels),
            "nll_before": negative_log_likelihood(probabilities, labels),
            "nll_after": negative_log_likelihood(calibrated, labels),
        },
        "referral": {
            "threshold": threshold,
            "target_accuracy": REFERRAL_TARGET_ACCURACY,
            "coverage": at_threshold["coverage"],
            "accuracy_answered": at_threshold["accuracy"],
            "curve": coverage_curve(calibrated, labels, COVERAGE_THRESHOLDS),
        },
    }


def render_report(summary: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """Render the cross-validation summary and per-fold rows as Markdown."""
    def cell(value: dict[str, float]) -> str:
        return f"{value['mean']:.3f} ± {value['sd']:.3f}"

    lines = [
        "# Cross-validation report",
        "",
        summary["description"],
        f"Folds finished: {summary['folds_done']} of {summary['folds']}.",
        "",
        "## Per fold",
        "",
        "| fold | n | accuracy | balanced accuracy | macro-F1 | macro AUC | "
        + " | ".join(f"sens. {name}" for name in CLASSES)
        + " | "
        + " | ".join(f"spec. {name}" for name in CLASSES)
        + " |",
        "|---" * (6 + 2 * len(CLASSES)) + "|",
    ]
    for result in results:
        lines.append(
            f"| {result['fold']} | {result['n']} | "
            + " | ".join(f"{result[key]:.3f}" for key in SUMMARY_METRICS)
            + " | "
            + " | ".join(f"{result['sensitivity'][name]:.3f}" for name in CLASSES)
            + " | "
            + " | ".join(f"{result['specificity'][name]:.3f}" for name in CLASSES)
            + " |"
        )
    lines.append(
        "| mean ± sd | "
        + str(summary["n"])
        + " | "
        + " | ".join(cell(summary[key]) for key in SUMMARY_METRICS)
        + " | "
        + " | ".join(cell(summary["sensitivity"][name]) for name in CLASSES)
        + " | "
        + " | ".join(cell(summary["specificity"][name]) for name in CLASSES)
        + " |"
    )

    if "baselines" in summary:
        lines += [
            "",
            "## Baselines on the same folds",
            "",
            "| model | accuracy | balanced accuracy | macro AUC |",
            "|---|---|---|---|",
            "| fine-tuned CNN (above) | " + " | ".join(cell(summary[key]) for key in ("accuracy", "balanced_accuracy", "macro_auc")) + " |",
        ]
        descriptions = {
            "image_statistics": "image statistics only (size, bytes, colour, border): the shortcut a camera offers",
            "linear_probe": "logistic regression on frozen ImageNet EfficientNet-Lite0 features, 320 px",
        }
        for name, baseline in summary["baselines"].items():
            lines.append(
                f"| {descriptions.get(name, name)} | "
                + " | ".join(cell(baseline[key]) for key in ("accuracy", "balanced_accuracy", "macro_auc"))
                + " |"
            )

    pooled = summary["pooled"]
    lines += [
        "",
        "## Pooled out-of-fold predictions",
        "",
        f"Accuracy {pooled['accuracy']:.3f}, balanced accuracy {pooled['balanced_accuracy']:.3f}, "
        f"macro-F1 {pooled['macro_f1']:.3f}, macro AUC {pooled['macro_auc']:.3f}.",
        "",
        "Confusion matrix (rows true, columns predicted):",
        "",
        "| true \\ predicted | " + " | ".join(CLASSES) + " |",
        "|---" * (len(CLASSES) + 1) + "|",
        *[f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(CLASSES, pooled["confusion_matrix"])],
        "",
        "![confusion matrix](confusion_matrix.png) ![ROC curves](roc.png)",
        "",
        "## Per source (pooled out-of-fold)",
        "",
        "| source | n | accuracy | " + " | ".join(f"sens. {name}" for name in CLASSES) + " |",
        "|---" * (3 + len(CLASSES)) + "|",
    ]
    for source, report in summary["by_source"].items():
        sensitivities = " | ".join(
            "–" if np.isnan(report["sensitivity"][name]) else f"{report['sensitivity'][name]:.3f}" for name in CLASSES
        )
        lines.append(f"| {source} | {report['n']} | {report['accuracy']:.3f} | {sensitivities} |")

    calibration = summary["calibration"]
    referral = summary["referral"]
    lines += [
        "",
        "## Calibration and referral",
        "",
        f"Temperature scaling on the pooled out-of-fold predictions: T = {calibration['temperature']:.3f}. "
        f"Expected calibration error (15 bins) {calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after; "
        f"negative log-likelihood {calibration['nll_before']:.3f} before, {calibration['nll_after']:.3f} after.",
        "",
        f"Referral rule: a photo whose calibrated top-class probability is below {referral['threshold']:.3f} is answered "
        f"\"uncertain\". That threshold is the lowest at which the answered photos reach {referral['target_accuracy']:.0%} "
        f"accuracy: {referral['coverage']:.1%} of photos are answered, with accuracy {referral['accuracy_answered']:.3f}.",
        "The temperature and the threshold are fitted on the same out-of-fold predictions they are scored on, "
        "so these two figures are slightly optimistic.",
        "",
        "![reliability diagram](reliability.png)",
        "",
        "| threshold | share answered | accuracy on answered |",
        "|---|---|---|",
        *[f"| {point['threshold']:.2f} | {point['coverage']:.3f} | {point['accuracy']:.3f} |" for point in referral["curve"]],
    ]

    if not summary["epoch_curve"]:
        return "\n".join(lines) + "\n"
    lines += ["", "## Held-out metrics by epoch (mean over folds)", "", "| epoch | balanced accuracy | macro AUC |", "|---|---|---|"]
    for point in summary["epoch_curve"]:
        lines.append(f"| {point['epoch']} | {point['balanced_accuracy']:.3f} | {point['macro_auc']:.3f} |")
    return "\n".join(lines) + "\n"
