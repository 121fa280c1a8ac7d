"""Property tests of read_image on arbitrary and damaged bytes.

Whatever bytes arrive, read_image either returns an (H, W, 3) uint8 array or raises one of the
three ImageError subclasses that the API maps to a 4xx response. Any other exception would reach
the client as a 500. The seed files are small images generated here, one per supported format,
and the mutations are byte flips, truncations, insertions and deletions.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from eyescreen.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from eyescreen.imaging import read_image

EXPECTED_ERRORS = (ImageDecodeError, UnsupportedImageError, ImageTooLargeError)

# Pillow's plugins warn about damaged metadata (such as "Corrupt EXIF data") and go on decoding.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

# A mutated header can declare a much larger image than the seed. This bound keeps each decode
# small, so a run takes seconds. Headers over it test the ImageTooLargeError path.
MAX_PIXELS = 250_000

# database=None: hypothesis would otherwise write a .hypothesis folder into the repository.
# A crash that it finds is kept as an explicit case in the regression table below instead.
FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def seed_image() -> Image.Image:
    """Build a 24x16 RGB image with a gradient and a disc, so every encoder has real content."""
    y, x = np.mgrid[0:16, 0:24]
    pixels = np.zeros((16, 24, 3), dtype=np.uint8)
    pixels[..., 0] = x * 10
    pixels[..., 1] = y * 15
    pixels[..., 2] = np.where(np.hypot(x - 12, y - 8) < 6, 220, 30)
    return Image.fromarray(pixels)


def seed_files() -> dict[str, bytes]:
    """Encode the seed image in each supported format, including a two-frame GIF and TIFF."""
    image = seed_image()
    second_frame = Image.new("RGB", image.size, (0, 0, 255))
    return {
        "jpeg": encode(image, "JPEG", quality=80),
        "png": encode(image, "PNG"),
        "gif": encode(image, "GIF", save_all=True, append_images=[second_frame]),
        "tiff": encode(image, "TIFF", save_all=True, append_images=[second_frame]),
        "bmp": encode(image, "BMP"),
        "webp": encode(image, "WEBP", quality=80),
        "heic": encode(image, "HEIF", quality=80),
    }


SEEDS = seed_files()


def assert_rgb_or_expected_error(data: bytes) -> None:
    """Check the contract: an (H, W, 3) uint8 array, or one of EXPECTED_ERRORS."""
    try:
        decoded = read_image(data, max_pixels=MAX_PIXELS)
    except EXPECTED_ERRORS:
        return
    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == np.uint8
    assert decoded.ndim == 3
    assert decoded.shape[2] == 3
    assert decoded.shape[0] * decoded.shape[1] <= MAX_PIXELS


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """Apply 1 to 4 random mutations to seed: flip, truncate, insert or delete bytes."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not data:
            break
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if kind == "flip":
            data[position] ^= draw(st.integers(min_value=1, max_value=255))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            length = draw(st.integers(min_value=1, max_value=16))
            del data[position : position + length]
    return bytes(data)


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in SEEDS])
def test_read_image_seed_decodes(name: str) -> None:
    # Control: each seed is valid, so the mutation tests start from files that do decode.
    decoded = read_image(SEEDS[name], max_pixels=MAX_PIXELS)

    assert decoded.shape == (16, 24, 3)


@FUZZ_SETTINGS
@given(data=st.binary(max_size=2048))
def test_read_image_arbitrary_bytes(data: bytes) -> None:
    assert_rgb_or_expected_error(data)


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in SEEDS])
@FUZZ_SETTINGS
@given(data=st.data())
def test_read_image_mutated_seed(name: str, data: st.DataObject) -> None:
    assert_rgb_or_expected_error(data.draw(mutated(SEEDS[name]), label="mutated file"))


@FUZZ_SETTINGS
@given(suffix=st.binary(max_size=64), name=st.sampled_from(sorted(SEEDS)))
def test_read_image_signature_then_garbage(suffix: bytes, name: str) -> None:
    # The first 16 bytes of a real file pass format detection, so the garbage reaches the decoder.
    assert_rgb_or_expected_error(SEEDS[name][:16] + suffix)


# Regression cases that the mutation search found. Each raised an exception outside
# EXPECTED_ERRORS, which the API turned into a 500, until read_image mapped it to ImageDecodeError.

TIFF_STRIP_OFFSETS_TAG = 273
TIFF_FLOAT_TYPE = 11


def tiff_with_float_strip_offsets() -> bytes:
    """Encode a TIFF, then change the StripOffsets entry's type from LONG to FLOAT.

    Pillow 13 then reads the strip offset as a float and raises TypeError while seeking to it.
    """
    data = bytearray(encode(seed_image(), "TIFF"))
    assert data[:4] == b"II*\x00"
    (ifd_offset,) = struct.unpack_from("<I", data, 4)
    (entry_count,) = struct.unpack_from("<H", data, ifd_offset)
    for index in range(entry_count):
        entry = ifd_offset + 2 + 12 * index
        (tag,) = struct.unpack_from("<H", data, entry)
        if tag == TIFF_STRIP_OFFSETS_TAG:
            struct.pack_into("<H", data, entry + 2, TIFF_FLOAT_TYPE)
            return bytes(data)
    raise AssertionError("the encoded TIFF has no StripOffsets entry")


def heic_with_understated_size() -> bytes:
    """Encode a 320x320 HEIC, then make its ispe box declare 24x16.

    libheif 1.23 rejects the coded picture for exceeding a security limit derived from the
    declared size, and pillow-heif 1.8 raises that as RuntimeError.
    """
    data = bytearray(encode(Image.new("RGB", (320, 320), (10, 10, 10)), "HEIF", quality=10))
    ispe = data.find(b"ispe")
    assert ispe > 0
    # The box type is followed by 4 bytes of version and flags, then width and height.
    struct.pack_into(">II", data, ispe + 8, 24, 16)
    return bytes(data)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(tiff_with_float_strip_offsets, id="tiff-float-strip-offsets"),
        pytest.param(heic_with_understated_size, id="heic-coded-size-over-declared"),
    ],
)
def test_read_image_found_crash_decode_error(build) -> None:
    with pytest.raises(ImageDecodeError):
        read_image(build(), max_pixels=MAX_PIXELS)
