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
