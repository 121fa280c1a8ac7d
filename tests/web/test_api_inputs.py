"""Upload tests where the file name and content type disagree with the bytes.

The API detects the format from the content, so a HEIC photo that a phone shares as photo.jpg
with type image/jpeg is still read, and so is a PNG named x.heic.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.testclient import TestClient

from eyescreen.labels import CLASSES

PREDICTIONS = "/api/v1/predictions"


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def upload(client: TestClient, data: bytes, filename: str, content_type: str) -> httpx.Response:
    return client.post(PREDICTIONS, files={"file": (filename, data, content_type)})


def test_upload_heic_signature(make_image: Callable[..., bytes]) -> None:
    # Control: the bytes sent below are HEIC, not a JPEG that happens to decode.
    data = make_image(256, "HEIF")

    assert data[4:12] == b"ftypheic"
    assert not data.startswith(b"\xff\xd8\xff")


def test_upload_heic_named_jpg_200(client: TestClient, make_image: Callable[..., bytes]) -> None:
    response = upload(client, make_image(256, "HEIF"), "photo.jpg", "image/jpeg")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] in CLASSES
    assert list(body["probabilities"]) == list(CLASSES)


def test_upload_png_named_heic_200(client: TestClient, make_image: Callable[..., bytes]) -> None:
    response = upload(client, make_image(256, "PNG"), "x.heic", "image/heic")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] in CLASSES
    assert list(body["probabilities"]) == list(CLASSES)


def test_upload_png_name_does_not_change_result(client: TestClient, make_image: Callable[..., bytes]) -> None:
    # The same PNG bytes under a misleading and a matching name give the same probabilities.
    data = make_image(256, "PNG")

    misnamed = upload(client, data, "x.heic", "image/heic")
    named = upload(client, data, "x.png", "image/png")

    assert misnamed.status_code == 200, misnamed.text
    assert named.status_code == 200, named.text
    assert misnamed.json()["probabilities"] == named.json()["probabilities"]


def test_upload_heic_name_does_not_change_result(client: TestClient, make_image: Callable[..., bytes]) -> None:
    data = make_image(256, "HEIF")

    misnamed = upload(client, data, "photo.jpg", "image/jpeg")
    named = upload(client, data, "photo.heic", "image/heic")

    assert misnamed.status_code == 200, misnamed.text
    assert named.status_code == 200, named.text
    assert misnamed.json()["probabilities"] == named.json()["probabilities"]
