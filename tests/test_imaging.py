"""Tests of read_image: every supported format and mode becomes an (H, W, 3) uint8 RGB array.

All test images are generated here with Pillow and numpy, so no binary files are committed.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescreen.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from eyescreen.imaging import read_image, read_image_file

EXIF_ORIENTATION_TAG = 0x0112


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    """Save a Pillow image into bytes in the given format."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def colour_bars(width: int = 48, height: int = 32) -> np.ndarray:
    """Build an RGB image of 4 flat vertical bars, which survives lossy formats and GIF palettes."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], dtype=np.uint8)
    columns = np.arange(width) * len(colours) // width
    return np.ascontiguousarray(np.broadcast_to(colours[columns][None, :, :], (height, width, 3)))


def composite_on_black(rgb: tuple[int, ...], alpha: int) -> list[int]:
    return [round(channel * alpha / 255) for channel in rgb]


def png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """Build a PNG that declares width x height RGB pixels in IHDR but contains no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


# Formats that store RGB without loss, so the decoded pixels must equal the source exactly.
# GIF is lossless here because the bars use only 4 colours.
@pytest.mark.parametrize(
    ("image_format", "options"),
    [
        pytest.param("PNG", {}, id="png"),
        pytest.param("TIFF", {}, id="tiff"),
        pytest.param("TIFF", {"compression": "tiff_lzw"}, id="tiff-lzw"),
        pytest.param("BMP", {}, id="bmp"),
        pytest.param("WEBP", {"lossless": True}, id="webp-lossless"),
        pytest.param("GIF", {}, id="gif"),
    ],
)
def test_read_image_lossless_format_exact(image_format: str, options: dict) -> None:
    source = colour_bars()

    decoded = read_image(encode(Image.fromarray(source), image_format, **options))

    assert decoded.dtype == np.uint8
    assert decoded.shape == (32, 48, 3)
    np.testing.assert_array_equal(decoded, source)


@pytest.mark.parametrize(
    ("image_format", "options"),
    [
        pytest.param("JPEG", {"quality": 95}, id="jpeg"),
        pytest.param("WEBP", {"quality": 90}, id="webp-lossy"),
    ],
)
def test_read_image_lossy_format_close(image_format: str, options: dict) -> None:
    source = colour_bars()

    decoded = read_image(encode(Image.fromarray(source), image_format, **options))

    assert decoded.dtype == np.uint8
    assert decoded.shape == (32, 48, 3)
    # Compare the bar centres, away from the chroma blur at the edges between bars.
    centres = [6, 18, 30, 42]
    difference = np.abs(decoded[:, centres].astype(int) - source[:, centres].astype(int))
    assert difference.max() <= 40


def test_read_image_output_is_contiguous() -> None:
    decoded = read_image(encode(Image.fromarray(colour_bars()), "PNG"))

    assert decoded.flags["C_CONTIGUOUS"]


def test_read_image_rgba_composited_on_black() -> None:
    pixels = np.zeros((2, 3, 4), dtype=np.uint8)
    pixels[0, 0] = (200, 100, 50, 128)  # half transparent
    pixels[0, 1] = (200, 100, 50, 255)  # opaque
    pixels[0, 2] = (200, 100, 50, 0)  # fully transparent
    pixels[1] = (10, 20, 30, 255)

    decoded = read_image(encode(Image.fromarray(pixels, "RGBA"), "PNG"))

    assert decoded.shape == (2, 3, 3)
    # 200 * 128 / 255 = 100.4, 100 * 128 / 255 = 50.2, 50 * 128 / 255 = 25.1, rounded.
    assert decoded[0, 0].tolist() == [100, 50, 25]
    assert decoded[0, 1].tolist() == [200, 100, 50]
    assert decoded[0, 2].tolist() == [0, 0, 0]
    assert decoded[1, 0].tolist() == [10, 20, 30]


def test_read_image_la_composited_on_black() -> None:
    decoded = read_image(encode(Image.new("LA", (3, 2), (200, 128)), "PNG"))

    assert decoded.shape == (2, 3, 3)
    assert decoded[0, 0].tolist() == composite_on_black((200, 200, 200), 128)


def test_read_image_greyscale_l_repeated_in_channels() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4

    decoded = read_image(encode(Image.fromarray(grey, "L"), "PNG"))

    assert decoded.shape == (8, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], grey)


def test_read_image_bilevel_mode_1() -> None:
    image = Image.new("1", (4, 2), 0)
    image.putpixel((1, 0), 1)

    decoded = read_image(encode(image, "PNG"))

    assert decoded.shape == (2, 4, 3)
    assert decoded[0, 1].tolist() == [255, 255, 255]
    assert decoded[0, 0].tolist() == [0, 0, 0]


def palette_image() -> Image.Image:
    """Build a 4x4 palette image: index 0 (10, 20, 30) everywhere, index 1 (200, 100, 50) at (1, 1)."""
    image = Image.new("P", (4, 4), 0)
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    image.putpixel((1, 1), 1)
    return image


