"""TLS against a real docker-registry serving a certificate from a test CA (``trustme``).

The client speaks plain HTTP to every loopback host (``is_loopback_host``) and has no switch to force
HTTPS there, so the registry is reached under non-loopback names (``registry.test``, ``plain.test``)
through a tiny HTTP proxy (``HTTPS_PROXY``/``HTTP_PROXY``, honoured by httpx) that sends every
connection to the local registry. TLS is end to end: the proxy only tunnels ``CONNECT`` bytes.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.harness.registry import (
    INSTANCE_HEADER,
    LocalRegistry,
    RegistryUnavailable,
    find_registry_binary,
    load_samples,
    seed_sample,
    start_registry,
)
from tests.harness.support import require_registry_binary, run_cli

TLS_NAME = "registry.test"
PLAIN_NAME = "plain.test"
REPO = "tls/app"
TAG = "oci-index"


class Proxy:
    """HTTP proxy that sends each connection, whatever host it names, to a port chosen by host name.

    ``CONNECT host:port`` is answered 200 and tunnelled; any other request is forwarded byte for byte
    (Go's server accepts the absolute-form request line). ``targets`` maps a host name to a local port.
    """

    def __init__(self, targets: dict[str, int]) -> None:
        self.targets = targets
        self.seen: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = request_line.split(" ", 2)
            self.seen.append(f"{method} {target}")
            if method == "CONNECT":
                host = target.rsplit(":", 1)[0]
            else:
                host = target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            port = self.targets.get(host)
            if port is None:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with socket.create_connection(("127.0.0.1", port), timeout=30) as upstream:
                if method == "CONNECT":
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    rest = head.split(b"\r\n\r\n", 1)[1]
                else:
                    rest = head
                if rest:
                    upstream.sendall(rest)
                self._pipe(conn, upstream)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while True:
            readable, _, _ = select.select(list(peers), [], [], 60)
            if not readable:
                return
            for sock in readable:
                try:
                    data = sock.recv(65536)
                    if not data:
                        return
                    # A client that refuses the certificate resets its side while the server still talks.
                    peers[sock].sendall(data)
                except OSError:
                    return

    def close(self) -> None:
        self._closed = True
        self._sock.close()


@dataclass
class TlsSetup:
    tls: LocalRegistry
    plain: LocalRegistry
    proxy: Proxy
    ca_file: Path
    tls_port: int
    plain_port: int


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_tls_registry(workdir: Path, storage: Path, cert: Path, key: Path, ca_file: Path) -> LocalRegistry:
    """``start_registry`` for a TLS listener (its config helper always writes a plain ``http`` section)."""
    binary = find_registry_binary()
    assert binary is not None
    trusted = ssl.create_default_context(cafile=str(ca_file))
    last_error = ""
    for _attempt in range(5):
        port = _free_port()
        instance = uuid.uuid4().hex
        root = workdir / f"tls-registry-{port}"
        root.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"127.0.0.1:{port}",
                "headers": {INSTANCE_HEADER: [instance]},
                "tls": {"certificate": str(cert), "key": str(key)},
            },
        }
        (root / "config.yml").write_text(json.dumps(config, indent=2))
        log_path = root / "registry.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, "serve", str(root / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        registry = LocalRegistry(f"127.0.0.1:{port}", root, instance, process, log_path)
        if _answers(registry, port, trusted):
            return registry
        last_error = "did not answer within 20 s" if registry.alive() else registry.log()[-500:]
        registry.stop()
    raise RegistryUnavailable(f"TLS docker-registry would not start: {last_error}")


def _answers(registry: LocalRegistry, port: int, trusted: ssl.SSLContext) -> bool:
    """True once the registry we started (and not another process) answers over TLS."""
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not registry.alive():
                return False
            try:
                response = httpx.get(f"https://127.0.0.1:{port}/v2/", timeout=1, verify=trusted)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            return bool(response.headers.get(INSTANCE_HEADER) == registry.instance)
        return False
    except BaseException:
        registry.stop()
        raise


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSetup]:
    require_registry_binary()
    workdir = tmp_path_factory.mktemp("tls-registry")
    ca = trustme.CA()
    issued = ca.issue_cert(TLS_NAME, "127.0.0.1")
    ca_file, cert, key = workdir / "ca.pem", workdir / "cert.pem", workdir / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))

    plain = start_registry(workdir)
    try:
        multistage = next(s for s in load_samples() if s["name"] == "multistage-max")
        seed_sample(plain.host, REPO, multistage)
        tls = _start_tls_registry(workdir, plain.root / "data", cert, key, ca_file)
        try:
            tls_port = int(tls.host.rsplit(":", 1)[1])
            plain_port = int(plain.host.rsplit(":", 1)[1])
            proxy = Proxy({TLS_NAME: tls_port, PLAIN_NAME: plain_port})
            try:
                yield TlsSetup(tls, plain, proxy, ca_file, tls_port, plain_port)
            finally:
                proxy.close()
        finally:
            tls.stop()
    finally:
        plain.stop()


def cli(setup: TlsSetup, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"HTTPS_PROXY": setup.proxy.url, "HTTP_PROXY": setup.proxy.url})


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cacheinspect: error:")]
    assert len(errors) == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # the error and at most a hint
    return errors[0]


def test_ca_file_verifies_the_registry(setup: TlsSetup) -> None:
    ref = f"{TLS_NAME}:{setup.tls_port}/{REPO}:{TAG}"
    before = len(setup.proxy.seen)
    result = cli(setup, "show", ref, "--json", "--ca-file", str(setup.ca_file))
    assert result.returncode == 0, result.stderr[-800:]
    assert json.loads(result.stdout)["health"]["ok"] is True
    # Every connection was a tunnel: the requests went over TLS, not as plain HTTP through the proxy.
    seen = setup.proxy.seen[before:]
    assert seen and all(line.startswith(f"CONNECT {TLS_NAME}:") for line in seen), seen


def test_untrusted_certificate_fails_cleanly(setup: TlsSetup) -> None:
    result = cli(setup, "show", f"{TLS_NAME}:{setup.tls_port}/{REPO}:{TAG}")
    assert result.returncode == 6, (result.returncode, result.stderr)
    line = _one_line_error(result)
    assert "certificate" in line and "--ca-file" in line, line


def test_insecure_skips_verification(setup: TlsSetup) -> None:
    result = cli(setup, "show", f"{TLS_NAME}:{setup.tls_port}/{REPO}:{TAG}", "--json", "--insecure")
    assert result.returncode == 0, result.stderr[-800:]
    assert json.loads(result.stdout)["health"]["ok"] is True


def test_a_bad_ca_file_is_a_usage_error(setup: TlsSetup, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    result = cli(setup, "show", f"{TLS_NAME}:{setup.tls_port}/{REPO}:{TAG}", "--ca-file", str(bogus))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "CA file" in _one_line_error(result)


def test_plain_http_to_a_remote_host_needs_the_flag(setup: TlsSetup) -> None:
    ref = f"{PLAIN_NAME}:{setup.plain_port}/{REPO}:{TAG}"
    before = len(setup.proxy.seen)
    refused = cli(setup, "show", ref)
    assert refused.returncode == 6, (refused.returncode, refused.stderr)
    assert "--plain-http" in _one_line_error(refused)
    # It tried TLS only: no plain-HTTP request left the client.
    assert all(line.startswith("CONNECT ") for line in setup.proxy.seen[before:]), setup.proxy.seen[before:]

    before = len(setup.proxy.seen)
    allowed = cli(setup, "show", ref, "--json", "--plain-http")
    assert allowed.returncode == 0, allowed.stderr[-800:]
    assert json.loads(allowed.stdout)["health"]["ok"] is True
    assert any(line.startswith(f"GET http://{PLAIN_NAME}:") for line in setup.proxy.seen[before:])


def test_ca_file_means_tls_on_loopback_too(setup: TlsSetup) -> None:
    """Loopback registries default to plain HTTP; giving a CA file asks for (verified) TLS there as well."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}}
    env["DOCKER_CONFIG"] = "/nonexistent-docker-config"
    ref = f"127.0.0.1:{setup.tls_port}/{REPO}:{TAG}"
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "show", ref, "--json", "--ca-file", str(setup.ca_file)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-800:]
    assert json.loads(result.stdout)["health"]["ok"] is True


