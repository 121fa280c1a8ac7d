"""Tests of the request limits: the inference queue, the upload pace and client disconnects.

InferenceLimiter is tested directly with asyncio. The 503 tests run in process through a
TestClient, with a model that holds each inference until the test releases it. The body pace
and disconnect tests need a real socket, so they run uvicorn in a thread on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.testclient import TestClient

from eyescreen.errors import ServerBusyError
from eyescreen.inference.session import ModelSession
from eyescreen.settings import Settings
from eyescreen.web.app import create_app
from eyescreen.web.limits import InferenceLimiter

PREDICTIONS = "/api/v1/predictions"
# Bounds every wait on another thread or the server, so a broken limit fails instead of hanging.
WAIT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 1.0


# InferenceLimiter


async def hold_slot(limiter: InferenceLimiter, entered: asyncio.Event, release: asyncio.Event) -> None:
    async with limiter.slot():
        entered.set()
        await release.wait()


async def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_limiter_queue_full_busy() -> None:
    async def scenario() -> tuple[ServerBusyError, int]:
        limiter = InferenceLimiter(max_concurrent=1, max_queued=1, queue_timeout_seconds=8)
        entered, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_slot(limiter, entered, release))
        await entered.wait()
        queued = asyncio.create_task(hold_slot(limiter, asyncio.Event(), release))
        await wait_until(lambda: limiter.waiting == 1)

        with pytest.raises(ServerBusyError) as raised:
            async with limiter.slot():
                pass
        waiting_after_rejection = limiter.waiting

        release.set()
        await asyncio.wait_for(asyncio.gather(holder, queued), WAIT_SECONDS)
        return raised.value, waiting_after_rejection

    error, waiting = asyncio.run(scenario())

    # queue_timeout_seconds / 4, rounded: 8 / 4 = 2.
    assert error.retry_after_seconds == 2
    assert "1 are waiting" in str(error)
    assert waiting == 1


def test_limiter_queue_timeout_busy() -> None:
    async def scenario() -> tuple[ServerBusyError, float, int]:
        limiter = InferenceLimiter(max_concurrent=1, max_queued=4, queue_timeout_seconds=0.2)
        entered, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_slot(limiter, entered, release))
        await entered.wait()

        started = time.monotonic()
        with pytest.raises(ServerBusyError) as raised:
            async with limiter.slot():
                pass
        waited = time.monotonic() - started

        release.set()
        await asyncio.wait_for(holder, WAIT_SECONDS)
        return raised.value, waited, limiter.waiting

    error, waited, waiting = asyncio.run(scenario())

    assert error.retry_after_seconds == 1
    assert "within 0.2 s" in str(error)
    assert waited >= 0.19
    assert waiting == 0


def test_limiter_free_slot_no_wait() -> None:
    # Control for the busy tests: with max_queued=0, a free slot is still taken at once.
    async def scenario() -> int:
        limiter = InferenceLimiter(max_concurrent=2, max_queued=0, queue_timeout_seconds=0.1)
        entered, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_slot(limiter, entered, release))
        await entered.wait()
        async with limiter.slot():
            acquired = 2
        release.set()
        await holder
        return acquired

    assert asyncio.run(scenario()) == 2


def test_limiter_slot_released_after_exception() -> None:
    async def scenario() -> bool:
        limiter = InferenceLimiter(max_concurrent=1, max_queued=0, queue_timeout_seconds=0.1)
        with pytest.raises(ValueError, match="inference failed"):
            async with limiter.slot():
                raise ValueError("inference failed")
        # With max_queued=0 a held slot would raise ServerBusyError here at once.
        async with limiter.slot():
            return True

    assert asyncio.run(scenario())


def test_limiter_slot_released_after_cancel() -> None:
    async def scenario() -> tuple[bool, int]:
        limiter = InferenceLimiter(max_concurrent=1, max_queued=1, queue_timeout_seconds=1)
        entered, never = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_slot(limiter, entered, never))
        await entered.wait()

        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder

        async with limiter.slot():
            return True, limiter.waiting

    acquired, waiting = asyncio.run(scenario())

    assert acquired
    assert waiting == 0


def test_limiter_waiter_cancelled_leaves_queue() -> None:
    async def scenario() -> tuple[int, bool]:
        limiter = InferenceLimiter(max_concurrent=1, max_queued=1, queue_timeout_seconds=5)
        entered, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_slot(limiter, entered, release))
        await entered.wait()
        waiter = asyncio.create_task(hold_slot(limiter, asyncio.Event(), release))
        await wait_until(lambda: limiter.waiting == 1)

        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        waiting_after_cancel = limiter.waiting

        release.set()
        await holder
        # The cancelled waiter must not have kept a slot: this one is taken at once.
        async with limiter.slot():
            return waiting_after_cancel, True

    waiting, acquired = asyncio.run(scenario())

    assert waiting == 0
    assert acquired


# The API under a full queue, in process


class HeldModel:
    """Wrap a ModelSession so that each inference waits until the test releases it."""

    def __init__(self, model: ModelSession) -> None:
        self._model = model
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        self.entered.set()
        if not self.release.wait(WAIT_SECONDS):
            raise TimeoutError(f"the test did not release the held inference within {WAIT_SECONDS} s")
        return self._model.probabilities(inputs)


@pytest.fixture
def held_model(model: ModelSession) -> Iterator[HeldModel]:
    held = HeldModel(model)
    yield held
    held.release.set()


@pytest.fixture
def make_held_client(held_model: HeldModel) -> Iterator[Callable[[Settings], TestClient]]:
    clients: list[TestClient] = []

    def build(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings, model=held_model))  # type: ignore[arg-type]
        client.__enter__()
        clients.append(client)
        return client

    yield build
    held_model.release.set()
    for client in clients:
        client.__exit__(None, None, None)


def upload(client: TestClient, data: bytes) -> httpx.Response:
    return client.post(PREDICTIONS, files={"file": ("photo.jpg", data, "image/jpeg")})


def test_api_slots_and_queue_full_503(make_held_client, held_model: HeldModel, fundus_jpeg: bytes) -> None:
    client = make_held_client(Settings(max_concurrent_inferences=1, max_queued_requests=0, queue_timeout_seconds=8))

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(upload, client, fundus_jpeg)
        assert held_model.entered.wait(WAIT_SECONDS)
        busy = upload(client, fundus_jpeg)
        held_model.release.set()
        first = held.result(timeout=WAIT_SECONDS)

    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "2"
    assert busy.json()["error"]["code"] == "server_busy"
    assert first.status_code == 200, first.text


def test_api_queued_request_served_200(make_held_client, held_model: HeldModel, fundus_jpeg: bytes) -> None:
    # Control for the test above: with one queue place the second request waits and succeeds.
    client = make_held_client(Settings(max_concurrent_inferences=1, max_queued_requests=1, queue_timeout_seconds=8))
    limiter = client.app.state.limiter  # type: ignore[attr-defined]

    with ThreadPoolExecutor(max_workers=2) as pool:
        held = pool.submit(upload, client, fundus_jpeg)
        assert held_model.entered.wait(WAIT_SECONDS)
        queued = pool.submit(upload, client, fundus_jpeg)
        deadline = time.monotonic() + WAIT_SECONDS
        while limiter.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting = limiter.waiting
        busy = upload(client, fundus_jpeg)
        held_model.release.set()
        first = held.result(timeout=WAIT_SECONDS)
        second = queued.result(timeout=WAIT_SECONDS)

    assert waiting == 1
    assert busy.status_code == 503
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text


def test_api_queue_timeout_503(make_held_client, held_model: HeldModel, fundus_jpeg: bytes) -> None:
    client = make_held_client(Settings(max_concurrent_inferences=1, max_queued_requests=4, queue_timeout_seconds=0.3))

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(upload, client, fundus_jpeg)
        assert held_model.entered.wait(WAIT_SECONDS)
        timed_out = upload(client, fundus_jpeg)
        held_model.release.set()
        held.result(timeout=WAIT_SECONDS)

    assert timed_out.status_code == 503
    assert timed_out.headers["retry-after"] == "1"
    assert timed_out.json()["error"]["code"] == "server_busy"
    assert "within 0.3 s" in timed_out.json()["error"]["message"]


# Upload pace and disconnects, against uvicorn on 127.0.0.1


@dataclass(frozen=True)
class LiveServer:
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture(scope="module")
def live_server(model: ModelSession) -> Iterator[LiveServer]:
    """Run the app under uvicorn in a thread on 127.0.0.1, with EYESCREEN_BODY_TIMEOUT=1."""
    settings = Settings.from_env({"EYESCREEN_BODY_TIMEOUT": str(BODY_TIMEOUT_SECONDS)})
    assert settings.body_timeout_seconds == BODY_TIMEOUT_SECONDS
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, model=model), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up"
        assert time.monotonic() < deadline, f"uvicorn did not start within {WAIT_SECONDS} s"
        time.sleep(0.02)
    try:
        yield LiveServer("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(WAIT_SECONDS)
        listener.close()


def multipart_upload(data: bytes, boundary: str = "pace-test-boundary") -> tuple[bytes, bytes]:
    """Build the request head and the multipart body that upload data as field 'file'."""
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST {PREDICTIONS} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head, body


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: dict
    # Time from sending the first half of the body to the first byte of the response.
    seconds: float
    responded_during_pause: bool


def read_response(connection: socket.socket) -> tuple[int, dict]:
    """Read one HTTP/1.1 response with Content-Length from a raw socket."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, f"the server closed the connection before a response; received {received!r}"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection in the middle of the response body"
        rest += chunk
    return int(lines[0].split()[1]), json.loads(rest[:length])


