"""The API's one error shape, and the HTTP status and code of each eyescreen error."""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from eyescreen.errors import (
    EyescreenError,
    FetchTimeoutError,
    ImageDecodeError,
    ImageTooLargeError,
    InvalidRequestError,
    RemoteResponseError,
    RequestTimeoutError,
    RequestTooLargeError,
    ResponseTooLargeError,
    ServerBusyError,
    UnsafeURLError,
    UnsupportedImageError,
)

logger = logging.getLogger("eyescreen.web")

# Error class -> (HTTP status, error code). The first matching class in this order wins.
ERROR_STATUS: list[tuple[type[EyescreenError], int, str]] = [
    (RequestTooLargeError, 413, "request_too_large"),
    (RequestTimeoutError, 408, "request_timeout"),
    (ServerBusyError, 503, "server_busy"),
    (ImageTooLargeError, 413, "image_too_large"),
    (UnsupportedImageError, 415, "unsupported_image"),
    (ImageDecodeError, 400, "corrupt_image"),
    (UnsafeURLError, 400, "url_not_allowed"),
    (FetchTimeoutError, 504, "url_timeout"),
    (ResponseTooLargeError, 413, "remote_image_too_large"),
    (RemoteResponseError, 502, "url_fetch_failed"),
]


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Build the API's error body: {"error": {"code": ..., "message": ...}}."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def status_for(error: EyescreenError) -> tuple[int, str]:
    """Map an eyescreen error to its HTTP status and error code; unknown errors are 500."""
    if isinstance(error, InvalidRequestError):
        return 422, error.code
    for error_class, status, code in ERROR_STATUS:
        if isinstance(error, error_class):
            return status, code
    return 500, "internal_error"


def response_for(error: EyescreenError) -> JSONResponse:
    """Build the error response for an eyescreen error, with Retry-After when the server is busy."""
    status, code = status_for(error)
    headers = {"Retry-After": str(error.retry_after_seconds)} if isinstance(error, ServerBusyError) else None
    return error_response(status, code, str(error), headers)


def log_rejection(
    *, method: str, path: str, client: str, status: int, code: str, size: int | None, message: str
) -> None:
    """Log one key=value line for a rejected request: reason, size and client, never the body."""
    logger.info(
        "request rejected method=%s path=%s client=%s status=%d code=%s bytes=%s reason=%r",
        method,
        path,
        client,
        status,
        code,
        "-" if size is None else size,
        message,
    )
