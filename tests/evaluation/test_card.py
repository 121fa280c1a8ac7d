"""Model card rendering: the recipe lines and the speed section."""

from __future__ import annotations

from eyescreen.evaluation.card import render_model_card

SPEED = {
    "batch_size": 1,
    "threads": 2,
    "test_time_passes": ["original", "horizontal_flip"],
    "network_pass_ms_median": 4.04,
    "network_pass_ms_p95": 5.4,
    "inference_ms_median": 7.7,
    "total_ms_median": 10.8,
    "photos": "fundus4 glaucoma photos",
    "machine": "x86_64, test CPU, 2 cores",
    "onnxruntime": "1.0",
    "command": "python bench/inference_latency.py",
}


def test_card_renders_speed_section() -> None:
    text = render_model_card({"name": "m", "version": "1", "speed": SPEED})

    assert "## Speed" in text
    assert "one network pass takes 4.0 ms" in text
    assert "Inference for one photo (2 passes, with softmax) takes 7.7 ms" in text
    assert "`python bench/inference_latency.py`" in text


def test_card_without_speed_has_no_speed_section() -> None:
    assert "## Speed" not in render_model_card({"name": "m", "version": "1"})


def test_card_describes_mask_and_passes() -> None:
    text = render_model_card(
        {"name": "m", "version": "1", "field_of_view_mask_radius": 0.9, "test_time_augmentation": ["original", "horizontal_flip"]}
    )

    assert "outside 90% of the field of view's radius" in text
    assert "Test-time passes, logits averaged: original, horizontal_flip" in text
    assert "Local contrast: none" in text
    assert "Colour balance: none" in text


def test_card_describes_colour_balance() -> None:
    text = render_model_card({"name": "m", "version": "1", "colour_balance": True})

    assert "- Colour balance: the network scales each channel to a fixed mean colour inside the field of view" in text


def test_card_describes_training_recipe() -> None:
    config = {
        "epochs": 12,
        "learning_rate": 0.001,
        "batch_size": 32,
        "frozen_blocks": 3,
        "class_balanced_loss": True,
        "label_smoothing": 0.1,
        "augment": True,
        "sensor_noise": 8.0,
        "amplitude_mix": 0.0,
        "jpeg_quality": 30,
    }

    text = render_model_card({"name": "m", "version": "1", "training_config": config})

    assert "- Training: 12 epochs of AdamW at learning rate 0.001, batch 32" in text
    assert "class-weighted cross-entropy with label smoothing 0.1" in text
    assert "sensor noise up to 8 grey levels on half of the photos" in text
    assert "JPEG recompression at quality 30 to 95 on half of the photos" in text
    assert "amplitude mix" not in text


def test_card_without_augmentation_says_none() -> None:
    text = render_model_card({"name": "m", "version": "1", "training_config": {"epochs": 1, "augment": False}})

    assert "- Training augmentation: none" in text


def test_card_without_training_config() -> None:
    assert "- Training:" not in render_model_card({"name": "m", "version": "1"})


def test_card_speed_of_ensemble_names_members() -> None:
    members = [{"name": "a", "version": "1"}, {"name": "b", "version": "2"}]

    text = render_model_card({"name": "m", "version": "1", "speed": SPEED, "members": members})

    assert "one pass through all 2 members takes 4.0 ms" in text


def test_card_renders_undefined_metric_as_dash() -> None:
    metrics = {"n": 6, "sensitivity": {"normal": {"mean": None, "sd": None}, "glaucoma": {"mean": 0.5, "sd": 0.1}}}

    text = render_model_card({"name": "m", "version": "1", "cross_validation": metrics})

    assert "| sensitivity normal | – |" in text
    assert "| sensitivity glaucoma | 0.500 ± 0.100 |" in text
