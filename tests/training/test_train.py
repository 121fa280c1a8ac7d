"""A short real training run on a few fundus4 photos: train, export, resume, cross-validate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='training tests need the [train] extra: pip install -e ".[train]" torch==2.13.0')

from eyescreen.cli import main  # noqa: E402
from eyescreen.errors import DatasetError  # noqa: E402
from eyescreen.inference.session import ModelSession  # noqa: E402
from eyescreen.labels import CLASSES  # noqa: E402
from eyescreen.training.config import TrainConfig  # noqa: E402
from eyescreen.training.cv import run_cross_validation  # noqa: E402
from eyescreen.training.run import run_training  # noqa: E402
from eyescreen.training.source_holdout import run_source_holdout  # noqa: E402

PER_CLASS = 4
IMAGE_SIZE = 96


@pytest.fixture(scope="module")
def small_manifest(fundus4_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of PER_CLASS photos per class from fundus4, both frame types included."""
    with (fundus4_dir / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = []
    for name in CLASSES:
        of_class = [row for row in rows if row["label"] == name]
        # Take the first and last rows, so cataract and glaucoma mix their two sources.
        chosen += of_class[: PER_CLASS // 2] + of_class[-(PER_CLASS - PER_CLASS // 2) :]

    folder = tmp_path_factory.mktemp("small")
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "source", "patient_id"])
        writer.writeheader()
        for row in chosen:
            writer.writerow(
                {"path": str(fundus4_dir / row["path"]), "label": row["label"], "source": row["source"], "patient_id": row["patient_id"]}
            )
    return folder


