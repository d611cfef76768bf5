"""A seeded fault-injection HTTP/1.1 proxy in front of the test registry.

``FaultProxy(upstream, seed=…, rate=…)`` listens on a free 127.0.0.1 port and forwards every request to
the real registry. Per request, with probability ``rate``, it injects one fault chosen among the
enabled kinds that apply to that request:

==============  =====================================================================================
``reset``       the request is forwarded (the registry acts on it), then the answer's headers and half
                its body are sent and the connection is reset (RST); an answer without a body is reset
                before its status line
``http500``     500 (plain text), not forwarded; ``http502``: 502 (HTML); ``http503``: 503 with an
                ``UNAVAILABLE`` envelope
``ratelimit``   429 ``TOOMANYREQUESTS`` with ``Retry-After: <retry_after>``, not forwarded
``slow``        forwarded, then the answer is held back ``slow_seconds`` (longer than the client's timeout)
``trickle``     a GET answer whose body comes one byte every ``trickle_interval`` seconds (each byte
                within the timeout, the whole body not) for at most ``trickle_seconds``, then the rest
``truncate``    a GET answer declaring its full Content-Length, sending half of the body, then closing
``corrupt``     a GET of a manifest or blob *by digest*: one byte of the body flipped
``oversize``    a GET answer bigger than the client's 4 MiB manifest cap: declared (a Content-Length of
                33 MiB, the real body sent, closed) or undeclared (chunked, the real body and then
                blanks up to 33 MiB, which the client must stop reading at its cap)
``redirect``    a GET or HEAD answered 307 to the same path on another host (``other``: a listener on
                127.0.0.2, or ``localhost`` where that cannot be bound) that records whether
                ``Authorization`` came, then forwards to the registry (a redirected write is refused by
                the client's policy, exit 8: tests/integration/test_hostile_registry.py)
``linkloop``    a tags list answer whose ``Link: rel="next"`` points back to the first page of the walk
==============  =====================================================================================

Decisions are reproducible. With ``key="order"`` (the default) the decision for the N-th request of a
(method, kind) pair (``GET manifest``, ``HEAD blob``, ``POST upload``…) is drawn from
``random.Random(f"{seed}/{method}/{kind}/{N}")``: the same command with the same seed, sending its requests
in the same order (``--concurrency 1``), meets the same faults at the same places, even when digests or
upload session ids differ from run to run. With ``key="path"`` it is the N-th request of that method and
path (upload session ids and query left out): reproducible however concurrent requests interleave, as
long as the paths are the same (fixed content). ``force()`` adds deterministic rules ("fault every Nth
request matching X"), checked before the random draw.

With ``basic_auth=(user, password)`` the proxy plays a registry that wants Basic credentials: a request
without them gets 401 + ``WWW-Authenticate: Basic``; forwarded requests never carry them upstream.

Every request (``seen``) and every injected fault (``injected``) is recorded. A tags list asked for with
``n`` is paginated by the proxy (``n`` tags after ``last``, ``Link`` to the next page): the registry
(distribution 2.8) ignores both.
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

__all__ = [
    "ALL_FAULTS",
    "BODY_FAULTS",
    "RECOVERABLE_FAULTS",
    "FaultProxy",
    "Injected",
    "OtherHost",
    "Seen",
    "request_kind",
]

ALL_FAULTS = (
    "reset",
    "http500",
    "http502",
    "http503",
    "ratelimit",
    "slow",
    "trickle",
    "truncate",
    "corrupt",
    "oversize",
    "redirect",
    "linkloop",
)
#: Faults that change the body of a successful GET answer.
BODY_FAULTS = frozenset({"trickle", "truncate", "corrupt", "oversize"})
#: Faults a correct client gets past with retries (for requests it may repeat) and a correct result:
#: all but an oversized body and a Link loop (a flipped byte is fetched again).
RECOVERABLE_FAULTS = frozenset(ALL_FAULTS) - {"oversize", "linkloop"}
OVERSIZE_DECLARED = 33 * 1024 * 1024  # over the 32 MiB tag-page cap too
OVERSIZE_SENT = 33 * 1024 * 1024  # chunked: the client stops reading at its cap

_HOP_BY_HOP = frozenset(
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
        "accept-encoding",
        "authorization",
    }
)
_REPO_PATH = re.compile(
    r"^/v2/(?P<name>.+?)/(?P<what>manifests|blobs/uploads|blobs|tags/list|referrers)(?:/(?P<rest>.*))?$"
)
_KINDS = {
    "manifests": "manifest",
    "blobs": "blob",
    "blobs/uploads": "upload",
    "tags/list": "tags",
    "referrers": "referrers",
}


def request_kind(path: str) -> tuple[str, str | None, bool]:
    """(kind, repository, by digest) of a request path: kind is ping, catalog, manifest, blob, upload,
    tags, referrers or other."""
    bare = urlsplit(path).path
    if bare.rstrip("/") == "/v2":
        return "ping", None, False
    if bare.startswith("/v2/_catalog"):
        return "catalog", None, False
    match = _REPO_PATH.match(bare)
    if match is None:
        return "other", None, False
    rest = match.group("rest") or ""
    return _KINDS[match.group("what")], match.group("name"), rest.startswith("sha256:")


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the proxy received it."""

    method: str
    path: str
    kind: str
    authorization: bool


