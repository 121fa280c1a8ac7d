"""Ensembles: merge exported models into one ONNX graph, and score the mean of cv or hold-out reports.

A merged model feeds one input to every member and returns the mean of their logits, so the
server, the CLI and the model card treat it as one model.onnx. `average_reports` gives the
cross-validation of that ensemble from the members' out-of-fold predictions, and
`average_holdouts` its leave-one-source-out from the members' hold-out predictions: averaging
the members' log-probabilities is the same as the softmax of their averaged logits.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, compose, helper

from eyescreen.errors import DatasetError, ModelLoadError
from eyescreen.evaluation.card import (
    INTENDED_USE,
    LIMITATIONS,
    NOT_A_MEDICAL_DEVICE,
    add_cross_validation,
    json_safe,
    write_model_card,
)
from eyescreen.evaluation.metrics import classification_report
from eyescreen.evaluation.predictions import read_aligned_predictions, write_prediction_rows
from eyescreen.inference.session import CARD_FILE, MODEL_FILE, ModelSession
from eyescreen.labels import CLASSES
from eyescreen.training.config import TrainConfig
from eyescreen.training.cv import write_report
from eyescreen.training.export import ExportMismatchError
from eyescreen.training.source_holdout import score_holdout, write_holdout_report

logger = logging.getLogger(__name__)

# Card fields that change what the network receives or how often it runs. Members must agree
# on them, because the merged graph has one input and the session applies the passes to it.
SHARED_CARD_FIELDS = ("classes", "input_size", "test_time_augmentation")
# Probabilities in predictions.csv have 6 decimals, so a 0.000000 needs this floor before the logarithm.
PROBABILITY_FLOOR = 1e-9
CHECK_BATCH = 2
# Largest tolerated difference between the merged model's logits and the mean of its members'.
LOGIT_TOLERANCE = 1e-4


def merge_graphs(members: Sequence[onnx.ModelProto]) -> onnx.ModelProto:
    """Return one graph that feeds its input to every member and outputs the mean of their logits."""
    if len(members) < 2:
        raise ModelLoadError(f"an ensemble needs at least 2 members, got {len(members)}: pass two or more model folders")
    first = members[0]
    for index, member in enumerate(members[1:], start=1):
        if member.graph.input[0].type != first.graph.input[0].type:
            raise ModelLoadError(f"member {index} takes input {_input_shape(member)}, member 0 takes {_input_shape(first)}")
        if list(member.opset_import) != list(first.opset_import):
            raise ModelLoadError(f"member {index} uses ONNX opsets {list(member.opset_import)}, member 0 uses {list(first.opset_import)}")

    prefixed = [compose.add_prefix(member, f"member{index}/") for index, member in enumerate(members)]
    image, logits = first.graph.input[0], first.graph.output[0]

    nodes = [helper.make_node("Identity", [image.name], [member.graph.input[0].name]) for member in prefixed]
    for member in prefixed:
        nodes.extend(member.graph.node)
    nodes.append(helper.make_node("Sum", [member.graph.output[0].name for member in prefixed], ["member_logit_sum"]))
    nodes.append(helper.make_node("Mul", ["member_logit_sum", "member_weight"], [logits.name]))

    initializers = [initializer for member in prefixed for initializer in member.graph.initializer]
    initializers.append(helper.make_tensor("member_weight", TensorProto.FLOAT, [], [1.0 / len(members)]))
    graph = helper.make_graph(nodes, "ensemble", [image], [logits], initializer=initializers)
    merged = helper.make_model(graph, opset_imports=first.opset_import)
    merged.ir_version = first.ir_version
    onnx.checker.check_model(merged)
    return merged


def _input_shape(model: onnx.ModelProto) -> list[int | str]:
    """Return the first input's shape, with a name for each dynamic axis."""
    return [axis.dim_value or axis.dim_param for axis in model.graph.input[0].type.tensor_type.shape.dim]


