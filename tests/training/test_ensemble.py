"""Ensembles: merged ONNX graphs that average logits, and cv reports scored as one ensemble."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason='ensemble tests need the [train] extra: pip install -e ".[train]" torch==2.13.0')
pytest.importorskip("torch", reason='ensemble tests need the [train] extra: pip install -e ".[train]" torch==2.13.0')

import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from eyescreen.cli import main  # noqa: E402
from eyescreen.errors import DatasetError, ModelLoadError  # noqa: E402
from eyescreen.inference.session import ModelSession  # noqa: E402
from eyescreen.labels import CLASSES  # noqa: E402
from eyescreen.training.ensemble import average_holdouts, average_reports, merge_graphs, merge_models  # noqa: E402

IMAGE_SIZE = 16


def write_member(folder: Path, seed: int, *, image_size: int = IMAGE_SIZE, name: str = "member") -> Path:
    """Write a small real ONNX classifier: mean colour of the photo -> linear layer -> 4 logits."""
    rng = np.random.default_rng(seed)
    weights = helper.make_tensor("weights", TensorProto.FLOAT, [3, len(CLASSES)], rng.standard_normal(3 * len(CLASSES)).tolist())
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [len(CLASSES)], rng.standard_normal(len(CLASSES)).tolist())
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("MatMul", ["features", "weights"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, image_size, image_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(CLASSES)])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    card = {
        "name": name,
        "version": f"seed-{seed}",
        "architecture": "mean colour, linear",
        "classes": list(CLASSES),
        "input_size": image_size,
        "test_time_augmentation": ["original", "horizontal_flip"],
        "field_of_view_mask_radius": 0.9,
        "training_seconds": 60.0 * seed,
        "training_hardware": f"x86_64 CPU, {seed} threads",
        "training_config": {"epochs": 12, "sensor_noise": 8.0, "channel_gain": 0.15, "jpeg_quality": 30},
    }
    (folder / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


def test_merged_model_returns_mean_of_member_logits(tmp_path: Path) -> None:
    members = [write_member(tmp_path / f"m{seed}", seed) for seed in (1, 2, 3)]

    card = merge_models(members, tmp_path / "ensemble", version="test")

    merged = ModelSession.from_dir(tmp_path / "ensemble")
    batch = np.random.default_rng(7).uniform(-1, 1, (5, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    expected = np.mean([ModelSession.from_dir(folder).logits(batch) for folder in members], axis=0)
    np.testing.assert_allclose(merged.logits(batch), expected, atol=1e-5)
    assert merged.passes == ("original", "horizontal_flip")
    assert merged.version == "test"
    assert [member["version"] for member in card["members"]] == ["seed-1", "seed-2", "seed-3"]
    assert card["training_seconds"] == 360.0
    assert card["onnx_max_logit_difference"] < 1e-5


def test_merged_model_card_describes_each_member(tmp_path: Path) -> None:
    members = [write_member(tmp_path / f"m{seed}", seed, name=f"net{seed}") for seed in (1, 2)]

    merge_models(members, tmp_path / "ensemble")

    text = (tmp_path / "ensemble" / "model_card.md").read_text()
    assert "- Member 1: net1 seed-1, mean colour, linear" in text
    assert "- Member 2: net2 seed-2, mean colour, linear" in text
    assert text.count("everything outside 90% of the field of view's radius") == 2
    assert text.count("JPEG recompression at quality 30 to 95") == 2
    assert "  - Trained in 2.0 minutes on x86_64 CPU, 2 threads" in text
    assert "- The members trained for 3.0 minutes in all" in text


def test_merged_card_fills_settings_older_members_lack(tmp_path: Path) -> None:
    members = [write_member(tmp_path / f"m{seed}", seed) for seed in (1, 2)]
    card = json.loads((members[0] / "model_card.json").read_text())
    card["training_config"] = {"epochs": 12, "sensor_noise": 8.0}
    (members[0] / "model_card.json").write_text(json.dumps(card))

    merged = merge_models(members, tmp_path / "ensemble")

    assert merged["members"][0]["training_config"]["channel_gain"] == 0.0
    assert merged["members"][0]["training_config"]["jpeg_quality"] == 0
    assert merged["members"][1]["training_config"]["channel_gain"] == 0.15


def test_merge_copies_calibration_from_cv_report(tmp_path: Path) -> None:
    members = [write_member(tmp_path / f"m{seed}", seed) for seed in (1, 2)]
    reports = [write_report(tmp_path / "a", random_probabilities(1)), write_report(tmp_path / "b", random_probabilities(2))]
    summary = average_reports(reports, tmp_path / "pair-cv")
    assert summary is not None

    card = merge_models(members, tmp_path / "ensemble", cv_report=tmp_path / "pair-cv" / "cv.json")

    assert card["cross_validation"]["balanced_accuracy"] == summary["balanced_accuracy"]
    merged = ModelSession.from_dir(tmp_path / "ensemble")
    assert merged.temperature == pytest.approx(summary["calibration"]["temperature"])
    assert merged.referral_threshold == pytest.approx(summary["referral"]["threshold"])
    assert (tmp_path / "ensemble" / "roc.png").is_file()
    assert "## Calibration and referral" in (tmp_path / "ensemble" / "model_card.md").read_text()


def test_merge_rejects_members_with_other_input_size(tmp_path: Path) -> None:
    first = write_member(tmp_path / "a", 1)
    second = write_member(tmp_path / "b", 2, image_size=IMAGE_SIZE * 2)

    with pytest.raises(ModelLoadError, match=r"the members disagree on input_size \(.*a: 16, .*b: 32\)"):
        merge_models([first, second], tmp_path / "ensemble")
    assert not (tmp_path / "ensemble" / "model.onnx").exists()


def test_merge_graphs_names_the_input_shapes(tmp_path: Path) -> None:
    first = onnx.load(write_member(tmp_path / "a", 1) / "model.onnx")
    second = onnx.load(write_member(tmp_path / "b", 2, image_size=IMAGE_SIZE * 2) / "model.onnx")

    with pytest.raises(ModelLoadError, match=r"member 1 takes input \['batch', 3, 32, 32\], member 0 takes \['batch', 3, 16, 16\]"):
        merge_graphs([first, second])


def test_merge_needs_two_members(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="at least 2 members, got 1"):
        merge_graphs([onnx.load(write_member(tmp_path / "a", 1) / "model.onnx")])


def test_merge_rejects_folder_without_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(ModelLoadError, match="'.*empty' is not a model folder: it needs model.onnx and model_card.json"):
        merge_models([write_member(tmp_path / "a", 1), tmp_path / "empty"], tmp_path / "ensemble")


def test_cli_ensemble_model_predicts(fundus4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    members = [str(write_member(tmp_path / f"m{seed}", seed)) for seed in (1, 2)]

    status = main(["ensemble", *members, "--out", str(tmp_path / "ensemble"), "--version", "pair"])

    assert status == 0
    assert f"ensemble of 2 written to {tmp_path / 'ensemble' / 'model.onnx'}" in capsys.readouterr().out
    photo = next((fundus4_dir / "glaucoma").iterdir())
    assert main(["predict", "--json", "--model", str(tmp_path / "ensemble"), str(photo)]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["model"]["version"] == "pair"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


# Two cv reports over six photos in two folds.
PHOTOS = [
    ("normal/a.jpg", "normal", "odir", "p1", 0),
    ("cataract/b.jpg", "cataract", "odir", "p2", 0),
    ("glaucoma/c.jpg", "glaucoma", "cataractdataset", "p3", 0),
    ("retina_disease/d.jpg", "retina_disease", "eyepacs", "p4", 1),
    ("normal/e.jpg", "normal", "odir", "p5", 1),
    ("glaucoma/f.jpg", "glaucoma", "odir", "p6", 1),
]


def write_report(folder: Path, probabilities: np.ndarray, *, folds_done: tuple[int, ...] = (0, 1), shift: int = 0) -> Path:
    """Write plan.json and fold-N/predictions.csv as `eyescreen cv` does; shift moves photos to other folds."""
    assignment = {path: (fold + shift) % 2 for path, _, _, _, fold in PHOTOS}
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps({"folds": 2, "config": {"seed": 0}, "assignment": assignment}), encoding="utf-8")
    for fold in folds_done:
        (folder / f"fold-{fold}").mkdir()
        with (folder / f"fold-{fold}" / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "source", "patient_id", *CLASSES])
            # Reversed order: the ensemble must match photos by path, not by row.
            for index in reversed(range(len(PHOTOS))):
                path, label, source, patient, _ = PHOTOS[index]
                if assignment[path] == fold:
                    writer.writerow([path, label, source, patient, *(f"{v:.6f}" for v in probabilities[index])])
    return folder


def random_probabilities(seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).standard_normal((len(PHOTOS), len(CLASSES))) * 2
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_average_reports_scores_the_mean_of_logits(tmp_path: Path) -> None:
    first, second = random_probabilities(1), random_probabilities(2)
    reports = [write_report(tmp_path / "a", first), write_report(tmp_path / "b", second)]

    summary = average_reports(reports, tmp_path / "pair")

    assert summary is not None
    assert summary["folds_done"] == 2
    logits = (np.log(first) + np.log(second)) / 2
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    with (tmp_path / "pair" / "fold-1" / "predictions.csv").open(newline="") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    for index, (path, label, source, _, fold) in enumerate(PHOTOS):
        if fold == 1:
            assert rows[path]["label"] == label
            assert rows[path]["source"] == source
            assert [float(rows[path][name]) for name in CLASSES] == pytest.approx(expected[index], abs=2e-6)
    report = (tmp_path / "pair" / "report.md").read_text()
    assert f"Ensemble of {reports[0]} and {reports[1]}, averaging their logits." in report
    assert "## Held-out metrics by epoch" not in report
    assert json.loads((tmp_path / "pair" / "plan.json").read_text())["members"][1]["report"] == str(reports[1])


def test_ensemble_cv_waits_for_missing_folds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_report(tmp_path / "a", random_probabilities(1))
    second = write_report(tmp_path / "b", random_probabilities(2), folds_done=(0,))

    assert main(["ensemble-cv", str(first), str(second), "--out", str(tmp_path / "pair")]) == 0

    assert f"some folds are not done in every report; partial report in {tmp_path / 'pair' / 'report.md'}" in capsys.readouterr().out
    assert "Folds finished: 1 of 2." in (tmp_path / "pair" / "report.md").read_text()

    # Once the second report has fold 1, a rerun scores both folds.
    write_report(tmp_path / "b-done", random_probabilities(2))
    (tmp_path / "b-done" / "fold-1").rename(second / "fold-1")
    assert main(["ensemble-cv", str(first), str(second), "--out", str(tmp_path / "pair")]) == 0
    assert "ensemble of 2: balanced accuracy" in capsys.readouterr().out
    assert "Folds finished: 2 of 2." in (tmp_path / "pair" / "report.md").read_text()


def test_average_reports_rejects_other_folds(tmp_path: Path) -> None:
    reports = [write_report(tmp_path / "a", random_probabilities(1)), write_report(tmp_path / "b", random_probabilities(2), shift=1)]

    with pytest.raises(DatasetError, match=r"b split the photos into other folds than .*a: average only reports made with the same --folds and --seed"):
        average_reports(reports, tmp_path / "pair")


def test_ensemble_cv_rejects_non_report_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = write_report(tmp_path / "a", random_probabilities(1))

    status = main(["ensemble-cv", str(report), str(tmp_path), "--out", str(tmp_path / "pair")])

    assert status == 2
    assert f"plan.json not found: '{tmp_path}' is not an `eyescreen cv` report folder" in capsys.readouterr().err



def write_holdout(folder: Path, probabilities: np.ndarray, *, seed: int, sources: tuple[str, ...] = ("cataractdataset", "odir")) -> Path:
    """Write holdout.json and without-SOURCE/predictions.csv as `eyescreen source-holdout` does.

    cataractdataset holds out glaucoma photo c; odir holds out cataract photo b and glaucoma
    photo f. Sources outside `sources` have a result but no predictions.csv, as in reports
    written before predictions were kept.
    """
    holdouts = []
    for source in ("cataractdataset", "odir"):
        held_rows = [index for index, photo in enumerate(PHOTOS) if photo[2] == source and photo[1] in ("cataract", "glaucoma")]
        classes = {PHOTOS[index][1]: {"n": 1, "sensitivity": 0.0, "predicted": {}, "trained_on": 7} for index in held_rows}
        holdouts.append({"held_out_source": source, "classes": classes})
        if source not in sources:
            continue
        (folder / f"without-{source}").mkdir(parents=True)
        with (folder / f"without-{source}" / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "source", "patient_id", *CLASSES])
            for index in reversed(held_rows):
                path, label, photo_source, patient, _ = PHOTOS[index]
                writer.writerow([path, label, photo_source, patient, *(f"{v:.6f}" for v in probabilities[index])])
    summary = {"config": {"seed": seed}, "shared_classes": {"glaucoma": ["cataractdataset", "odir"]}, "holdouts": holdouts}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "holdout.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_average_holdouts_mean_of_logits(tmp_path: Path) -> None:
    # Photo b (cataract, odir): the first member predicts cataract at 0.6, the second normal
    # at 0.7. The mean of their logits predicts normal, with these probabilities.
    first, second = random_probabilities(1), random_probabilities(2)
    first[1], second[1] = [0.3, 0.6, 0.05, 0.05], [0.7, 0.2, 0.05, 0.05]
    reports = [write_holdout(tmp_path / "a", first, seed=1), write_holdout(tmp_path / "b", second, seed=2, sources=("odir",))]

    summary = average_holdouts(reports, tmp_path / "pair")

    # cataractdataset has no predictions in the second report, so only odir is averaged.
    assert [holdout["held_out_source"] for holdout in summary["holdouts"]] == ["odir"]
    assert [member["config"]["seed"] for member in summary["members"]] == [1, 2]
    cataract = summary["holdouts"][0]["classes"]["cataract"]
    assert cataract == {"n": 1, "sensitivity": 0.0, "predicted": {"normal": 1, "cataract": 0, "glaucoma": 0, "retina_disease": 0}, "trained_on": 7}
    with (tmp_path / "pair" / "without-odir" / "predictions.csv").open(newline="") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    mean = np.sqrt(np.array([0.3 * 0.7, 0.6 * 0.2, 0.05 * 0.05, 0.05 * 0.05]))
    assert [float(rows["cataract/b.jpg"][name]) for name in CLASSES] == pytest.approx(mean / mean.sum(), abs=2e-6)
    report = (tmp_path / "pair" / "report.md").read_text()
    assert f"Ensemble of {reports[0]} and {reports[1]}, averaging their logits." in report
    assert "| odir | cataract | 1 | 7 | 0.000 | normal 1 |" in report


def test_ensemble_holdout_no_common_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_holdout(tmp_path / "a", random_probabilities(1), seed=1, sources=("cataractdataset",))
    second = write_holdout(tmp_path / "b", random_probabilities(2), seed=2, sources=("odir",))

    assert main(["ensemble-holdout", str(first), str(second), "--out", str(tmp_path / "pair")]) == 2

    error = capsys.readouterr().err
    assert "no held-out source has predictions.csv in every report" in error
    assert "rerun `eyescreen source-holdout` for them with this version" in error
    assert not (tmp_path / "pair").exists()


def test_ensemble_holdout_rejects_cv_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holdout = write_holdout(tmp_path / "a", random_probabilities(1), seed=1)
    cv_report = write_report(tmp_path / "cv", random_probabilities(2))

    assert main(["ensemble-holdout", str(holdout), str(cv_report), "--out", str(tmp_path / "pair")]) == 2

    assert f"holdout.json not found: '{cv_report}' is not an `eyescreen source-holdout` report folder" in capsys.readouterr().err