def send_with_pause(server: LiveServer, data: bytes, pause_seconds: float) -> RawResponse:
    """Send the head and half the body, pause, then send the rest unless a response has arrived."""
    head, body = multipart_upload(data)
    half = len(body) // 2
    with socket.create_connection((server.host, server.port), timeout=WAIT_SECONDS) as connection:
        connection.sendall(head + body[:half])
        started = time.monotonic()
        readable, _, _ = select.select([connection], [], [], pause_seconds)
        responded_during_pause = bool(readable)
        if not responded_during_pause:
            connection.sendall(body[half:])
            select.select([connection], [], [], WAIT_SECONDS)
        seconds = time.monotonic() - started
        status, response_body = read_response(connection)
    return RawResponse(status, response_body, seconds, responded_during_pause)


def test_live_body_pause_over_timeout_408(live_server: LiveServer, fundus_jpeg: bytes) -> None:
    response = send_with_pause(live_server, fundus_jpeg, pause_seconds=BODY_TIMEOUT_SECONDS + 1.0)

    assert response.status == 408
    assert response.body["error"]["code"] == "request_timeout"
    assert "no data for 1 s" in response.body["error"]["message"]
    # The server responds when its own timeout ends, while the client is still pausing.
    assert response.responded_during_pause
    assert BODY_TIMEOUT_SECONDS * 0.9 <= response.seconds < BODY_TIMEOUT_SECONDS + 0.9


