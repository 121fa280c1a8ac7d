"""Build the Starlette application: page, API, limits, and the model loaded once at start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from eyescreen.errors import EyescreenError
from eyescreen.inference.session import ModelSession
from eyescreen.settings import Settings
from eyescreen.web import api, pages
from eyescreen.web.fetch import URLFetcher
from eyescreen.web.limits import BodyLimitMiddleware, InferenceLimiter

logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, model: ModelSession | None = None, fetcher: URLFetcher | None = None) -> Starlette:
    """Create the web app. Without model, the one in settings.model_dir (or the bundled one) loads at start-up."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if getattr(app.state, "model", None) is None:
            app.state.model = ModelSession.from_dir(settings.model_dir, threads=settings.inference_threads)
        logger.info("serving model %s version %s", app.state.model.name, app.state.model.version)
        yield

    app = Starlette(
        routes=[*api.routes, *pages.routes],
        middleware=[
            Middleware(
                BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, chunk_timeout_seconds=settings.body_timeout_seconds
            )
        ],
        exception_handlers={
            EyescreenError: api.handle_eyescreen_error,
            HTTPException: api.handle_http_error,
            # Without its own handler, a client that disconnects mid-upload is logged as an unexpected error.
            ClientDisconnect: api.handle_client_disconnect,
            Exception: api.handle_unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.model = model
    app.state.limiter = InferenceLimiter(
        max_concurrent=settings.max_concurrent_inferences,
        max_queued=settings.max_queued_requests,
        queue_timeout_seconds=settings.queue_timeout_seconds,
    )
    app.state.fetcher = fetcher or URLFetcher(
        max_bytes=settings.fetch_max_bytes,
        timeout_seconds=settings.fetch_timeout_seconds,
        allowed_networks=settings.fetch_allowed_networks,
    )
    return app
