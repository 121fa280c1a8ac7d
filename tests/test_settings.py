"""Tests of Settings.from_env: each environment variable is parsed, and invalid values raise SettingsError."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

import pytest

from eyescreen.errors import SettingsError
from eyescreen.settings import Settings

INTEGER_VARIABLES = [
    "EYESCREEN_MAX_UPLOAD_BYTES",
    "EYESCREEN_MAX_PIXELS",
    "EYESCREEN_FETCH_MAX_BYTES",
    "EYESCREEN_INFERENCE_THREADS",
]


def test_settings_from_env_empty_gives_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_settings_from_env_ignores_other_variables() -> None:
    assert Settings.from_env({"PATH": "/usr/bin", "EYESCREEN_UNKNOWN": "x"}) == Settings()


@pytest.mark.parametrize(
    ("variable", "text", "field_name", "expected"),
    [
        pytest.param("EYESCREEN_MODEL_DIR", "/opt/models/v2", "model_dir", Path("/opt/models/v2"), id="model-dir"),
        pytest.param("EYESCREEN_MODEL_DIR", "", "model_dir", None, id="model-dir-empty"),
        pytest.param("EYESCREEN_MODEL_DIR", "   ", "model_dir", None, id="model-dir-blank"),
        pytest.param("EYESCREEN_MAX_UPLOAD_BYTES", "1048576", "max_upload_bytes", 1_048_576, id="max-upload-bytes"),
        pytest.param("EYESCREEN_MAX_PIXELS", "1000000", "max_pixels", 1_000_000, id="max-pixels"),
        pytest.param("EYESCREEN_MAX_PIXELS", " 250 ", "max_pixels", 250, id="max-pixels-spaces"),
        pytest.param("EYESCREEN_FETCH_TIMEOUT", "2.5", "fetch_timeout_seconds", 2.5, id="fetch-timeout"),
        pytest.param("EYESCREEN_FETCH_TIMEOUT", "3", "fetch_timeout_seconds", 3.0, id="fetch-timeout-whole"),
        pytest.param("EYESCREEN_FETCH_MAX_BYTES", "5000", "fetch_max_bytes", 5000, id="fetch-max-bytes"),
        pytest.param("EYESCREEN_INFERENCE_THREADS", "1", "inference_threads", 1, id="inference-threads"),
        pytest.param("PORT", "8080", "port", 8080, id="port"),
        pytest.param("PORT", "", "port", None, id="port-empty"),
    ],
)
def test_settings_from_env_parses_variable(variable: str, text: str, field_name: str, expected: object) -> None:
    settings = Settings.from_env({variable: text})

    assert getattr(settings, field_name) == expected
    assert type(getattr(settings, field_name)) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", (), id="empty"),
        pytest.param("127.0.0.1/32", (ipaddress.ip_network("127.0.0.1/32"),), id="one-v4"),
        pytest.param(
            " 127.0.0.1/32 , ::1/128 ",
            (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
            id="v4-and-v6-spaces",
        ),
        pytest.param("10.1.2.3/8", (ipaddress.ip_network("10.0.0.0/8"),), id="host-bits-dropped"),
        pytest.param("192.168.1.5", (ipaddress.ip_network("192.168.1.5/32"),), id="bare-address"),
        pytest.param("127.0.0.1/32,,", (ipaddress.ip_network("127.0.0.1/32"),), id="empty-items"),
    ],
)
def test_settings_from_env_parses_networks(text: str, expected: tuple) -> None:
    settings = Settings.from_env({"EYESCREEN_FETCH_ALLOWED_NETWORKS": text})

    assert settings.fetch_allowed_networks == expected


def test_settings_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EYESCREEN_MAX_PIXELS", "12345")

    assert Settings.from_env().max_pixels == 12345


@pytest.mark.parametrize("variable", INTEGER_VARIABLES)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("abc", id="word"),
        pytest.param("1.5", id="fraction"),
        pytest.param("1e6", id="exponent"),
        pytest.param("", id="empty"),
    ],
)
def test_settings_from_env_integer_not_whole_number(variable: str, text: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}='{re.escape(text)}' is not a whole number$"):
        Settings.from_env({variable: text})


@pytest.mark.parametrize("variable", INTEGER_VARIABLES)
@pytest.mark.parametrize("text", [pytest.param("0", id="zero"), pytest.param("-5", id="negative")])
def test_settings_from_env_integer_not_positive(variable: str, text: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}='{re.escape(text)}' must be greater than zero$"):
        Settings.from_env({variable: text})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("http", "is not a whole number", id="word"),
        pytest.param("80.5", "is not a whole number", id="fraction"),
        pytest.param("0", "must be greater than zero", id="zero"),
        pytest.param("70000", "is not a TCP port; use a number from 1 to 65535", id="above-65535"),
    ],
)
def test_settings_from_env_port_invalid(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=rf"^PORT='{re.escape(text)}' {message}$"):
        Settings.from_env({"PORT": text})


@pytest.mark.parametrize("text", [pytest.param("soon", id="word"), pytest.param("10s", id="unit-suffix")])
def test_settings_from_env_timeout_not_number(text: str) -> None:
    with pytest.raises(SettingsError, match=rf"^EYESCREEN_FETCH_TIMEOUT='{re.escape(text)}' is not a number$"):
        Settings.from_env({"EYESCREEN_FETCH_TIMEOUT": text})


@pytest.mark.parametrize("text", [pytest.param("0", id="zero"), pytest.param("-0.5", id="negative")])
def test_settings_from_env_timeout_not_positive(text: str) -> None:
    with pytest.raises(SettingsError, match=rf"^EYESCREEN_FETCH_TIMEOUT='{re.escape(text)}' must be greater than zero$"):
        Settings.from_env({"EYESCREEN_FETCH_TIMEOUT": text})


@pytest.mark.parametrize("text", [pytest.param("nan", id="nan"), pytest.param("inf", id="infinity")])
def test_settings_from_env_timeout_not_finite(text: str) -> None:
    with pytest.raises(SettingsError, match=f"EYESCREEN_FETCH_TIMEOUT='{text}'"):
        Settings.from_env({"EYESCREEN_FETCH_TIMEOUT": text})


@pytest.mark.parametrize(
    ("text", "item"),
    [
        pytest.param("localhost", "localhost", id="host-name"),
        pytest.param("127.0.0.1/32,10.0.0.0/33", "10.0.0.0/33", id="bad-prefix-second"),
        pytest.param("300.1.1.1", "300.1.1.1", id="octet-too-large"),
        pytest.param("127.0.0.1/32;::1", "127.0.0.1/32;::1", id="wrong-separator"),
    ],
)
def test_settings_from_env_network_invalid(text: str, item: str) -> None:
    expected = rf"^EYESCREEN_FETCH_ALLOWED_NETWORKS contains '{re.escape(item)}', which is not an IP address or network$"

    with pytest.raises(SettingsError, match=expected):
        Settings.from_env({"EYESCREEN_FETCH_ALLOWED_NETWORKS": text})


def test_settings_frozen() -> None:
    settings = Settings.from_env({})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_pixels = 1  # type: ignore[misc]
