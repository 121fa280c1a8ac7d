"""A real `eyescreen serve` process and a local image server, both on 127.0.0.1.

The eyescreen server may fetch from 127.0.0.1 only because EYESCREEN_FETCH_ALLOWED_NETWORKS
opens 127.0.0.1/32 for it. No fixture here sends traffic to any other address.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

SERVER_START_TIMEOUT_SECONDS = 60
# A real normal fundus photograph, relative to the fundus4 data folder.
REAL_PHOTO = Path("normal") / "odir_1034_left.jpg"


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def synthetic_fundus_jpeg(size: int = 256) -> bytes:
    """Encode a fundus-like JPEG: an orange disc on black, for tests that need any valid photo."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    distance = np.hypot(x - size / 2, y - size / 2) / (0.45 * size)
    shade = np.clip(1.0 - 0.5 * distance, 0, 1) * (distance <= 1.0)
    rgb = np.stack([200 * shade, 90 * shade, 40 * shade], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    return buffer.getvalue()


def _wait_until_serving(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"eyescreen serve exited with status {process.returncode}; its log:\n{log_path.read_text()}")
            try:
                if client.get(f"{base_url}/api/v1/model").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"eyescreen serve did not respond within {SERVER_START_TIMEOUT_SECONDS} s; its log:\n{log_path.read_text()}")


@contextlib.contextmanager
def run_server(log_dir: Path, environment_overrides: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """Run `python -m eyescreen serve` on a free loopback port until the block ends.

    environment_overrides sets EYESCREEN_* variables, such as smaller limits, for this server only.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "serve.log"
    environment = {
        **os.environ,
        "EYESCREEN_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
        "EYESCREEN_INFERENCE_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **(environment_overrides or {}),
    }
    environment.pop("PORT", None)

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "eyescreen", "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    try:
        _wait_until_serving(process, base_url, log_path)
        yield RunningServer(base_url=base_url, process=process, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def server_runner() -> Callable[..., contextlib.AbstractContextManager[RunningServer]]:
    """Return run_server, so that a test module can start a server with its own settings."""
    return run_server


@pytest.fixture(scope="session")
def eyescreen_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Run `python -m eyescreen serve` with the default limits for the whole session."""
    with run_server(tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture(scope="session")
def api(eyescreen_server: RunningServer) -> Iterator[httpx.Client]:
    """An httpx client for the eyescreen server that ignores proxy variables."""
    with httpx.Client(base_url=eyescreen_server.base_url, trust_env=False, timeout=30.0) as client:
        yield client


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve a folder with fundus.jpg and notes.txt on 127.0.0.1, and yield its base URL."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "fundus.jpg").write_bytes(synthetic_fundus_jpeg())
    (folder / "notes.txt").write_text("not an image\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, name="image-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def upload_photo(fundus4_dir: Path) -> Path:
    """Path of a real normal fundus photograph to upload."""
    path = fundus4_dir / REAL_PHOTO
    if not path.is_file():
        pytest.skip(f"the real photo {path} is missing from the fundus4 data")
    return path
