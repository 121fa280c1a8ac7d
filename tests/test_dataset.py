"""Tests of load_samples and infer_patient_id on small generated image folders."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from PIL import Image

from eyescreen.dataset import MANIFEST_NAME, Sample, infer_patient_id, load_samples
from eyescreen.errors import DatasetError
from eyescreen.labels import CLASSES


def write_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 60, 30)).save(path)
    return path


def write_manifest(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Build a folder with three images in an images/ sub-folder and no manifest."""
    for name in ("odir_1034_left.jpg", "odir_1034_right.jpg", "cataract_007.png"):
        write_image(tmp_path / "images" / name)
    return tmp_path


@pytest.mark.parametrize(
    ("file_name", "patient_id"),
    [
        pytest.param("1034_left.jpg", "1034", id="left"),
        pytest.param("1034_right.jpg", "1034", id="right"),
        pytest.param("odir_1034_left.jpg", "odir_1034", id="prefixed"),
        pytest.param("10941_Right.jpeg", "10941", id="mixed-case"),
        pytest.param("a_left_right.png", "a_left", id="last-suffix-only"),
        pytest.param("cataractdataset_Glaucoma_001.png", "cataractdataset_Glaucoma_001", id="no-eye"),
        pytest.param("left.jpg", "left", id="eye-word-only"),
        pytest.param("_left.jpg", "_left", id="empty-patient"),
        pytest.param("1034_leftover.jpg", "1034_leftover", id="eye-word-prefix"),
        pytest.param("1034-left.jpg", "1034-left", id="hyphen"),
    ],
)
def test_infer_patient_id_cases(file_name: str, patient_id: str) -> None:
    assert infer_patient_id(Path("data") / file_name) == patient_id


def test_load_samples_manifest_rows(image_folder: Path) -> None:
    write_manifest(
        image_folder / MANIFEST_NAME,
        [
            "path,label,source,patient_id",
            "images/odir_1034_left.jpg,normal,odir,odir:1034",
            "images/odir_1034_right.jpg,Retina Disease,odir,",
            "images/cataract_007.png,cataract,,",
        ],
    )

    samples = load_samples(image_folder)

    assert samples == [
        Sample(
            path=(image_folder / "images/odir_1034_left.jpg").resolve(),
            label=CLASSES.index("normal"),
            source="odir",
            patient_id="odir:1034",
        ),
        Sample(
            path=(image_folder / "images/odir_1034_right.jpg").resolve(),
            label=CLASSES.index("retina_disease"),
            source="odir",
            patient_id="odir_1034",
        ),
        Sample(
            path=(image_folder / "images/cataract_007.png").resolve(),
            label=CLASSES.index("cataract"),
            source="unknown",
            patient_id="cataract_007",
        ),
    ]


def test_load_samples_manifest_only_required_columns(image_folder: Path) -> None:
    write_manifest(image_folder / MANIFEST_NAME, ["path,label", "images/odir_1034_left.jpg,glaucoma"])

    (sample,) = load_samples(image_folder)

    assert sample.label_name == "glaucoma"
    assert sample.source == "unknown"
    assert sample.patient_id == "odir_1034"


def test_load_samples_explicit_manifest_elsewhere(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    manifest = tmp_path_factory.mktemp("manifests") / "split.csv"
    write_manifest(manifest, ["path,label", "images/cataract_007.png,cataract"])

    (sample,) = load_samples(image_folder, manifest=manifest)

    assert sample.path == (image_folder / "images/cataract_007.png").resolve()


def test_load_samples_manifest_preferred_over_folders(image_folder: Path) -> None:
    write_image(image_folder / "glaucoma" / "extra.png")
    write_manifest(image_folder / MANIFEST_NAME, ["path,label", "images/cataract_007.png,cataract"])

    samples = load_samples(image_folder)

    assert [sample.path.name for sample in samples] == ["cataract_007.png"]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        pytest.param("path,diagnosis", "label", id="no-label"),
        pytest.param("file,label", "path", id="no-path"),
        pytest.param("file,diagnosis", "label, path", id="neither"),
    ],
)
def test_load_samples_manifest_missing_column(image_folder: Path, header: str, missing: str) -> None:
    write_manifest(image_folder / MANIFEST_NAME, [header, "images/cataract_007.png,cataract"])

    with pytest.raises(DatasetError, match=rf"is missing the column\(s\) {missing}$"):
        load_samples(image_folder)


def test_load_samples_empty_manifest_missing_columns(image_folder: Path) -> None:
    (image_folder / MANIFEST_NAME).write_text("", encoding="utf-8")

    with pytest.raises(DatasetError, match=r"missing the column\(s\) label, path"):
        load_samples(image_folder)


