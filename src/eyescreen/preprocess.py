"""Fundus preprocessing shared by training and serving: crop to the field of view, pad, resize.

Every function here is pure: arrays in, arrays out, no I/O and no randomness.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Input scaling that the EfficientNet-Lite ImageNet weights expect: (x / 255 - 0.5) / 0.5.
INPUT_MEAN = 0.5
INPUT_STD = 0.5

# A pixel belongs to the field of view when its brightest channel exceeds this share of the
# image's 99th percentile brightness, and at least MIN_FOV_LEVEL in absolute terms.
FOV_RELATIVE_LEVEL = 0.08
MIN_FOV_LEVEL = 10
# A row or column is inside the field of view when this share of its pixels are.
FOV_LINE_SHARE = 0.02
# The mask is found on a copy no larger than this, for speed.
MASK_MAX_SIDE = 256


def find_field_of_view(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Find the bounding box (top, bottom, left, right) of the bright circular field of view.

    rgb is (H, W, 3) uint8. bottom and right are exclusive. When no field of view is brighter
    than the background, the whole image is returned.
    """
    height, width = rgb.shape[:2]
    step = max(1, int(np.ceil(max(height, width) / MASK_MAX_SIDE)))
    brightness = rgb[::step, ::step].max(axis=2)

    level = max(MIN_FOV_LEVEL, FOV_RELATIVE_LEVEL * float(np.percentile(brightness, 99)))
    mask = brightness > level
    rows = np.flatnonzero(mask.mean(axis=1) > FOV_LINE_SHARE)
    columns = np.flatnonzero(mask.mean(axis=0) > FOV_LINE_SHARE)
    if rows.size < 2 or columns.size < 2:
        return 0, height, 0, width

    top = rows[0] * step
    bottom = min(height, (rows[-1] + 1) * step)
    left = columns[0] * step
    right = min(width, (columns[-1] + 1) * step)
    # A sliver is a detection failure (a bright scale bar, say), not a fundus.
    if (bottom - top) < height // 8 or (right - left) < width // 8:
        return 0, height, 0, width
    return int(top), int(bottom), int(left), int(right)


def crop_to_square(rgb: np.ndarray) -> np.ndarray:
    """Crop an (H, W, 3) uint8 photo to its field of view and pad it with black to a square."""
    top, bottom, left, right = find_field_of_view(rgb)
    cropped = rgb[top:bottom, left:right]

    height, width = cropped.shape[:2]
    side = max(height, width)
    square = np.zeros((side, side, 3), dtype=np.uint8)
    y = (side - height) // 2
    x = (side - width) // 2
    square[y : y + height, x : x + width] = cropped
    return square


def prepare_fundus(rgb: np.ndarray, size: int) -> np.ndarray:
    """Crop, pad and resize an (H, W, 3) uint8 photo to a (size, size, 3) uint8 model image."""
    square = crop_to_square(rgb)
    if square.shape[0] == size:
        return square
    # Pillow's bilinear filter widens its support when shrinking, so it also antialiases.
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def to_model_input(images: np.ndarray) -> np.ndarray:
    """Scale a (N, H, W, 3) uint8 batch into the model's (N, 3, H, W) float32 input."""
    if images.ndim == 3:
        images = images[None]
    scaled = (images.astype(np.float32) / 255.0 - INPUT_MEAN) / INPUT_STD
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))
