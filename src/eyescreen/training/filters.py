"""Fixed image filters that the network applies to its input, so the ONNX model applies them too."""

from __future__ import annotations

import math

import torch


def circular_mask(size: int, radius_fraction: float) -> torch.Tensor:
    """Return a (1, 1, size, size) tensor: 1 inside the centred circle, 0 outside.

    radius_fraction is the circle's radius as a share of half the side.
    """
    centre = (size - 1) / 2
    offsets = torch.arange(size, dtype=torch.float32) - centre
    distance = torch.sqrt(offsets[:, None] ** 2 + offsets[None, :] ** 2)
    return (distance <= radius_fraction * size / 2).float()[None, None]


def fill_outside(images: torch.Tensor, mask: torch.Tensor, fill: float) -> torch.Tensor:
    """Keep images where mask is 1 and set them to fill where it is 0."""
    return images * mask + fill * (1.0 - mask)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Return a normalised 1-D Gaussian of width 2 * ceil(3 * sigma) + 1."""
    half = int(math.ceil(3 * sigma))
    offsets = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def blur_kernels(sigma: float, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return depthwise (C, 1, 1, K) and (C, 1, K, 1) Gaussian kernels for separable_blur."""
    kernel = gaussian_kernel(sigma)
    rows = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    columns = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    return rows, columns


def separable_blur(images: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Blur (N, C, H, W) images with depthwise (C, 1, 1, K) and (C, 1, K, 1) kernels (zero padding)."""
    half = rows.shape[-1] // 2
    channels = rows.shape[0]
    blurred = torch.nn.functional.conv2d(images, rows, padding=(0, half), groups=channels)
    return torch.nn.functional.conv2d(blurred, columns, padding=(half, 0), groups=channels)


def balance_colour(
    images: torch.Tensor, target_chroma: torch.Tensor, mask: torch.Tensor | None, *, floor: float, gain_limit: float
) -> torch.Tensor:
    """Scale each channel of (N, 3, H, W) images, scaled to [-1, 1], so their mean colour has target_chroma.

    The means are taken over the fundus: pixels inside mask (when given) whose brightest channel
    is above floor (on the 0 to 1 scale), which leaves out the black surround. target_chroma
    contains the R, G and B means divided by their geometric mean. The photo's own geometric mean
    of the channel means, its brightness, stays as it was. A colour cast whose channel gains
    multiply to 1, as a different white balance gives, therefore leaves the result unchanged up
    to clipping. Gains are limited to [1 / gain_limit, gain_limit].
    """
    unit = images * 0.5 + 0.5
    fundus = (unit.amax(dim=1, keepdim=True) > floor).to(images.dtype)
    if mask is not None:
        fundus = fundus * mask

    area = fundus.sum(dim=(2, 3)).clamp_min(1.0)
    means = (unit * fundus).sum(dim=(2, 3)) / area
    means = means.clamp_min(1e-3)
    brightness = torch.exp(torch.log(means).mean(dim=1, keepdim=True))
    gains = (target_chroma.view(1, -1) * brightness / means).clamp(1.0 / gain_limit, gain_limit)

    balanced = (unit * gains[:, :, None, None]).clamp(0.0, 1.0)
    return balanced * 2.0 - 1.0
