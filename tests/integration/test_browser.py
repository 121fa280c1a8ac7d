"""Drive the page in headless Chromium against the real `eyescreen serve` process.

Uses Debian's /usr/bin/chromium through Playwright; `playwright install` is never needed. Every
request that the page makes to a host other than 127.0.0.1 is aborted and recorded, and the
tests fail if there is any, so the page cannot depend on a CDN.

Set EYESCREEN_SCREENSHOT=1 to save the English result page to docs/screenshot.png. Without a CJK
font (Debian's fonts-noto-cjk), the language button's label shows as empty boxes there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from eyescreen.labels import CLASSES
from eyescreen.web.i18n import STRINGS

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed; pip install playwright")

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
SCREENSHOT_PATH = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator["sync_api.Browser"]:
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM}; install Debian's chromium package")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser, eyescreen_server) -> Iterator:
    """Open the eyescreen page in a new context with the given locale, and fail on any non-loopback request."""
    contexts = []
    blocked: list[str] = []

    def block_non_loopback(route: "sync_api.Route") -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    def build(locale: str) -> "sync_api.Page":
        context = browser.new_context(locale=locale, viewport={"width": 1000, "height": 1100})
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", block_non_loopback)
        contexts.append(context)
        page = context.new_page()
        page.goto(eyescreen_server.base_url + "/")
        return page

    yield build
    for context in contexts:
        context.close()
    assert blocked == [], f"the page requested non-loopback URLs: {blocked}"


def test_browser_english_upload_then_chinese(open_page, upload_photo: Path) -> None:
    page = open_page("en-US")
    english = STRINGS["en"]
    chinese = STRINGS["zh-CN"]

    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("h1") == english["heading"]

    page.set_input_files("#file-input", str(upload_photo))
    page.click("#upload-button")
    page.wait_for_selector("#result", state="visible")

    label = page.get_attribute("#result-label", "data-label")
    assert label in CLASSES
    assert page.inner_text("#result-label") == english[f"class_{label}"]
    rows = page.locator("#probabilities tbody tr")
    assert rows.count() == len(CLASSES)
    percents = rows.locator(".percent").all_inner_texts()
    assert all(text.endswith("%") for text in percents), percents
    assert page.locator("#probabilities tr.top").get_attribute("data-class") == label
    assert page.is_hidden("#error")

    if os.environ.get("EYESCREEN_SCREENSHOT"):
        page.screenshot(path=str(SCREENSHOT_PATH), full_page=True)

    page.click("#language-switch")

    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("h1") == chinese["heading"]
    assert page.inner_text("#result-label") == chinese[f"class_{label}"]
    assert page.inner_text("#language-switch") == chinese["language_switch"]
    language_cookies = [cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "lang"]
    assert language_cookies == ["zh-CN"]


def test_browser_chinese_locale(open_page) -> None:
    page = open_page("zh-CN")

    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("h1") == STRINGS["zh-CN"]["heading"]
    assert page.inner_text("p.warning") == STRINGS["zh-CN"]["warning"]
    assert page.inner_text("#upload-button") == STRINGS["zh-CN"]["upload_button"]


def test_browser_no_file_message(open_page) -> None:
    page = open_page("en-US")

    page.click("#upload-button")
    page.wait_for_selector("#error", state="visible")

    assert page.inner_text("#error-message") == STRINGS["en"]["error_no_file"]
    assert page.is_hidden("#result")

    page.click("#language-switch")

    assert page.inner_text("#error-message") == STRINGS["zh-CN"]["error_no_file"]


def test_browser_server_error_message(open_page) -> None:
    page = open_page("en-US")

    page.set_input_files("#file-input", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"})
    page.click("#upload-button")
    page.wait_for_selector("#error", state="visible")

    message = page.inner_text("#error-message")
    assert message.startswith(STRINGS["en"]["error_unsupported_image"] + " (")
    assert "not a supported image" in message
    assert page.is_hidden("#result")
