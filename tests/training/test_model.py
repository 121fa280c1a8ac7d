"""The network: the field-of-view mask, and configs saved by older versions."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='training tests need the [train] extra: pip install -e ".[train]" torch==2.13.0')

from eyescreen.dataset import Sample  # noqa: E402
from eyescreen.training.config import TrainConfig, prediction_passes  # noqa: E402
from eyescreen.training.filters import circular_mask  # noqa: E402
from eyescreen.training.model import build_model  # noqa: E402
from eyescreen.training.source_holdout import holdout_rows, shared_classes  # noqa: E402

SIZE = 64


def test_circular_mask_keeps_centre_drops_corners() -> None:
    mask = circular_mask(SIZE, 0.9)[0, 0].numpy()

    assert mask[SIZE // 2, SIZE // 2] == 1
    assert mask[0, 0] == 0
    assert mask[SIZE // 2, 0] == 0  # 0.9 of the radius stops short of the edge
    assert mask[SIZE // 2, 4] == 1
    # The share of the square inside a circle of radius 0.9 * side / 2 is pi * 0.81 / 4.
    assert mask.mean() == pytest.approx(np.pi * 0.81 / 4, abs=0.02)


@pytest.mark.parametrize(("radius", "rim_matters"), [(0.9, False), (0.0, True)])
def test_network_ignores_rim_only_when_masked(radius: float, rim_matters: bool) -> None:
    # Pretrained: a freshly initialised network gives nearly the same output for any input.
    model = build_model(TrainConfig(image_size=SIZE, fov_mask_radius=radius)).eval()
    generator = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, SIZE, SIZE, generator=generator) * 2 - 1
    changed_rim = photo.clone()
    changed_rim[..., :3, :3] = 1.0

    with torch.no_grad():
        difference = (model(photo) - model(changed_rim)).abs().max().item()

    assert (difference > 1e-6) == rim_matters


def test_mask_is_not_in_the_state_dict() -> None:
    masked = build_model(TrainConfig(image_size=SIZE, fov_mask_radius=0.9), pretrained=False)
    plain = build_model(TrainConfig(image_size=SIZE, fov_mask_radius=0.0), pretrained=False)

    plain.load_state_dict(masked.state_dict())

    assert masked.state_dict().keys() == plain.state_dict().keys()


def test_old_config_loads_without_mask_or_flip() -> None:
    old = TrainConfig.from_dict({"image_size": 256, "epochs": 12})

    assert old.fov_mask_radius == 0.0
    assert prediction_passes(old) == ["original"]
    assert prediction_passes(TrainConfig()) == ["original", "horizontal_flip"]


def test_old_config_loads_without_sensor_noise() -> None:
    assert TrainConfig.from_dict({"image_size": 256}).sensor_noise == 0.0
    assert TrainConfig().sensor_noise == 8.0


def test_old_config_loads_without_gain_or_jpeg() -> None:
    old = TrainConfig.from_dict({"image_size": 256, "sensor_noise": 8.0})

    assert old.channel_gain == 0.0
    assert old.jpeg_quality == 0
    assert TrainConfig().channel_gain == 0.15
    assert TrainConfig().jpeg_quality == 30


def sample(label: int, source: str, patient: str) -> Sample:
    from pathlib import Path

    return Sample(path=Path(f"{patient}.jpg"), label=label, source=source, patient_id=patient)


def test_holdout_rows_drop_held_out_patients() -> None:
    samples = [
        sample(0, "odir", "odir:1"),  # normal other eye of a glaucoma patient
        sample(2, "odir", "odir:1"),
        sample(2, "cataractdataset", "cd:1"),
        sample(3, "eyepacs", "eyepacs:1"),
        sample(0, "odir", "odir:2"),
    ]

    assert shared_classes(samples) == {"glaucoma": ["cataractdataset", "odir"]}
    train_rows, test_rows = holdout_rows(samples, "odir", ["glaucoma"])
    assert test_rows.tolist() == [1]
    assert train_rows.tolist() == [2, 3, 4]


def output_change(photo: torch.Tensor, changed: torch.Tensor, **options: bool) -> float:
    """Return the largest logit difference between two inputs for a pretrained model built with options."""
    model = build_model(TrainConfig(image_size=SIZE, **options)).eval()
    with torch.no_grad():
        return (model(photo) - model(changed)).abs().max().item()


def test_local_contrast_removes_a_colour_cast() -> None:
    generator = torch.Generator().manual_seed(1)
    photo = torch.rand(1, 3, SIZE, SIZE, generator=generator) - 0.5
    cast = photo + torch.tensor([0.3, 0.0, -0.2]).view(1, 3, 1, 1)
    differences = {enabled: output_change(photo, cast, local_contrast=enabled) for enabled in (False, True)}

    # Only the few pixels whose blur reaches past the image edge still see the cast.
    assert differences[True] < 0.1 * differences[False]


def test_local_contrast_model_exports_to_onnx(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from eyescreen.training.export import check_onnx_matches, export_onnx

    model = build_model(TrainConfig(image_size=SIZE, local_contrast=True)).eval()
    export_onnx(model, tmp_path / "model.onnx", image_size=SIZE)
    photos = np.random.default_rng(2).integers(0, 256, size=(3, SIZE, SIZE, 3), dtype=np.uint8)

    assert check_onnx_matches(model, tmp_path / "model.onnx", photos) < 1e-4


DISC_CONFIG = {"image_size": 2 * SIZE, "disc_crop_size": SIZE // 2, "whole_image_size": SIZE}


def test_disc_branch_model_ignores_the_rim_and_exports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from eyescreen.training.export import check_onnx_matches, export_onnx

    model = build_model(TrainConfig(**DISC_CONFIG)).eval()
    photos = np.random.default_rng(3).integers(0, 256, size=(3, 2 * SIZE, 2 * SIZE, 3), dtype=np.uint8)
    inputs = torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 127.5 - 1
    changed_rim = inputs.clone()
    changed_rim[..., :4, :4] = 1.0
    with torch.no_grad():
        logits = model(inputs)
        rim_difference = (logits - model(changed_rim)).abs().max().item()

    assert logits.shape == (3, 4)
    assert rim_difference < 1e-6
    export_onnx(model, tmp_path / "model.onnx", image_size=2 * SIZE)
    assert check_onnx_matches(model, tmp_path / "model.onnx", photos) < 1e-4


def test_disc_branch_freezes_both_backbones() -> None:
    from eyescreen.training.model import frozen_modules

    model = build_model(TrainConfig(**DISC_CONFIG, frozen_blocks=2), pretrained=False)
    frozen = frozen_modules(model, 2)

    assert len(frozen) == 2 * (2 + 2)  # stem convolution, stem batch norm and 2 blocks, per backbone
    assert all(not parameter.requires_grad for module in frozen for parameter in module.parameters())
    assert model.head.weight.requires_grad


def test_disc_branch_refuses_local_contrast() -> None:
    with pytest.raises(ValueError, match="neither local contrast nor colour balance"):
        build_model(TrainConfig(**DISC_CONFIG, local_contrast=True), pretrained=False)
    with pytest.raises(ValueError, match="neither local contrast nor colour balance"):
        build_model(TrainConfig(**DISC_CONFIG, colour_balance=True), pretrained=False)


def fundus_like(seed: int) -> torch.Tensor:
    """A (1, 3, SIZE, SIZE) photo scaled to [-1, 1]: an orange disc with texture on black."""
    generator = torch.Generator().manual_seed(seed)
    texture = 0.6 + 0.4 * torch.rand(1, 3, SIZE, SIZE, generator=generator)
    colour = torch.tensor([0.75, 0.4, 0.2]).view(1, 3, 1, 1)
    disc = circular_mask(SIZE, 0.95)
    return (texture * colour * disc) * 2 - 1


def test_colour_balance_sets_chroma_keeps_brightness() -> None:
    from eyescreen.training.filters import balance_colour
    from eyescreen.training.model import COLOUR_BALANCE_CHROMA

    photo = fundus_like(4)
    mask = circular_mask(SIZE, 0.9)
    target = torch.tensor(COLOUR_BALANCE_CHROMA)

    balanced = balance_colour(photo, target, mask, floor=0.05, gain_limit=4.0)

    inside = mask[0, 0].bool()
    before = (photo[0] * 0.5 + 0.5)[:, inside].mean(dim=1)
    after = (balanced[0] * 0.5 + 0.5)[:, inside].mean(dim=1)
    assert (after / after.log().mean().exp()).tolist() == pytest.approx(target.tolist(), rel=0.02)
    assert after.log().mean().item() == pytest.approx(before.log().mean().item(), abs=0.02)
    # The black surround stays black.
    assert balanced[0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]


def test_colour_balance_removes_a_colour_cast() -> None:
    photo = fundus_like(5)
    # Close to the camera-shift test's cool cast (red x0.88, blue x1.12), with gains that multiply to 1.
    cool = ((photo * 0.5 + 0.5) * torch.tensor([0.88, 1.0, 1 / 0.88]).view(1, 3, 1, 1)).clamp(0, 1) * 2 - 1
    differences = {enabled: output_change(photo, cool, colour_balance=enabled) for enabled in (False, True)}

    assert differences[True] < 0.05 * differences[False]


def test_colour_balance_model_exports_to_onnx(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from eyescreen.training.export import check_onnx_matches, export_onnx

    model = build_model(TrainConfig(image_size=SIZE, colour_balance=True)).eval()
    export_onnx(model, tmp_path / "model.onnx", image_size=SIZE)
    photos = ((fundus_like(6).repeat(2, 1, 1, 1) * 0.5 + 0.5) * 255).permute(0, 2, 3, 1).round().to(torch.uint8).numpy()
    photos[1] = photos[1] // 2  # a darker photo as well

    assert check_onnx_matches(model, tmp_path / "model.onnx", photos) < 1e-4


def test_old_config_loads_without_colour_balance() -> None:
    assert TrainConfig.from_dict({"image_size": 256}).colour_balance is False
