"""Model cards: the facts about a trained model, written as JSON and as Markdown."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

INTENDED_USE = (
    "Research and teaching: sorting colour fundus photographs into normal, cataract, glaucoma "
    "and retina disease to explore automated screening."
)
NOT_A_MEDICAL_DEVICE = (
    "Research software only. It is not a medical device, is not cleared for clinical use, and must "
    "not be used to diagnose, treat or triage patients."
)
LIMITATIONS = [
    "All retina_disease photos come from one screening programme (EyePACS) and all normal photos "
    "from another (ODIR-5K), so the model may partly recognise the camera instead of the disease.",
    "Only four classes: other eye diseases and rare presentations are forced into one of them.",
    "Photos from cameras, populations or image qualities not in the training data may be scored "
    "less accurately than the cross-validated figures suggest.",
    "A photo with more than one condition gets one label only.",
]


def json_safe(value: Any) -> Any:
    """Replace NaN and infinite floats, which strict JSON cannot hold, with None, at any depth.

    Metrics are NaN where they are undefined, such as the sensitivity of a class that a source
    does not contain.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


# Plots of the pooled out-of-fold predictions that a cross-validation report folder contains.
CROSS_VALIDATION_PLOTS = ("confusion_matrix.png", "roc.png")


def add_cross_validation(card: dict[str, Any], cv_report: Path, plots_dir: Path | None) -> None:
    """Copy the summary of cv_report (a cv.json) into card, and its plots into plots_dir if given.

    The calibration and referral entries are also set at the top level, where serving reads them.
    """
    summary = json.loads(cv_report.read_text(encoding="utf-8"))["summary"]
    card["cross_validation"] = summary
    for key in ("calibration", "referral"):
        if key in summary:
            card[key] = summary[key]

    if plots_dir is None:
        return
    for plot in CROSS_VALIDATION_PLOTS:
        if (cv_report.parent / plot).is_file():
            shutil.copyfile(cv_report.parent / plot, plots_dir / plot)


