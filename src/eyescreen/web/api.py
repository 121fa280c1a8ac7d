"""JSON API routes and the one error shape that every refusal uses."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eyescreen.errors import (
    EyescreenError,
    ImageDecodeError,
    ImageError,
    InvalidRequestError,
    RemoteResponseError,
    UnsupportedImageError,
)
from eyescreen.evaluation.card import json_safe
from eyescreen.inference.predict import Prediction, predict_image_bytes
from eyescreen.web.responses import error_response, log_rejection, response_for, status_for

logger = logging.getLogger(__name__)


async def handle_eyescreen_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, EyescreenError)
    response = response_for(error)
    declared = request.headers.get("content-length", "")
    log_rejection(
        method=request.method,
        path=request.url.path,
        client=request.client.host if request.client else "-",
        status=response.status_code,
        code=status_for(error)[1],
        size=int(declared) if declared.isdigit() else None,
        message=str(error),
    )
    return response


async def handle_http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return error_response(error.status_code, code, f"{request.method} {request.url.path}: {error.detail}", dict(error.headers or {}))


async def handle_client_disconnect(request: Request, error: Exception) -> Response:
    """Log a client that closed the connection before sending its whole body.

    No one reads the response, so it is empty. Uvicorn drops it because the connection is closed.
    """
    declared = request.headers.get("content-length", "-")
    client = request.client.host if request.client else "-"
    logger.info("client disconnected during upload method=%s path=%s client=%s bytes=%s", request.method, request.url.path, client, declared)
    return Response(status_code=400)


async def handle_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the server failed while handling this request; try again later")


async def _classify(request: Request, data: bytes, source: str) -> JSONResponse:
    settings = request.app.state.settings
    try:
        # Decoding and inference run in a worker thread, so the event loop keeps serving others.
        # A cancelled request still waits for its thread, so the slot is held until the work ends.
        async with request.app.state.limiter.slot():
            prediction: Prediction = await run_in_threadpool(
                predict_image_bytes, request.app.state.model, data, max_pixels=settings.max_pixels
            )
    except ImageError as error:
        if source == "url" and isinstance(error, (UnsupportedImageError, ImageDecodeError)):
            # The user sent a URL, not an image: a non-image response is the remote server's fault.
            raise RemoteResponseError(f"the URL did not return a readable image ({error})") from error
        raise
    logger.info(
        "prediction source=%s bytes=%d label=%s total_ms=%.1f", source, len(data), prediction.label, prediction.timings_ms["total"]
    )
    return JSONResponse(prediction.to_dict())


async def create_prediction(request: Request) -> JSONResponse:
    """POST /api/v1/predictions: classify the photo in multipart field `file`."""
    settings = request.app.state.settings
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "missing_file", f"expected multipart/form-data with the photo in field 'file', got content type {content_type!r}"
        )
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=settings.max_upload_bytes)
    except (MultiPartException, HTTPException) as error:
        # Inside an app, Starlette turns the parser's MultiPartException into HTTPException(400).
        reason = error.message if isinstance(error, MultiPartException) else error.detail
        raise InvalidRequestError("invalid_form", f"the multipart body is invalid ({reason}); send the photo in field 'file'") from None

    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError("missing_file", "the form has no file in field 'file'; attach the photo as file=@photo.jpg")
        data = await upload.read()
    finally:
        await form.close()
    return await _classify(request, data, "upload")


async def create_prediction_from_url(request: Request) -> JSONResponse:
    """POST /api/v1/predictions/url: download {"url": ...} and classify it."""
    body = await request.body()
    try:
        payload: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequestError("invalid_json", 'the body is not valid JSON; send {"url": "https://..."}') from None
    url = payload.get("url") if isinstance(payload, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequestError("missing_url", 'the JSON body has no "url" string; send {"url": "https://..."}')

    data = await request.app.state.fetcher.fetch(url.strip())
    return await _classify(request, data, "url")


async def model_info(request: Request) -> JSONResponse:
    """GET /api/v1/model: the loaded model's name, version, classes and card."""
    model = request.app.state.model
    card = json_safe(model.card)
    return JSONResponse({"name": model.name, "version": model.version, "classes": list(model.classes), "card": card})


routes = [
    Route("/api/v1/predictions", create_prediction, methods=["POST"]),
    Route("/api/v1/predictions/url", create_prediction_from_url, methods=["POST"]),
    Route("/api/v1/model", model_info, methods=["GET"]),
]
