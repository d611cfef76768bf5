"""A small malicious registry on loopback, for tests of what the client must refuse.

``EvilServer(script, upstream=…)`` listens on a free 127.0.0.1 port (HTTPS with ``tls=``). Every request is
recorded in ``seen`` (method, path, headers, body) and handed to ``script``; what it returns is the answer.
``None`` forwards the request to ``upstream`` (a real docker-registry), so a test scripts only the lie it is
about and the rest of the conversation is the real registry's. A ``Reply`` body may be an iterator: it is
then streamed without a Content-Length (closing the connection at its end), one chunk per item, so a test
can send a body that never ends or arrives a byte at a time.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["EvilServer", "Reply", "Request", "error_reply", "json_reply"]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "host"}
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    query: str
    headers: dict[str, str]  # names lowercased
    body: bytes


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""


Script = Callable[[Request], Reply | None]


def json_reply(status: int, text: str | bytes, **headers: str) -> Reply:
    body = text.encode() if isinstance(text, str) else text
    return Reply(status, {"Content-Type": "application/json", **headers}, body)


def error_reply(status: int, code: str, message: str) -> Reply:
    """The distribution error envelope, with ``message`` as given (hostile bytes included)."""
    import json

    return json_reply(status, json.dumps({"errors": [{"code": code, "message": message}]}))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: EvilServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # the client hung up on an endless body: that is the point


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _dispatch(self) -> None:
        try:
            self.server.owner.handle(self)
        except OSError:
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch


class EvilServer:
    def __init__(
        self, script: Script | None = None, *, upstream: str | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.script = script or (lambda request: None)
        self.upstream = upstream
        self.seen: list[Request] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> EvilServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def requests(self, method: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.seen if method is None or r.method == method]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        request = Request(
            handler.command, parts.path, parts.query, {k.lower(): v for k, v in handler.headers.items()}, body
        )
        with self._lock:
            self.seen.append(request)
        reply = self.script(request)
        if reply is None:
            reply = self._forward(handler, body)
        self._send(handler, reply)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> Reply:
        if self.upstream is None:
            return Reply(404, {"Content-Type": "text/plain"}, b"nothing here")
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = self.host  # the registry builds upload Locations from it
        answer = self._http.request(
            handler.command, self.upstream + handler.path, headers=headers, content=body
        )
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP | {"date", "server"}}
        if handler.command == "HEAD":
            kept["Content-Length"] = answer.headers.get("Content-Length", "0")
        return Reply(answer.status_code, kept, answer.content)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        handler.send_response(reply.status)
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        if isinstance(reply.body, bytes):
            if "content-length" not in {k.lower() for k in reply.headers}:
                handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(reply.body)
            return
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        chunks: Iterator[bytes] = iter(reply.body)
        for chunk in chunks:
            handler.wfile.write(chunk)
            handler.wfile.flush()
