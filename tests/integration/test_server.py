"""End-to-end tests against `python -m eyescreen serve` running under uvicorn on 127.0.0.1."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from eyescreen.labels import CLASSES

pytestmark = pytest.mark.integration

TIMING_KEYS = {"decode", "preprocess", "inference", "total"}


def assert_prediction_shape(body: dict) -> None:
    """Check the prediction JSON without assuming which class the bundled model picks."""
    assert body["label"] in CLASSES
    assert list(body["probabilities"]) == list(CLASSES)
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-4), body["probabilities"]
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["model"]["name"]
    assert body["model"]["version"]
    assert set(body["timings_ms"]) == TIMING_KEYS


def test_server_page_served(api: httpx.Client) -> None:
    response = api.get("/", headers={"Accept-Language": "zh-CN"})

    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text


def test_server_upload_photo_200(api: httpx.Client, upload_photo: Path) -> None:
    with upload_photo.open("rb") as photo:
        response = api.post("/api/v1/predictions", files={"file": (upload_photo.name, photo, "image/jpeg")})

    assert response.status_code == 200, response.text
    assert_prediction_shape(response.json())


def test_server_url_prediction_200(api: httpx.Client, image_server: str) -> None:
    response = api.post("/api/v1/predictions/url", json={"url": f"{image_server}/fundus.jpg"})

    assert response.status_code == 200, response.text
    assert_prediction_shape(response.json())


def test_server_non_image_upload_415(api: httpx.Client) -> None:
    response = api.post("/api/v1/predictions", files={"file": ("notes.txt", b"not an image\n", "text/plain")})

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_image"


@pytest.mark.parametrize(
    "path, expected_text",
    [
        pytest.param("/missing.jpg", "HTTP 404", id="not-found"),
        pytest.param("/notes.txt", "readable image", id="not-an-image"),
    ],
)
def test_server_url_fetch_failed_502(api: httpx.Client, image_server: str, path: str, expected_text: str) -> None:
    response = api.post("/api/v1/predictions/url", json={"url": f"{image_server}{path}"})

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "url_fetch_failed"
    assert expected_text in error["message"]


def test_server_url_outside_allowed_network_400(api: httpx.Client, image_server: str) -> None:
    # 127.0.0.1/32 is opened, 127.0.0.2 is not: the server rejects the URL before connecting.
    port = httpx.URL(image_server).port

    response = api.post("/api/v1/predictions/url", json={"url": f"http://127.0.0.2:{port}/fundus.jpg"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "url_not_allowed"
    assert "127.0.0.2" in error["message"]


def test_server_logs_rejections(api: httpx.Client, eyescreen_server) -> None:
    api.post("/api/v1/predictions", files={"file": ("empty.jpg", b"", "image/jpeg")})

    log = eyescreen_server.log_path.read_text()
    rejection = next(line for line in log.splitlines() if "request rejected" in line)
    assert "method=POST path=/api/v1/predictions" in rejection
    assert "client=127.0.0.1" in rejection
    assert "status=415 code=unsupported_image" in rejection
