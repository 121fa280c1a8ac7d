"""Turn uploaded bytes into an RGB uint8 array, whatever mode and format the file has."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from eyescreen.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

logger = logging.getLogger(__name__)

# Pillow format names that are read. MPO is the multi-picture JPEG that many cameras write.
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "TIFF", "BMP", "WEBP", "GIF"})

DEFAULT_MAX_PIXELS = 40_000_000


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
        raise UnsupportedImageError("the file is empty (0 bytes); send a JPEG, PNG, TIFF, BMP or WebP image")

    image = _open(data)
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
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDecodeError(
            f"the {image.format} image ({width}x{height}) is corrupt or truncated ({error}); upload the complete file again"
        ) from error


def read_image_file(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file from disk with read_image."""
    return read_image(Path(path).read_bytes(), max_pixels=max_pixels)


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"the image header declares too many pixels ({error}); downscale it and try again") from error
    except UnidentifiedImageError:
        raise UnsupportedImageError(
            f"the {len(data)} bytes starting with {data[:8]!r} are not a supported image; "
            "send a JPEG, PNG, TIFF, BMP or WebP image"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"the image header is corrupt ({error}); upload the complete file again") from error

    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(
            f"{image.format} images are not supported; send a JPEG, PNG, TIFF, BMP or WebP image"
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
    """Map 16-bit, 32-bit integer or float grey levels onto 0..255 without clipping the range."""
    values = pixels.astype(np.float64)
    if mode == "F":
        # Float images are either 0..1 or 0..255 by convention.
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        values = np.nan_to_num(values) * scale
    elif mode.startswith("I;16") or (values.size and values.max() > 255):
        # 16-bit data (Pillow opens 16-bit PNG greyscale as mode "I" or "I;16").
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