@pytest.mark.parametrize(
    "label",
    [pytest.param("blurry", id="unknown-word"), pytest.param("", id="empty"), pytest.param("normal_eye", id="near-miss")],
)
def test_load_samples_manifest_unknown_label(image_folder: Path, label: str) -> None:
    write_manifest(
        image_folder / MANIFEST_NAME,
        ["path,label", "images/odir_1034_left.jpg,normal", f"images/cataract_007.png,{label}"],
    )

    # The data line is the 3rd line of the file, after the header and one valid row.
    with pytest.raises(DatasetError, match=rf"manifest\.csv:3: label '{label}' is not one of normal, cataract"):
        load_samples(image_folder)


def test_load_samples_manifest_missing_file(image_folder: Path) -> None:
    write_manifest(image_folder / MANIFEST_NAME, ["path,label", "images/not_there.jpg,normal"])

    with pytest.raises(DatasetError, match=r"manifest\.csv:2: image 'images/not_there\.jpg' not found under"):
        load_samples(image_folder)


def test_load_samples_manifest_path_is_folder(image_folder: Path) -> None:
    write_manifest(image_folder / MANIFEST_NAME, ["path,label", "images,normal"])

    with pytest.raises(DatasetError, match="image 'images' not found"):
        load_samples(image_folder)


def test_load_samples_explicit_manifest_not_found(image_folder: Path) -> None:
    missing = image_folder / "split.csv"

    with pytest.raises(DatasetError, match=r"manifest '.*split\.csv' not found"):
        load_samples(image_folder, manifest=missing)


def test_load_samples_manifest_header_only_empty(image_folder: Path) -> None:
    write_manifest(image_folder / MANIFEST_NAME, ["path,label"])

    with pytest.raises(DatasetError, match="no labelled images found"):
        load_samples(image_folder)


def test_load_samples_data_dir_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    with pytest.raises(DatasetError, match=r"data folder '.*nowhere' does not exist"):
        load_samples(missing)


def test_load_samples_data_dir_is_file(tmp_path: Path) -> None:
    not_a_folder = write_image(tmp_path / "photo.png")

    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        load_samples(not_a_folder)


def test_load_samples_class_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "normal" / "odir_1_left.jpg")
    write_image(tmp_path / "normal" / "odir_1_right.jpg")
    write_image(tmp_path / "glaucoma" / "cataractdataset_Glaucoma_001.png")
    write_image(tmp_path / "Retina-Disease" / "eyepacs_10941_right.jpeg")

    samples = load_samples(tmp_path)

    found = {(sample.path.name, sample.label_name, sample.patient_id, sample.source) for sample in samples}
    assert found == {
        ("odir_1_left.jpg", "normal", "odir_1", "unknown"),
        ("odir_1_right.jpg", "normal", "odir_1", "unknown"),
        ("cataractdataset_Glaucoma_001.png", "glaucoma", "cataractdataset_Glaucoma_001", "unknown"),
        ("eyepacs_10941_right.jpeg", "retina_disease", "eyepacs_10941", "unknown"),
    }


def test_load_samples_class_folders_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image(tmp_path / "normal" / "a.png")
    monkeypatch.chdir(tmp_path)

    (sample,) = load_samples(Path("."))

    assert sample.path == (tmp_path / "normal" / "a.png").resolve()
    assert sample.path.is_absolute()


def test_load_samples_class_folders_nested_images(tmp_path: Path) -> None:
    write_image(tmp_path / "cataract" / "clinic_a" / "x_left.png")

    (sample,) = load_samples(tmp_path)

    assert sample.label_name == "cataract"
    assert sample.patient_id == "x"


def test_load_samples_class_folders_skip_non_images(tmp_path: Path) -> None:
    write_image(tmp_path / "normal" / "a.png")
    write_image(tmp_path / "normal" / "b.JPG")
    (tmp_path / "normal" / "notes.txt").write_text("not an image", encoding="utf-8")
    (tmp_path / "normal" / "labels.csv").write_text("x,y\n", encoding="utf-8")
    (tmp_path / "normal" / "folder.png").mkdir()

    samples = load_samples(tmp_path)

    assert sorted(sample.path.name for sample in samples) == ["a.png", "b.JPG"]


def test_load_samples_unknown_folder_skipped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_image(tmp_path / "normal" / "a.png")
    write_image(tmp_path / "ungradable" / "b.png")

    with caplog.at_level(logging.WARNING, logger="eyescreen.dataset"):
        samples = load_samples(tmp_path)

    assert [sample.path.name for sample in samples] == ["a.png"]
    assert "ungradable" in caplog.text


def test_load_samples_no_class_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "misc" / "a.png")

    with pytest.raises(DatasetError, match="no labelled images found .* expected manifest.csv or sub-folders named normal"):
        load_samples(tmp_path)


def test_load_samples_real_fundus4_manifest(fundus4_dir: Path) -> None:
    with (fundus4_dir / MANIFEST_NAME).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))

    samples = load_samples(fundus4_dir)

    assert len(samples) == len(rows)
    assert {sample.label_name for sample in samples} == set(CLASSES)
    first = samples[0]
    assert first.path == (fundus4_dir / rows[0]["path"]).resolve()
    assert first.patient_id == rows[0]["patient_id"]
    assert first.source == rows[0]["source"]