@pytest.mark.parametrize("image_format", [pytest.param("PNG", id="png"), pytest.param("GIF", id="gif")])
def test_read_image_palette_without_transparency(image_format: str) -> None:
    decoded = read_image(encode(palette_image(), image_format))

    assert decoded.shape == (4, 4, 3)
    assert decoded[0, 0].tolist() == [10, 20, 30]
    assert decoded[1, 1].tolist() == [200, 100, 50]


@pytest.mark.parametrize("image_format", [pytest.param("PNG", id="png"), pytest.param("GIF", id="gif")])
def test_read_image_palette_transparent_index_black(image_format: str) -> None:
    decoded = read_image(encode(palette_image(), image_format, transparency=0))

    assert decoded.shape == (4, 4, 3)
    assert decoded[0, 0].tolist() == [0, 0, 0]
    assert decoded[1, 1].tolist() == [200, 100, 50]


def test_read_image_16bit_png_rescaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    ramp[0, 1] = 32768
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"

    decoded = read_image(data)

    assert decoded.shape == (32, 32, 3)
    assert decoded.dtype == np.uint8
    assert decoded[0, 0].tolist() == [0, 0, 0]
    assert decoded[-1, -1].tolist() == [255, 255, 255]
    assert abs(int(decoded[0, 1, 0]) - 128) <= 1
    # A clipped conversion would leave nearly everything at 255, a truncated one at 0.
    assert 0.4 < (decoded[:, :, 0] < 128).mean() < 0.6
    assert len(np.unique(decoded[:, :, 0])) > 200


def test_read_image_16bit_tiff_rescaled() -> None:
    ramp = np.linspace(0, 65535, 16 * 16).round().astype(np.uint16).reshape(16, 16)

    decoded = read_image(encode(Image.fromarray(ramp), "TIFF"))

    expected = np.rint(ramp / 257).astype(np.uint8)
    np.testing.assert_array_equal(decoded[:, :, 0], expected)


def test_read_image_float_tiff_unit_range_scaled() -> None:
    ramp = np.linspace(0.0, 1.0, 16 * 16, dtype=np.float32).reshape(16, 16)

    decoded = read_image(encode(Image.fromarray(ramp, "F"), "TIFF"))

    assert decoded[0, 0].tolist() == [0, 0, 0]
    assert decoded[-1, -1].tolist() == [255, 255, 255]
    assert len(np.unique(decoded[:, :, 0])) > 200


def test_read_image_32bit_int_tiff_not_clipped() -> None:
    ramp = np.linspace(0, 1_000_000, 32 * 32).astype(np.int32).reshape(32, 32)

    decoded = read_image(encode(Image.fromarray(ramp, "I"), "TIFF"))

    assert decoded[-1, -1, 0] == 255
    assert (decoded[:, :, 0] == 255).mean() < 0.1


def test_read_image_cmyk_jpeg_converted_to_rgb() -> None:
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    data = encode(cyan, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"

    decoded = read_image(data)

    assert decoded.shape == (16, 16, 3)
    red, green, blue = (int(value) for value in decoded[8, 8])
    assert red <= 10
    assert green >= 245
    assert blue >= 245


@pytest.mark.parametrize(
    ("orientation", "red_half"),
    [
        # Orientation 6: the stored first column is the displayed top row.
        pytest.param(6, "top", id="orientation-6"),
        # Orientation 8: the stored first column is the displayed bottom row.
        pytest.param(8, "bottom", id="orientation-8"),
    ],
)
def test_read_image_exif_orientation_applied(orientation: int, red_half: str) -> None:
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    data = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())

    decoded = read_image(data)

    assert decoded.shape == (40, 20, 3)
    top_red = decoded[:15, :, 0].mean()
    bottom_red = decoded[25:, :, 0].mean()
    if red_half == "top":
        assert top_red > 200 > bottom_red
    else:
        assert bottom_red > 200 > top_red


def test_read_image_exif_orientation_1_unchanged() -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 1
    data = encode(Image.new("RGB", (40, 20), (128, 128, 128)), "JPEG", exif=exif.tobytes())

    assert read_image(data).shape == (20, 40, 3)


def test_read_image_file_format_from_content_not_name(tmp_path: Path) -> None:
    source = colour_bars()
    misnamed = tmp_path / "photo.jpg"
    misnamed.write_bytes(encode(Image.fromarray(source), "PNG"))

    decoded = read_image_file(misnamed)

    # A JPEG decode would not reproduce the bars exactly.
    np.testing.assert_array_equal(decoded, source)