def merge_models(
    member_dirs: Sequence[Path],
    out_dir: Path,
    *,
    name: str = "eyescreen-fundus4",
    version: str | None = None,
    cv_report: Path | None = None,
) -> dict[str, Any]:
    """Merge the exported models in member_dirs into out_dir, write its model card and return the card.

    The card lists each member's card facts. With cv_report (cv.json of `average_reports`), it
    also carries the ensemble's cross-validation, temperature and referral threshold.
    """
    cards = [_read_card(folder) for folder in member_dirs]
    for field in SHARED_CARD_FIELDS:
        values = [card.get(field) for card in cards]
        if any(value != values[0] for value in values):
            described = ", ".join(f"{folder}: {value}" for folder, value in zip(member_dirs, values))
            raise ModelLoadError(f"the members disagree on {field} ({described}); an ensemble needs the same {field} in every member")

    # 1. Merge the graphs and check the result against the members on random input.
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_FILE
    onnx.save(merge_graphs([onnx.load(folder / MODEL_FILE) for folder in member_dirs]), model_path)
    difference = check_merged_model(model_path, [folder / MODEL_FILE for folder in member_dirs])

    # 2. The card: shared facts from the first member, the rest per member.
    first = cards[0]
    card: dict[str, Any] = {
        "name": name,
        "version": version or datetime.now(timezone.utc).strftime("%Y.%m.%d"),
        "architecture": f"ensemble of {len(cards)}: " + ", ".join(str(card.get("architecture", "unknown")) for card in cards),
        "classes": first.get("classes", list(CLASSES)),
        "input_size": first.get("input_size"),
        "input_scaling": first.get("input_scaling"),
        "preprocessing": first.get("preprocessing"),
        "test_time_augmentation": first.get("test_time_augmentation", ["original"]),
        "ensemble": "one ONNX graph that feeds the photo to every member and averages their logits",
        "members": [_member_summary(card) for card in cards],
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training_seconds": round(sum(float(card.get("training_seconds", 0.0)) for card in cards), 1),
        "training_data": first.get("training_data", {}),
        "onnx_max_logit_difference": difference,
        "intended_use": INTENDED_USE,
        "not_a_medical_device": NOT_A_MEDICAL_DEVICE,
        "limitations": LIMITATIONS,
    }
    if cv_report is not None:
        add_cross_validation(card, cv_report, out_dir)

    write_model_card(card, out_dir)
    logger.info("merged %d members into %s (%.1f MB)", len(cards), model_path, model_path.stat().st_size / 1e6)
    return card


def check_merged_model(merged_path: Path, member_paths: Sequence[Path]) -> float:
    """Compare the merged model's logits with the mean of the members' on random input.

    Returns the largest absolute difference, and raises ExportMismatchError above
    LOGIT_TOLERANCE.
    """
    merged = ModelSession.from_file(merged_path, threads=2)
    batch = np.random.default_rng(0).standard_normal((CHECK_BATCH, 3, merged.image_size, merged.image_size)).astype(np.float32)
    expected = np.mean([ModelSession.from_file(path, threads=2).logits(batch) for path in member_paths], axis=0)
    difference = float(np.abs(merged.logits(batch) - expected).max())
    if difference > LOGIT_TOLERANCE:
        raise ExportMismatchError(
            f"the merged model's logits differ from the mean of its members' by {difference:.2e} (tolerance {LOGIT_TOLERANCE:.0e})"
        )
    return difference


def average_reports(report_dirs: Sequence[Path], out_dir: Path) -> dict[str, Any] | None:
    """Write the cross-validation report of the ensemble of several `eyescreen cv` reports.

    Every report must come from the same plan (folds and seed), so that its fold N scored the
    same photos. A fold is averaged once every report has it. Returns the summary when every
    fold is done, else None.
    """
    if len(report_dirs) < 2:
        raise DatasetError(f"an ensemble needs at least 2 reports, got {len(report_dirs)}: pass two or more `eyescreen cv` folders")
    plans = [_read_report_file(folder, "plan.json", "cv") for folder in report_dirs]
    for folder, plan in zip(report_dirs[1:], plans[1:]):
        if plan["folds"] != plans[0]["folds"] or plan["assignment"] != plans[0]["assignment"]:
            raise DatasetError(
                f"{folder} split the photos into other folds than {report_dirs[0]}: "
                "average only reports made with the same --folds and --seed"
            )
    folds = int(plans[0]["folds"])

    out_dir.mkdir(parents=True, exist_ok=True)
    plan = {
        "folds": folds,
        "members": [{"report": str(folder), "config": member["config"]} for folder, member in zip(report_dirs, plans)],
        "assignment": plans[0]["assignment"],
    }
    (out_dir / "plan.json").write_text(json.dumps(plan, indent=1) + "\n", encoding="utf-8")

    for fold in range(folds):
        if not all((folder / f"fold-{fold}" / "predictions.csv").is_file() for folder in report_dirs):
            logger.info("fold %d is not done in every report, skipping", fold)
            continue

        rows, labels, member_probabilities = read_aligned_predictions(
            [folder / f"fold-{fold}" / "predictions.csv" for folder in report_dirs],
            hint="average only reports made with the same --folds and --seed",
        )
        probabilities = mean_of_logits(member_probabilities)

        fold_dir = out_dir / f"fold-{fold}"
        write_prediction_rows(fold_dir / "predictions.csv", rows, probabilities)
        report = classification_report(labels, probabilities, CLASSES)
        seconds = sum(_fold_seconds(folder, fold) for folder in report_dirs)
        fold_result = {"fold": fold, "seconds": seconds, "history": [], **report.to_dict()}
        (fold_dir / "result.json").write_text(json.dumps(fold_result, indent=2) + "\n", encoding="utf-8")

    baselines = next((folder / "baselines.json" for folder in report_dirs if (folder / "baselines.json").is_file()), None)
    if baselines is not None:
        shutil.copyfile(baselines, out_dir / "baselines.json")
    members = " and ".join(str(folder) for folder in report_dirs)
    return write_report(out_dir, folds, description=f"Ensemble of {members}, averaging their logits.")