def test_live_body_pause_under_timeout_200(live_server: LiveServer, fundus_jpeg: bytes) -> None:
    # Control for the test above: the same upload with a short pause is served.
    response = send_with_pause(live_server, fundus_jpeg, pause_seconds=BODY_TIMEOUT_SECONDS / 5)

    assert response.status == 200, response.body
    assert "label" in response.body
    assert not response.responded_during_pause


def disconnect_mid_upload(server: LiveServer, data: bytes) -> None:
    head, body = multipart_upload(data)
    with socket.create_connection((server.host, server.port), timeout=WAIT_SECONDS) as connection:
        connection.sendall(head + body[: len(body) // 2])


def test_live_client_disconnect_next_request_200(
    live_server: LiveServer, fundus_jpeg: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    for _ in range(3):
        disconnect_mid_upload(live_server, fundus_jpeg)
    deadline = time.monotonic() + WAIT_SECONDS
    while caplog.text.count("client disconnected during upload") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(base_url=live_server.base_url, trust_env=False, timeout=WAIT_SECONDS) as client:
        started = time.monotonic()
        response = client.post(PREDICTIONS, files={"file": ("photo.jpg", fundus_jpeg, "image/jpeg")})
        seconds = time.monotonic() - started

    assert response.status_code == 200, response.text
    # The request does not wait for the abandoned uploads' body timeout.
    assert seconds < BODY_TIMEOUT_SECONDS
    assert caplog.text.count("client disconnected during upload") == 3
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