# --------------------------------------------------------------------------- HTTP/2


def test_a_tls_registry_answers_over_http2_and_http1_when_asked(setup: TlsSetup) -> None:
    """Go's server offers h2 by ALPN (distribution 2.8.2's ``nextProtos``: ``h2``, ``http/1.1`` unless
    ``http.http2.disabled``); the client takes it, and ``http1=True`` offers only ``http/1.1``."""
    from inspector.registry.client import ClientOptions, RegistryClient

    url = f"https://127.0.0.1:{setup.tls_port}/v2/"
    with RegistryClient(ClientOptions(ca_file=str(setup.ca_file))) as client:
        response, _ = client.send("GET", url, what="ping")
        assert response.http_version == "HTTP/2"
    with RegistryClient(ClientOptions(ca_file=str(setup.ca_file), http1=True)) as client:
        response, _ = client.send("GET", url, what="ping")
        assert response.http_version == "HTTP/1.1"


def test_plain_http_stays_http1_and_loads_no_ca_bundle(setup: TlsSetup) -> None:
    """No h2c: plain HTTP is HTTP/1.1. And a run that makes no TLS handshake never loads the CA bundle."""
    from inspector.registry.client import ClientOptions, RegistryClient

    with RegistryClient(ClientOptions()) as client:
        response, _ = client.send("GET", f"http://{setup.plain.host}/v2/", what="ping")
        assert response.http_version == "HTTP/1.1"
        assert client.tls_context_loaded is False
        with pytest.raises(Exception, match="certificate"):  # the default trust still verifies
            client.send("GET", f"https://127.0.0.1:{setup.tls_port}/v2/", what="ping")
        assert client.tls_context_loaded is True


