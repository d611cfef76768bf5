"""gc's checks keep to the number in flight they count with, under an adaptive client limit too.

A check covers ⌈tags ÷ concurrency⌉ round trips of deletions (docs/gc.md, "The window that remains"); were its
HEADs sent more than ``concurrency`` at a time, it would take fewer round trips than it counts and cover
deletions it did not earn. The registry here answers every HEAD after 20 ms and counts requests in flight.
"""

from __future__ import annotations

import threading
import time

import httpx

from inspector.gc.execute import RegistryTagReader
from inspector.oci.reference import parse_repository
from inspector.registry.client import ClientOptions, RegistryClient

DIGEST = "sha256:" + "a" * 64


def test_a_check_sends_its_heads_at_most_concurrency_at_a_time_even_when_the_limit_adapts() -> None:
    lock = threading.Lock()
    active = peak = 0

    def registry(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        headers = {
            "Docker-Content-Digest": DIGEST,
            "Content-Length": "2",
            "Content-Type": "application/vnd.oci.image.manifest.v1+json",
        }
        return httpx.Response(200, headers=headers)

    tags = [f"t{n}" for n in range(120)]
    options = ClientOptions(concurrency=8, adaptive=True)
    with RegistryClient(options, transport=httpx.MockTransport(registry)) as client:
        reader = RegistryTagReader(client, parse_repository("registry.test/app"))
        resolved = reader.resolve(tags)
        assert all(d is not None and str(d.digest) == DIGEST for d in resolved)
        assert reader.concurrency == 8
        # The same reads through the client's own fan-out do grow past 8 (the HTTP/1.1 ceiling is 16).
        peak_of_check = peak
        peak = 0
        client.map_bounded(lambda tag: client.head_manifest(reader.repository.tag(tag)), tags)
    assert peak_of_check == 8
    assert peak > 8
