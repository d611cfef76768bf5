"""The bench's HTTP/2 latency proxy (bench/h2proxy.py) in front of the real registry serving TLS.

The HTTP/2 rows of ``python -m bench`` are only as honest as this proxy: it must negotiate h2,
forward what the registry answers unchanged, respect flow control on bodies larger than the
initial window, and charge its latency per stream, not per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from bench.h2proxy import H2LatencyProxy
from bench.h2workloads import h2_floor
from bench.tls import make_tls
from tests.harness.tlsregistry import TlsRegistry, put_blob, tls_registry

REPO = "bench/h2"
# Larger than HTTP/2's initial flow-control window (65,535 bytes, RFC 9113 §6.9.2) three times over,
# so the proxy must wait for the client's WINDOW_UPDATEs to send it whole.
BIG = bytes(range(256)) * 800  # 204,800 bytes
BIG_DIGEST = "sha256:" + hashlib.sha256(BIG).hexdigest()
MISSING = "sha256:" + "0" * 64
# 40 tags of 100 characters: a tag list of ~4.2 KB, which Go's net/http sends chunked (a handler's output
# beyond its 2,048-byte buffer, without a Content-Length), so the proxy's upstream reads a chunked body.
TAGS = sorted(f"t{i:02d}-" + "x" * 96 for i in range(40))
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": BIG_DIGEST,
            "size": len(BIG),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": BIG_DIGEST, "size": len(BIG)}
        ],
    }
).encode()
LATENCY = 0.5


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    with tls_registry(tmp_path_factory.mktemp("bench-h2")) as served, served.client() as client:
        host = served.registry.host
        assert put_blob(client, host, REPO, BIG) == BIG_DIGEST
        for tag in TAGS:
            response = client.put(
                f"https://{host}/v2/{REPO}/manifests/{tag}",
                content=MANIFEST,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
            assert response.status_code == 201, response.text
        yield served


def test_negotiates_h2_and_forwards_get_and_head(setup: TlsRegistry) -> None:
    with H2LatencyProxy(setup.registry.host, setup.tls, latency=0.0, auth=False) as proxy:
        proxy.reset()
        with setup.client(http2=True) as client:
            base = f"https://{proxy.host}/v2/{REPO}/blobs"
            got = client.get(f"{base}/{BIG_DIGEST}")
            head = client.head(f"{base}/{BIG_DIGEST}")
            missing = client.head(f"{base}/{MISSING}")
        stats = proxy.stats()
    assert got.http_version == "HTTP/2"
    # The registry's answer, unchanged: the bytes pushed, their digest (distribution's
    # Docker-Content-Digest on blob GET/HEAD), their length.
    assert got.status_code == 200 and got.content == BIG
    assert got.headers["docker-content-digest"] == BIG_DIGEST
    assert got.headers["content-length"] == str(len(BIG))
    # HEAD: the same headers, the length of the body it would have, and no body.
    assert head.http_version == "HTTP/2" and head.status_code == 200
    assert head.headers["docker-content-digest"] == BIG_DIGEST
    assert head.headers["content-length"] == str(len(BIG)) and head.content == b""
    assert missing.status_code == 404
    assert stats.protocols == {"h2": 1} and stats.connections == 1
    assert stats.kinds == {"GET blob": 1, "HEAD blob": 2}


def test_body_larger_than_the_window_waits_for_window_updates(setup: TlsRegistry) -> None:
    """A raw h2 client that grants no more than the initial window until it has read it all.

    RFC 9113 §6.9.2: both the connection's and each stream's window start at 65,535 bytes. So the proxy may
    send exactly 65,535 bytes of the 204,800-byte body, must then stop, and must send the rest after the
    client's WINDOW_UPDATEs (which this client sends only after the stall was observed).
    """
    with H2LatencyProxy(setup.registry.host, setup.tls, latency=0.0, auth=False) as proxy:
        host, port = proxy.host.rsplit(":", 1)
        context = setup.tls.client_context()
        context.set_alpn_protocols(["h2"])
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as sock,
        ):
            assert sock.selected_alpn_protocol() == "h2"
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            stream = conn.get_next_available_stream_id()
            path = f"/v2/{REPO}/blobs/{BIG_DIGEST}"
            conn.send_headers(
                stream,
                [(":method", "GET"), (":scheme", "https"), (":authority", proxy.host), (":path", path)],
                end_stream=True,
            )
            sock.sendall(conn.data_to_send())
            received = bytearray()
            unacknowledged: list[int] = []
            status = ""
            ended = False
            stalled_at: int | None = None
            while not ended:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    assert stalled_at is None, "no data after the WINDOW_UPDATEs"
                    stalled_at = len(received)
                    for length in unacknowledged:  # grant the window back: WINDOW_UPDATE frames
                        conn.acknowledge_received_data(length, stream)
                    unacknowledged.clear()
                    sock.sendall(conn.data_to_send())
                    continue
                assert data, "the proxy closed the connection"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"].decode()
                    elif isinstance(event, h2.events.DataReceived):
                        received += event.data
                        if stalled_at is None:
                            unacknowledged.append(event.flow_controlled_length)
                            sock.settimeout(0.5)  # the stall: nothing more until the client grants
                        else:
                            conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    elif isinstance(event, h2.events.StreamEnded):
                        ended = True
                sock.sendall(conn.data_to_send())
    assert status == "200"
    assert stalled_at == 65_535
    assert bytes(received) == BIG


def test_chunked_answer_of_the_registry_is_forwarded_whole(setup: TlsRegistry) -> None:
    with setup.client(http2=False) as client:
        direct = client.get(f"https://{setup.registry.host}/v2/{REPO}/tags/list")
    assert direct.headers.get("transfer-encoding") == "chunked"  # the case under test really happens
    with (
        H2LatencyProxy(setup.registry.host, setup.tls, latency=0.0, auth=False) as proxy,
        setup.client(http2=True) as client,
    ):
        listed = client.get(f"https://{proxy.host}/v2/{REPO}/tags/list")
    assert listed.status_code == 200 and listed.http_version == "HTTP/2"
    assert listed.content == direct.content  # byte for byte (distribution lists tags in no fixed order)
    assert listed.json()["name"] == REPO and sorted(listed.json()["tags"]) == TAGS
    assert listed.headers["content-length"] == str(len(direct.content))


def test_latency_is_per_stream(setup: TlsRegistry) -> None:
    """Two requests in flight on one connection take one latency, not two."""

    async def two_at_once(host: str) -> tuple[float, list[httpx.Response]]:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(
            http2=True, verify=setup.tls.client_context(), trust_env=False, limits=limits, timeout=30
        ) as client:
            base = f"https://{host}/v2/{REPO}/blobs"
            await client.head(f"{base}/{BIG_DIGEST}")  # the connection (TLS, SETTINGS) is made here
            started = time.perf_counter()
            answers = await asyncio.gather(
                client.get(f"{base}/{BIG_DIGEST}"), client.head(f"{base}/{MISSING}")
            )
            return time.perf_counter() - started, list(answers)

    with H2LatencyProxy(setup.registry.host, setup.tls, latency=LATENCY, auth=False) as proxy:
        proxy.reset()
        elapsed, (big, missing) = asyncio.run(two_at_once(proxy.host))
        stats = proxy.stats()
    assert big.status_code == 200 and big.content == BIG and big.http_version == "HTTP/2"
    assert missing.status_code == 404
    assert stats.connections == 1 and stats.peak_in_flight == 2
    # Each stream waits LATENCY on its own: together ≈ 1 × LATENCY (0.5 s); one after the other would be 1.0 s.
    assert LATENCY <= elapsed < 1.7 * LATENCY, elapsed


def test_http1_fallback_and_token_realm(setup: TlsRegistry) -> None:
    """A client without HTTP/2 gets HTTP/1.1 over the same TLS port; the emulated token realm is HTTPS."""
    with H2LatencyProxy(setup.registry.host, setup.tls, latency=0.0, auth=True) as proxy:
        proxy.reset()
        with setup.client(http2=False) as client:
            url = f"https://{proxy.host}/v2/{REPO}/blobs/{BIG_DIGEST}"
            challenge = client.get(url)
            token = client.get(f"https://{proxy.host}/token", params={"scope": f"repository:{REPO}:pull"})
            got = client.get(url, headers={"Authorization": f"Bearer {token.json()['token']}"})
        stats = proxy.stats()
    assert challenge.http_version == "HTTP/1.1" and challenge.status_code == 401
    assert challenge.headers["www-authenticate"].startswith(f'Bearer realm="https://{proxy.host}/token"')
    assert got.status_code == 200 and got.content == BIG
    assert stats.protocols == {"http/1.1": 1}
    assert stats.kinds == {"GET blob": 2, "token": 1} and stats.statuses == {401: 1, 200: 2}


def test_tls_files_are_a_ca_and_a_loopback_certificate(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    assert (tls.cert_dir() / "ca.crt").read_bytes() == tls.ca.read_bytes()
    assert b"BEGIN CERTIFICATE" in tls.cert.read_bytes()


def test_h2_floor_is_dependent_round_trips_then_waves() -> None:
    # show of 1,000 layers with token auth: 401 challenge, token, manifest, config one after another (4),
    # then 1,000 blob HEADs at 100 streams = 10 waves: 14 round trips of 20 ms = 280 ms.
    assert h2_floor(4, 1000, 100, 0.020) == pytest.approx(0.280)
    # At Go's default of 250 streams: ⌈1000 ÷ 250⌉ = 4 waves, 8 round trips = 160 ms.
    assert h2_floor(4, 1000, 250, 0.020) == pytest.approx(0.160)
    # du of 2,000 tags: challenge, token, tag list (3), then 2,000 manifest GETs in ⌈2000 ÷ 100⌉ = 20 waves.
    assert h2_floor(3, 2000, 100, 0.020) == pytest.approx(0.460)
    # 101 requests need a second wave.
    assert h2_floor(0, 101, 100, 1.0) == pytest.approx(2.0)
