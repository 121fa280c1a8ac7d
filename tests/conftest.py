"""Fixtures shared by the eyescreen tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# The labelled fundus4 photographs are kept outside the repository, in shared/data/fundus4 under
# the repository root's parent folder. Tests that need real photos skip when it is absent.
FUNDUS4_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fundus4"


@pytest.fixture(scope="session")
def fundus4_dir() -> Path:
    """Folder of the fundus4 photographs, one sub-folder per class."""
    if not FUNDUS4_DIR.is_dir():
        pytest.skip(f"fundus4 data not found at {FUNDUS4_DIR}; tests that need real photos are skipped")
    return FUNDUS4_DIR
