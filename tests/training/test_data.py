"""Training data: the Fourier amplitude mix and the dataset that applies it."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

torch = pytest.importorskip("torch", reason='training tests need the [train] extra: pip install -e ".[train]" torch==2.13.0')

from eyescreen.preprocess import prepare_fundus  # noqa: E402
from eyescreen.training.data import FundusDataset, mix_amplitude, training_augmentation  # noqa: E402


@pytest.fixture(scope="module")
def retina() -> np.ndarray:
    return prepare_fundus(data.retina(), 128)


@pytest.fixture(scope="module")
def other_camera(retina: np.ndarray) -> np.ndarray:
    """The same eye mirrored, darker and with a blue cast: another layout and another look."""
    mirrored = retina[:, ::-1].astype(np.float32)
    return np.clip(mirrored * np.array([0.6, 0.8, 1.3]) * 0.8, 0, 255).astype(np.uint8)


def disc_column(image: np.ndarray) -> int:
    """Column of the brightest spot of a blurred green channel: the optic disc."""
    green = image[..., 1].astype(np.float32)
    kernel = np.ones(9) / 9
    blurred = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, green)
    blurred = np.apply_along_axis(lambda column: np.convolve(column, kernel, mode="same"), 0, blurred)
    return int(np.unravel_index(np.argmax(blurred), blurred.shape)[1])


def test_weight_zero_returns_the_photo(retina: np.ndarray, other_camera: np.ndarray) -> None:
    mixed = mix_amplitude(retina, other_camera, 0.0)

    assert mixed.dtype == np.uint8
    assert mixed.shape == retina.shape
    assert np.abs(mixed.astype(int) - retina.astype(int)).max() <= 1


def test_full_weight_keeps_layout_not_colour(retina: np.ndarray, other_camera: np.ndarray) -> None:
    mixed = mix_amplitude(retina, other_camera, 1.0)

    # The zero-frequency amplitude is each channel's mean, so the colour balance moves over.
    other_means = other_camera.reshape(-1, 3).mean(axis=0)
    assert np.allclose(mixed.reshape(-1, 3).mean(axis=0), other_means, atol=4.0)
    assert not np.allclose(retina.reshape(-1, 3).mean(axis=0), other_means, atol=4.0)

    # The phase stays, so the disc stays on the side where the photo has it.
    assert disc_column(retina) < 64 < disc_column(other_camera)
    assert abs(disc_column(mixed) - disc_column(retina)) <= 6


def test_half_weight_lies_between_the_two_looks(retina: np.ndarray, other_camera: np.ndarray) -> None:
    blue_share = [image[..., 2].mean() / image.mean() for image in (retina, mix_amplitude(retina, other_camera, 0.5), other_camera)]

    assert blue_share[0] < blue_share[1] < blue_share[2]


def test_mix_refuses_photos_of_different_sizes(retina: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
        mix_amplitude(retina, retina[:64, :64], 0.5)


def test_mix_refuses_a_weight_outside_zero_to_one(retina: np.ndarray) -> None:
    with pytest.raises(ValueError, match="1.5"):
        mix_amplitude(retina, retina, 1.5)


def test_dataset_mixes_reproducibly_from_its_seed(retina: np.ndarray, other_camera: np.ndarray) -> None:
    images = np.stack([retina, other_camera, retina[::-1], other_camera[::-1]])

    plain = [FundusDataset(images, [0, 1, 2, 3])[index][0] for index in range(4)]
    first = FundusDataset(images, [0, 1, 2, 3], amplitude_mix=1.0, seed=7)
    second = FundusDataset(images, [0, 1, 2, 3], amplitude_mix=1.0, seed=7)
    mixed = [first[index][0] for index in range(4)]

    assert all(torch.equal(a, b) for a, b in zip(mixed, [second[index][0] for index in range(4)]))
    assert sum(not torch.allclose(a, b, atol=0.01) for a, b in zip(mixed, plain)) >= 2
    assert [first[index][1] for index in range(4)] == [0, 1, 2, 3]


def test_dataset_refuses_a_share_above_one(retina: np.ndarray) -> None:
    with pytest.raises(ValueError, match="amplitude_mix.*2"):
        FundusDataset(retina[None], [0], amplitude_mix=2.0)


def central_spread(image: np.ndarray) -> float:
    return float(image[48:80, 48:80].astype(np.float64).std())


def test_sensor_noise_reaches_about_half_the_photos() -> None:
    flat = np.full((128, 128, 3), 128, dtype=np.uint8)
    augment = training_augmentation(seed=3, sensor_noise=8.0)

    spreads = [central_spread(augment(image=flat)["image"]) for _ in range(40)]

    noisy = [spread for spread in spreads if spread > 0.5]
    assert 8 <= len(noisy) <= 32
    assert max(spreads) < 9.0


def test_no_sensor_noise_keeps_flat_photos_flat() -> None:
    flat = np.full((128, 128, 3), 128, dtype=np.uint8)
    augment = training_augmentation(seed=3)

    spreads = [central_spread(augment(image=flat)["image"]) for _ in range(40)]

    assert max(spreads) < 0.5


def test_sensor_noise_refuses_a_negative_deviation() -> None:
    with pytest.raises(ValueError, match="-1"):
        training_augmentation(sensor_noise=-1.0)


def test_channel_gain_tints_about_half_the_photos() -> None:
    grey = np.full((64, 64, 3), 128, dtype=np.uint8)
    augment = training_augmentation(seed=4, channel_gain=0.15)

    # The other changes keep grey grey, so only the gains make the channel means differ. The
    # spread is relative to the brightest channel, which brightness and gamma changes also move.
    tints = []
    for _ in range(40):
        means = augment(image=grey)["image"][24:40, 24:40].reshape(-1, 3).mean(axis=0)
        tints.append(float((means.max() - means.min()) / means.max()))

    tinted = [tint for tint in tints if tint > 0.01]
    assert 8 <= len(tinted) <= 32
    # Gains between 0.85 and 1.15 differ by at most 0.3 / 1.15 of the largest.
    assert max(tints) <= 0.3 / 1.15 + 0.02


def test_channel_gain_rejects_one_or_more() -> None:
    with pytest.raises(ValueError, match="channel_gain must be at least 0 and below 1, got 1.0"):
        training_augmentation(channel_gain=1.0)


def test_jpeg_quality_recompresses_about_half(retina: np.ndarray) -> None:
    # Built with the same seed, both pipelines draw the same earlier changes, so a photo differs
    # only where the last step, JPEG recompression, ran.
    changed = []
    for seed in range(40):
        plain = training_augmentation(seed=seed)(image=retina)["image"]
        recompressed = training_augmentation(seed=seed, jpeg_quality=30)(image=retina)["image"]
        changed.append(float(np.abs(plain.astype(np.int16) - recompressed).mean()))

    recompressed_count = sum(difference > 0 for difference in changed)
    assert 8 <= recompressed_count <= 32
    # A recompressed photo differs by more than rounding, because quality 95 or below changes
    # many pixels of a photo with vessels and a disc.
    assert all(difference > 0.1 for difference in changed if difference > 0)


@pytest.mark.parametrize("quality", [-1, 96])
def test_jpeg_quality_rejects_out_of_range(quality: int) -> None:
    with pytest.raises(ValueError, match=f"jpeg_quality must be 0 \\(off\\) or a JPEG quality up to 95, got {quality}"):
        training_augmentation(jpeg_quality=quality)
