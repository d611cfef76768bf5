"""HTTP/2 shared by threads (``inspector/registry/_h2.py``) against the real registry serving TLS.

cacheinspect fans its requests out over threads that share one HTTP/2 connection per origin. httpcore's own
sync connection takes a stream id and queues its HEADERS outside its locks (pydantic/httpx2#1153), so two
threads that overlap there send two streams under one id. The first test makes that overlap certain (a pause
inside ``get_next_available_stream_id``, where the race window is) and shows httpcore's sync connection
failing; the second, the same overlap through cacheinspect's client (HTTPS on an event loop) succeeding. The
third drives 1,000 concurrent requests through the bench's strict HTTP/2 proxy, where a malformed or reused
stream, or a TLS connection broken by a read and a write at once, would end the connection and show up as a
retry (more requests) or a second connection. The last copies a blob larger than HTTP/2's initial window
from one repository to another, the upload fed by the download, over one HTTP/2 connection.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h2.connection
import httpx
import pytest
import trustme

from bench.h2proxy import H2LatencyProxy
from inspector.registry.client import ClientOptions, RegistryClient
from tests.harness.evilserver import EvilServer, Reply, Request, json_reply
from tests.harness.tlsregistry import TlsRegistry, put_blob, tls_registry

REPO = "h2/threads"
BLOBS = [f"blob {i}\n".encode() for i in range(10)]
DIGESTS = ["sha256:" + hashlib.sha256(blob).hexdigest() for blob in BLOBS]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    with tls_registry(tmp_path_factory.mktemp("h2-threads")) as served, served.client() as client:
        for blob in BLOBS:
            put_blob(client, served.registry.host, REPO, blob)
        yield served


def _overlapping_heads(
    threads: int, monkeypatch: pytest.MonkeyPatch, warm_up: Callable[[], str], head: Callable[[int], Any]
) -> list[Any]:
    """``threads`` threads, released together, each send ``head(index)``, with a 20 ms pause between taking
    a stream id and using it: what each got (a (status, protocol) pair, or the exception)."""
    original = h2.connection.H2Connection.get_next_available_stream_id

    def slow(self: h2.connection.H2Connection) -> int:
        stream_id = original(self)
        time.sleep(0.02)  # the window in which another thread may take the same id
        return stream_id

    assert warm_up() == "HTTP/2"  # the connection exists, on h2
    monkeypatch.setattr(h2.connection.H2Connection, "get_next_available_stream_id", slow)
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads

    def one(index: int) -> None:
        barrier.wait()
        try:
            response = head(index)
            results[index] = (response.status_code, response.http_version)
        except Exception as exc:  # what the race produces is the observation
            results[index] = exc

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return results


def test_httpcores_sync_connection_gives_two_threads_one_stream_id(
    setup: TlsRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: httpx's synchronous HTTP/2, shared by threads, breaks requests (so the next can fail)."""
    url = f"https://{setup.registry.host}/v2/{REPO}/blobs/"
    with httpx.Client(http2=True, verify=setup.tls.client_context(), trust_env=False, timeout=30) as client:
        results = _overlapping_heads(
            8,
            monkeypatch,
            lambda: client.head(url + DIGESTS[0]).http_version,
            lambda i: client.head(url + DIGESTS[i % len(DIGESTS)]),
        )
    # All 8 take id 3 (the warm-up used 1) before any sends its HEADERS; the first to send opens stream 3,
    # the others' HEADERS on it are refused by h2 (a stream id too low, or a closed stream).
    assert sum(not isinstance(r, tuple) for r in results) >= 1, results


