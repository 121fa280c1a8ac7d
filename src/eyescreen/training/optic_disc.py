"""Find the optic disc in a batch of fundus photos and cut out a square around it.

The optic disc is the brightest round spot of a fundus photo, a sixth to an eighth of the
field of view across. Glaucoma shows there, as a widened cup inside the disc, so a close-up of
the disc gives the network detail that a down-scaled whole photo loses. Everything here is
made of tensor operations that the ONNX exporter supports, so the exported model finds and crops
the disc itself and serving needs no extra step.
"""

from __future__ import annotations

import torch

from eyescreen.training.filters import blur_kernels, circular_mask, separable_blur

# The search runs on a grid of this many cells per side.
SEARCH_GRID = 64
# Difference of Gaussians, in grid cells: the small blur matches the disc's radius, the large
# one the surrounding background.
DISC_SIGMA = 2.0
BACKGROUND_SIGMA = 8.0
# The blurs average only pixels inside this share of the field of view's radius, so the black
# surround does not make the rim look bright against its background.
FIELD_RADIUS = 0.95
# The disc lies well inside the field of view; the search ignores the outer rim, where glare is
# brightest.
SEARCH_RADIUS = 0.8


class OpticDiscLocator(torch.nn.Module):
    """Return the centre of the brightest disc-sized spot in each photo, as (x, y) in [-1, 1]."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        if image_size % SEARCH_GRID:
            raise ValueError(f"image size {image_size} is not a multiple of the {SEARCH_GRID}-cell search grid")
        self.pool = image_size // SEARCH_GRID
        small_rows, small_columns = blur_kernels(DISC_SIGMA, 1)
        large_rows, large_columns = blur_kernels(BACKGROUND_SIGMA, 1)
        self.register_buffer("_small_rows", small_rows, persistent=False)
        self.register_buffer("_small_columns", small_columns, persistent=False)
        self.register_buffer("_large_rows", large_rows, persistent=False)
        self.register_buffer("_large_columns", large_columns, persistent=False)
        field = circular_mask(SEARCH_GRID, FIELD_RADIUS)
        self.register_buffer("_field", field, persistent=False)
        self.register_buffer("_field_small", separable_blur(field, small_rows, small_columns), persistent=False)
        self.register_buffer("_field_large", separable_blur(field, large_rows, large_columns), persistent=False)
        self.register_buffer("_search_mask", circular_mask(SEARCH_GRID, SEARCH_RADIUS), persistent=False)
        cells = (torch.arange(SEARCH_GRID, dtype=torch.float32) + 0.5) / SEARCH_GRID * 2 - 1
        self.register_buffer("_cell_centres", cells, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # The disc has the most contrast in the red and green channels. Blue is mostly noise in fundus photos.
        brightness = images[:, 0:2].mean(dim=1, keepdim=True)
        grid = torch.nn.functional.avg_pool2d(brightness, self.pool) * self._field

        # Blurs that average only over the field: blur(image * field) / blur(field).
        spot = separable_blur(grid, self._small_rows, self._small_columns) / self._field_small.clamp(min=1e-3)
        background = separable_blur(grid, self._large_rows, self._large_columns) / self._field_large.clamp(min=1e-3)
        score = (spot - background) * self._search_mask - 1e4 * (1 - self._search_mask)

        index = torch.argmax(score.flatten(1), dim=1)
        row = torch.div(index, SEARCH_GRID, rounding_mode="floor")
        column = index - row * SEARCH_GRID
        return torch.stack([self._cell_centres[column], self._cell_centres[row]], dim=1)


class DiscCrop(torch.nn.Module):
    """Cut a (crop_size x crop_size) square centred on each photo's optic disc.

    fraction is the square's side as a share of the photo's side.
    """

    def __init__(self, image_size: int, crop_size: int, fraction: float) -> None:
        super().__init__()
        self.locate = OpticDiscLocator(image_size)
        # Pixel centres of the crop, relative to its middle, in the photo's [-1, 1] coordinates.
        offsets = ((torch.arange(crop_size, dtype=torch.float32) + 0.5) / crop_size * 2 - 1) * fraction
        grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="xy"), dim=-1)
        self.register_buffer("_offsets", grid[None], persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        centres = self.locate(images)
        grid = self._offsets + centres[:, None, None, :]
        return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