def mean_of_logits(member_probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Return the softmax of the members' mean logits, from their (N, C) probabilities.

    A logit and the log-probability differ by a constant per photo, so the mean of the
    log-probabilities gives the same softmax as the mean of the logits.
    """
    log_probabilities = np.mean([np.log(np.maximum(p, PROBABILITY_FLOOR)) for p in member_probabilities], axis=0)
    probabilities = np.exp(log_probabilities - log_probabilities.max(axis=1, keepdims=True))
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def average_holdouts(report_dirs: Sequence[Path], out_dir: Path) -> dict[str, Any]:
    """Write the leave-one-source-out report of the ensemble of several `eyescreen source-holdout` reports.

    A held-out source is averaged once every report has its predictions.csv. Returns the summary
    written to holdout.json.
    """
    if len(report_dirs) < 2:
        raise DatasetError(
            f"an ensemble needs at least 2 reports, got {len(report_dirs)}: pass two or more `eyescreen source-holdout` folders"
        )
    summaries = [_read_report_file(folder, "holdout.json", "source-holdout") for folder in report_dirs]
    sources = []
    for holdout in summaries[0]["holdouts"]:
        source = holdout["held_out_source"]
        prediction_paths = [folder / f"without-{source}" / "predictions.csv" for folder in report_dirs]
        missing = [str(path) for path in prediction_paths if not path.is_file()]
        if missing:
            logger.info("holding out %s: no predictions in %s, skipping", source, ", ".join(missing))
        else:
            sources.append(source)
    if not sources:
        raise DatasetError(
            f"no held-out source has predictions.csv in every report of {', '.join(str(folder) for folder in report_dirs)}: "
            "rerun `eyescreen source-holdout` for them with this version"
        )

    results = []
    for source in sources:
        rows, labels, member_probabilities = read_aligned_predictions(
            [folder / f"without-{source}" / "predictions.csv" for folder in report_dirs],
            hint="average only reports made from the same data folder",
        )
        probabilities = mean_of_logits(member_probabilities)
        first = next(holdout for holdout in summaries[0]["holdouts"] if holdout["held_out_source"] == source)
        trained_on = {label: row["trained_on"] for label, row in first["classes"].items()}
        result = score_holdout(source, list(trained_on), labels, probabilities, trained_on)

        run_dir = out_dir / f"without-{source}"
        write_prediction_rows(run_dir / "predictions.csv", rows, probabilities)
        (run_dir / "result.json").write_text(json.dumps(json_safe(result), indent=2) + "\n", encoding="utf-8")
        results.append(result)

    summary = {
        "members": [{"report": str(folder), "config": member["config"]} for folder, member in zip(report_dirs, summaries)],
        "shared_classes": summaries[0]["shared_classes"],
        "holdouts": results,
    }
    members = " and ".join(str(folder) for folder in report_dirs)
    write_holdout_report(out_dir, summary, description=f"Ensemble of {members}, averaging their logits.")
    return summary


def _read_card(folder: Path) -> dict[str, Any]:
    card_path = folder / CARD_FILE
    if not card_path.is_file() or not (folder / MODEL_FILE).is_file():
        raise ModelLoadError(f"{str(folder)!r} is not a model folder: it needs {MODEL_FILE} and {CARD_FILE}")
    return json.loads(card_path.read_text(encoding="utf-8"))


def _member_summary(card: dict[str, Any]) -> dict[str, Any]:
    """Return the facts of a member's card that describe its network and training."""
    keys = (
        "name",
        "version",
        "architecture",
        "field_of_view_mask_radius",
        "local_contrast",
        "colour_balance",
        "training_seconds",
        "training_hardware",
        "exported_at",
    )
    summary = {key: card[key] for key in keys if key in card}
    if "training_config" in card:
        # A config saved before a setting existed gets the value it trained with, so that every
        # member lists every setting.
        summary["training_config"] = TrainConfig.from_dict(card["training_config"]).to_dict()
    return summary


def _read_report_file(folder: Path, name: str, command: str) -> dict[str, Any]:
    """Read the JSON file `name` that `eyescreen {command}` writes into a report folder."""
    path = folder / name
    if not path.is_file():
        raise DatasetError(f"{path} not found: {str(folder)!r} is not an `eyescreen {command}` report folder")
    return json.loads(path.read_text(encoding="utf-8"))


def _fold_seconds(folder: Path, fold: int) -> float:
    result_path = folder / f"fold-{fold}" / "result.json"
    if not result_path.is_file():
        return 0.0
    return float(json.loads(result_path.read_text(encoding="utf-8")).get("seconds", 0.0))