def test_cacheinspects_client_gives_each_thread_its_own_stream(
    setup: TlsRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://{setup.registry.host}/v2/{REPO}/blobs/"
    with RegistryClient(ClientOptions(ca_file=str(setup.tls.ca), concurrency=8)) as client:
        results = _overlapping_heads(
            8,
            monkeypatch,
            lambda: client.send("HEAD", url + DIGESTS[0], what="blob")[0].http_version,
            lambda i: client.send("HEAD", url + DIGESTS[i % len(DIGESTS)], what="blob")[0],
        )
    assert results == [(200, "HTTP/2")] * 8


def test_a_thousand_concurrent_requests_share_one_connection_cleanly(setup: TlsRegistry) -> None:
    """64 threads (``-j 64``), 1,000 blob HEADs, one HTTP/2 connection through a proxy that holds every stream
    10 ms. The proxy's ``h2`` validates each HEADERS block; a duplicate pseudo-header or a reused stream id is
    a connection error there (GOAWAY), which the client would meet as a retry (more than 1,000 HEADs) or a
    new connection (more than one)."""
    with H2LatencyProxy(setup.registry.host, setup.tls, latency=0.010, auth=False) as proxy:
        proxy.reset()
        options = ClientOptions(ca_file=str(setup.tls.ca), concurrency=64)
        with RegistryClient(options) as client:
            base = f"https://{proxy.host}/v2/{REPO}/blobs/"
            answers = client.map_bounded(
                lambda d: client.send("HEAD", base + d, what="blob")[0], DIGESTS * 100
            )
        stats = proxy.stats()
    assert {(r.status_code, r.http_version) for r in answers} == {(200, "HTTP/2")}
    assert stats.kinds == {"HEAD blob": 1000}
    assert stats.protocols == {"h2": 1} and stats.connections == 1
    assert stats.peak_in_flight >= 16  # the streams really overlapped (30-60 seen; the CPU bounds it here)


def test_copy_streams_a_blob_larger_than_the_window_over_one_http2_connection(setup: TlsRegistry) -> None:
    """``open_blob`` feeds ``upload_blob_stream`` (what ``copy`` does): the upload's body is read, chunk by
    chunk, from a download on the same event loop. 300,000 bytes: more than four times the initial 65,535-byte
    window each way, so both directions wait for WINDOW_UPDATEs."""
    from inspector.oci.digest import Digest
    from inspector.oci.models import Descriptor
    from inspector.oci.reference import Repository

    big = hashlib.sha256(b"seed").digest() * (300_000 // 32)
    digest = "sha256:" + hashlib.sha256(big).hexdigest()
    source = Repository(setup.registry.host, REPO)
    target = Repository(setup.registry.host, "h2/copied")
    with RegistryClient(ClientOptions(ca_file=str(setup.tls.ca))) as client:
        pushed = client.push_blob(source, big)
        assert str(pushed) == digest
        descriptor = Descriptor("application/octet-stream", Digest(digest), len(big))
        with client.open_blob(source, descriptor) as chunks:
            client.upload_blob_stream(target, descriptor, chunks)
        stat = client.head_blob(target, Digest(digest))
        base = f"https://{setup.registry.host}/v2/h2/copied/blobs/{digest}"
        response, body = client.send("GET", base, what="copied blob", limit=len(big))
    assert stat.exists and stat.size == len(big)
    assert response.http_version == "HTTP/2" and body == big


def test_closing_the_client_ends_a_request_still_in_flight(tmp_path: Path) -> None:
    """A command that fails while other threads still wait for answers closes its client: those threads must
    get an error at once, not wait on an event loop that no longer runs (a process that never exits)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    def slow(request: Request) -> Reply | None:
        time.sleep(5)  # the answer's headers come after the client is closed
        return json_reply(200, "{}")

    outcome: list[BaseException | int] = []
    with EvilServer(slow, tls=context) as evil:
        client = RegistryClient(ClientOptions(ca_file=str(ca_file), retries=0))

        def ping() -> None:
            try:
                outcome.append(client.send("GET", f"https://{evil.host}/v2/", what="ping")[0].status_code)
            except BaseException as exc:  # the outcome is the observation
                outcome.append(exc)

        waiting = threading.Thread(target=ping)
        waiting.start()
        deadline = time.monotonic() + 10
        while not evil.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert evil.seen, "the request never reached the server: the test proves nothing"
        started = time.monotonic()
        client.close()
        waiting.join(3)
        ended = time.monotonic() - started
    assert not waiting.is_alive() and ended < 3, ended
    assert len(outcome) == 1 and isinstance(outcome[0], BaseException), outcome
