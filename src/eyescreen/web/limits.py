"""ASGI middleware that caps the request body while it streams in."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eyescreen.web.api import RequestTooLargeError, error_response

logger = logging.getLogger(__name__)


class BodySizeLimitMiddleware:
    """Reject bodies over max_bytes: at once from Content-Length, else as soon as the count passes it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            client = scope.get("client") or ("-", 0)
            logger.info("rejected %s from %s: body of %s bytes is over the limit", scope["path"], client[0], declared.decode())
            response = error_response(
                413, "request_too_large", f"the request body is {int(declared)} bytes, over the limit of {self.max_bytes}; send a smaller file"
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLargeError(f"the request body is over the limit of {self.max_bytes} bytes; send a smaller file")
            return message

        await self.app(scope, limited_receive, send)
