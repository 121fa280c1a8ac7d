"""The HTML page, rendered in the visitor's language."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from eyescreen.labels import CLASSES
from eyescreen.web.i18n import LANGUAGES, STRINGS, choose_language

WEB_DIR = Path(__file__).parent
templates = Environment(loader=FileSystemLoader(WEB_DIR / "templates"), autoescape=select_autoescape(["html"]))

LANGUAGE_COOKIE = "lang"


async def index(request: Request) -> HTMLResponse:
    """GET /: the upload page."""
    language = choose_language(
        request.query_params.get("lang"), request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )
    html = templates.get_template("index.html").render(
        language=language,
        text=STRINGS[language],
        strings_json=json.dumps(STRINGS, ensure_ascii=False),
        languages=LANGUAGES,
        classes=CLASSES,
        max_upload_bytes=request.app.state.settings.max_upload_bytes,
    )
    response = HTMLResponse(html, headers={"Content-Language": language, "Vary": "Accept-Language, Cookie"})
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, samesite="lax")
    return response


routes = [
    Route("/", index, methods=["GET"]),
    Mount("/static", app=StaticFiles(directory=WEB_DIR / "static"), name="static"),
]