def _connections_and_protocols(
    setup: TlsSetup, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    ref = f"{TLS_NAME}:{setup.tls_port}/{REPO}:{TAG}"
    before = len(setup.proxy.seen)
    result = run_cli(
        "show",
        ref,
        "--json",
        "-v",
        "--ca-file",
        str(setup.ca_file),
        *args,
        env={"HTTPS_PROXY": setup.proxy.url, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-800:]
    assert json.loads(result.stdout)["health"]["ok"] is True
    tunnels = [line for line in setup.proxy.seen[before:] if line.startswith("CONNECT ")]
    return len(tunnels), result.stderr


def test_show_multiplexes_its_requests_on_one_http2_connection(setup: TlsSetup) -> None:
    # The blob checks go out concurrently (8 at first); each TCP connection is one CONNECT at the proxy, and
    # one connection for them all is HTTP/2 streams. Once, under a load average of 8, a run opened 7 tunnels
    # (httpcore opens a new tunnel when no connection is available, cause not found): up to 3 runs, one must
    # use a single connection.
    for _attempt in range(3):
        connections, log = _connections_and_protocols(setup)
        if connections == 1:
            break
    assert connections == 1, log[-2000:]
    assert "(HTTP/2)" in log and "(HTTP/1.1)" not in log, log[-2000:]
    summary = [line for line in log.splitlines() if "concurrency: adaptive, started at 8" in line]
    assert len(summary) == 1, log[-2000:]
    assert "HTTP/2" in summary[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_http1_flag_or_environment_forces_http1(setup: TlsSetup, how: str) -> None:
    args, env = (("--http1",), None) if how == "flag" else ((), {"CACHEINSPECT_HTTP1": "1"})
    connections, log = _connections_and_protocols(setup, *args, env=env)
    assert "(HTTP/1.1)" in log and "(HTTP/2)" not in log, log[-2000:]
    # HTTP/1.1 carries one request per connection at a time: concurrent blob checks open several.
    assert connections > 1, log[-2000:]


def test_bodies_refused_or_cut_short_on_http2_leave_the_connection_usable(setup: TlsSetup) -> None:
    """The caps close an HTTP/2 stream unread (a body over its limit) or part-read (an error body past 64 KiB
    is truncated); the other streams of that connection, and later ones, must not suffer."""
    from inspector.errors import InvalidContent, RegistryError
    from inspector.registry.client import ClientOptions, RegistryClient

    base = f"https://127.0.0.1:{setup.tls_port}/v2/{REPO}"
    with RegistryClient(ClientOptions(ca_file=str(setup.ca_file))) as client:
        response, raw = client.send(
            "GET",
            f"{base}/manifests/image-manifest",
            what="manifest",
            limit=1 << 20,
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert response.http_version == "HTTP/2"
        manifest = json.loads(raw)
        blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
        for _ in range(3):
            with pytest.raises(InvalidContent, match="byte limit"):
                client.send("GET", f"{base}/blobs/{blobs[0]}", what="config", limit=1)
            with pytest.raises(RegistryError):  # a 200 taken for an error: its body read capped, then closed
                client.send("GET", f"{base}/blobs/{blobs[0]}", what="config", ok=(201,))
        heads = client.map_bounded(
            lambda d: client.send("HEAD", f"{base}/blobs/{d}", what="head")[0], blobs * 10
        )
        assert {(r.status_code, r.http_version) for r in heads} == {(200, "HTTP/2")}
