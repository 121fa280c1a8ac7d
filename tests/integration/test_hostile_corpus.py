"""Upload a corpus of odd and hostile files to a real `eyescreen serve` and check each response.

Each file is generated here. Every response must be a 200 with the prediction JSON or an error
with the API's error shape and the expected status and code. After the whole corpus the server
must still classify a valid photo. docs/reliability.md lists the same table.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pillow_heif import register_heif_opener

from eyescreen.labels import CLASSES

pytestmark = pytest.mark.integration

# This test process does not import eyescreen.imaging, so register the HEIF encoder here.
register_heif_opener()

# Small limits, so that files over them stay small and quick to build.
MAX_PIXELS = 1_000_000
MAX_UPLOAD_BYTES = 1_000_000

RELIABILITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
PREDICTIONS = "/api/v1/predictions"
TIMING_KEYS = {"decode", "preprocess", "inference", "total"}
EXIF_ORIENTATION_TAG = 0x0112
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Upload:
    """One corpus entry: what is sent, and the status and error code expected back."""

    data: bytes
    filename: str
    content_type: str
    status: int
    code: str | None = None
    chunked: bool = False


@pytest.fixture(scope="module")
def corpus_server(server_runner, tmp_path_factory: pytest.TempPathFactory):
    """Run a server with the small limits above for this module only."""
    overrides = {"EYESCREEN_MAX_PIXELS": str(MAX_PIXELS), "EYESCREEN_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    with server_runner(tmp_path_factory.mktemp("corpus-server"), overrides) as server:
        yield server


@pytest.fixture(scope="module")
def corpus_api(corpus_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=corpus_server.base_url, trust_env=False, timeout=30.0) as client:
        yield client


def fundus_rgb(size: int = 256) -> np.ndarray:
    """Build a fundus-like RGB array: an orange disc with a bright optic disc on black."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    distance = np.hypot(x - size / 2, y - size / 2) / (0.45 * size)
    shade = np.clip(1.0 - 0.5 * distance, 0, 1) * (distance <= 1.0)
    rgb = np.stack([200 * shade, 90 * shade, 40 * shade], axis=-1)
    rgb[np.hypot(x - 0.65 * size, y - 0.5 * size) < 0.07 * size] = (250, 220, 160)
    return rgb.astype(np.uint8)


