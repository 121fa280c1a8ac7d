"""JSON API tests, in process through Starlette's TestClient.

URL predictions use the fake resolver and the recording httpx.MockTransport from conftest.py, so
no request leaves the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from eyescreen.inference.session import ModelSession
from eyescreen.labels import CLASSES
from eyescreen.settings import Settings
from eyescreen.web.app import create_app
from eyescreen.web.fetch import MAX_REDIRECTS, URLFetcher


MAX_UPLOAD_BYTES = 200_000
MAX_PIXELS = 1_000_000
FETCH_MAX_BYTES = 50_000
FETCH_TIMEOUT_SECONDS = 0.3

PREDICTIONS = "/api/v1/predictions"
URL_PREDICTIONS = "/api/v1/predictions/url"

TIMING_KEYS = {"decode", "preprocess", "inference", "total"}


@pytest.fixture(scope="module")
def client(model: ModelSession) -> Iterator[TestClient]:
    """One app for the upload tests, started once per module through its lifespan."""
    settings = Settings(max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS)
    with TestClient(create_app(settings, model=model)) as test_client:
        yield test_client


def upload(client: TestClient, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg") -> httpx.Response:
    return client.post(PREDICTIONS, files={"file": (filename, data, content_type)})


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, f"expected only an 'error' key, got {body}"
    assert set(body["error"]) == {"code", "message"}, f"expected code and message, got {body['error']}"
    return body["error"]


def assert_prediction_shape(body: dict) -> None:
    """Check the prediction JSON without assuming which class the placeholder model picks."""
    assert set(body) == {"label", "status", "probabilities", "model", "timings_ms"}
    assert body["status"] in ("ok", "uncertain")
    assert body["label"] in CLASSES
    assert list(body["probabilities"]) == list(CLASSES)
    probabilities = body["probabilities"].values()
    assert all(0.0 <= value <= 1.0 for value in probabilities), body["probabilities"]
    assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-4), body["probabilities"]
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["model"]["name"]
    assert body["model"]["version"]
    assert set(body["timings_ms"]) == TIMING_KEYS
    assert all(value >= 0 for value in body["timings_ms"].values()), body["timings_ms"]
    parts = sum(body["timings_ms"][key] for key in ("decode", "preprocess", "inference"))
    assert math.isclose(body["timings_ms"]["total"], parts, abs_tol=0.05), body["timings_ms"]


def png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_response(data: bytes, content_type: str = "image/jpeg") -> httpx.Response:
    return httpx.Response(200, headers={"content-type": content_type}, content=data)


@pytest.fixture
def make_url_client(make_client, make_transport, resolver) -> Callable:
    """Return a builder of apps whose URL fetcher uses the fake resolver and a recording MockTransport."""

    def build(handler: Callable[[httpx.Request], object]) -> tuple[TestClient, httpx.MockTransport]:
        transport = make_transport(handler)
        fetcher = URLFetcher(
            max_bytes=FETCH_MAX_BYTES,
            timeout_seconds=FETCH_TIMEOUT_SECONDS,
            resolver=resolver,
            transport=transport,
        )
        settings = Settings(max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS)
        return make_client(settings, fetcher), transport

    return build


# Upload route


def test_predictions_real_photo_200(client: TestClient, real_photo: bytes) -> None:
    response = upload(client, real_photo)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_prediction_shape(response.json())


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "BMP", "TIFF"])
def test_predictions_other_formats_200(client: TestClient, make_image, image_format: str) -> None:
    response = upload(client, make_image(128, image_format), filename="photo.bin", content_type="application/octet-stream")

    assert response.status_code == 200, response.text
    assert_prediction_shape(response.json())


def test_predictions_model_matches_model_route(client: TestClient, fundus_jpeg: bytes) -> None:
    prediction = upload(client, fundus_jpeg).json()
    model = client.get("/api/v1/model").json()

    assert prediction["model"]["name"] == model["name"]
    assert prediction["model"]["version"] == model["version"]


def test_predictions_truncated_jpeg_400(client: TestClient, fundus_jpeg: bytes) -> None:
    response = upload(client, fundus_jpeg[: len(fundus_jpeg) // 2])

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "corrupt_image"
    assert "truncated" in error["message"]


def test_predictions_body_over_limit_413(client: TestClient) -> None:
    body = b"x" * (MAX_UPLOAD_BYTES + 1)

    response = client.post(PREDICTIONS, content=body, headers={"content-type": "multipart/form-data; boundary=limit"})

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "request_too_large"
    assert str(MAX_UPLOAD_BYTES + 1) in error["message"]
    assert str(MAX_UPLOAD_BYTES) in error["message"]


@pytest.mark.parametrize(
    "path, content_type",
    [
        pytest.param(PREDICTIONS, "multipart/form-data; boundary=limit", id="upload"),
        pytest.param(URL_PREDICTIONS, "application/json", id="url"),
    ],
)
def test_predictions_chunked_body_over_limit_413(client: TestClient, path: str, content_type: str) -> None:
    chunks_sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal chunks_sent
        for _ in range(2 * MAX_UPLOAD_BYTES // 10_000):
            chunks_sent += 1
            yield b"x" * 10_000

    response = client.post(path, content=chunks(), headers={"content-type": content_type})

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "request_too_large"
    assert str(MAX_UPLOAD_BYTES) in error["message"]
    assert chunks_sent > MAX_UPLOAD_BYTES // 10_000


def test_predictions_too_many_pixels_413(client: TestClient) -> None:
    response = upload(client, png_of_size(1100, 1000), filename="big.png", content_type="image/png")

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "image_too_large"
    assert "1100x1000" in error["message"]
    assert str(MAX_PIXELS) in error["message"]


@pytest.mark.parametrize(
    "data, expected_text",
    [
        pytest.param(b"%PDF-1.7\n" + b"0" * 200, "not a supported image", id="pdf"),
        pytest.param(b"name,label\nodir_1,normal\n", "not a supported image", id="csv"),
        pytest.param(b"", "empty", id="empty"),
    ],
)
def test_predictions_non_image_415(client: TestClient, data: bytes, expected_text: str) -> None:
    response = upload(client, data, filename="photo.jpg")

    assert response.status_code == 415
    error = error_of(response)
    assert error["code"] == "unsupported_image"
    assert expected_text in error["message"]


def test_predictions_missing_file_field_422(client: TestClient, fundus_jpeg: bytes) -> None:
    response = client.post(PREDICTIONS, data={"note": "left eye"}, files={"photo": ("photo.jpg", fundus_jpeg, "image/jpeg")})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "missing_file"
    assert "'file'" in error["message"]


def test_predictions_json_body_422(client: TestClient) -> None:
    response = client.post(PREDICTIONS, json={"url": "https://images.example.org/photo.jpg"})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "missing_file"
    assert "application/json" in error["message"]


@pytest.mark.parametrize(
    "content_type, body, expected_text",
    [
        pytest.param("multipart/form-data", b"--x\r\n", "boundary", id="no-boundary"),
        pytest.param(
            "multipart/form-data; boundary=b",
            b"".join(
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="%d.jpg"\r\n\r\nxx\r\n' % index for index in range(2)
            )
            + b"--b--\r\n",
            "files",
            id="two-files",
        ),
    ],
)
def test_predictions_invalid_multipart_422(client: TestClient, content_type: str, body: bytes, expected_text: str) -> None:
    response = client.post(PREDICTIONS, content=body, headers={"content-type": content_type})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_form"
    assert expected_text in error["message"].lower()


# Other routes


def test_model_route_200(client: TestClient, model: ModelSession) -> None:
    response = client.get("/api/v1/model")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == model.name
    assert body["version"] == model.version
    assert body["classes"] == list(CLASSES)
    assert isinstance(body["card"], dict)


def test_unknown_path_404(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "not_found"
    assert "/api/v1/nothing-here" in error["message"]


def test_wrong_method_405(client: TestClient) -> None:
    response = client.get(PREDICTIONS)

    assert response.status_code == 405
    error = error_of(response)
    assert error["code"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


# URL route: request body


@pytest.mark.parametrize(
    "body, code, expected_text",
    [
        pytest.param(b"{not json", "invalid_json", "not valid JSON", id="invalid-json"),
        pytest.param(b"\xff\xfe\x00", "invalid_json", "not valid JSON", id="not-utf8"),
        pytest.param(b"{}", "missing_url", '"url"', id="no-url"),
        pytest.param(b'{"url": "   "}', "missing_url", '"url"', id="blank-url"),
        pytest.param(b'{"url": 42}', "missing_url", '"url"', id="url-not-string"),
        pytest.param(b'["https://images.example.org/a.jpg"]', "missing_url", '"url"', id="list"),
    ],
)
def test_url_predictions_invalid_body_422(client: TestClient, body: bytes, code: str, expected_text: str) -> None:
    response = client.post(URL_PREDICTIONS, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == code
    assert expected_text in error["message"]


# URL route: fetching


def test_url_predictions_public_image_200(make_url_client, resolver, fundus_jpeg: bytes) -> None:
    client, transport = make_url_client(lambda request: image_response(fundus_jpeg))

    response = client.post(URL_PREDICTIONS, json={"url": "  https://images.example.org/eye.jpg  "})

    assert response.status_code == 200, response.text
    assert_prediction_shape(response.json())
    assert resolver.calls == [("images.example.org", 443)]
    assert [str(request.url) for request in transport.requests] == ["https://images.example.org/eye.jpg"]


@pytest.mark.parametrize(
    "url, expected_text",
    [
        pytest.param("ftp://images.example.org/eye.jpg", "'ftp'", id="ftp-scheme"),
        pytest.param("file:///etc/hostname", "'file'", id="file-scheme"),
        pytest.param("http://loopback.example.org/eye.jpg", "127.0.0.1", id="loopback"),
        pytest.param("http://private.example.org/eye.jpg", "10.0.0.1", id="private"),
        pytest.param("http://metadata.example.org/latest/meta-data/", "169.254.169.254", id="link-local"),
        pytest.param("http://ipv6-loopback.example.org/eye.jpg", "::1", id="ipv6-loopback"),
        pytest.param("http://mixed.example.org/eye.jpg", "10.0.0.1", id="one-private-address"),
        pytest.param("http://[::1]:8000/eye.jpg", "::1", id="ipv6-literal"),
    ],
)
def test_url_predictions_rejected_url_400(make_url_client, url: str, expected_text: str) -> None:
    client, transport = make_url_client(lambda request: httpx.Response(500))

    response = client.post(URL_PREDICTIONS, json={"url": url})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "url_not_allowed"
    assert expected_text in error["message"]
    assert transport.requests == []


def test_url_predictions_unknown_host_400(make_url_client) -> None:
    client, transport = make_url_client(lambda request: httpx.Response(500))

    response = client.post(URL_PREDICTIONS, json={"url": "https://unknown.example.org/eye.jpg"})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "url_not_allowed"
    assert "could not be resolved" in error["message"]
    assert transport.requests == []


def test_url_predictions_redirect_to_private_400(make_url_client, resolver) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://private.example.org/eye.jpg"})

    client, transport = make_url_client(handler)

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/eye.jpg"})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "url_not_allowed"
    assert "10.0.0.1" in error["message"]
    assert resolver.hosts_looked_up == ["images.example.org", "private.example.org"]
    assert transport.hosts_requested == ["images.example.org"]


def test_url_predictions_redirects_within_cap_200(make_url_client, fundus_jpeg: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.params.get("hop", "0"))
        if hop < MAX_REDIRECTS:
            return httpx.Response(302, headers={"location": f"/eye.jpg?hop={hop + 1}"})
        return image_response(fundus_jpeg)

    client, transport = make_url_client(handler)

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/eye.jpg"})

    assert response.status_code == 200, response.text
    assert len(transport.requests) == MAX_REDIRECTS + 1


def test_url_predictions_redirects_over_cap_502(make_url_client) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        hop = int(request.url.params.get("hop", "0"))
        return httpx.Response(302, headers={"location": f"/eye.jpg?hop={hop + 1}"})

    client, transport = make_url_client(handler)

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/eye.jpg"})

    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "url_fetch_failed"
    assert f"more than {MAX_REDIRECTS}" in error["message"]
    assert len(transport.requests) == MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    "status",
    [pytest.param(404, id="not-found"), pytest.param(403, id="forbidden"), pytest.param(500, id="server-error")],
)
def test_url_predictions_error_status_502(make_url_client, status: int) -> None:
    client, _ = make_url_client(lambda request: httpx.Response(status, text="no such image"))

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/missing.jpg"})

    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "url_fetch_failed"
    assert f"HTTP {status}" in error["message"]
    assert "images.example.org" in error["message"]


def test_url_predictions_non_image_502(make_url_client) -> None:
    html = b"<!doctype html><title>Gallery</title><img src=eye.jpg>"
    client, _ = make_url_client(lambda request: image_response(html, "text/html"))

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/gallery.html"})

    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "url_fetch_failed"
    assert "readable image" in error["message"]


def test_url_predictions_connection_failure_502(make_url_client) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client, _ = make_url_client(handler)

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/eye.jpg"})

    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "url_fetch_failed"
    assert "connection refused" in error["message"]


def test_url_predictions_slow_server_504(make_url_client) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    client, _ = make_url_client(handler)

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/eye.jpg"})

    assert response.status_code == 504
    error = error_of(response)
    assert error["code"] == "url_timeout"
    assert "images.example.org" in error["message"]
    assert f"{FETCH_TIMEOUT_SECONDS:g} s" in error["message"]


def test_url_predictions_remote_body_over_limit_413(make_url_client) -> None:
    client, _ = make_url_client(lambda request: image_response(b"\xff" * (FETCH_MAX_BYTES + 1)))

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/huge.jpg"})

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "remote_image_too_large"
    assert str(FETCH_MAX_BYTES) in error["message"]


def test_url_predictions_remote_too_many_pixels_413(make_url_client) -> None:
    client, _ = make_url_client(lambda request: image_response(png_of_size(1100, 1000), "image/png"))

    response = client.post(URL_PREDICTIONS, json={"url": "https://images.example.org/big.png"})

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "image_too_large"
    assert "1100x1000" in error["message"]


def test_model_route_card_with_undefined_metric_200(make_client, model: ModelSession) -> None:
    """Undefined metrics (NaN) in a card are sent as null, because strict JSON has no NaN."""
    card_with_nan = {**model.card, "cross_validation": {"by_source": {"eyepacs": {"sensitivity": {"normal": float("nan")}}}}}
    client = make_client()
    client.app.state.model = dataclasses.replace(model, card=card_with_nan)

    response = client.get("/api/v1/model")

    assert response.status_code == 200
    assert response.json()["card"]["cross_validation"]["by_source"]["eyepacs"]["sensitivity"]["normal"] is None