@dataclass(frozen=True, slots=True)
class Injected:
    """One fault the proxy injected."""

    fault: str
    method: str
    path: str


@dataclass
class _Rule:
    fault: str
    method: str | None
    kind: str | None
    match: Callable[[str, str], bool] | None
    every: int
    limit: int | None
    count: int = 0
    fired: int = 0


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    head_length: str | None = None  # Content-Length of a HEAD answer


def _stable_path(path: str, kind: str) -> str:
    """The path without what differs between two runs: upload session ids and their query."""
    bare = urlsplit(path).path
    if kind == "upload":
        return bare[: bare.index("/blobs/uploads/") + len("/blobs/uploads/")] + "*"
    return path


def _applies(fault: str, method: str, kind: str, by_digest: bool) -> bool:
    if fault in BODY_FAULTS and method != "GET":
        return False
    if fault == "corrupt":
        return kind in ("manifest", "blob") and by_digest
    if fault in ("trickle", "truncate", "oversize"):
        return kind in ("manifest", "blob", "tags", "referrers", "catalog")
    if fault == "redirect":
        return method in ("GET", "HEAD")
    if fault == "linkloop":
        return method == "GET" and kind == "tags"
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    owner: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) or a connection we reset on purpose: not worth a traceback.
        self.owner.errors += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _dispatch(self) -> None:
        try:
            self.server.owner.handle(self)
        except OSError:  # the client went away (timed out, or we reset the connection)
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch


def _serve(owner: Any, host: str) -> _Server:
    server = _Server((host, 0), _Handler)
    server.owner = owner
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"faultproxy-{host}", daemon=True
    ).start()
    return server


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _forward(
    http: httpx.Client, upstream: str, handler: BaseHTTPRequestHandler, body: bytes, host: str
) -> _Answer:
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
    headers["Host"] = host  # the registry builds Location URLs from it: keep them pointing at the proxy
    kind, repo, _ = request_kind(handler.path)
    query = dict(parse_qsl(urlsplit(handler.path).query))
    if handler.command == "GET" and kind == "tags" and repo is not None and "n" in query:
        return _tags_page(http, upstream, headers, repo, query)
    answer = http.request(handler.command, upstream + handler.path, headers=headers, content=body)
    kept = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
    head_length = answer.headers.get("Content-Length") if handler.command == "HEAD" else None
    return _Answer(answer.status_code, kept, answer.content, head_length)


