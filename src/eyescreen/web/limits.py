"""Request limits: body size and pace while the body streams in, and a bounded inference queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eyescreen.errors import RequestTimeoutError, RequestTooLargeError, ServerBusyError
from eyescreen.web.responses import log_rejection, response_for

logger = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """Reject a body over max_bytes, and a client that pauses longer than chunk_timeout_seconds.

    A Content-Length over the limit is rejected before any of the body is read. Without one,
    the body is counted as it arrives and rejected as soon as the count passes the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, chunk_timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.chunk_timeout_seconds = chunk_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = RequestTooLargeError(
                f"the request body is {int(declared)} bytes, over the limit of {self.max_bytes}; send a smaller file"
            )
            client = scope.get("client") or ("-", 0)
            log_rejection(
                method=scope["method"],
                path=scope["path"],
                client=client[0],
                status=413,
                code="request_too_large",
                size=int(declared),
                message=str(error),
            )
            await response_for(error)(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), timeout=self.chunk_timeout_seconds)
            except TimeoutError:
                raise RequestTimeoutError(
                    f"the client sent no data for {self.chunk_timeout_seconds:g} s while uploading; check the connection and try again"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLargeError(f"the request body is over the limit of {self.max_bytes} bytes; send a smaller file")
            return message

        await self.app(scope, limited_receive, send)


class InferenceLimiter:
    """Bound the photos being decoded and classified at once, and the requests waiting for a turn.

    A request that finds every slot taken waits in a queue of at most max_queued requests for
    at most queue_timeout_seconds. Past either bound it gets ServerBusyError (HTTP 503).
    """

    def __init__(self, *, max_concurrent: int, max_queued: int, queue_timeout_seconds: float) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.queue_timeout_seconds = queue_timeout_seconds
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Number of requests waiting for a slot."""
        return self._waiting

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one inference slot for the duration of the block."""
        retry_after = max(1, round(self.queue_timeout_seconds / 4))
        if self._semaphore.locked() and self._waiting >= self.max_queued:
            raise ServerBusyError(
                f"the server is busy: {self.max_concurrent} photos are being classified and {self._waiting} are waiting; "
                f"retry in {retry_after} s",
                retry_after_seconds=retry_after,
            )

        self._waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self.queue_timeout_seconds)
        except TimeoutError:
            raise ServerBusyError(
                f"the server is busy: no inference slot became free within {self.queue_timeout_seconds:g} s; retry in {retry_after} s",
                retry_after_seconds=retry_after,
            ) from None
        finally:
            self._waiting -= 1

        try:
            yield
        finally:
            self._semaphore.release()
