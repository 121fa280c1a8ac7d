"""Fixtures for the in-process web tests: the model, test images, a fake resolver and TestClients.

Nothing here opens a socket. URL tests resolve host names with FakeResolver and get canned
responses from RecordingTransport (an httpx.MockTransport), so a URL under test never reaches a
real host.
"""

from __future__ import annotations

import io
import ipaddress
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.exceptions import StarletteDeprecationWarning

from eyescreen.errors import UnsafeURLError
from eyescreen.inference.session import ModelSession
from eyescreen.settings import Settings
from eyescreen.web.app import create_app
from eyescreen.web.fetch import IPAddress, URLFetcher

with warnings.catch_warnings():
    # Starlette 1.10 warns at import that it prefers httpx2, but the project depends on httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

# A real normal fundus photograph, relative to the fundus4 data folder.
REAL_PHOTO = Path("normal") / "odir_1034_left.jpg"

# Public addresses that the fake resolver hands out for "allowed" hosts. No test connects to them.
PUBLIC_IPV4 = "93.184.216.34"
PUBLIC_IPV6 = "2606:2800:220:1:248:1893:25c8:1946"

# Host names (under the reserved example.org domain) and the addresses FakeResolver returns for them.
DEFAULT_HOSTS: dict[str, list[str]] = {
    "images.example.org": [PUBLIC_IPV4],
    "cdn.example.org": [PUBLIC_IPV4, PUBLIC_IPV6],
    "mirror.example.org": [PUBLIC_IPV4],
    "loopback.example.org": ["127.0.0.1"],
    "private.example.org": ["10.0.0.1"],
    "metadata.example.org": ["169.254.169.254"],
    "ipv6-loopback.example.org": ["::1"],
    "mixed.example.org": [PUBLIC_IPV4, "10.0.0.1"],
    "empty.example.org": [],
}


class FakeResolver:
    """Resolve host names from a fixed table and record each lookup, without using the network.

    An IP literal resolves to itself, as getaddrinfo does. A name missing from the table raises
    the same UnsafeURLError that the real resolver raises for an unknown host.
    """

    def __init__(self, hosts: dict[str, list[str]]) -> None:
        self.hosts = {name: [ipaddress.ip_address(address) for address in addresses] for name, addresses in hosts.items()}
        self.calls: list[tuple[str, int]] = []

    def add(self, host: str, *addresses: str) -> None:
        self.hosts[host] = [ipaddress.ip_address(address) for address in addresses]

    @property
    def hosts_looked_up(self) -> list[str]:
        return [host for host, _ in self.calls]

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        if host not in self.hosts:
            raise UnsafeURLError(f"the host {host!r} could not be resolved (not in the test table); check the URL")
        return list(self.hosts[host])


class RecordingTransport(httpx.MockTransport):
    """httpx.MockTransport that records every request it handles."""

    def __init__(self, handler: Callable[[httpx.Request], object]) -> None:
        self.requests: list[httpx.Request] = []

        async def recording_handler(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            response = handler(request)
            if hasattr(response, "__await__"):
                response = await response  # type: ignore[misc]
            assert isinstance(response, httpx.Response)
            return response

        super().__init__(recording_handler)

    @property
    def hosts_requested(self) -> list[str]:
        return [request.url.host for request in self.requests]


def fundus_like_image(size: int = 256, image_format: str = "JPEG") -> bytes:
    """Encode a synthetic fundus-like photo: an orange disc with a bright optic disc on black."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2
    distance = np.hypot(x - centre, y - centre) / (0.45 * size)
    inside = distance <= 1.0

    rgb = np.zeros((size, size, 3), dtype=np.float32)
    shade = 1.0 - 0.5 * distance
    rgb[..., 0] = np.where(inside, 200 * shade, 0)
    rgb[..., 1] = np.where(inside, 90 * shade, 0)
    rgb[..., 2] = np.where(inside, 40 * shade, 0)
    optic_disc = np.hypot(x - 0.65 * size, y - 0.5 * size) < 0.07 * size
    rgb[optic_disc] = (250, 220, 160)

    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def model() -> ModelSession:
    """The bundled model, loaded once and shared by every app in these tests."""
    return ModelSession.from_dir(None, threads=1)


@pytest.fixture(scope="session")
def fundus_jpeg() -> bytes:
    return fundus_like_image(256, "JPEG")


@pytest.fixture(scope="session")
def real_photo(fundus4_dir: Path) -> bytes:
    """A real normal fundus photograph from the fundus4 data set."""
    path = fundus4_dir / REAL_PHOTO
    if not path.is_file():
        pytest.skip(f"the real photo {path} is missing from the fundus4 data")
    return path.read_bytes()


@pytest.fixture
def resolver() -> FakeResolver:
    """A FakeResolver with DEFAULT_HOSTS. A test adds names with resolver.add(host, *addresses)."""
    return FakeResolver(DEFAULT_HOSTS)


@pytest.fixture
def make_transport() -> Callable[[Callable[[httpx.Request], object]], RecordingTransport]:
    """Return the RecordingTransport class, so that test modules need not import conftest."""
    return RecordingTransport


@pytest.fixture(scope="session")
def make_image() -> Callable[..., bytes]:
    """Return fundus_like_image(size, image_format), which encodes a synthetic fundus-like photo."""
    return fundus_like_image


@pytest.fixture
def make_client(model: ModelSession) -> Iterator[Callable[..., TestClient]]:
    """Build TestClients around create_app with the shared model, and close them all at teardown."""
    clients: list[TestClient] = []

    def build(settings: Settings | None = None, fetcher: URLFetcher | None = None) -> TestClient:
        client = TestClient(create_app(settings or Settings(), model=model, fetcher=fetcher))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)
