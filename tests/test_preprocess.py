"""Tests of the fundus preprocessing: field-of-view box, square crop, resize and model scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyescreen.imaging import read_image_file
from eyescreen.preprocess import crop_to_square, find_field_of_view, prepare_fundus, to_model_input

MODEL_SIZE = 256
# A pixel counts as part of the photo when its brightest channel is above this level.
DARK_LEVEL = 20
# A disc inscribed in a square covers pi / 4 = 0.785 of it. After prepare_fundus at 256 px,
# 5 fundus4 photos (ODIR, EyePACS, cataractdataset) and skimage.data.retina measured 0.781 to 0.787.
INSCRIBED_DISC_SHARE = np.pi / 4
DISC_SHARE_TOLERANCE = 0.05

ODIR_PHOTO = "normal/odir_1034_left.jpg"
BORDERED_PHOTO = "glaucoma/cataractdataset_Glaucoma_001.png"


def non_black_share(rgb: np.ndarray) -> float:
    return float((rgb.max(axis=2) > DARK_LEVEL).mean())


def disc_canvas(height: int, width: int, centre: tuple[int, int], radius: int, level: int = 180) -> np.ndarray:
    """Draw a flat bright disc on a black canvas, like a fundus field of view."""
    rows, columns = np.ogrid[:height, :width]
    inside = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= radius**2
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[inside] = (level, level // 2, level // 4)
    return canvas


@pytest.fixture(scope="module")
def odir_photo(fundus4_dir: Path) -> np.ndarray:
    return read_image_file(fundus4_dir / ODIR_PHOTO)


@pytest.fixture(scope="module")
def bordered_photo(fundus4_dir: Path) -> np.ndarray:
    return read_image_file(fundus4_dir / BORDERED_PHOTO)


@pytest.fixture(scope="module")
def skimage_retina() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return data.retina()


def test_real_photos_have_expected_frames(odir_photo: np.ndarray, bordered_photo: np.ndarray) -> None:
    # Guards the premise of the tests below: one square crop and one 3:2 frame.
    assert odir_photo.shape == (400, 400, 3)
    assert bordered_photo.shape == (266, 400, 3)


@pytest.mark.parametrize("photo_name", ["odir_photo", "bordered_photo", "skimage_retina"])
def test_prepare_fundus_real_photo_shape(photo_name: str, request: pytest.FixtureRequest) -> None:
    photo = request.getfixturevalue(photo_name)

    prepared = prepare_fundus(photo, MODEL_SIZE)

    assert prepared.shape == (MODEL_SIZE, MODEL_SIZE, 3)
    assert prepared.dtype == np.uint8


@pytest.mark.parametrize("photo_name", ["odir_photo", "bordered_photo", "skimage_retina"])
def test_prepare_fundus_real_photo_disc_fills_square(photo_name: str, request: pytest.FixtureRequest) -> None:
    photo = request.getfixturevalue(photo_name)

    prepared = prepare_fundus(photo, MODEL_SIZE)

    assert abs(non_black_share(prepared) - INSCRIBED_DISC_SHARE) < DISC_SHARE_TOLERANCE
    # The disc spans the square: the middle row and column are photo nearly from edge to edge.
    mask = prepared.max(axis=2) > DARK_LEVEL
    assert mask[MODEL_SIZE // 2].mean() > 0.95
    assert mask[:, MODEL_SIZE // 2].mean() > 0.95


@pytest.mark.parametrize("photo_name", ["odir_photo", "bordered_photo", "skimage_retina"])
def test_prepare_fundus_real_photo_disc_centred(photo_name: str, request: pytest.FixtureRequest) -> None:
    photo = request.getfixturevalue(photo_name)

    mask = prepare_fundus(photo, MODEL_SIZE).max(axis=2) > DARK_LEVEL

    rows, columns = np.nonzero(mask)
    assert abs(rows.mean() - MODEL_SIZE / 2) < 8
    assert abs(columns.mean() - MODEL_SIZE / 2) < 8


def test_prepare_fundus_frame_types_comparable(odir_photo: np.ndarray, bordered_photo: np.ndarray) -> None:
    odir_share = non_black_share(prepare_fundus(odir_photo, MODEL_SIZE))
    bordered_share = non_black_share(prepare_fundus(bordered_photo, MODEL_SIZE))

    # Measured 0.786 and 0.781. Without the crop, the 256 px disc of the 3:2 frame would be
    # padded to a 400 px square, and its share would drop to about 0.785 * (256 / 400) ** 2 = 0.32.
    assert abs(odir_share - bordered_share) < 0.03


def test_find_field_of_view_bordered_photo_drops_sides(bordered_photo: np.ndarray) -> None:
    top, bottom, left, right = find_field_of_view(bordered_photo)

    assert right - left < 0.75 * 400
    assert left > 40
    assert right < 360
    # The disc nearly touches the top and bottom of the 3:2 frame.
    assert bottom - top > 0.9 * 266
    # The field of view is round, so its box is close to square.
    assert abs((right - left) - (bottom - top)) < 0.05 * 400


def test_find_field_of_view_odir_crop_nearly_whole(odir_photo: np.ndarray) -> None:
    top, bottom, left, right = find_field_of_view(odir_photo)

    assert bottom - top > 0.9 * 400
    assert right - left > 0.9 * 400


def test_find_field_of_view_all_black_whole_image() -> None:
    black = np.zeros((120, 200, 3), dtype=np.uint8)

    assert find_field_of_view(black) == (0, 120, 0, 200)


def test_find_field_of_view_uniform_grey_whole_image() -> None:
    grey = np.full((90, 160, 3), 128, dtype=np.uint8)

    assert find_field_of_view(grey) == (0, 90, 0, 160)


@pytest.mark.parametrize(
    ("height", "width", "centre", "radius"),
    [
        pytest.param(300, 500, (150, 260), 100, id="wide-canvas"),
        pytest.param(500, 300, (240, 150), 120, id="tall-canvas"),
        pytest.param(300, 500, (140, 180), 90, id="off-centre"),
        pytest.param(1200, 1800, (600, 900), 560, id="large-canvas-downsampled"),
    ],
)
def test_find_field_of_view_synthetic_disc(height: int, width: int, centre: tuple[int, int], radius: int) -> None:
    canvas = disc_canvas(height, width, centre, radius)
    expected = (centre[0] - radius, centre[0] + radius + 1, centre[1] - radius, centre[1] + radius + 1)
    # The mask is computed on every ceil(max side / 256)-th pixel, every 8th for 1800 px.
    tolerance = max(3, int(np.ceil(max(height, width) / 256)) + 1)

    box = find_field_of_view(canvas)

    for found_edge, expected_edge in zip(box, expected, strict=True):
        assert abs(found_edge - expected_edge) <= tolerance, f"box {box} differs from {expected} by more than {tolerance} px"


def test_find_field_of_view_returns_python_ints() -> None:
    box = find_field_of_view(disc_canvas(300, 500, (150, 260), 100))

    assert all(type(value) is int for value in box)


def test_find_field_of_view_thin_bar() -> None:
    canvas = np.zeros((300, 500, 3), dtype=np.uint8)
    canvas[140:150, 50:450] = 255

    assert find_field_of_view(canvas) == (0, 300, 0, 500)


def test_crop_to_square_pads_centred_with_black() -> None:
    canvas = np.zeros((100, 300, 3), dtype=np.uint8)
    canvas[10:90, 100:160] = 200  # an 80 x 60 bright block

    square = crop_to_square(canvas)

    assert square.shape == (80, 80, 3)
    assert (square[:, :10] == 0).all()
    assert (square[:, 70:] == 0).all()
    assert (square[:, 10:70] == 200).all()


def test_prepare_fundus_square_at_size_unchanged() -> None:
    # A photo that is bright everywhere is its own field of view, so no crop or resize applies.
    photo = np.random.default_rng(0).integers(100, 256, (64, 64, 3), dtype=np.uint8)
    assert find_field_of_view(photo) == (0, 64, 0, 64)

    prepared = prepare_fundus(photo, 64)

    np.testing.assert_array_equal(prepared, photo)


def test_prepare_fundus_odd_target_size() -> None:
    prepared = prepare_fundus(disc_canvas(64, 64, (32, 32), 31), 63)

    assert prepared.shape == (63, 63, 3)


def test_prepare_fundus_synthetic_canvas_square() -> None:
    canvas = disc_canvas(300, 500, (150, 260), 100)

    prepared = prepare_fundus(canvas, MODEL_SIZE)

    assert prepared.shape == (MODEL_SIZE, MODEL_SIZE, 3)
    assert abs(non_black_share(prepared) - INSCRIBED_DISC_SHARE) < 0.02


def test_prepare_fundus_input_not_modified() -> None:
    canvas = disc_canvas(300, 500, (150, 260), 100)
    original = canvas.copy()

    prepare_fundus(canvas, MODEL_SIZE)

    np.testing.assert_array_equal(canvas, original)


def test_to_model_input_layout_and_dtype() -> None:
    batch = np.zeros((2, 5, 7, 3), dtype=np.uint8)

    model_input = to_model_input(batch)

    assert model_input.shape == (2, 3, 5, 7)
    assert model_input.dtype == np.float32
    assert model_input.flags["C_CONTIGUOUS"]


def test_to_model_input_single_image_gets_batch_axis() -> None:
    assert to_model_input(np.zeros((5, 7, 3), dtype=np.uint8)).shape == (1, 3, 5, 7)


@pytest.mark.parametrize(
    ("pixel", "expected"),
    [
        pytest.param(0, -1.0, id="black"),
        pytest.param(255, 1.0, id="white"),
        pytest.param(51, 51 / 127.5 - 1, id="dark-grey"),
    ],
)
def test_to_model_input_scaling(pixel: int, expected: float) -> None:
    model_input = to_model_input(np.full((1, 2, 2, 3), pixel, dtype=np.uint8))

    np.testing.assert_allclose(model_input, expected, atol=1e-6)


def test_to_model_input_range_full_batch() -> None:
    batch = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    batch[0, 0, 0] = (0, 255, 0)

    model_input = to_model_input(batch)

    assert model_input.min() == -1.0
    assert model_input.max() == 1.0


def test_to_model_input_channels_in_rgb_order() -> None:
    image = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    image[..., 0] = 255  # red

    model_input = to_model_input(image)

    np.testing.assert_allclose(model_input[0, 0], 1.0)
    np.testing.assert_allclose(model_input[0, 1], -1.0)
    np.testing.assert_allclose(model_input[0, 2], -1.0)
