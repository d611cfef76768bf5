"""The client's gate and its adaptive limit, with httpx.MockTransport standing in for the registry.

MockTransport answers carry no ``http_version`` extension, so httpx reports them as HTTP/1.1: the ceiling is
``HTTP1_CEILING`` (16).
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from inspector.errors import RateLimited
from inspector.oci.digest import sha256_digest
from inspector.oci.reference import parse_repository
from inspector.registry.client import ClientOptions, RegistryClient

REPO = parse_repository("registry.test/app")
DIGESTS = [sha256_digest(str(n).encode()) for n in range(200)]


class SlowRegistry:
    """Answers every blob HEAD after ``delay`` seconds, counting the requests in flight."""

    def __init__(self, delay: float, statuses: list[int] | None = None) -> None:
        self.delay = delay
        self.statuses = list(statuses or [])
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            status = self.statuses.pop(0) if self.statuses else 200
        time.sleep(self.delay)
        with self._lock:
            self.active -= 1
        headers = {"Retry-After": "0"} if status == 429 else {"Content-Length": "1"}
        return httpx.Response(status, headers=headers)


def client_for(registry: SlowRegistry, *, adaptive: bool, concurrency: int = 8) -> RegistryClient:
    return RegistryClient(
        ClientOptions(concurrency=concurrency, adaptive=adaptive),
        transport=httpx.MockTransport(registry),
        sleep=lambda _: None,
    )


def test_adaptive_grows_past_the_start_and_the_gate_holds_the_ceiling() -> None:
    # Every answer takes 20 ms whatever the load: each round is clean, 8 -> 16 after the first 8 answers,
    # then the HTTP/1.1 ceiling (16) holds; the registry never sees more than 16 at once.
    registry = SlowRegistry(0.02)
    with client_for(registry, adaptive=True) as client:
        stats = client.map_bounded(lambda d: client.head_blob(REPO, d), DIGESTS)
        assert all(stat.exists for stat in stats)
        assert client.concurrency.reached == 16
    assert 8 < registry.peak <= 16


def test_a_fixed_limit_holds_whatever_the_answers() -> None:
    registry = SlowRegistry(0.01)
    with client_for(registry, adaptive=False, concurrency=4) as client:
        client.map_bounded(lambda d: client.head_blob(REPO, d), DIGESTS[:40])
        assert client.concurrency.limit == 4
    assert registry.peak == 4


def test_a_429_from_the_registry_halves_the_limit_and_the_request_is_retried() -> None:
    registry = SlowRegistry(0.0, statuses=[429])
    with client_for(registry, adaptive=True) as client:
        assert client.head_blob(REPO, DIGESTS[0]).exists  # retried after Retry-After: 0
        assert (client.concurrency.limit, client.concurrency.backoffs) == (4, 1)


def test_a_429_that_outlasts_the_retries_still_fails_as_before() -> None:
    registry = SlowRegistry(0.0, statuses=[429] * 10)
    with client_for(registry, adaptive=True) as client, pytest.raises(RateLimited):
        client.head_blob(REPO, DIGESTS[0])
