"""The command line: predict, evaluate and the serve address, run through main()."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eyescreen.cli import main
from eyescreen.labels import CLASSES
from eyescreen.settings import Settings

NORMAL_PHOTO = "normal/odir_1034_left.jpg"
GLAUCOMA_FRAME = "glaucoma/cataractdataset_Glaucoma_001.png"


def test_predict_prints_table_with_four_probabilities(fundus4_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["predict", str(fundus4_dir / NORMAL_PHOTO), str(fundus4_dir / GLAUCOMA_FRAME)])

    output = capsys.readouterr().out.splitlines()
    assert status == 0
    assert output[0].split() == ["file", "label", "status", *CLASSES]
    assert len(output) == 3
    for line in output[1:]:
        fields = line.split()
        assert fields[1] in CLASSES
        assert fields[2] in ("ok", "uncertain")
        assert sum(float(value) for value in fields[3:]) == pytest.approx(1.0, abs=0.01)


def test_predict_json_lists_api_fields(fundus4_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["predict", "--json", str(fundus4_dir / NORMAL_PHOTO)])

    results = json.loads(capsys.readouterr().out)
    assert status == 0
    assert results[0]["file"].endswith("odir_1034_left.jpg")
    assert results[0]["label"] in CLASSES
    assert results[0]["status"] in ("ok", "uncertain")
    assert set(results[0]["probabilities"]) == set(CLASSES)
    assert set(results[0]["model"]) == {"name", "version"}
    assert set(results[0]["timings_ms"]) == {"decode", "preprocess", "inference", "total"}


def test_predict_stderr_has_no_info_lines(fundus4_dir: Path) -> None:
    # A separate process, because pytest configures logging before main() could.
    completed = subprocess.run(
        [sys.executable, "-m", "eyescreen", "predict", str(fundus4_dir / NORMAL_PHOTO)], capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0
    assert "normal" in completed.stdout
    assert completed.stderr == ""


def test_predict_bad_file_one_error_line(
    fundus4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is text, not a photo")
    missing = tmp_path / "missing.png"

    status = main(["predict", "--json", str(not_an_image), str(fundus4_dir / NORMAL_PHOTO), str(missing)])

    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("eyescreen: error:")]
    assert status == 1
    assert len(errors) == 2
    assert "notes.jpg" in errors[0]
    assert "not a supported image" in errors[0]
    assert "missing.png" in errors[1]
    assert "No such file" in errors[1]
    assert [result["file"] for result in json.loads(captured.out)] == [str(fundus4_dir / NORMAL_PHOTO)]


def test_evaluate_json_reports_metrics_per_source(fundus4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (fundus4_dir / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [row for name in CLASSES for row in [r for r in rows if r["label"] == name][:3]]
    with (tmp_path / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "source"])
        writer.writeheader()
        for row in chosen:
            writer.writerow({"path": str(fundus4_dir / row["path"]), "label": row["label"], "source": row["source"]})

    status = main(["evaluate", str(tmp_path), "--json"])

    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert result["n"] == 12
    for key in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1"):
        assert 0.0 <= result[key] <= 1.0
    assert sum(map(sum, result["confusion_matrix"])) == 12
    assert set(result["by_source"]) == {row["source"] for row in chosen}


def test_evaluate_table_names_metrics(fundus4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in CLASSES:
        (tmp_path / name).mkdir()
    (tmp_path / "normal" / "a_left.jpg").write_bytes((fundus4_dir / NORMAL_PHOTO).read_bytes())
    (tmp_path / "glaucoma" / "b.png").write_bytes((fundus4_dir / GLAUCOMA_FRAME).read_bytes())

    status = main(["evaluate", str(tmp_path)])

    output = capsys.readouterr().out
    assert status == 0
    for phrase in ("balanced accuracy", "macro ROC AUC", "sensitivity", "specificity", "confusion matrix"):
        assert phrase in output


def test_evaluate_missing_folder_exits_with_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["evaluate", str(tmp_path / "absent")])

    assert status == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("environ", "host", "port", "expected"),
    [
        pytest.param({}, None, None, ("127.0.0.1", 8000), id="defaults"),
        pytest.param({"PORT": "5000"}, None, None, ("0.0.0.0", 5000), id="paas-port"),
        pytest.param({"PORT": "5000"}, None, 7000, ("0.0.0.0", 7000), id="option-beats-port"),
        pytest.param({}, "::1", 9000, ("::1", 9000), id="options"),
    ],
)
def test_serve_bind_address(environ: dict[str, str], host: str | None, port: int | None, expected: tuple[str, int]) -> None:
    assert Settings.from_env(environ).bind_address(host, port) == expected


def test_evaluate_manifest_option_paths_relative_to_data_dir(
    fundus4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "subset.csv"
    manifest.write_text(f"path,label\n{NORMAL_PHOTO},normal\n{GLAUCOMA_FRAME},glaucoma\n")

    status = main(["evaluate", str(fundus4_dir), "--manifest", str(manifest), "--json"])

    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert result["n"] == 2


def test_training_options_reach_the_config(tmp_path: Path) -> None:
    from eyescreen.cli import _train_config, build_parser

    arguments = build_parser().parse_args(
        ["cv", str(tmp_path), "--out", str(tmp_path / "report"), "--amplitude-mix", "0.5", "--sensor-noise", "6", "--channel-gain", "0.2", "--jpeg-quality", "40", "--disc-crop-size", "128", "--epochs", "3"]
    )
    config = _train_config(arguments)

    assert (config.amplitude_mix, config.sensor_noise, config.disc_crop_size, config.epochs) == (0.5, 6.0, 128, 3)
    assert config.channel_gain == 0.2
    assert config.jpeg_quality == 40
    assert config.camera_jitter is False
    assert config.fov_mask_radius == 0.9


def test_training_defaults_match_config(tmp_path: Path) -> None:
    from eyescreen.cli import _train_config, build_parser
    from eyescreen.training.config import TrainConfig

    arguments = build_parser().parse_args(["cv", str(tmp_path), "--out", str(tmp_path / "report")])
    config = _train_config(arguments)

    assert config.sensor_noise == TrainConfig().sensor_noise
    assert config.channel_gain == TrainConfig().channel_gain
    assert config.jpeg_quality == TrainConfig().jpeg_quality


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--jpeg-quality", "100", "jpeg_quality must be 0 (off) or a JPEG quality up to 95, got 100"),
        ("--channel-gain", "1.5", "channel_gain must be at least 0 and below 1, got 1.5"),
    ],
)
def test_invalid_augmentation_option_fails_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    pytest.importorskip("torch", reason='training needs the [train] extra: pip install -e ".[train]" torch==2.13.0')

    # The data folder does not exist, so an error about the option shows that it came first.
    status = main(["cv", str(tmp_path / "no-data"), "--out", str(tmp_path / "report"), option, value])

    assert status == 2
    assert capsys.readouterr().err.strip() == f"eyescreen: error: {message}"
    assert not (tmp_path / "report").exists()


def test_source_holdout_unknown_source_error(fundus4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch", reason='training needs the [train] extra: pip install -e ".[train]" torch==2.13.0')

    status = main(["source-holdout", str(fundus4_dir), "--out", str(tmp_path / "report"), "--source", "messidor"])

    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("eyescreen: error: cannot hold out messidor:")
    assert "cataractdataset, odir" in error
    assert "Traceback" not in error
