"""Turn uploaded bytes into an RGB uint8 array, whatever mode and format the file has."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from eyescreen.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

logger = logging.getLogger(__name__)

# pillow-heif adds the HEIF format (iPhone HEIC photos) to Pillow's format detection.
register_heif_opener()

# Pillow format names that are read. MPO is the multi-picture JPEG that many cameras write, and
# HEIF covers .heic and .heif files.
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "TIFF", "BMP", "WEBP", "GIF", "HEIF"})
SUPPORTED_NAMES = "JPEG, PNG, TIFF, BMP, WebP, GIF or HEIC"

# File signatures of the supported formats. Bytes that start with one of these but that Pillow
# cannot identify are a damaged file of that format, not some other kind of file.
SIGNATURES: tuple[bytes, ...] = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"BM", b"GIF87a", b"GIF89a")

# ISO base media "ftyp" brands of HEIF still images; videos share the box but not these brands.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})

DEFAULT_MAX_PIXELS = 40_000_000

# Exceptions that decoding a damaged file raises, besides Pillow's usual OSError, SyntaxError,
# ValueError and EOFError. pillow-heif 1.8 raises RuntimeError when libheif rejects a file, for
# example for a coded size above its security limit. Pillow 13 raises TypeError for a TIFF whose
# strip offsets are stored as a non-integer type.
DECODE_ERRORS: tuple[type[Exception], ...] = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, TypeError)


def read_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into an RGB array of shape (height, width, 3) and dtype uint8.

    The format is detected from the content, never from a file name. EXIF orientation is
    applied, 16-bit images are rescaled to 8 bits, and transparent pixels are composited on
    black. Multi-frame files give their first frame.

    Raises UnsupportedImageError for bytes that are not an image in a supported format,
    ImageTooLargeError when width x height exceeds max_pixels (checked from the header, before
    the pixels are decoded), and ImageDecodeError for corrupt or truncated data.
    """
    if not data:
        raise UnsupportedImageError(f"the file is empty (0 bytes); send a {SUPPORTED_NAMES} image")

    image = _open(data, max_pixels)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}; "
            "downscale it and try again"
        )

    try:
        with warnings.catch_warnings():
            # Pillow warns above Image.MAX_IMAGE_PIXELS; the max_pixels check above already bounds the size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
    except DECODE_ERRORS as error:
        raise ImageDecodeError(
            f"the {image.format} image ({width}x{height}) is corrupt or truncated ({error}); upload the complete file again"
        ) from error


def read_image_file(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file from disk with read_image."""
    return read_image(Path(path).read_bytes(), max_pixels=max_pixels)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        # NOTE: Pillow refuses images above 2 x Image.MAX_IMAGE_PIXELS (about 179 million pixels in
        # Pillow 13) inside Image.open, so a max_pixels above that has no effect.
        raise ImageTooLargeError(
            f"the image header declares more pixels than the limit of {max_pixels} ({error}); downscale it and try again"
        ) from error
    except UnidentifiedImageError:
        is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        is_heif = data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS
        if data.startswith(SIGNATURES) or is_webp or is_heif:
            raise ImageDecodeError(
                f"the {len(data)} bytes start like an image file but its header is incomplete or corrupt; upload the complete file again"
            ) from None
        raise UnsupportedImageError(
            f"the {len(data)} bytes starting with {data[:8]!r} are not a supported image; "
            f"send a {SUPPORTED_NAMES} image"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"the image header is corrupt ({error}); upload the complete file again") from error

    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(
            f"{image.format} images are not supported; send a {SUPPORTED_NAMES} image"
        )
    return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode into an (H, W, 3) uint8 array."""
    mode = image.mode

    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _rescale_to_uint8(np.asarray(image), mode)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))

    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        # Composite on black, the colour of the background around a fundus photograph.
        return np.ascontiguousarray(np.rint(rgba[:, :, :3] * alpha).astype(np.uint8))

    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _rescale_to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit, 32-bit integer or float grey levels onto 0..255 without clipping the range.

    16-bit data (mode I;16, or mode I within 0..65535, as Pillow opens 16-bit PNG) is divided by
    257. Floats within 0..1 are multiplied by 255. Wider ranges are scaled by their maximum.
    """
    values = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    values = np.maximum(values, 0.0)
    maximum = float(values.max()) if values.size else 0.0

    if mode == "F":
        if maximum <= 1.0:
            scale = 255.0
        elif maximum <= 255.0:
            scale = 1.0
        else:
            scale = 255.0 / maximum
    elif mode.startswith("I;16") or 255.0 < maximum <= 65535.0:
        scale = 1.0 / 257.0
    elif maximum > 65535.0:
        scale = 255.0 / maximum
    else:
        scale = 1.0
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