def _tags_page(
    http: httpx.Client, upstream: str, headers: dict[str, str], repo: str, query: dict[str, str]
) -> _Answer:
    """One page of ``n`` tags after ``last``, with a ``Link`` to the next: distribution 2.8 ignores
    both, so the proxy paginates for it, as distribution 3 and most registries do."""
    answer = http.get(f"{upstream}/v2/{repo}/tags/list", headers=headers)
    kept = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
    if answer.status_code != 200 or not query.get("n", "").isdigit() or int(query["n"]) < 1:
        return _Answer(answer.status_code, kept, answer.content)
    everything = sorted(answer.json().get("tags") or [])
    after = [t for t in everything if t > query["last"]] if "last" in query else everything
    page = after[: int(query["n"])]
    if len(page) < len(after):
        following = urlencode({"n": query["n"], "last": page[-1]})
        kept.append(("Link", f'</v2/{repo}/tags/list?{following}>; rel="next"'))
    return _Answer(200, kept, json.dumps({"name": repo, "tags": page}).encode())


def _send(handler: BaseHTTPRequestHandler, answer: _Answer, *, length: int | None = None) -> None:
    """Status line and headers (Content-Length: ``length``, else the body's), no body."""
    handler.send_response(answer.status)
    for key, value in answer.headers:
        if key.lower() not in ("date", "server"):
            handler.send_header(key, value)
    if answer.head_length is not None:
        handler.send_header("Content-Length", answer.head_length)
    else:
        handler.send_header("Content-Length", str(len(answer.body) if length is None else length))
    handler.end_headers()