@pytest.mark.parametrize(
    ("image_format", "options"),
    [
        pytest.param("GIF", {}, id="gif"),
        pytest.param("TIFF", {}, id="tiff"),
        pytest.param("WEBP", {"lossless": True}, id="webp"),
    ],
)
def test_read_image_multi_frame_first_frame(image_format: str, options: dict) -> None:
    first = Image.new("RGB", (8, 6), (255, 0, 0))
    second = Image.new("RGB", (8, 6), (0, 0, 255))
    data = encode(first, image_format, save_all=True, append_images=[second], **options)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2

    decoded = read_image(data)

    assert decoded.shape == (6, 8, 3)
    assert decoded[3, 4].tolist() == [255, 0, 0]


def noisy_image_bytes(image_format: str) -> bytes:
    # Noise does not compress, so half the file cuts through the pixel data.
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), image_format)


@pytest.mark.parametrize(
    ("image_format", "kept_share"),
    [
        pytest.param("JPEG", 0.5, id="jpeg-half"),
        pytest.param("JPEG", 0.9, id="jpeg-most"),
        pytest.param("PNG", 0.5, id="png-half"),
        pytest.param("PNG", 0.9, id="png-most"),
    ],
)
def test_read_image_truncated_body_decode_error(image_format: str, kept_share: float) -> None:
    data = noisy_image_bytes(image_format)

    with pytest.raises(ImageDecodeError, match=rf"the {image_format} image \(64x64\) is corrupt or truncated"):
        read_image(data[: int(len(data) * kept_share)])


@pytest.mark.parametrize(
    ("image_format", "kept_bytes"),
    [
        # 40 bytes: PNG signature, complete IHDR and part of the next chunk header.
        pytest.param("PNG", 40, id="png-after-ihdr"),
        # 20 bytes: JPEG start-of-image marker and part of the JFIF segment.
        pytest.param("JPEG", 20, id="jpeg-in-app0"),
    ],
)
def test_read_image_truncated_header_decode_error(image_format: str, kept_bytes: int) -> None:
    data = noisy_image_bytes(image_format)

    with pytest.raises(ImageDecodeError):
        read_image(data[:kept_bytes])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", r"the file is empty \(0 bytes\)", id="empty"),
        pytest.param(
            np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8).tobytes(),
            "the 1000 bytes starting with .* are not a supported image",
            id="random-bytes",
        ),
        pytest.param(b"hello, this is a text file\n", "the 27 bytes starting with b'hello, t'", id="text"),
        pytest.param(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", r"starting with b'%PDF-1\.4'", id="pdf-like"),
        pytest.param(b"<!DOCTYPE html><html></html>", "are not a supported image", id="html"),
    ],
)
def test_read_image_not_an_image_unsupported(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedImageError, match=message):
        read_image(data)


def test_read_image_real_pdf_unsupported() -> None:
    data = encode(Image.new("RGB", (8, 8), (255, 0, 0)), "PDF")

    with pytest.raises(UnsupportedImageError, match="not a supported image"):
        read_image(data)


@pytest.mark.parametrize("image_format", ["PPM", "ICO", "TGA"])
def test_read_image_format_outside_list_unsupported(image_format: str) -> None:
    data = encode(Image.new("RGB", (16, 16), (255, 0, 0)), image_format)

    with pytest.raises(UnsupportedImageError, match=f"{image_format} images are not supported"):
        read_image(data)


def test_read_image_over_max_pixels_too_large() -> None:
    data = encode(Image.new("RGB", (200, 100)), "PNG")

    with pytest.raises(ImageTooLargeError, match=r"200x100 = 20000 pixels, over the limit of 19999"):
        read_image(data, max_pixels=19_999)


def test_read_image_at_max_pixels_accepted() -> None:
    data = encode(Image.new("RGB", (200, 100)), "PNG")

    assert read_image(data, max_pixels=20_000).shape == (100, 200, 3)


def test_read_image_header_only_too_large() -> None:
    # The body contains no pixel data, so decoding would raise ImageDecodeError.
    data = png_header_only(5000, 4000)

    with pytest.raises(ImageTooLargeError, match="5000x4000 = 20000000 pixels"):
        read_image(data, max_pixels=1_000_000)


def test_read_image_header_only_decode_error() -> None:
    # Control for the test above: the same file within the limit reaches the decoder.
    with pytest.raises(ImageDecodeError, match=r"PNG image \(5000x4000\)"):
        read_image(png_header_only(5000, 4000), max_pixels=40_000_000)


def test_read_image_huge_header_png_too_large() -> None:
    # 100000 x 100000 is also above Pillow's own decompression bomb limit, which Image.open enforces.
    data = png_header_only(100_000, 100_000)
    assert len(data) < 100

    with pytest.raises(ImageTooLargeError, match="10000000000 pixels"):
        read_image(data)


def test_read_image_too_large_checked_before_load(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (200, 100)), "PNG")

    def fail_load(self: Image.Image):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(Image.Image, "load", fail_load)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", fail_load)

    with pytest.raises(ImageTooLargeError):
        read_image(data, max_pixels=100)
