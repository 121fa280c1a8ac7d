"""URLFetcher tests: address checks, redirects, byte and time limits.

Every fetcher here uses the fake resolver and the recording httpx.MockTransport from conftest.py,
so no test resolves a real name or opens a connection.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from eyescreen.errors import FetchTimeoutError, RemoteResponseError, ResponseTooLargeError, UnsafeURLError
from eyescreen.web.fetch import MAX_REDIRECTS, URLFetcher, numeric_host_address, resolve_host


# Public addresses used as IP literals in URLs. The fake resolver returns a literal as it is.
PUBLIC_IPV4 = "93.184.216.34"
PUBLIC_IPV6 = "2606:2800:220:1:248:1893:25c8:1946"

MAX_BYTES = 10_000
TIMEOUT_SECONDS = 0.3
IMAGE_URL = "https://images.example.org/eye.jpg"


@pytest.fixture
def make_fetcher(resolver, make_transport) -> Callable:
    """Return a builder of URLFetchers that use the fake resolver and a recording MockTransport."""

    def build(handler: Callable[[httpx.Request], object] | None = None, **options: object) -> tuple[URLFetcher, httpx.MockTransport]:
        transport = make_transport(handler or (lambda request: httpx.Response(200, content=b"image")))
        settings: dict = {"max_bytes": MAX_BYTES, "timeout_seconds": TIMEOUT_SECONDS, **options}
        return URLFetcher(resolver=resolver, transport=transport, **settings), transport

    return build


def check(fetcher: URLFetcher, url: str) -> None:
    asyncio.run(fetcher.check_url(url))


def fetch(fetcher: URLFetcher, url: str) -> bytes:
    return asyncio.run(fetcher.fetch(url))


# check_url: URL form


@pytest.mark.parametrize(
    "url, scheme",
    [
        pytest.param("ftp://images.example.org/eye.jpg", "ftp", id="ftp"),
        pytest.param("file:///etc/hostname", "file", id="file"),
        pytest.param("gopher://images.example.org/", "gopher", id="gopher"),
        pytest.param("data:image/png;base64,iVBORw0KGgo=", "data", id="data"),
        pytest.param("images.example.org/eye.jpg", "", id="no-scheme"),
    ],
)
def test_check_url_rejects_scheme(make_fetcher, resolver, url: str, scheme: str) -> None:
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, url)

    assert f"scheme {scheme!r} is not allowed" in str(raised.value)
    assert resolver.calls == []


@pytest.mark.parametrize("url", ["HTTP://images.example.org/eye.jpg", "Https://images.example.org/eye.jpg"])
def test_check_url_accepts_scheme_any_case(make_fetcher, resolver, url: str) -> None:
    fetcher, _ = make_fetcher()

    check(fetcher, url)

    assert resolver.hosts_looked_up == ["images.example.org"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http:///eye.jpg", id="empty-authority"),
        pytest.param("https://", id="nothing-after-scheme"),
        pytest.param("http://:8080/eye.jpg", id="port-only"),
    ],
)
def test_check_url_rejects_missing_host(make_fetcher, resolver, url: str) -> None:
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, url)

    assert "has no host name" in str(raised.value)
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://images.example.org:99999/eye.jpg", id="port-out-of-range"),
        pytest.param("http://images.example.org:http/eye.jpg", id="port-not-number"),
        pytest.param("http://[::1/eye.jpg", id="unclosed-bracket"),
    ],
)
def test_check_url_rejects_invalid_url(make_fetcher, resolver, url: str) -> None:
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, url)

    assert "is not a valid URL" in str(raised.value)
    assert resolver.calls == []


# check_url: addresses


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("127.0.0.1", id="loopback"),
        pytest.param("127.8.9.10", id="loopback-range"),
        pytest.param("10.0.0.1", id="private-10"),
        pytest.param("172.16.5.4", id="private-172"),
        pytest.param("192.168.1.1", id="private-192"),
        pytest.param("100.64.0.1", id="shared-cgnat"),
        pytest.param("169.254.169.254", id="link-local-metadata"),
        pytest.param("0.0.0.0", id="unspecified"),
        pytest.param("224.0.0.1", id="multicast"),
        pytest.param("239.255.255.250", id="multicast-ssdp"),
        pytest.param("255.255.255.255", id="broadcast"),
        pytest.param("192.0.2.10", id="documentation"),
        pytest.param("::1", id="ipv6-loopback"),
        pytest.param("::", id="ipv6-unspecified"),
        pytest.param("fe80::1", id="ipv6-link-local"),
        pytest.param("fd12:3456:789a::1", id="ipv6-unique-local"),
        pytest.param("ff02::1", id="ipv6-multicast"),
        pytest.param("::ffff:127.0.0.1", id="ipv4-mapped-loopback"),
        pytest.param("::ffff:10.0.0.1", id="ipv4-mapped-private"),
        pytest.param("64:ff9b::7f00:1", id="nat64-loopback"),
        pytest.param("64:ff9b::a00:1", id="nat64-private"),
        pytest.param("2002:7f00:1::", id="6to4-loopback"),
        pytest.param("2002:a9fe:a9fe::1", id="6to4-link-local"),
    ],
)
def test_check_url_rejects_non_public_address(make_fetcher, resolver, address: str) -> None:
    resolver.add("target.example.org", address)
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, "http://target.example.org/eye.jpg")

    assert f"resolves to {ipaddress.ip_address(address)}" in str(raised.value)
    assert resolver.hosts_looked_up == ["target.example.org"]


@pytest.mark.parametrize(
    "url, address",
    [
        pytest.param("http://127.0.0.1/eye.jpg", "127.0.0.1", id="ipv4"),
        pytest.param("http://[::1]:8000/eye.jpg", "::1", id="ipv6"),
        pytest.param("http://[::ffff:127.0.0.1]/eye.jpg", "::ffff:127.0.0.1", id="ipv4-mapped"),
        pytest.param("http://0.0.0.0:8000/eye.jpg", "0.0.0.0", id="unspecified"),
        pytest.param("http://images.example.org@10.0.0.1/eye.jpg", "10.0.0.1", id="userinfo-before-host"),
    ],
)
def test_check_url_rejects_literal_address(make_fetcher, url: str, address: str) -> None:
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, url)

    assert f"resolves to {ipaddress.ip_address(address)}" in str(raised.value)


@pytest.mark.parametrize(
    "url, address",
    [
        pytest.param("http://2130706433/eye.jpg", "127.0.0.1", id="decimal"),
        pytest.param("http://0x7f000001/eye.jpg", "127.0.0.1", id="hex"),
        pytest.param("http://0x7F.0.0.1/eye.jpg", "127.0.0.1", id="hex-dotted"),
        pytest.param("http://0177.0.0.1/eye.jpg", "127.0.0.1", id="octal"),
        pytest.param("http://127.1/eye.jpg", "127.0.0.1", id="short"),
        pytest.param("http://10.1/eye.jpg", "10.0.0.1", id="short-private"),
        pytest.param("http://2852039166/latest", "169.254.169.254", id="decimal-link-local"),
    ],
)
def test_check_url_rejects_numeric_host_forms(make_fetcher, resolver, url: str, address: str) -> None:
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, url)

    assert f"resolves to {address}" in str(raised.value)
    assert resolver.hosts_looked_up == []


@pytest.mark.parametrize(
    "host, expected",
    [
        pytest.param("93.184.216.34", "93.184.216.34", id="dotted"),
        pytest.param("1572395042", "93.184.216.34", id="decimal-public"),
        pytest.param("images.example.org", None, id="name"),
        pytest.param("deadbeef", None, id="hex-word-without-prefix"),
        pytest.param("cafe.example", None, id="hex-letters-name"),
    ],
)
def test_numeric_host_address(host: str, expected: str | None) -> None:
    address = numeric_host_address(host)

    assert (None if address is None else str(address)) == expected


def test_check_url_rejects_any_private_address(make_fetcher) -> None:
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, "http://mixed.example.org/eye.jpg")

    assert "10.0.0.1" in str(raised.value)


def test_check_url_rejects_host_without_addresses(make_fetcher) -> None:
    fetcher, _ = make_fetcher()

    with pytest.raises(UnsafeURLError) as raised:
        check(fetcher, "http://empty.example.org/eye.jpg")

    assert "has no addresses" in str(raised.value)


@pytest.mark.parametrize(
    "url, expected_call",
    [
        pytest.param("http://images.example.org/eye.jpg", ("images.example.org", 80), id="http-default-port"),
        pytest.param("https://images.example.org/eye.jpg", ("images.example.org", 443), id="https-default-port"),
        pytest.param("https://images.example.org:8443/eye.jpg", ("images.example.org", 8443), id="explicit-port"),
        pytest.param("https://cdn.example.org/eye.jpg", ("cdn.example.org", 443), id="ipv4-and-ipv6"),
        pytest.param(f"http://{PUBLIC_IPV4}/eye.jpg", None, id="public-ipv4-literal"),
        pytest.param(f"http://[{PUBLIC_IPV6}]/eye.jpg", None, id="public-ipv6-literal"),
        pytest.param(f"http://[::ffff:{PUBLIC_IPV4}]/eye.jpg", None, id="public-ipv4-mapped"),
        pytest.param("http://[64:ff9b::5db8:d822]/eye.jpg", None, id="public-nat64"),
        pytest.param("http://[2002:5db8:d822::1]/eye.jpg", None, id="public-6to4"),
    ],
)
def test_check_url_accepts_public_host(make_fetcher, resolver, url: str, expected_call: tuple[str, int] | None) -> None:
    """A host name is resolved once; an address literal (expected_call None) is used as it is."""
    fetcher, transport = make_fetcher()

    check(fetcher, url)

    assert resolver.calls == ([] if expected_call is None else [expected_call])
    assert transport.requests == []


@pytest.mark.parametrize(
    "url, allowed",
    [
        pytest.param("http://127.0.0.1:8000/eye.jpg", True, id="opened-address"),
        pytest.param("http://loopback.example.org/eye.jpg", True, id="name-to-opened-address"),
        pytest.param("http://127.0.0.2/eye.jpg", False, id="neighbour-address"),
        pytest.param("http://[::1]/eye.jpg", False, id="ipv6-loopback"),
        pytest.param("http://private.example.org/eye.jpg", False, id="other-private"),
        pytest.param("http://images.example.org/eye.jpg", True, id="public-still-allowed"),
    ],
)
def test_check_url_allowed_networks(make_fetcher, url: str, allowed: bool) -> None:
    fetcher, _ = make_fetcher(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))

    if allowed:
        check(fetcher, url)
    else:
        with pytest.raises(UnsafeURLError):
            check(fetcher, url)


def test_resolve_host_literal_address() -> None:
    # getaddrinfo parses an IP literal itself, so this sends no DNS query.
    addresses = asyncio.run(resolve_host("127.0.0.1", 80))

    assert addresses == [ipaddress.ip_address("127.0.0.1")]


# fetch: responses


def test_fetch_returns_body(make_fetcher) -> None:
    fetcher, transport = make_fetcher(lambda request: httpx.Response(200, content=b"\xff\xd8 jpeg bytes"))

    body = fetch(fetcher, IMAGE_URL)

    assert body == b"\xff\xd8 jpeg bytes"
    assert [str(request.url) for request in transport.requests] == [IMAGE_URL]
    assert transport.requests[0].headers["accept"] == "image/*"


@pytest.mark.parametrize("status", [302, 304, 400, 404, 410, 500, 503])
def test_fetch_error_status(make_fetcher, status: int) -> None:
    fetcher, _ = make_fetcher(lambda request: httpx.Response(status))

    with pytest.raises(RemoteResponseError) as raised:
        fetch(fetcher, IMAGE_URL)

    assert f"HTTP {status}" in str(raised.value)


def test_fetch_connection_error(make_fetcher) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fetcher, _ = make_fetcher(handler)

    with pytest.raises(RemoteResponseError) as raised:
        fetch(fetcher, IMAGE_URL)

    assert "connection refused" in str(raised.value)


# fetch: byte limit


def test_fetch_body_at_limit(make_fetcher) -> None:
    fetcher, _ = make_fetcher(lambda request: httpx.Response(200, content=b"x" * MAX_BYTES))

    assert len(fetch(fetcher, IMAGE_URL)) == MAX_BYTES


def test_fetch_declared_length_over_limit(make_fetcher) -> None:
    chunks_sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(20):
            chunks_sent += 1
            yield b"x" * 1_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": str(MAX_BYTES + 1)}, content=body())

    fetcher, _ = make_fetcher(handler)

    with pytest.raises(ResponseTooLargeError) as raised:
        fetch(fetcher, IMAGE_URL)

    assert str(MAX_BYTES + 1) in str(raised.value)
    assert chunks_sent == 0


def test_fetch_streamed_body_over_limit(make_fetcher) -> None:
    chunks_sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(100):
            chunks_sent += 1
            yield b"x" * 1_000

    fetcher, _ = make_fetcher(lambda request: httpx.Response(200, content=body()))

    with pytest.raises(ResponseTooLargeError) as raised:
        fetch(fetcher, IMAGE_URL)

    assert f"over the limit of {MAX_BYTES} bytes" in str(raised.value)
    assert chunks_sent <= MAX_BYTES // 1_000 + 2


def test_fetch_compressed_body_over_limit(make_fetcher) -> None:
    compressed = gzip.compress(b"\0" * (10 * MAX_BYTES))
    assert len(compressed) < MAX_BYTES

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=compressed)

    fetcher, _ = make_fetcher(handler)

    with pytest.raises(ResponseTooLargeError):
        fetch(fetcher, IMAGE_URL)


# fetch: time limit


@pytest.mark.parametrize(
    "error_class",
    [pytest.param(httpx.ConnectTimeout, id="connect"), pytest.param(httpx.ReadTimeout, id="read")],
)
def test_fetch_transport_timeout(make_fetcher, error_class: type[httpx.TimeoutException]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error_class("timed out", request=request)

    fetcher, _ = make_fetcher(handler)

    with pytest.raises(FetchTimeoutError) as raised:
        fetch(fetcher, IMAGE_URL)

    assert "images.example.org" in str(raised.value)


def test_fetch_slow_headers_timeout(make_fetcher) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    fetcher, _ = make_fetcher(handler)

    with pytest.raises(FetchTimeoutError) as raised:
        fetch(fetcher, IMAGE_URL)

    assert f"within {TIMEOUT_SECONDS:g} s" in str(raised.value)


def test_fetch_slow_body_timeout(make_fetcher) -> None:
    """The time limit covers the whole download, not each read: a steady trickle still times out."""

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(1_000):
            await asyncio.sleep(TIMEOUT_SECONDS / 10)
            yield b"x"

    fetcher, _ = make_fetcher(lambda request: httpx.Response(200, content=trickle()))

    with pytest.raises(FetchTimeoutError):
        fetch(fetcher, IMAGE_URL)


# fetch: redirects


def redirect_chain(locations: dict[str, str], final_body: bytes = b"image") -> Callable[[httpx.Request], httpx.Response]:
    """Respond to each URL in locations with a 302 to its value, and to any other URL with final_body."""

    def handler(request: httpx.Request) -> httpx.Response:
        target = locations.get(str(request.url))
        if target is not None:
            return httpx.Response(302, headers={"location": target})
        return httpx.Response(200, content=final_body)

    return handler


def test_fetch_redirect_checks_each_host(make_fetcher, resolver) -> None:
    handler = redirect_chain(
        {
            IMAGE_URL: "https://cdn.example.org/eye.jpg",
            "https://cdn.example.org/eye.jpg": "http://mirror.example.org:8080/eye.jpg",
        }
    )
    fetcher, transport = make_fetcher(handler)

    body = fetch(fetcher, IMAGE_URL)

    assert body == b"image"
    assert resolver.calls == [("images.example.org", 443), ("cdn.example.org", 443), ("mirror.example.org", 8080)]
    assert transport.hosts_requested == ["images.example.org", "cdn.example.org", "mirror.example.org"]


def test_fetch_relative_redirect(make_fetcher, resolver) -> None:
    handler = redirect_chain({IMAGE_URL: "/photos/eye.jpg"})
    fetcher, transport = make_fetcher(handler)

    fetch(fetcher, IMAGE_URL)

    assert [str(request.url) for request in transport.requests] == [IMAGE_URL, "https://images.example.org/photos/eye.jpg"]
    assert resolver.hosts_looked_up == ["images.example.org", "images.example.org"]


@pytest.mark.parametrize(
    "location, expected_text",
    [
        pytest.param("http://private.example.org/eye.jpg", "10.0.0.1", id="private-host"),
        pytest.param("http://metadata.example.org/latest/", "169.254.169.254", id="metadata-host"),
        pytest.param("http://127.0.0.1:8000/eye.jpg", "127.0.0.1", id="loopback-literal"),
        pytest.param("ftp://images.example.org/eye.jpg", "'ftp'", id="ftp-scheme"),
    ],
)
def test_fetch_redirect_to_rejected_url(make_fetcher, location: str, expected_text: str) -> None:
    fetcher, transport = make_fetcher(redirect_chain({IMAGE_URL: location}))

    with pytest.raises(UnsafeURLError) as raised:
        fetch(fetcher, IMAGE_URL)

    assert expected_text in str(raised.value)
    assert transport.hosts_requested == ["images.example.org"]


@pytest.mark.parametrize(
    "redirects, succeeds",
    [
        pytest.param(MAX_REDIRECTS, True, id="at-cap"),
        pytest.param(MAX_REDIRECTS + 1, False, id="over-cap"),
    ],
)
def test_fetch_redirect_cap(make_fetcher, redirects: int, succeeds: bool) -> None:
    urls = [f"https://images.example.org/hop/{index}" for index in range(redirects + 1)]
    fetcher, transport = make_fetcher(redirect_chain(dict(zip(urls, urls[1:]))))

    if succeeds:
        assert fetch(fetcher, urls[0]) == b"image"
        assert len(transport.requests) == redirects + 1
    else:
        with pytest.raises(RemoteResponseError) as raised:
            fetch(fetcher, urls[0])
        assert f"more than {MAX_REDIRECTS} times" in str(raised.value)
        assert len(transport.requests) == MAX_REDIRECTS + 1
