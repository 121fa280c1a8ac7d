"""Tests of read_image on HEIC photos, the format that iPhones save by default.

The HEIC files are encoded here with pillow-heif, so no binary files are committed.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from eyescreen.errors import ImageDecodeError
from eyescreen.imaging import read_image

EXIF_ORIENTATION_TAG = 0x0112
# HEIC is lossy (HEVC with 4:2:0 chroma), so a flat colour comes back within a few levels.
COLOUR_TOLERANCE = 6


def encode_heic(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="HEIF", **options)
    return buffer.getvalue()


def red_left_blue_right(width: int = 40, height: int = 20) -> np.ndarray:
    """Build an RGB array whose left half is red and right half is blue."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return pixels


def noisy_heic(size: int = 64) -> bytes:
    # Noise does not compress, so most of the file is coded picture data that a cut can reach.
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return encode_heic(Image.fromarray(pixels), quality=90)


def test_read_image_heic_is_heif_file() -> None:
    # Control: the encoder writes an ISO base media file with the heic brand, as iPhones do.
    data = encode_heic(Image.new("RGB", (16, 16), (10, 20, 30)))

    assert data[4:12] == b"ftypheic"


def test_read_image_heic_rgb_uint8() -> None:
    data = encode_heic(Image.new("RGB", (64, 48), (200, 60, 30)), quality=95)

    decoded = read_image(data)

    assert decoded.shape == (48, 64, 3)
    assert decoded.dtype == np.uint8
    assert decoded.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    "colour",
    [
        pytest.param((200, 60, 30), id="fundus-orange"),
        pytest.param((30, 160, 90), id="green"),
        pytest.param((40, 70, 220), id="blue"),
    ],
)
def test_read_image_heic_colour_kept(colour: tuple[int, int, int]) -> None:
    data = encode_heic(Image.new("RGB", (64, 48), colour), quality=95)

    centre = read_image(data)[24, 32].astype(int)

    # Each channel separately, so a swapped channel order (BGR) fails on the channel it moved.
    assert abs(centre[0] - colour[0]) <= COLOUR_TOLERANCE
    assert abs(centre[1] - colour[1]) <= COLOUR_TOLERANCE
    assert abs(centre[2] - colour[2]) <= COLOUR_TOLERANCE


def test_read_image_heic_halves_not_mirrored() -> None:
    data = encode_heic(Image.fromarray(red_left_blue_right()), quality=95)

    decoded = read_image(data)

    assert decoded.shape == (20, 40, 3)
    assert decoded[10, 5, 0] > 200
    assert decoded[10, 5, 2] < 50
    assert decoded[10, 35, 0] < 50
    assert decoded[10, 35, 2] > 200


@pytest.mark.parametrize(
    "kept_share",
    [
        pytest.param(0.02, id="ftyp-only"),
        pytest.param(0.3, id="third"),
        pytest.param(0.5, id="half"),
        pytest.param(0.9, id="most"),
        pytest.param(0.99, id="last-bytes-missing"),
    ],
)
def test_read_image_heic_truncated_decode_error(kept_share: float) -> None:
    data = noisy_heic()

    with pytest.raises(ImageDecodeError):
        read_image(data[: int(len(data) * kept_share)])


def test_read_image_heic_truncated_control_decodes() -> None:
    # Control for the test above: the whole file decodes.
    assert read_image(noisy_heic()).shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("orientation", "expected_shape", "top_left", "bottom_right"),
    [
        # The stored image is 40 wide and 20 high, red on the left and blue on the right.
        # Orientation 3 turns it by 180 degrees: applied twice, it would come back unturned.
        pytest.param(3, (20, 40, 3), "blue", "red", id="orientation-3"),
        # Orientation 6 turns it 90 degrees clockwise: the stored left half becomes the top.
        # Applied twice it would be 40 wide again, with red on the right.
        pytest.param(6, (40, 20, 3), "red", "blue", id="orientation-6"),
        # Orientation 8 turns it 90 degrees counter-clockwise: the stored left half becomes the bottom.
        pytest.param(8, (40, 20, 3), "blue", "red", id="orientation-8"),
    ],
)
def test_read_image_heic_orientation_applied_once(
    orientation: int, expected_shape: tuple[int, int, int], top_left: str, bottom_right: str
) -> None:
    # pillow-heif 1.8 stores the EXIF orientation as an irot box, which libheif applies while
    # decoding, and reports EXIF orientation 1 afterwards. read_image must not turn it again.
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    data = encode_heic(Image.fromarray(red_left_blue_right()), quality=95, exif=exif.tobytes())

    decoded = read_image(data)

    red_channel = {"red": 0, "blue": 2}
    assert decoded.shape == expected_shape
    assert decoded[2, 2, red_channel[top_left]] > 200
    assert decoded[-3, -3, red_channel[bottom_right]] > 200
