"""Download an image from a user-supplied URL without letting the URL reach internal networks.

Every host, including each redirect target, is resolved first, and every address it resolves
to must be public (or inside an allowed network from the settings). The body is read as a
stream and cut off at the byte limit, under one overall time limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from eyescreen.errors import FetchTimeoutError, RemoteResponseError, ResponseTooLargeError, UnsafeURLError
from eyescreen.settings import IPNetwork

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

MAX_REDIRECTS = 3
ALLOWED_SCHEMES = frozenset({"http", "https"})
# The NAT64 well-known prefix (RFC 6052): the last 32 bits are the IPv4 destination.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Resolve a host name to every IPv4 and IPv6 address that the system resolver returns."""
    loop = asyncio.get_running_loop()
    try:
        answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnsafeURLError(f"the host {host!r} could not be resolved ({error.strerror}); check the URL") from None
    return [ipaddress.ip_address(answer[4][0].split("%", 1)[0]) for answer in answers]


def is_public_address(address: IPAddress) -> bool:
    """Tell whether an address is publicly routable: not loopback, private, link-local and so on."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that address, so judge the embedded one.
        # Python 3.11 calls 64:ff9b::7f00:1 and 2002:7f00:1:: global although both lead to 127.0.0.1.
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address in NAT64_PREFIX:
            address = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.is_global and not address.is_multicast


class PinnedAddressBackend(httpcore.AsyncNetworkBackend):
    """Open TCP connections only to the address that check_url approved for each host.

    httpx would otherwise resolve the host name again when it connects, and a second DNS
    answer could point somewhere else. TLS still verifies the certificate against the host
    name, because httpcore passes the name, not the address, as the server name.
    """

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.pins: dict[str, str] = {}

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        address = self.pins.get(host.lower())
        if address is None:
            raise httpcore.ConnectError(f"refusing to connect to {host!r}: its address was not checked")
        return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)  # type: ignore[arg-type]

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(backend: PinnedAddressBackend) -> httpx.AsyncHTTPTransport:
    """Build an httpx transport whose connections go through backend."""
    transport = httpx.AsyncHTTPTransport(retries=0)
    # NOTE: httpx 0.29 has no public option for an httpcore network backend, so this sets the
    # private attribute of httpcore 1.0's AsyncConnectionPool. A test connects through it.
    transport._pool._network_backend = backend
    return transport


@dataclass(frozen=True)
class URLFetcher:
    """Downloads images from http(s) URLs within byte, time and address limits."""

    max_bytes: int
    timeout_seconds: float
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = resolve_host
    transport: httpx.AsyncBaseTransport | None = None

    async def fetch(self, url: str) -> bytes:
        """Download url and return its body, or raise the FetchError subclass for what failed."""
        try:
            return await asyncio.wait_for(self._fetch(url), timeout=self.timeout_seconds)
        except (TimeoutError, httpx.TimeoutException):
            raise FetchTimeoutError(
                f"the server at {_host_of(url)!r} did not send the image within {self.timeout_seconds:g} s; try again or upload the file"
            ) from None

    async def _fetch(self, url: str) -> bytes:
        timeout = httpx.Timeout(self.timeout_seconds)
        backend = PinnedAddressBackend()
        transport = self.transport or pinned_transport(backend)
        async with httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                host, address = await self.check_url(url)
                backend.pins[host] = str(address)
                try:
                    async with client.stream("GET", url, headers={"Accept": "image/*"}) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        if response.status_code >= 300:
                            raise RemoteResponseError(
                                f"the server at {_host_of(url)!r} returned HTTP {response.status_code}; check that the URL opens the image"
                            )
                        return await self._read_capped(response)
                except httpx.TimeoutException:
                    raise
                except httpx.HTTPError as error:
                    raise RemoteResponseError(f"downloading from {_host_of(url)!r} failed: {error}; check the URL") from None
        raise RemoteResponseError(f"the URL redirected more than {MAX_REDIRECTS} times; give the image's final address")

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise ResponseTooLargeError(
                f"the image at the URL is {int(declared)} bytes, over the limit of {self.max_bytes}; use a smaller image"
            )
        chunks = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self.max_bytes:
                raise ResponseTooLargeError(
                    f"the image at the URL is over the limit of {self.max_bytes} bytes; use a smaller image"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def check_url(self, url: str) -> tuple[str, IPAddress]:
        """Return the host and the address to connect to, after checking both.

        Raises UnsafeURLError unless url is http(s) and its host resolves only to public
        addresses or to addresses in allowed_networks.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise UnsafeURLError(f"{url!r} is not a valid URL ({error})") from None
        if parts.scheme.lower() not in ALLOWED_SCHEMES:
            raise UnsafeURLError(f"URL scheme {parts.scheme!r} is not allowed; use an http:// or https:// URL")
        if not parts.hostname:
            raise UnsafeURLError(f"{url!r} has no host name; use a full http:// or https:// URL")

        port = port or (443 if parts.scheme.lower() == "https" else 80)
        literal = numeric_host_address(parts.hostname)
        addresses = [literal] if literal is not None else await self.resolver(parts.hostname, port)
        if not addresses:
            raise UnsafeURLError(f"the host {parts.hostname!r} has no addresses; check the URL")
        for address in addresses:
            if not (is_public_address(address) or any(address in network for network in self.allowed_networks)):
                logger.warning("rejected URL host %s: it resolves to the non-public address %s", parts.hostname, address)
                raise UnsafeURLError(
                    f"the host {parts.hostname!r} resolves to {address}, a private or reserved address that this "
                    "service does not fetch from; use a public image URL or upload the file"
                )
        return parts.hostname.lower(), addresses[0]


# Host names made only of these characters may be IPv4 addresses in a legacy numeric form.
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


def numeric_host_address(host: str) -> IPAddress | None:
    """Parse a host that is an IP address in any form that C resolvers accept, else return None.

    Besides dotted quads and IPv6, inet_aton accepts decimal (2130706433), hex (0x7f000001),
    octal (0177.0.0.1) and short (127.1) forms. They are parsed here, without a DNS query, so
    that such a host is checked as the address it names whatever resolver is in use.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC_HOST.match(host) or not any(character.isdigit() for character in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url
