"""Runtime settings, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from eyescreen.errors import SettingsError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Each setting: environment variable, default as text, and help text. README.md lists them all,
# and a test checks that it does.
ENVIRONMENT_VARIABLES: dict[str, tuple[str, str]] = {
    "model_dir": ("EYESCREEN_MODEL_DIR", "", "Folder with model.onnx and model_card.json; empty uses the bundled model."),
    "max_upload_bytes": ("EYESCREEN_MAX_UPLOAD_BYTES", "20000000", "Largest accepted request body, in bytes."),
    "max_pixels": ("EYESCREEN_MAX_PIXELS", "40000000", "Largest accepted image, in pixels (width x height)."),
    "fetch_timeout_seconds": ("EYESCREEN_FETCH_TIMEOUT", "10", "Time limit for downloading an image URL, in seconds."),
    "fetch_max_bytes": ("EYESCREEN_FETCH_MAX_BYTES", "20000000", "Largest image downloaded from a URL, in bytes."),
    "fetch_allowed_networks": (
        "EYESCREEN_FETCH_ALLOWED_NETWORKS",
        "",
        "Comma-separated networks (such as 127.0.0.1/32) that URL fetching may reach even though they are private.",
    ),
    "inference_threads": ("EYESCREEN_INFERENCE_THREADS", "2", "Threads that ONNX Runtime uses for one inference."),
    "max_concurrent_inferences": (
        "EYESCREEN_MAX_CONCURRENT_INFERENCES",
        "2",
        "Photos decoded and classified at the same time; further requests wait in the queue.",
    ),
    "max_queued_requests": (
        "EYESCREEN_MAX_QUEUED_REQUESTS",
        "16",
        "Requests that may wait for an inference slot; past this the server returns 503 with Retry-After.",
    ),
    "queue_timeout_seconds": (
        "EYESCREEN_QUEUE_TIMEOUT",
        "20",
        "Longest wait for an inference slot, in seconds, before the server returns 503.",
    ),
    "body_timeout_seconds": (
        "EYESCREEN_BODY_TIMEOUT",
        "20",
        "Longest pause between two parts of an upload, in seconds, before the server returns 408.",
    ),
    "port": (
        "PORT",
        "",
        "Port for `eyescreen serve` when --port is not given, as PaaS hosts set it; when set, the server listens on 0.0.0.0.",
    ),
}


def _parse_int(variable: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{variable}={text!r} is not a whole number") from None
    if value <= 0:
        raise SettingsError(f"{variable}={text!r} must be greater than zero")
    return value


def _parse_port(variable: str, text: str) -> int:
    value = _parse_int(variable, text)
    if value > 65535:
        raise SettingsError(f"{variable}={text!r} is not a TCP port; use a number from 1 to 65535")
    return value


def _parse_float(variable: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{variable}={text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{variable}={text!r} must be greater than zero")
    return value


def _parse_networks(variable: str, text: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(f"{variable} contains {item!r}, which is not an IP address or network") from None
    return tuple(networks)


@dataclass(frozen=True)
class Settings:
    """Settings of the service and the command line tool."""

    model_dir: Path | None = None
    max_upload_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    fetch_timeout_seconds: float = 10.0
    fetch_max_bytes: int = 20_000_000
    fetch_allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)
    inference_threads: int = 2
    max_concurrent_inferences: int = 2
    max_queued_requests: int = 16
    queue_timeout_seconds: float = 20.0
    body_timeout_seconds: float = 20.0
    port: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables, raising SettingsError on an invalid value."""
        environ = os.environ if environ is None else environ

        def text(name: str) -> str:
            variable, default, _ = ENVIRONMENT_VARIABLES[name]
            return environ.get(variable, default).strip()

        def variable(name: str) -> str:
            return ENVIRONMENT_VARIABLES[name][0]

        model_dir = text("model_dir")
        return cls(
            model_dir=Path(model_dir) if model_dir else None,
            max_upload_bytes=_parse_int(variable("max_upload_bytes"), text("max_upload_bytes")),
            max_pixels=_parse_int(variable("max_pixels"), text("max_pixels")),
            fetch_timeout_seconds=_parse_float(variable("fetch_timeout_seconds"), text("fetch_timeout_seconds")),
            fetch_max_bytes=_parse_int(variable("fetch_max_bytes"), text("fetch_max_bytes")),
            fetch_allowed_networks=_parse_networks(variable("fetch_allowed_networks"), text("fetch_allowed_networks")),
            inference_threads=_parse_int(variable("inference_threads"), text("inference_threads")),
            max_concurrent_inferences=_parse_int(variable("max_concurrent_inferences"), text("max_concurrent_inferences")),
            max_queued_requests=_parse_int(variable("max_queued_requests"), text("max_queued_requests")),
            queue_timeout_seconds=_parse_float(variable("queue_timeout_seconds"), text("queue_timeout_seconds")),
            body_timeout_seconds=_parse_float(variable("body_timeout_seconds"), text("body_timeout_seconds")),
            port=_parse_port(variable("port"), text("port")) if text("port") else None,
        )

    def bind_address(self, host: str | None, port: int | None) -> tuple[str, int]:
        """Choose where `eyescreen serve` listens: options first, then $PORT, then 127.0.0.1:8000."""
        default_host = "0.0.0.0" if self.port is not None else "127.0.0.1"
        return host or default_host, port or self.port or 8000


assert {f.name for f in fields(Settings)} == set(ENVIRONMENT_VARIABLES)
