"""Read a labelled image folder: a manifest CSV or one sub-folder per class."""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from eyescreen.errors import DatasetError
from eyescreen.labels import CLASSES, canonical_label

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
MANIFEST_NAME = "manifest.csv"

# ODIR and EyePACS name files <patient>_<left|right>; both eyes of a patient share a group.
_EYE_NAME = re.compile(r"^(?P<patient>.+)_(left|right)$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One labelled photograph."""

    path: Path
    label: int
    source: str
    patient_id: str

    @property
    def label_name(self) -> str:
        return CLASSES[self.label]


def infer_patient_id(path: Path) -> str:
    """Derive a patient id from a `<id>_left|right` file name, else use the file name itself."""
    match = _EYE_NAME.match(path.stem)
    return match.group("patient") if match else path.stem


def load_samples(data_dir: str | Path, *, manifest: str | Path | None = None) -> list[Sample]:
    """List the labelled images under data_dir.

    With a manifest CSV (given, or data_dir/manifest.csv) its rows are used: columns path and
    label, optional source and patient_id. Otherwise every sub-folder named after a class is
    read. Raises DatasetError when the folder, a column or a label is unusable.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"data folder {str(root)!r} does not exist or is not a folder")

    manifest_path = Path(manifest) if manifest is not None else root / MANIFEST_NAME
    if manifest is not None or manifest_path.is_file():
        samples = _load_manifest(root, manifest_path)
    else:
        samples = _load_class_folders(root)

    if not samples:
        raise DatasetError(
            f"no labelled images found in {str(root)!r}; expected {MANIFEST_NAME} or sub-folders named {', '.join(CLASSES)}"
        )
    logger.info("loaded %d labelled images from %s", len(samples), root)
    return samples


def _load_manifest(root: Path, manifest_path: Path) -> list[Sample]:
    if not manifest_path.is_file():
        raise DatasetError(f"manifest {str(manifest_path)!r} not found")

    with manifest_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        missing = {"path", "label"} - columns
        if missing:
            raise DatasetError(f"manifest {str(manifest_path)!r} is missing the column(s) {', '.join(sorted(missing))}")

        samples = []
        for line_number, row in enumerate(reader, start=2):
            label = canonical_label(row["label"])
            if label is None:
                raise DatasetError(
                    f"{manifest_path}:{line_number}: label {row['label']!r} is not one of {', '.join(CLASSES)}"
                )
            path = (root / row["path"]).resolve()
            if not path.is_file():
                raise DatasetError(f"{manifest_path}:{line_number}: image {row['path']!r} not found under {str(root)!r}")
            samples.append(
                Sample(
                    path=path,
                    label=CLASSES.index(label),
                    source=(row.get("source") or "").strip() or "unknown",
                    patient_id=(row.get("patient_id") or "").strip() or infer_patient_id(path),
                )
            )
    return samples


def _load_class_folders(root: Path) -> list[Sample]:
    samples = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        label = canonical_label(folder.name)
        if label is None:
            logger.warning("skipping folder %s: its name is not a class (%s)", folder, ", ".join(CLASSES))
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                samples.append(
                    Sample(path=path.resolve(), label=CLASSES.index(label), source="unknown", patient_id=infer_patient_id(path))
                )
    return samples