def fundus_disc_mask(size: int = 256) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.hypot(x - size / 2, y - size / 2) <= 0.45 * size


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """Build a PNG whose IHDR declares width x height RGB pixels, with no pixel data."""

    def chunk(chunk_type: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(chunk_type + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def noisy_rgb(size: int = 128) -> np.ndarray:
    # Noise does not compress, so cutting the file in half cuts through the pixel data.
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def rgba_png() -> bytes:
    alpha = np.where(fundus_disc_mask(), 255, 0).astype(np.uint8)
    return encode(Image.fromarray(np.dstack([fundus_rgb(), alpha]), "RGBA"), "PNG")


def la_png() -> bytes:
    grey = fundus_rgb()[:, :, 0]
    alpha = np.where(fundus_disc_mask(), 255, 0).astype(np.uint8)
    return encode(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG")


def png_16bit() -> bytes:
    red = fundus_rgb()[:, :, 0].astype(np.uint16) * 257
    return encode(Image.fromarray(red), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(Image.fromarray(fundus_rgb()).convert("CMYK"), "JPEG", quality=90)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    return encode(Image.fromarray(fundus_rgb()[:, :200]), "JPEG", quality=90, exif=exif.tobytes())


def heic() -> bytes:
    return encode(Image.fromarray(fundus_rgb()), "HEIF", quality=80)


def multi_frame(image_format: str) -> bytes:
    first = Image.fromarray(fundus_rgb())
    second = Image.new("RGB", first.size, (0, 0, 255))
    return encode(first, image_format, save_all=True, append_images=[second])


def truncated(image_format: str) -> bytes:
    data = encode(Image.fromarray(noisy_rgb()), image_format)
    return data[: len(data) // 2]


def over_pixel_limit_png() -> bytes:
    # 1100 x 1000 = 1.1 million pixels. A flat image compresses to a few kilobytes.
    return encode(Image.new("RGB", (1100, 1000), (20, 10, 5)), "PNG")


def over_upload_limit_bytes() -> bytes:
    return b"\xff\xd8\xff" + bytes(MAX_UPLOAD_BYTES + 1000)


CORPUS: list = [
    pytest.param(lambda: Upload(rgba_png(), "alpha.png", "image/png", 200), id="rgba-png-transparent"),
    pytest.param(lambda: Upload(la_png(), "grey-alpha.png", "image/png", 200), id="la-png"),
    pytest.param(lambda: Upload(png_16bit(), "deep.png", "image/png", 200), id="png-16-bit"),
    pytest.param(lambda: Upload(cmyk_jpeg(), "cmyk.jpg", "image/jpeg", 200), id="cmyk-jpeg"),
    pytest.param(lambda: Upload(exif_rotated_jpeg(), "rotated.jpg", "image/jpeg", 200), id="exif-rotated-jpeg"),
    pytest.param(lambda: Upload(heic(), "photo.heic", "image/heic", 200), id="heic"),
    pytest.param(lambda: Upload(heic(), "photo.jpg", "image/jpeg", 200), id="heic-named-jpg"),
    pytest.param(lambda: Upload(multi_frame("GIF"), "frames.gif", "image/gif", 200), id="gif-multi-frame"),
    pytest.param(lambda: Upload(multi_frame("TIFF"), "frames.tiff", "image/tiff", 200), id="tiff-multi-frame"),
    pytest.param(lambda: Upload(truncated("JPEG"), "cut.jpg", "image/jpeg", 400, "corrupt_image"), id="jpeg-truncated"),
    pytest.param(lambda: Upload(truncated("PNG"), "cut.png", "image/png", 400, "corrupt_image"), id="png-truncated"),
    pytest.param(lambda: Upload(b"", "empty.jpg", "image/jpeg", 415, "unsupported_image"), id="empty-file"),
    pytest.param(
        lambda: Upload(b"patient notes, not a photo\n" * 4, "notes.jpg", "image/jpeg", 415, "unsupported_image"),
        id="text-named-jpg",
    ),
    pytest.param(
        lambda: Upload(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "scan.pdf", "application/pdf", 415, "unsupported_image"),
        id="pdf-header",
    ),
    pytest.param(
        lambda: Upload(png_header_only(100_000, 100_000), "bomb.png", "image/png", 413, "image_too_large"),
        id="png-bomb-100000x100000",
    ),
    pytest.param(
        lambda: Upload(over_pixel_limit_png(), "big.png", "image/png", 413, "image_too_large"), id="png-over-pixel-limit"
    ),
    pytest.param(
        lambda: Upload(over_upload_limit_bytes(), "huge.jpg", "image/jpeg", 413, "request_too_large"),
        id="body-over-upload-limit",
    ),
    pytest.param(
        lambda: Upload(over_upload_limit_bytes(), "huge.jpg", "image/jpeg", 413, "request_too_large", chunked=True),
        id="chunked-body-over-upload-limit",
    ),
]


def multipart_body(upload: Upload, boundary: str) -> bytes:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{upload.filename}"\r\n'
        f"Content-Type: {upload.content_type}\r\n\r\n"
    ).encode()
    return head + upload.data + f"\r\n--{boundary}--\r\n".encode()


def send(client: httpx.Client, upload: Upload) -> httpx.Response:
    """POST the upload as multipart, with Content-Length, or chunked when upload.chunked is set."""
    if not upload.chunked:
        return client.post(PREDICTIONS, files={"file": (upload.filename, upload.data, upload.content_type)})

    boundary = "hostile-corpus-boundary"
    body = multipart_body(upload, boundary)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), CHUNK_BYTES):
            yield body[start : start + CHUNK_BYTES]

    return client.post(PREDICTIONS, content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})


def assert_prediction_shape(body: dict) -> None:
    assert set(body) == {"label", "status", "probabilities", "model", "timings_ms"}
    assert body["status"] in ("ok", "uncertain")
    assert body["label"] in CLASSES
    assert list(body["probabilities"]) == list(CLASSES)
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-4), body["probabilities"]
    assert set(body["timings_ms"]) == TIMING_KEYS


def assert_error_shape(body: dict) -> None:
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body


@pytest.mark.parametrize("build", CORPUS)
def test_corpus_upload_expected_status(corpus_api: httpx.Client, build: Callable[[], Upload]) -> None:
    upload = build()

    response = send(corpus_api, upload)

    assert response.status_code == upload.status, response.text
    assert response.headers["content-type"] == "application/json"
    if upload.status == 200:
        assert_prediction_shape(response.json())
    else:
        assert_error_shape(response.json())
        assert response.json()["error"]["code"] == upload.code


def test_corpus_chunked_upload_has_no_length(corpus_api: httpx.Client) -> None:
    # Control for the chunked entry: it reaches the limit that counts bytes as they arrive.
    response = send(corpus_api, Upload(over_upload_limit_bytes(), "huge.jpg", "image/jpeg", 413, chunked=True))

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"


def test_corpus_valid_upload_after_corpus_200(corpus_api: httpx.Client) -> None:
    # Runs after the corpus tests above, in file order: the server must still serve.
    response = corpus_api.post(PREDICTIONS, files={"file": ("fundus.jpg", encode(Image.fromarray(fundus_rgb()), "JPEG"), "image/jpeg")})

    assert response.status_code == 200, response.text
    assert_prediction_shape(response.json())


def test_corpus_server_logged_no_traceback(corpus_server) -> None:
    log = corpus_server.log_path.read_text()

    assert "Traceback" not in log
    assert "unexpected error" not in log
    assert corpus_server.process.poll() is None


@pytest.mark.parametrize("build", CORPUS)
def test_corpus_entry_listed_in_doc(request: pytest.FixtureRequest, build: Callable[[], Upload]) -> None:
    entry = request.node.callspec.id
    upload = build()
    code = f"`{upload.code}`" if upload.code else "-"
    rows = [line for line in RELIABILITY_DOC.read_text(encoding="utf-8").splitlines() if line.startswith(f"| `{entry}` |")]

    assert len(rows) == 1, f"docs/reliability.md should have one row for {entry}"
    assert rows[0].endswith(f"| {upload.status} | {code} |"), rows[0]
