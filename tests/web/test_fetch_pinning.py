"""URLFetcher connects to the address that check_url approved, not to a second DNS answer.

These fetchers have no injected transport, so the real PinnedAddressBackend opens the TCP
connections. The host names are made up (under the reserved .test domain) and resolve only
through FakeResolver, which maps every host that is connected to onto 127.0.0.1, where this
module runs a small HTTP server. A name mapped to another address is always rejected by
check_url before any connection.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import pytest

from eyescreen.errors import UnsafeURLError
from eyescreen.web.fetch import IPAddress, PinnedAddressBackend, URLFetcher

ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
PHOTO_HOST = "photos.example.test"
OTHER_HOST = "other.example.test"
TIMEOUT_SECONDS = 5.0
MAX_BYTES = 1_000_000


@dataclass
class ServedRequest:
    path: str
    host_header: str
    client_address: str


@dataclass
class ImageServer:
    port: int
    image: bytes
    requests: list[ServedRequest] = field(default_factory=list)


class ImageHandler(BaseHTTPRequestHandler):
    """Serve /eye.jpg and a few redirects, and record each request with its Host header."""

    def __init__(self, *args: object, state: ImageServer, **kwargs: object) -> None:
        self.state = state
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def do_GET(self) -> None:
        self.state.requests.append(ServedRequest(self.path, self.headers.get("Host", ""), self.client_address[0]))
        port = self.state.port
        redirects = {
            "/to-same-host": "/eye.jpg",
            "/to-other-loopback": f"http://{OTHER_HOST}:{port}/eye.jpg",
            "/to-other-private": f"http://{OTHER_HOST}/",
        }
        if self.path == "/eye.jpg":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(self.state.image)))
            self.end_headers()
            self.wfile.write(self.state.image)
        elif self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_server_state(make_image: Callable[..., bytes]) -> Iterator[ImageServer]:
    """Run the image server on 127.0.0.1 for this module."""
    state = ImageServer(port=0, image=make_image(64, "JPEG"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(ImageHandler, state=state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="pinning-image-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def image_server(image_server_state: ImageServer) -> ImageServer:
    image_server_state.requests.clear()
    return image_server_state


@pytest.fixture
def system_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every host passed to socket.getaddrinfo, the system resolver that asyncio uses."""
    hosts: list[str] = []
    original = socket.getaddrinfo

    def recording_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        hosts.append(host.decode() if isinstance(host, bytes) else str(host))
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    return hosts


class RebindingResolver:
    """Return 127.0.0.1 for the first lookup and 127.0.0.2 for every later one.

    A fetch that looked the name up again when connecting would reach 127.0.0.2, where nothing
    listens, so the connection would fail instead of reaching the image server.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        address = "127.0.0.1" if len(self.calls) == 1 else "127.0.0.2"
        return [ipaddress.ip_address(address)]


def pinned_fetcher(resolver: object) -> URLFetcher:
    """Build a fetcher with no injected transport, so PinnedAddressBackend makes the connections."""
    return URLFetcher(
        max_bytes=MAX_BYTES,
        timeout_seconds=TIMEOUT_SECONDS,
        allowed_networks=ALLOWED_NETWORKS,
        resolver=resolver,  # type: ignore[arg-type]
    )


def fetch(fetcher: URLFetcher, url: str) -> bytes:
    return asyncio.run(fetcher.fetch(url))


def test_pinning_made_up_name_fetched(resolver, image_server: ImageServer, system_lookups: list[str]) -> None:
    resolver.add(PHOTO_HOST, "127.0.0.1")

    data = fetch(pinned_fetcher(resolver), f"http://{PHOTO_HOST}:{image_server.port}/eye.jpg")

    assert data == image_server.image
    assert resolver.hosts_looked_up == [PHOTO_HOST]
    # The name exists only in the fake resolver, so the connection used the pinned address.
    assert PHOTO_HOST not in system_lookups
    assert [request.path for request in image_server.requests] == ["/eye.jpg"]
    assert image_server.requests[0].host_header == f"{PHOTO_HOST}:{image_server.port}"


def test_pinning_rebinding_resolver_connects_first_address(image_server: ImageServer, system_lookups: list[str]) -> None:
    rebinding = RebindingResolver()

    data = fetch(pinned_fetcher(rebinding), f"http://{PHOTO_HOST}:{image_server.port}/eye.jpg")

    assert data == image_server.image
    assert rebinding.calls == [PHOTO_HOST]
    assert PHOTO_HOST not in system_lookups
    assert len(image_server.requests) == 1


def test_pinning_redirect_same_host_rechecked(image_server: ImageServer) -> None:
    # The redirect hop is looked up again, gets 127.0.0.2, which is outside the allowed
    # 127.0.0.1/32, and is rejected before a second connection.
    rebinding = RebindingResolver()

    with pytest.raises(UnsafeURLError, match="127.0.0.2"):
        fetch(pinned_fetcher(rebinding), f"http://{PHOTO_HOST}:{image_server.port}/to-same-host")

    assert rebinding.calls == [PHOTO_HOST, PHOTO_HOST]
    assert [request.path for request in image_server.requests] == ["/to-same-host"]


def test_pinning_redirect_other_host_private_rejected(resolver, image_server: ImageServer) -> None:
    resolver.add(PHOTO_HOST, "127.0.0.1")
    resolver.add(OTHER_HOST, "10.0.0.1")

    with pytest.raises(UnsafeURLError, match="10.0.0.1"):
        fetch(pinned_fetcher(resolver), f"http://{PHOTO_HOST}:{image_server.port}/to-other-private")

    assert resolver.hosts_looked_up == [PHOTO_HOST, OTHER_HOST]
    assert [request.path for request in image_server.requests] == ["/to-other-private"]


def test_pinning_redirect_other_host_loopback_pinned(resolver, image_server: ImageServer, system_lookups: list[str]) -> None:
    # Control for the test above: the same redirect to a host mapped to 127.0.0.1 is followed,
    # and the second host is pinned to its own checked address.
    resolver.add(PHOTO_HOST, "127.0.0.1")
    resolver.add(OTHER_HOST, "127.0.0.1")

    data = fetch(pinned_fetcher(resolver), f"http://{PHOTO_HOST}:{image_server.port}/to-other-loopback")

    assert data == image_server.image
    assert resolver.hosts_looked_up == [PHOTO_HOST, OTHER_HOST]
    assert OTHER_HOST not in system_lookups
    assert [request.host_header for request in image_server.requests] == [
        f"{PHOTO_HOST}:{image_server.port}",
        f"{OTHER_HOST}:{image_server.port}",
    ]


def test_pinning_backend_unchecked_host_refused(image_server: ImageServer) -> None:
    backend = PinnedAddressBackend()
    backend.pins[PHOTO_HOST] = "127.0.0.1"

    with pytest.raises(httpcore.ConnectError, match="was not checked"):
        asyncio.run(backend.connect_tcp(OTHER_HOST, image_server.port, timeout=TIMEOUT_SECONDS))

    assert image_server.requests == []
