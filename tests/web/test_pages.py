"""Tests of the HTML page, its language choice and its static files."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from eyescreen.labels import CLASSES
from eyescreen.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, STRINGS, choose_language, language_from_header

CHINESE_HEADER = "zh-CN,zh;q=0.9"


class PageParser(HTMLParser):
    """Collect the text of every data-i18n element, asset URLs and the <html lang> of a page."""

    ASSET_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "formaction"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.language: str | None = None
        self.texts: dict[str, str] = {}
        self.asset_urls: list[str] = []
        self.strings_json = ""
        self._open_keys: list[str | None] = []
        self._in_strings = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.language = attributes.get("lang")
        for name, value in attrs:
            if name in self.ASSET_ATTRIBUTES and value:
                self.asset_urls.append(value)
        self._in_strings = tag == "script" and attributes.get("id") == "strings"
        self._open_keys.append(attributes.get("data-i18n"))

    def handle_endtag(self, tag: str) -> None:
        if self._open_keys:
            self._open_keys.pop()
        self._in_strings = False

    def handle_data(self, data: str) -> None:
        if self._in_strings:
            self.strings_json += data
        if self._open_keys and self._open_keys[-1]:
            key = self._open_keys[-1]
            self.texts[key] = self.texts.get(key, "") + data


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture
def client(make_client) -> TestClient:
    """A fresh client per test, so that a language cookie from one test never leaks into another."""
    return make_client()


# Language choice


def test_index_english_by_default(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-language"] == "en"
    page = parse_page(response.text)
    assert page.language == "en"
    assert page.texts["heading"] == STRINGS["en"]["heading"]
    assert page.texts["warning"] == STRINGS["en"]["warning"]
    assert "set-cookie" not in response.headers


def test_index_chinese_from_accept_language(client: TestClient) -> None:
    response = client.get("/", headers={"Accept-Language": CHINESE_HEADER})

    assert response.status_code == 200
    assert response.headers["content-language"] == "zh-CN"
    assert '<html lang="zh-CN">' in response.text
    page = parse_page(response.text)
    assert page.texts["heading"] == STRINGS["zh-CN"]["heading"]
    assert page.texts["warning"] == STRINGS["zh-CN"]["warning"]
    assert page.texts["class_glaucoma"] == "青光眼"


@pytest.mark.parametrize("language", LANGUAGES)
def test_index_research_warning_shown(client: TestClient, language: str) -> None:
    response = client.get("/", params={"lang": language})

    page = parse_page(response.text)
    assert page.texts["warning"] == STRINGS[language]["warning"]
    assert 'class="warning"' in response.text


def test_index_vary_header(client: TestClient) -> None:
    response = client.get("/")

    varies = {value.strip().lower() for value in response.headers["vary"].split(",")}
    assert {"accept-language", "cookie"} <= varies


def test_index_lang_query_sets_cookie(client: TestClient) -> None:
    response = client.get("/", params={"lang": "zh-CN"}, headers={"Accept-Language": "en-US"})

    assert parse_page(response.text).language == "zh-CN"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("lang=zh-CN;")
    assert "samesite=lax" in cookie.lower()
    assert "max-age=" in cookie.lower()


def test_index_cookie_kept_for_next_visit(client: TestClient) -> None:
    client.get("/", params={"lang": "zh-CN"})

    response = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"})

    assert parse_page(response.text).language == "zh-CN"


def test_index_unknown_lang_query_ignored(client: TestClient) -> None:
    response = client.get("/", params={"lang": "fr"}, headers={"Accept-Language": CHINESE_HEADER})

    assert parse_page(response.text).language == "zh-CN"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "cookie, header, expected",
    [
        pytest.param("en", CHINESE_HEADER, "en", id="english-cookie-chinese-header"),
        pytest.param("zh-CN", "en-US,en;q=0.9", "zh-CN", id="chinese-cookie-english-header"),
        pytest.param("fr", CHINESE_HEADER, "zh-CN", id="unknown-cookie-ignored"),
    ],
)
def test_index_cookie_wins_over_header(make_client, cookie: str, header: str, expected: str) -> None:
    client = make_client()
    client.cookies.set("lang", cookie)

    response = client.get("/", headers={"Accept-Language": header})

    assert parse_page(response.text).language == expected


# Page content and assets


@pytest.mark.parametrize("language", LANGUAGES)
def test_index_all_strings_rendered(client: TestClient, language: str) -> None:
    page = parse_page(client.get("/", params={"lang": language}).text)

    for key, text in page.texts.items():
        assert text == STRINGS[language][key], key
    for name in CLASSES:
        assert page.texts[f"class_{name}"] == STRINGS[language][f"class_{name}"]


def test_index_embeds_both_languages(client: TestClient) -> None:
    page = parse_page(client.get("/").text)

    assert json.loads(page.strings_json) == STRINGS


def test_index_no_external_assets(client: TestClient) -> None:
    page = parse_page(client.get("/").text)

    assert page.asset_urls, "expected the page to reference its stylesheet and script"
    external = [url for url in page.asset_urls if urlsplit(url).scheme or url.startswith("//")]
    assert external == []


@pytest.mark.parametrize("name", ["app.js", "style.css"])
def test_static_no_external_urls(client: TestClient, name: str) -> None:
    text = client.get(f"/static/{name}").text

    assert re.findall(r"https?://\S+", text) == []
    assert re.findall(r"url\(\s*['\"]?//", text) == []
    assert "@import" not in text


def test_static_assets_served(client: TestClient) -> None:
    page = parse_page(client.get("/").text)
    local_assets = [url for url in page.asset_urls if url.startswith("/static/")]

    assert len(local_assets) >= 2
    for url in local_assets:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content, url


@pytest.mark.parametrize(
    "path, content_type",
    [
        pytest.param("/static/app.js", "javascript", id="script"),
        pytest.param("/static/style.css", "text/css", id="stylesheet"),
    ],
)
def test_static_content_type(client: TestClient, path: str, content_type: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert content_type in response.headers["content-type"]


def test_static_missing_file_404(client: TestClient) -> None:
    response = client.get("/static/missing.js")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_static_path_traversal_404(client: TestClient) -> None:
    response = client.get("/static/..%2F..%2Fsettings.py")

    assert response.status_code == 404


# i18n unit tests


@pytest.mark.parametrize(
    "header, expected",
    [
        pytest.param("", DEFAULT_LANGUAGE, id="empty"),
        pytest.param(CHINESE_HEADER, "zh-CN", id="browser-chinese"),
        pytest.param("en-US,en;q=0.9,zh-CN;q=0.8", "en", id="browser-english"),
        pytest.param("fr-FR,fr;q=0.9,zh;q=0.5,en;q=0.4", "zh-CN", id="first-supported-by-quality"),
        pytest.param("en;q=0.3, zh-TW;q=0.7", "zh-CN", id="higher-quality-listed-later"),
        pytest.param("en;q=0.5,zh;q=0.5", "en", id="equal-quality-keeps-order"),
        pytest.param("zh-Hans-CN", "zh-CN", id="script-subtag"),
        pytest.param("ZH-cn", "zh-CN", id="case-insensitive"),
        pytest.param(" zh-CN ; q=0.8 , en ; q=0.7", "zh-CN", id="spaces"),
        pytest.param("fr, de;q=0.9", DEFAULT_LANGUAGE, id="none-supported"),
        pytest.param("*", DEFAULT_LANGUAGE, id="wildcard"),
        pytest.param("zh;q=0, en;q=0.1", "en", id="q-zero-excluded"),
        pytest.param("zh-CN;q=0", DEFAULT_LANGUAGE, id="only-language-not-acceptable"),
        pytest.param("zh;q=abc, en;q=0.2", "en", id="invalid-quality"),
    ],
)
def test_language_from_header(header: str, expected: str) -> None:
    assert language_from_header(header) == expected


@pytest.mark.parametrize(
    "query, cookie, header, expected",
    [
        pytest.param("zh-CN", "en", "en", "zh-CN", id="query-first"),
        pytest.param(None, "zh-CN", "en", "zh-CN", id="cookie-second"),
        pytest.param(None, None, CHINESE_HEADER, "zh-CN", id="header-third"),
        pytest.param("xx", "yy", CHINESE_HEADER, "zh-CN", id="unsupported-values-skipped"),
        pytest.param(None, None, None, DEFAULT_LANGUAGE, id="nothing-given"),
    ],
)
def test_choose_language(query: str | None, cookie: str | None, header: str | None, expected: str) -> None:
    assert choose_language(query, cookie, header) == expected


def test_strings_same_keys_in_every_language() -> None:
    for language in LANGUAGES:
        assert set(STRINGS[language]) == set(STRINGS[DEFAULT_LANGUAGE]), language


@pytest.mark.parametrize("language", LANGUAGES)
def test_strings_translate_every_error_code(language: str) -> None:
    from eyescreen.web.responses import ERROR_STATUS

    for _, _, code in ERROR_STATUS:
        assert f"error_{code}" in STRINGS[language], code