def write_model_card(card: dict[str, Any], folder: Path) -> None:
    """Write card as model_card.json and model_card.md into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(card), indent=2, sort_keys=False, allow_nan=False)
    (folder / "model_card.json").write_text(text + "\n", encoding="utf-8")
    (folder / "model_card.md").write_text(render_model_card(card), encoding="utf-8")


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| metric | value |", "|---|---|"]
    for key in ("n", "accuracy", "balanced_accuracy", "macro_f1", "macro_auc"):
        if key in metrics:
            lines.append(f"| {key} | {_format_value(metrics[key])} |")
    for key in ("sensitivity", "specificity"):
        for name, value in metrics.get(key, {}).items():
            lines.append(f"| {key} {name} | {_format_value(value)} |")
    return lines


def _format_value(value: Any) -> str:
    # A metric is None where it was undefined, such as the sensitivity of a class absent from a fold.
    if value is None or (isinstance(value, dict) and value.get("mean") is None):
        return "–"
    if isinstance(value, dict) and "mean" in value:
        return f"{value['mean']:.3f} ± {value['sd']:.3f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_model_card(card: dict[str, Any]) -> str:
    """Render a model card dictionary as Markdown."""
    lines = [
        f"# Model card: {card.get('name')} {card.get('version')}",
        "",
        f"**{card.get('not_a_medical_device', NOT_A_MEDICAL_DEVICE)}**",
        "",
        "## Model",
        f"- Architecture: {card.get('architecture')}, ImageNet weights, fine-tuned",
        f"- Classes (output order): {', '.join(card.get('classes', []))}",
        f"- Input: {card.get('input_size')} x {card.get('input_size')} RGB, {card.get('input_scaling')}",
        f"- Preprocessing: {card.get('preprocessing')}",
        f"- Test-time passes, logits averaged: {', '.join(card.get('test_time_augmentation', ['original']))}",
        *_describe_networks(card),
        _describe_training_time(card),
        "",
        "## Intended use",
        card.get("intended_use", INTENDED_USE),
        "",
        "## Training data",
    ]
    data = card.get("training_data", {})
    lines.append(f"- {data.get('n', '?')} photographs from {data.get('path', '?')}")
    for label, count in data.get("classes", {}).items():
        lines.append(f"- {label}: {count}")
    for source, count in data.get("sources", {}).items():
        lines.append(f"- source {source}: {count}")

    for title, key in (("Cross-validated quality", "cross_validation"), ("Held-out validation split", "validation")):
        metrics = card.get(key)
        if not metrics:
            continue
        lines += ["", f"## {title}"]
        if metrics.get("description"):
            lines += [metrics["description"], ""]
        lines += _metrics_table(metrics)
        if metrics.get("by_source"):
            lines += ["", "Per source (pooled out-of-fold predictions):", "", "| source | n | accuracy | sensitivity by class present |", "|---|---|---|---|"]
            for source, report in metrics["by_source"].items():
                present = ", ".join(
                    f"{name} {value:.3f}" for name, value in report["sensitivity"].items() if value is not None and value == value
                )
                lines.append(f"| {source} | {report['n']} | {report['accuracy']:.3f} | {present} |")

    calibration = card.get("calibration")
    referral = card.get("referral")
    if calibration and referral:
        lines += [
            "",
            "## Calibration and referral",
            f"Logits are divided by temperature {calibration['temperature']:.3f} before softmax, fitted on the "
            f"pooled out-of-fold predictions. Expected calibration error: {calibration['ece_before']:.3f} before, "
            f"{calibration['ece_after']:.3f} after.",
            "",
            f"A prediction whose top probability is below {referral['threshold']:.3f} has status \"uncertain\". On the "
            f"out-of-fold predictions that leaves {referral['coverage']:.1%} of photos with status \"ok\", at accuracy "
            f"{referral['accuracy_answered']:.3f}.",
        ]

    speed = card.get("speed")
    if speed:
        members = len(card.get("members", []))
        network_pass = f"one pass through all {members} members" if members else "one network pass"
        lines += [
            "",
            "## Speed",
            f"On {speed['machine']} with ONNX Runtime {speed['onnxruntime']}, {speed['threads']} threads, batch "
            f"{speed['batch_size']}: {network_pass} takes {speed['network_pass_ms_median']:.1f} ms (median, "
            f"95th percentile {speed['network_pass_ms_p95']:.1f} ms). {_describe_passes(len(speed['test_time_passes']))} "
            f"takes {speed['inference_ms_median']:.1f} ms, and a photo from decoding to result "
            f"{speed['total_ms_median']:.1f} ms ({speed['photos']}). Measured by `{speed['command']}`.",
        ]

    lines += ["", "## Limitations", *[f"- {item}" for item in card.get("limitations", LIMITATIONS)], ""]
    return "\n".join(lines)


def _describe_networks(card: dict[str, Any]) -> list[str]:
    """Return card lines for the network, or for each member network of an ensemble."""
    members = card.get("members")
    if not members:
        return _describe_network(card)

    lines = [f"- Ensemble: {card.get('ensemble', 'the logits of the members are averaged')}"]
    for index, member in enumerate(members, start=1):
        lines.append(f"- Member {index}: {member.get('name')} {member.get('version')}, {member.get('architecture')}")
        lines += [f"  {line}" for line in _describe_network(member)]
        lines.append(f"  - Trained in {member.get('training_seconds', 0) / 60:.1f} minutes on {member.get('training_hardware')}")
    return lines


def _describe_training_time(card: dict[str, Any]) -> str:
    minutes = card.get("training_seconds", 0) / 60
    if card.get("members"):
        return f"- The members trained for {minutes:.1f} minutes in all; merged {card.get('exported_at')}"
    return f"- Training took {minutes:.1f} minutes on {card.get('training_hardware')}; exported {card.get('exported_at')}"


def _describe_network(card: dict[str, Any]) -> list[str]:
    return [
        f"- Field-of-view mask: {_describe_mask(card.get('field_of_view_mask_radius', 0.0))}",
        f"- Local contrast: {'the network subtracts a Gaussian-blurred copy of its input (Graham)' if card.get('local_contrast') else 'none'}",
        f"- Colour balance: {'the network scales each channel to a fixed mean colour inside the field of view' if card.get('colour_balance') else 'none'}",
        *_describe_training(card.get("training_config")),
    ]


def _describe_mask(radius: float) -> str:
    if not radius:
        return "none"
    return f"the network blacks out everything outside {radius:.0%} of the field of view's radius"


def _describe_training(config: dict[str, Any] | None) -> list[str]:
    """Return card lines that describe the schedule and the augmentation of a training configuration."""
    if not config:
        return []

    schedule = (
        f"- Training: {config.get('epochs')} epochs of AdamW at learning rate {config.get('learning_rate')}, "
        f"batch {config.get('batch_size')}, stem and {config.get('frozen_blocks')} blocks frozen, "
        f"{'class-weighted ' if config.get('class_balanced_loss') else ''}cross-entropy with label smoothing "
        f"{config.get('label_smoothing')}"
    )
    if not config.get("augment", True):
        return [schedule, "- Training augmentation: none"]

    changes = ["horizontal flips", "rotation", "scale", "brightness, contrast, gamma and hue", "blur or JPEG compression"]
    if config.get("camera_jitter"):
        changes.append("wider camera changes (colour shift, downscaling, sharpening, noise)")
    if config.get("amplitude_mix"):
        changes.append(f"Fourier amplitude mix with another photo on {config['amplitude_mix']:.0%} of photos")
    if config.get("channel_gain"):
        changes.append(f"per-channel colour gains up to {config['channel_gain']:.0%} on half of the photos")
    if config.get("sensor_noise"):
        changes.append(f"sensor noise up to {config['sensor_noise']:g} grey levels on half of the photos")
    if config.get("jpeg_quality"):
        changes.append(f"JPEG recompression at quality {config['jpeg_quality']} to 95 on half of the photos")
    return [schedule, f"- Training augmentation: {', '.join(changes)}"]


def _describe_passes(count: int) -> str:
    return f"Inference for one photo ({count} pass{'' if count == 1 else 'es'}, with softmax)"
