"""Patient-grouped, class-stratified splits: both eyes of a patient stay on one side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from eyescreen.dataset import Sample


def assign_folds(samples: Sequence[Sample], folds: int, *, seed: int) -> np.ndarray:
    """Return the fold number (0 .. folds-1) of each sample."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    labels = np.array([sample.label for sample in samples])
    groups = np.array([sample.patient_id for sample in samples])
    assignment = np.full(len(samples), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(samples)), labels, groups)):
        assignment[held_out] = fold
    return assignment


def validation_split(samples: Sequence[Sample], fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train, validation) with about fraction of patients held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, got {fraction}")
    folds = max(2, round(1 / fraction))
    assignment = assign_folds(samples, folds, seed=seed)
    return np.flatnonzero(assignment != 0), np.flatnonzero(assignment == 0)
