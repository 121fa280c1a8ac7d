"""Camera-shift changes and the test that counts unchanged predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eyescreen.cli import main
from eyescreen.evaluation.camera_shift import CHANGES, blur, colour_cast, gamma, jpeg, resolution, sensor_noise, vignetting


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(40, 220, (120, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", list(CHANGES))
def test_change_returns_rgb_uint8(photo: np.ndarray, name: str) -> None:
    changed = CHANGES[name](photo)

    assert changed.dtype == np.uint8
    assert changed.ndim == 3
    assert changed.shape[2] == 3
    assert not np.array_equal(changed, photo)


def test_neutral_changes_keep_pixels(photo: np.ndarray) -> None:
    np.testing.assert_array_equal(colour_cast((1.0, 1.0, 1.0))(photo), photo)
    np.testing.assert_array_equal(gamma(1.0)(photo), photo)
    np.testing.assert_array_equal(vignetting(0.0)(photo), photo)


def test_colour_cast_scales_channels(photo: np.ndarray) -> None:
    warm = colour_cast((1.1, 1.0, 0.9))(photo).astype(np.float64)

    assert warm[:, :, 0].mean() > photo[:, :, 0].mean()
    assert warm[:, :, 1].mean() == pytest.approx(photo[:, :, 1].mean(), abs=0.5)
    assert warm[:, :, 2].mean() < photo[:, :, 2].mean()


def test_vignetting_darkens_corners_not_centre(photo: np.ndarray) -> None:
    flat = np.full_like(photo, 200)

    changed = vignetting(0.4)(flat)

    assert changed[60, 80, 0] >= 198
    assert changed[0, 0, 0] < 130


def test_resolution_and_blur_and_jpeg(photo: np.ndarray) -> None:
    assert resolution(0.5)(photo).shape == (60, 80, 3)
    assert blur(0.01)(photo).std() < photo.std()
    assert jpeg(40)(photo).shape == photo.shape


def test_sensor_noise_spares_the_black_surround_and_repeats(photo: np.ndarray) -> None:
    framed = np.zeros((140, 180, 3), dtype=np.uint8)
    framed[10:130, 10:170] = photo

    noisy = sensor_noise(6.0)(framed)

    assert noisy[:10].max() == 0
    assert noisy[:, :10].max() == 0
    difference = noisy[10:130, 10:170].astype(np.float64) - photo
    assert 5.0 < difference.std() < 7.0
    assert abs(difference.mean()) < 0.5
    np.testing.assert_array_equal(sensor_noise(6.0)(framed), noisy)


def test_camera_shift_cli_reports_every_change(fundus4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "subset.csv"
    manifest.write_text("path,label\nnormal/odir_1034_left.jpg,normal\nglaucoma/cataractdataset_Glaucoma_001.png,glaucoma\n")

    status = main(["camera-shift", str(fundus4_dir), "--manifest", str(manifest), "--json"])

    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert result["n"] == 2
    assert set(result["unchanged"]) == set(CHANGES)
    assert all(share in (0.0, 0.5, 1.0) for share in result["unchanged"].values())
