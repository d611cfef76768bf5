"""A latency proxy in front of the test registry: loopback made to behave like a cloud registry.

Every request it answers waits ``latency`` seconds before the answer is written,
so a client pays one round trip per request, as it would against GHCR or Docker
Hub. The proxy

* speaks HTTP/1.1 with keep-alive on both sides (one upstream connection per
  client connection) and sets ``TCP_NODELAY`` (``disable_nagle_algorithm``):
  without it, keep-alive requests stall on the 40 ms delayed ACK;
* optionally plays a token server (``auth=True``, the default of the suite):
  unauthenticated requests get ``401`` with a ``Bearer`` challenge like
  distribution's token auth, ``GET /token`` hands out anonymous tokens scoped
  to what was asked, and a token is accepted only for the scopes it was issued
  for; challenges and token requests cost a round trip too, and are counted;
* counts requests per kind, TCP connections, and the peak number of requests in flight;
* optionally charges ``connect_latency`` per new TCP connection (off by default): the
  handshake round trips (TCP, TLS) a client pays again whenever it does not reuse a connection.

Everything stays on 127.0.0.1; the proxy stops with ``close()``.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

__all__ = ["HOP_BY_HOP", "Answer", "LatencyProxy", "ProxyCore", "ProxyStats", "request_kind"]

SERVICE = "bench-registry"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "authorization",
    }
)
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<what>manifests|blobs|tags)(?:/|$)")
_ACTIONS = {"GET": "pull", "HEAD": "pull", "PUT": "push", "POST": "push", "PATCH": "push", "DELETE": "delete"}

#: status, headers, body of an answer
Answer = tuple[int, list[tuple[str, str]], bytes]


def request_kind(method: str, path: str) -> str:
    """A short label for what a request is: ``HEAD blob``, ``GET manifest``, ``GET tags``, ``token``…"""
    if path.startswith("/token"):
        return "token"
    bare = path.split("?", 1)[0]
    if bare.rstrip("/") == "/v2":
        return f"{method} /v2/"
    match = _REPO_PATH.match(bare)
    if match is None:
        return f"{method} other"
    what = {"manifests": "manifest", "blobs": "blob", "tags": "tags"}[match.group("what")]
    return f"{method} {what}"


@dataclass(frozen=True)
class ProxyStats:
    """What the proxy saw between two ``reset()`` calls."""

    requests: int
    peak_in_flight: int
    kinds: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    unparsed: int = 0  # connections that sent something other than HTTP (not counted as requests)
    connections: int = 0  # TCP connections accepted (keep-alive reuses one for many requests)
    protocols: dict[str, int] = field(default_factory=dict)  # connections per ALPN protocol (TLS proxy only)

    @property
    def challenges(self) -> int:
        """401 answers (each one is a round trip the client spent learning it must authenticate)."""
        return self.statuses.get(401, 0)

    @property
    def tokens(self) -> int:
        return self.kinds.get("token", 0)

    def describe(self) -> str:
        parts = [f"{count} {kind}" for kind, count in sorted(self.kinds.items(), key=lambda kv: -kv[1])]
        if self.challenges:
            parts.append(f"{self.challenges}× 401")
        parts.append(f"over {self.connections} TCP connection(s)")
        if self.protocols:
            parts.append(" + ".join(f"{n} {p}" for p, n in sorted(self.protocols.items())))
        if self.unparsed:
            parts.append(f"{self.unparsed} non-HTTP attempt(s) (TLS), answered 400")
        return ", ".join(parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of new connections must not overflow the listen backlog
    proxy: LatencyProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.server.proxy.count_connection()
        if self.server.proxy.connect_latency:  # the handshake round trip(s) a new connection costs
            time.sleep(self.server.proxy.connect_latency)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if not parsed:  # not HTTP (e.g. a TLS ClientHello): answered 400 by the base class, not forwarded
            self.server.proxy.count_unparsed()
        return parsed

    def do_GET(self) -> None:
        self.server.proxy.handle(self)

    do_HEAD = do_GET
    do_PUT = do_GET
    do_POST = do_GET
    do_PATCH = do_GET
    do_DELETE = do_GET


class ProxyCore:
    """What both latency proxies share: the counters and the token-server emulation.

    ``scheme`` is the one clients reach the proxy with: the token realm must use it (a client
    refuses a plain-HTTP realm from an HTTPS registry). A subclass sets ``host`` once it listens.
    """

    host: str

    def __init__(
        self, *, latency: float, auth: bool, connect_latency: float = 0.0, scheme: str = "http"
    ) -> None:
        self.latency = latency
        self.connect_latency = connect_latency
        self.auth = auth
        self.scheme = scheme
        self._lock = threading.Lock()
        self._in_flight = 0
        self._peak = 0
        self._kinds: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._protocols: Counter[str] = Counter()
        self._unparsed = 0
        self._connections = 0
        self._tokens: dict[str, frozenset[tuple[str, str]]] = {}

    # -- counters

    def reset(self) -> None:
        with self._lock:
            self._peak = self._in_flight
            self._kinds.clear()
            self._statuses.clear()
            self._protocols.clear()
            self._unparsed = 0
            self._connections = 0

    def count_connection(self, protocol: str | None = None) -> None:
        with self._lock:
            self._connections += 1
            if protocol is not None:
                self._protocols[protocol] += 1

    def count_unparsed(self) -> None:
        with self._lock:
            self._unparsed += 1

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(
                requests=sum(self._kinds.values()),
                peak_in_flight=self._peak,
                kinds=dict(self._kinds),
                statuses=dict(self._statuses),
                unparsed=self._unparsed,
                connections=self._connections,
                protocols=dict(self._protocols),
            )

    def begin(self, method: str, path: str) -> None:
        """A request arrived: count it and its kind, and it is in flight until ``end``."""
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self._kinds[request_kind(method, path)] += 1

    def end(self, status: int) -> None:
        """Out of flight, called before the answer is written: once the client has it, it may send its
        next request, and that one must not be counted as overlapping this one (0: no answer)."""
        with self._lock:
            self._in_flight -= 1
            self._statuses[status] += 1

    # -- token auth, as distribution's token authenticator behaves

    def local_answer(self, method: str, path: str, authorization: str) -> Answer | None:
        """The answer of the emulated token server (a token, or a 401 challenge); None: forward it."""
        if not self.auth:
            return None
        if path.startswith("/token"):
            return self._issue_token(path)
        needed = self._needed_scope(method, path)
        if not self._authorized(authorization, needed):
            return self._challenge(needed)
        return None

    @staticmethod
    def _needed_scope(method: str, path: str) -> tuple[str, str] | None:
        match = _REPO_PATH.match(path.split("?", 1)[0])
        if match is None:
            return None
        return match.group("name"), _ACTIONS.get(method, "pull")

    def _authorized(self, header: str, needed: tuple[str, str] | None) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            granted = self._tokens.get(token.strip())
        if granted is None:
            return False
        return needed is None or needed in granted

    def _challenge(self, needed: tuple[str, str] | None) -> Answer:
        challenge = f'Bearer realm="{self.scheme}://{self.host}/token",service="{SERVICE}"'
        if needed is not None:
            challenge += f',scope="repository:{needed[0]}:{needed[1]}"'
        payload = json.dumps(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]}
        ).encode()
        headers = [
            ("WWW-Authenticate", challenge),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(payload))),
            ("Docker-Distribution-Api-Version", "registry/2.0"),
        ]
        return 401, headers, payload

    def _issue_token(self, path: str) -> Answer:
        granted: set[tuple[str, str]] = set()
        for key, value in parse_qsl(urlsplit(path).query):
            if key != "scope":
                continue
            for scope in value.split():
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind == "repository" and name:
                    granted.update((name, action) for action in actions.split(",") if action)
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = frozenset(granted)
        payload = json.dumps(
            {
                "token": token,
                "access_token": token,
                "expires_in": 300,
                "issued_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
        ).encode()
        return 200, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))], payload


class LatencyProxy(ProxyCore):
    """An HTTP/1.1 proxy on 127.0.0.1 in front of ``upstream`` (``host:port``), adding ``latency`` s."""

    def __init__(
        self, upstream: str, *, latency: float = 0.020, auth: bool = True, connect_latency: float = 0.0
    ) -> None:
        super().__init__(latency=latency, auth=auth, connect_latency=connect_latency)
        self.upstream = upstream
        self._local = threading.local()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="latency-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests

    def handle(self, handler: _Handler) -> None:
        self.begin(handler.command, handler.path)
        done = False

        def finish(status: int) -> None:
            nonlocal done
            self.end(status)
            done = True

        try:
            body = self._read_body(handler)
            status, headers, payload = self._answer(handler, body)
            time.sleep(self.latency)
            finish(status)
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.end_headers()
            if handler.command != "HEAD" and payload:
                handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        finally:
            if not done:
                finish(0)

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        length = handler.headers.get("Content-Length")
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            return b"".join(chunks)
        return handler.rfile.read(int(length)) if length else b""

    def _answer(self, handler: _Handler, body: bytes) -> Answer:
        local = self.local_answer(handler.command, handler.path, handler.headers.get("Authorization", ""))
        return local if local is not None else self._forward(handler, body)

    # -- forwarding

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.upstream, timeout=60)
            connection.connect()
            assert connection.sock is not None
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.connection = connection
        return connection

    def _forward(self, handler: _Handler, body: bytes) -> Answer:
        # A list, not a dict: clients send some headers several times (skopeo: one Accept per media type).
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP]
        headers.append(("Host", self.host))  # the registry builds Location/Link URLs from it
        if body or handler.command in ("PUT", "POST", "PATCH"):
            headers.append(("Content-Length", str(len(body))))
        for attempt in (0, 1):
            connection = self._connection()
            try:
                connection.putrequest(
                    handler.command, handler.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in headers:
                    connection.putheader(name, value)
                connection.endheaders(body or None)
                response = connection.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        length = response.getheader("Content-Length")
        if handler.command == "HEAD" and length is not None:
            out.append(("Content-Length", length))
        else:
            out.append(("Content-Length", str(len(payload))))
        if response.will_close:
            connection.close()
            self._local.connection = None
        return response.status, out, payload