def _reply(handler: BaseHTTPRequestHandler, answer: _Answer) -> None:
    _send(handler, answer)
    if handler.command != "HEAD" and answer.body:
        handler.wfile.write(answer.body)


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Abort the connection with a RST (SO_LINGER 0), not an orderly FIN."""
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


class OtherHost:
    """The target of injected cross-host redirects: records each request and whether it carried
    ``Authorization``, then forwards to the registry (Location/Link URLs still name the proxy)."""

    def __init__(self, upstream: str, proxy_host: str) -> None:
        self.upstream = upstream
        self.proxy_host = proxy_host
        self.http = httpx.Client(timeout=30)
        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self.errors = 0
        self.challenge = False  # answer 401 + a Basic challenge instead of forwarding
        try:
            self.server = _serve(self, "127.0.0.2")
            self.hostname = "127.0.0.2"
        except OSError:
            self.server = _serve(self, "127.0.0.1")
            self.hostname = "localhost"
        self.port = int(self.server.server_address[1])
        self.host = f"{self.hostname}:{self.port}"

    @property
    def authorized(self) -> list[Seen]:
        """Requests that arrived with an Authorization header (must stay empty)."""
        with self.lock:
            return [s for s in self.seen if s.authorization]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = _read_body(handler)
        kind, _, _ = request_kind(handler.path)
        with self.lock:
            self.seen.append(Seen(handler.command, handler.path, kind, "Authorization" in handler.headers))
        if self.challenge:
            payload = b'{"errors":[{"code":"UNAUTHORIZED","message":"other host wants credentials"}]}'
            _reply(
                handler,
                _Answer(
                    401,
                    [
                        ("Content-Type", "application/json"),
                        ("WWW-Authenticate", 'Basic realm="other-host"'),
                    ],
                    payload,
                ),
            )
            return
        _reply(handler, _forward(self.http, self.upstream, handler, body, self.proxy_host))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()


@dataclass
class FaultProxy:
    """See the module docstring. ``upstream`` is the registry's base URL (``http://127.0.0.1:PORT``)."""

    upstream: str
    seed: int | str = 0  # a str seed can salt the draws, e.g. "du:3", so two commands do not share faults
    rate: float = 0.0
    faults: Iterable[str] = ALL_FAULTS
    basic_auth: tuple[str, str] | None = None
    retry_after: str = "1"
    slow_seconds: float = 1.2
    trickle_interval: float = 0.4
    trickle_seconds: float = 3.0
    oversize_mode: str = "either"  # "declared", "chunked", or "either" (drawn per path)
    key: str = "order"  # what a random decision is keyed on: "order" or "path" (see the module docstring)
    seen: list[Seen] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    errors: int = 0

    def __post_init__(self) -> None:
        self.enabled: tuple[str, ...] = tuple(f for f in ALL_FAULTS if f in set(self.faults))
        unknown = set(self.faults) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.lock = threading.Lock()
        self.http = httpx.Client(timeout=30)
        self.rules: list[_Rule] = []
        self._occurrences: Counter[tuple[str, str]] = Counter()
        self._first_page: dict[str, str] = {}
        self.server = _serve(self, "127.0.0.1")
        self.port = int(self.server.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.other = OtherHost(self.upstream, self.host)

    # -- control

    def configure(
        self,
        *,
        seed: int | str | None = None,
        rate: float | None = None,
        faults: Iterable[str] = (),
        key: str | None = None,
    ) -> None:
        """Change the seed, rate, enabled faults or decision key, and start counting occurrences afresh."""
        with self.lock:
            if key is not None:
                self.key = key
            if seed is not None:
                self.seed = seed
            if rate is not None:
                self.rate = rate
            if faults:
                self.faults = tuple(faults)
                self.enabled = tuple(f for f in ALL_FAULTS if f in set(self.faults))
            self._occurrences.clear()

    def force(
        self,
        fault: str,
        *,
        method: str | None = None,
        kind: str | None = None,
        match: Callable[[str, str], bool] | None = None,
        every: int = 1,
        limit: int | None = None,
    ) -> None:
        """Deterministic mode: inject ``fault`` into every ``every``-th request matching ``method``,
        ``kind`` and ``match(method, path)`` (at most ``limit`` times); checked before the random draw."""
        if fault not in ALL_FAULTS:
            raise ValueError(f"unknown fault kind {fault!r}")
        with self.lock:
            self.rules.append(_Rule(fault, method, kind, match, every, limit))

    def clear(self) -> None:
        """Forget rules, records and occurrence counts; random faults off (rate 0)."""
        with self.lock:
            self.rules.clear()
            self.rate = 0.0
            self.seen.clear()
            self.injected.clear()
            self._occurrences.clear()
        with self.other.lock:
            self.other.seen.clear()
        self.other.challenge = False

    def injected_kinds(self) -> Counter[str]:
        with self.lock:
            return Counter(i.fault for i in self.injected)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.other.close()
        self.http.close()

    # -- per request

    def _decide(self, method: str, path: str, kind: str, by_digest: bool) -> str | None:
        with self.lock:
            for rule in self.rules:
                if rule.method not in (None, method) or rule.kind not in (None, kind):
                    continue
                if not _applies(rule.fault, method, kind, by_digest):
                    continue
                if rule.match is not None and not rule.match(method, path):
                    continue
                if rule.limit is not None and rule.fired >= rule.limit:
                    continue
                rule.count += 1
                if rule.count % rule.every == 0:
                    rule.fired += 1
                    return rule.fault
            if self.rate <= 0:
                return None
            where = kind if self.key == "order" else _stable_path(path, kind)
            self._occurrences[(method, where)] += 1
            n = self._occurrences[(method, where)]
            rng = random.Random(f"{self.seed}/{method}/{where}/{n}")
            if rng.random() >= self.rate:
                return None
            candidates = [f for f in self.enabled if _applies(f, method, kind, by_digest)]
            return rng.choice(candidates) if candidates else None

    def _record(self, fault: str, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.injected.append(Injected(fault, handler.command, handler.path))

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.basic_auth is None:
            return True
        user, password = self.basic_auth
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return handler.headers.get("Authorization") == expected

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        body = _read_body(handler)
        kind, repo, by_digest = request_kind(path)
        with self.lock:
            self.seen.append(Seen(method, path, kind, "Authorization" in handler.headers))
        if not self._authorized(handler):
            payload = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            headers = [("Content-Type", "application/json"), ("WWW-Authenticate", 'Basic realm="faultproxy"')]
            _reply(handler, _Answer(401, headers, payload))
            return
        if kind == "tags" and repo is not None and "last" not in dict(parse_qsl(urlsplit(path).query)):
            with self.lock:
                self._first_page[repo] = path
        fault = self._decide(method, path, kind, by_digest)
        if fault is None:
            _reply(handler, _forward(self.http, self.upstream, handler, body, self.host))
            return
        if fault == "http500":
            self._record(fault, handler)
            _reply(handler, _Answer(500, [("Content-Type", "text/plain")], b"injected internal error\n"))
        elif fault == "http502":
            self._record(fault, handler)
            _reply(handler, _Answer(502, [("Content-Type", "text/html")], b"<html>502 Bad Gateway</html>"))
        elif fault == "http503":
            self._record(fault, handler)
            payload = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected"}]}).encode()
            _reply(handler, _Answer(503, [("Content-Type", "application/json")], payload))
        elif fault == "ratelimit":
            self._record(fault, handler)
            payload = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "injected"}]}).encode()
            headers = [("Content-Type", "application/json"), ("Retry-After", self.retry_after)]
            _reply(handler, _Answer(429, headers, payload))
        elif fault == "redirect":
            self._record(fault, handler)
            location = f"http://{self.other.host}{path}"
            _reply(handler, _Answer(307, [("Location", location)], b""))
        else:
            answer = _forward(self.http, self.upstream, handler, body, self.host)
            self._inject(fault, handler, answer, repo)

    def _inject(self, fault: str, handler: BaseHTTPRequestHandler, answer: _Answer, repo: str | None) -> None:
        """Faults applied to the registry's real answer (it has acted on the request)."""
        ok_body = 200 <= answer.status < 300 and bool(answer.body) and handler.command == "GET"
        if fault in BODY_FAULTS and not ok_body:
            _reply(handler, answer)  # nothing to spoil: pass it on untouched, and do not count it
            return
        self._record(fault, handler)
        if fault == "reset":
            if handler.command != "HEAD" and answer.body:  # mid-body
                _send(handler, answer)
                handler.wfile.write(answer.body[: len(answer.body) // 2])
            _reset(handler)  # else before the status line: complete headers of an empty answer are an answer
        elif fault == "slow":
            time.sleep(self.slow_seconds)
            _reply(handler, answer)
        elif fault == "trickle":
            _send(handler, answer)
            deadline = time.monotonic() + self.trickle_seconds
            sent = 0
            while sent < len(answer.body) and time.monotonic() < deadline:
                handler.wfile.write(answer.body[sent : sent + 1])
                sent += 1
                time.sleep(self.trickle_interval)
            handler.wfile.write(answer.body[sent:])
        elif fault == "truncate":
            _send(handler, answer)
            handler.wfile.write(answer.body[: len(answer.body) // 2])
            handler.close_connection = True
        elif fault == "corrupt":
            rng = random.Random(f"{self.seed}/corrupt/{handler.path}")
            spoiled = bytearray(answer.body)
            spoiled[rng.randrange(len(spoiled))] ^= 0x01
            _reply(handler, _Answer(answer.status, answer.headers, bytes(spoiled)))
        elif fault == "oversize":
            declared = self.oversize_mode == "declared" or (
                self.oversize_mode == "either"
                and random.Random(f"{self.seed}/oversize/{handler.path}").random() < 0.5
            )
            if declared:
                _send(handler, answer, length=OVERSIZE_DECLARED)
                handler.wfile.write(answer.body)
                handler.close_connection = True
            else:
                self._send_chunked(handler, answer)
        elif fault == "linkloop":
            with self.lock:
                first = self._first_page.get(repo or "", handler.path)
            headers = [(k, v) for k, v in answer.headers if k.lower() != "link"]
            headers.append(("Link", f'<{first}>; rel="next"'))
            _reply(handler, _Answer(answer.status, headers, answer.body))
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(fault)

    @staticmethod
    def _send_chunked(handler: BaseHTTPRequestHandler, answer: _Answer) -> None:
        """The real body followed by blanks, chunked (no Content-Length): 33 MiB in all (valid JSON, if it
        were read to the end)."""
        handler.send_response(answer.status)
        for key, value in answer.headers:
            if key.lower() not in ("date", "server"):
                handler.send_header(key, value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        filler = b" " * 65536
        sent = 0
        first = answer.body
        while sent < OVERSIZE_SENT:
            chunk = first or filler
            first = b""
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        handler.wfile.write(b"0\r\n\r\n")