def small_config(**overrides: object) -> TrainConfig:
    values = {"image_size": IMAGE_SIZE, "epochs": 2, "batch_size": 8, "val_fraction": 0.25, "seed": 1}
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained_run(small_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    card = run_training(small_manifest, out, small_config(), cache_dir=out / "cache", version="test")
    return out, card


def test_run_training_writes_model_card_and_plots(trained_run: tuple[Path, dict]) -> None:
    out, card = trained_run

    for name in ("model.onnx", "model_card.json", "model_card.md", "train_config.json", "confusion_matrix.png", "roc.png"):
        assert (out / name).is_file(), name
    assert card["classes"] == list(CLASSES)
    assert card["input_size"] == IMAGE_SIZE
    assert card["validation"]["n"] > 0
    assert len(card["history"]) == 2
    assert "not a medical device" in (out / "model_card.md").read_text()
    # Strict JSON: undefined metrics must be written as null, never as NaN.
    json.loads((out / "model_card.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the card"))


def test_exported_onnx_matches_pytorch(trained_run: tuple[Path, dict]) -> None:
    _, card = trained_run

    assert card["onnx_max_probability_difference"] < 1e-4


def test_exported_model_loads_with_dynamic_batch(trained_run: tuple[Path, dict]) -> None:
    out, _ = trained_run
    session = ModelSession.from_dir(out)

    for batch in (1, 3):
        probabilities = session.probabilities(np.zeros((batch, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32))
        assert probabilities.shape == (batch, len(CLASSES))
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert session.version == "test"


def test_run_training_resume_continues_from_checkpoint(small_manifest: Path, tmp_path: Path) -> None:
    run_training(small_manifest, tmp_path, small_config(epochs=1), cache_dir=tmp_path / "cache")
    card = run_training(small_manifest, tmp_path, small_config(epochs=2), cache_dir=tmp_path / "cache", resume=True)

    assert [record["epoch"] for record in card["history"]] == [1, 2]


def test_run_training_same_seed_same_weights(small_manifest: Path, tmp_path: Path) -> None:
    config = small_config(epochs=1)
    first = run_training(small_manifest, tmp_path / "a", config, cache_dir=tmp_path / "cache")
    second = run_training(small_manifest, tmp_path / "b", config, cache_dir=tmp_path / "cache")

    assert first["history"][0]["loss"] == pytest.approx(second["history"][0]["loss"], rel=1e-6)


def test_cross_validation_writes_report_and_resumes(small_manifest: Path, tmp_path: Path) -> None:
    config = small_config(epochs=1, val_fraction=0.0)
    partial = run_cross_validation(small_manifest, tmp_path, config, folds=2, only_folds=[0], cache_dir=tmp_path / "cache")

    assert partial is None
    assert (tmp_path / "fold-0" / "result.json").is_file()
    assert "Folds finished: 1 of 2" in (tmp_path / "report.md").read_text()

    summary = run_cross_validation(small_manifest, tmp_path, config, folds=2, cache_dir=tmp_path / "cache")

    assert summary is not None
    assert summary["folds_done"] == 2
    assert summary["n"] == PER_CLASS * len(CLASSES)
    assert set(summary["by_source"]) == {"odir", "eyepacs", "cataractdataset"}
    report = json.loads((tmp_path / "cv.json").read_text())
    assert [fold["fold"] for fold in report["folds"]] == [0, 1]
    assert (tmp_path / "roc.png").is_file()
    assert (tmp_path / "reliability.png").is_file()
    assert summary["calibration"]["temperature"] > 0
    assert 0.0 <= summary["referral"]["threshold"] <= 1.0
    assert set(summary["baselines"]) == {"image_statistics", "linear_probe"}
    report_text = (tmp_path / "report.md").read_text()
    assert "## Baselines on the same folds" in report_text
    assert "## Calibration and referral" in report_text
    fold_model = ModelSession.from_dir(tmp_path / "fold-1")
    assert fold_model.image_size == IMAGE_SIZE


def test_cross_validation_keeps_patients_in_one_fold(small_manifest: Path, tmp_path: Path) -> None:
    run_cross_validation(small_manifest, tmp_path, small_config(epochs=1, val_fraction=0.0), folds=2, only_folds=[0], cache_dir=tmp_path / "cache", with_baselines=False)
    plan = json.loads((tmp_path / "plan.json").read_text())

    with (small_manifest / "manifest.csv").open(newline="") as handle:
        patients = {row["path"]: row["patient_id"] for row in csv.DictReader(handle)}
    fold_of_patient: dict[str, set[int]] = {}
    for path, fold in plan["assignment"].items():
        fold_of_patient.setdefault(patients[path], set()).add(fold)
    assert all(len(folds) == 1 for folds in fold_of_patient.values())


def test_cross_validation_rerun_checks_config(small_manifest: Path, tmp_path: Path) -> None:
    config = small_config(epochs=1, val_fraction=0.0, threads=1)
    run_cross_validation(small_manifest, tmp_path, config, folds=2, only_folds=[0], cache_dir=tmp_path / "cache", with_baselines=False)

    # Another thread count gives the same results, so the rerun resumes.
    run_cross_validation(
        small_manifest, tmp_path, small_config(epochs=1, val_fraction=0.0, threads=2), folds=2, only_folds=[0], cache_dir=tmp_path / "cache", with_baselines=False
    )
    assert json.loads((tmp_path / "plan.json").read_text())["config"]["threads"] == 2

    with pytest.raises(DatasetError, match=r"plan.json was written for another configuration \(epochs 1, now 2; jpeg_quality 30, now 0\)"):
        run_cross_validation(
            small_manifest, tmp_path, small_config(epochs=2, val_fraction=0.0, jpeg_quality=0), folds=2, only_folds=[0], cache_dir=tmp_path / "cache", with_baselines=False
        )


def test_old_plan_matches_recipe_without_gain() -> None:
    from eyescreen.training.cv import _plan_differences

    current = {"folds": 5, "config": small_config(channel_gain=0.0, jpeg_quality=0).to_dict()}
    old_config = {key: value for key, value in current["config"].items() if key not in ("channel_gain", "jpeg_quality")}
    old = {"folds": 5, "config": old_config}

    assert _plan_differences(old, current) == []
    assert _plan_differences(old, {"folds": 5, "config": small_config().to_dict()}) == ["channel_gain 0.0, now 0.15", "jpeg_quality 0, now 30"]


def test_exported_card_lists_mask_and_test_time_passes(trained_run: tuple[Path, dict]) -> None:
    out, card = trained_run

    assert card["field_of_view_mask_radius"] == 0.9
    assert card["test_time_augmentation"] == ["original", "horizontal_flip"]
    assert ModelSession.from_dir(out).passes == ("original", "horizontal_flip")
    assert "Field-of-view mask: the network blacks out everything outside 90%" in (out / "model_card.md").read_text()


def test_source_holdout_tests_only_the_held_out_source(small_manifest: Path, tmp_path: Path) -> None:
    summary = run_source_holdout(small_manifest, tmp_path, small_config(epochs=1, val_fraction=0.0), cache_dir=tmp_path / "cache")

    # The small manifest takes cataract and glaucoma photos from both their sources.
    assert summary["shared_classes"] == {"cataract": ["cataractdataset", "odir"], "glaucoma": ["cataractdataset", "odir"]}
    held_out = {holdout["held_out_source"]: holdout for holdout in summary["holdouts"]}
    assert set(held_out) == {"cataractdataset", "odir"}
    for holdout in held_out.values():
        for row in holdout["classes"].values():
            assert row["n"] == PER_CLASS // 2
            assert sum(row["predicted"].values()) == row["n"]
            assert row["trained_on"] == PER_CLASS // 2
    assert "| odir | glaucoma | 2 | 2 |" in (tmp_path / "report.md").read_text()

    # Each held-out source's photos and probabilities are kept, so that reports can be averaged.
    with (tmp_path / "without-odir" / "predictions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["source"] for row in rows} == {"odir"}
    assert sorted(row["label"] for row in rows) == ["cataract"] * (PER_CLASS // 2) + ["glaucoma"] * (PER_CLASS // 2)
    for row in rows:
        assert sum(float(row[name]) for name in CLASSES) == pytest.approx(1.0, abs=1e-5)
    called = [max(CLASSES, key=lambda name: float(row[name])) for row in rows if row["label"] == "glaucoma"]
    assert {name: called.count(name) for name in CLASSES} == held_out["odir"]["classes"]["glaucoma"]["predicted"]

    # A rerun finds every result written and trains nothing.
    (tmp_path / "cache").rename(tmp_path / "moved-cache")
    again = run_source_holdout(small_manifest, tmp_path, small_config(epochs=1, val_fraction=0.0), cache_dir=tmp_path / "moved-cache")
    assert again["holdouts"] == summary["holdouts"]


def test_source_holdout_runs_one_source(small_manifest: Path, tmp_path: Path) -> None:
    config = small_config(epochs=1, val_fraction=0.0)

    first = run_source_holdout(small_manifest, tmp_path, config, cache_dir=tmp_path / "cache", only_sources=["odir"])

    assert [holdout["held_out_source"] for holdout in first["holdouts"]] == ["odir"]
    assert not (tmp_path / "without-cataractdataset").exists()
    assert "| odir | glaucoma |" in (tmp_path / "report.md").read_text()

    # A run without a source filter keeps odir's result and adds the other source.
    second = run_source_holdout(small_manifest, tmp_path, config, cache_dir=tmp_path / "cache")
    assert [holdout["held_out_source"] for holdout in second["holdouts"]] == ["cataractdataset", "odir"]
    assert second["holdouts"][1] == first["holdouts"][0]


def test_ensemble_holdout_averages_two_recipes(small_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = small_config(epochs=1, val_fraction=0.0)
    run_source_holdout(small_manifest, tmp_path / "a", config, cache_dir=tmp_path / "cache")
    run_source_holdout(small_manifest, tmp_path / "b", small_config(epochs=1, val_fraction=0.0, seed=2), cache_dir=tmp_path / "cache")

    status = main(["ensemble-holdout", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "pair")])

    assert status == 0
    out = capsys.readouterr().out
    assert "without cataractdataset: sensitivity cataract " in out
    assert "without odir: sensitivity cataract " in out
    summary = json.loads((tmp_path / "pair" / "holdout.json").read_text())
    assert [member["config"]["seed"] for member in summary["members"]] == [1, 2]
    for holdout in summary["holdouts"]:
        with (tmp_path / "pair" / f"without-{holdout['held_out_source']}" / "predictions.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        for label, row in holdout["classes"].items():
            called = [max(CLASSES, key=lambda name: float(r[name])) for r in rows if r["label"] == label]
            assert row["sensitivity"] == pytest.approx(called.count(label) / len(called))
            assert row["trained_on"] == PER_CLASS // 2
    assert "Ensemble of " in (tmp_path / "pair" / "report.md").read_text()


def test_source_holdout_names_an_unknown_source(small_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot hold out messidor: the sources that share a class .* are cataractdataset, odir"):
        run_source_holdout(
            small_manifest, tmp_path, small_config(epochs=1, val_fraction=0.0), cache_dir=tmp_path / "cache", only_sources=["messidor"]
        )
