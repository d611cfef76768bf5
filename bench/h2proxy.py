"""A latency proxy that speaks HTTP/2 over TLS to its clients: the latency applies per stream.

``LatencyProxy`` (bench/proxy.py) charges a round trip per request on HTTP/1.1, where a
connection carries one request at a time. Cloud registries speak HTTP/2 over TLS, where one
connection carries many concurrent streams; this proxy lets a client do that:

* TLS on 127.0.0.1 with a test CA's certificate, ALPN ``h2`` first and ``http/1.1`` as the
  fallback a real registry offers too (clients without HTTP/2 get keep-alive HTTP/1.1);
* on HTTP/2 it advertises ``SETTINGS_MAX_CONCURRENT_STREAMS`` = ``max_streams`` (default 100,
  the value RFC 9113 §6.5.2 recommends as the least, and the ``h2`` package's default; Go's
  ``net/http`` server, so distribution itself, advertises 250), and each stream waits
  ``latency`` before its answer, independently of the others;
* answers are sent within the client's flow-control windows (a 365 KB config does not fit the
  initial 65,535-byte window: the rest waits for the client's ``WINDOW_UPDATE``);
* requests go on to the TLS registry over a keep-alive pool of HTTP/1.1 connections, written
  here on asyncio streams: httpx's async pool, tried first, spent more CPU than everything else
  in the proxy once 100 requests queued on it (``_assign_requests_to_connections``);
* token emulation and counters are ``ProxyCore``'s, as in the HTTP/1.1 proxy, plus the number
  of connections per protocol.

The asyncio loop runs in a thread of the calling process; the ``h2`` package is pure Python,
so this proxy's CPU is part of what a run costs (the suite reports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from .proxy import HOP_BY_HOP, Answer, ProxyCore
from .tls import TlsFiles

__all__ = ["DEFAULT_STREAMS", "H2LatencyProxy"]

DEFAULT_STREAMS = 100
_READ_SIZE = 65536


@dataclass
class _Stream:
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)


class H2LatencyProxy(ProxyCore):
    """HTTP/2 (or HTTP/1.1) over TLS on 127.0.0.1 in front of the TLS registry ``upstream`` (``host:port``)."""

    def __init__(
        self,
        upstream: str,
        tls: TlsFiles,
        *,
        latency: float = 0.020,
        auth: bool = True,
        max_streams: int = DEFAULT_STREAMS,
        upstream_connections: int = DEFAULT_STREAMS,
        connect_latency: float = 0.0,
    ) -> None:
        super().__init__(latency=latency, auth=auth, connect_latency=connect_latency, scheme="https")
        self.upstream = upstream
        self.max_streams = max_streams
        self._server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_context.load_cert_chain(str(tls.cert), str(tls.key))
        self._server_context.set_alpn_protocols(["h2", "http/1.1"])
        self._upstream_context = tls.client_context()
        self._upstream_connections = upstream_connections
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, name="h2-latency-proxy", daemon=True)
        self._thread.start()
        self._started.wait(timeout=30)
        if self._failure is not None:
            raise self._failure
        if not self._started.is_set():
            raise RuntimeError("the HTTP/2 proxy did not start")

    # -- life cycle

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._failure = exc
            self._loop.close()
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self._upstream = _Upstream(self.upstream, self._upstream_context, self._upstream_connections)
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._server_context, backlog=256
        )
        self.host = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _stop(self) -> None:
        """Stop listening, end every task, and close every connection (TLS close_notify included)."""
        self._server.close()
        clients = list(self._writers)  # a cancelled connection task closes its writer without waiting
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writers = [*clients, *self._upstream.close()]
        for writer in writers:
            writer.close()
        closing = asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing, timeout=5)
        await self._server.wait_closed()

    def close(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> H2LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        protocol = (tls.selected_alpn_protocol() if tls is not None else None) or "http/1.1"
        self.count_connection(protocol)
        self._writers.add(writer)
        try:
            if self.connect_latency:
                await asyncio.sleep(self.connect_latency)
            if protocol == "h2":
                await _H2Session(self, reader, writer).run()
            else:
                await self._serve_http1(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def answer(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """Count the request, answer it (token emulation or the registry), wait the latency.

        The request is out of flight once this returns, before its answer is written (as in ``LatencyProxy``).
        """
        self.begin(method, path)
        status = 0
        try:
            authorization = next((v for k, v in headers if k.lower() == "authorization"), "")
            local = self.local_answer(method, path, authorization)
            try:
                result = local if local is not None else await self._forward(method, path, headers, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                result = (502, [("content-length", "0")], b"")  # the registry did not answer (sensibly)
            await asyncio.sleep(self.latency)
            status = result[0]
            return result
        finally:
            self.end(status)

    async def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
        sent = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and not k.startswith(":")]
        sent.append(("Host", self.host))  # the registry builds Location/Link URLs from it
        status, answer, payload = await self._upstream.request(method, path, sent, body)
        out = [(k, v) for k, v in answer if k.lower() not in HOP_BY_HOP]
        length = next((v for k, v in answer if k.lower() == "content-length"), None)
        out.append(
            ("content-length", length if method == "HEAD" and length is not None else str(len(payload)))
        )
        return status, out, payload

    # -- HTTP/1.1 (ALPN fallback): keep-alive, one request at a time per connection

    async def _serve_http1(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.count_unparsed()
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            method, path, version = parts
            headers = [
                (name.strip(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            ]
            fields = {k.lower(): v for k, v in headers}
            if fields.get("transfer-encoding", "").lower() == "chunked":
                body = await _read_chunked(reader)
            else:
                body = await reader.readexactly(int(fields.get("content-length") or 0))
            status, out, payload = await self.answer(method, path, headers, body)
            reason = _reason(status)
            lines_out = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in out]
            writer.write(("\r\n".join(lines_out) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD" and payload:
                writer.write(payload)
            await writer.drain()
            if version == "HTTP/1.0" or fields.get("connection", "").lower() == "close":
                return


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readline()


class _Upstream:
    """A keep-alive pool of HTTP/1.1 connections over TLS to the registry, at most ``limit`` in use."""

    def __init__(self, host: str, context: ssl.SSLContext, limit: int) -> None:
        name, _, port = host.rpartition(":")
        self.address = (name, int(port))
        self.context = context
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.open: set[asyncio.StreamWriter] = set()
        self.slots = asyncio.Semaphore(limit)

    def close(self) -> list[asyncio.StreamWriter]:
        """Forget every connection, idle or not; the caller closes the writers returned."""
        writers = list(self.open)
        self.idle.clear()
        self.open.clear()
        return writers

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self.open.discard(writer)
        writer.close()

    async def request(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
        async with self.slots:
            while True:
                reused = bool(self.idle)
                if reused:
                    connection = self.idle.pop()
                else:
                    connection = await asyncio.open_connection(*self.address, ssl=self.context)
                    self.open.add(connection[1])
                try:
                    answer, keep = await _exchange(connection, method, path, headers, body)
                except (OSError, asyncio.IncompleteReadError):
                    self._drop(connection[1])
                    if reused:  # the registry closed an idle connection: once more on a fresh one
                        continue
                    raise
                if keep:
                    self.idle.append(connection)
                else:
                    self._drop(connection[1])
                return answer


async def _exchange(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> tuple[Answer, bool]:
    """One HTTP/1.1 request and its answer; and whether the connection may be used again."""
    reader, writer = connection
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    if body or method in ("PUT", "POST", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    status_line, *header_lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    answer = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in header_lines if line)]
    fields = {k.lower(): v for k, v in answer}
    keep = fields.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or status < 200:
        payload = b""
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        payload = await _read_chunked(reader)
    elif "content-length" in fields:
        payload = await reader.readexactly(int(fields["content-length"]))
    else:  # delimited by the end of the connection
        payload, keep = await reader.read(), False
    return (status, answer, payload), keep


class _H2Session:
    """One HTTP/2 connection: each stream is answered by its own task, after its own latency."""

    def __init__(
        self, proxy: H2LatencyProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: proxy.max_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self.streams: dict[int, _Stream] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.window_waiters: dict[int, asyncio.Event] = {}

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self) -> None:
        self.conn.initiate_connection()
        self.flush()
        handlers: dict[type, Callable[[h2.events.Event], None]] = {
            h2.events.RequestReceived: self._on_request,
            h2.events.DataReceived: self._on_data,
            h2.events.StreamEnded: self._on_end,
            h2.events.WindowUpdated: self._on_window,
            h2.events.RemoteSettingsChanged: self._on_window,  # a new initial window changes every stream's
            h2.events.StreamReset: self._on_reset,
        }
        try:
            while True:
                data = await self.reader.read(_READ_SIZE)
                if not data:
                    return
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    return
                for event in events:
                    if isinstance(event, h2.events.ConnectionTerminated):
                        return
                    handler = handlers.get(type(event))
                    if handler is not None:
                        handler(event)
                self.flush()
                await self.writer.drain()
        finally:
            for task in self.tasks.values():
                task.cancel()

    def _on_request(self, event: h2.events.Event) -> None:
        assert isinstance(event, h2.events.RequestReceived) and event.stream_id is not None
        self.streams[event.stream_id] = _Stream([(str(k), str(v)) for k, v in event.headers or []])

    def _on_data(self, event: h2.events.Event) -> None:
        assert isinstance(event, h2.events.DataReceived) and event.stream_id is not None
        stream = self.streams.get(event.stream_id)
        if stream is not None and event.data:
            stream.body += event.data
        self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)

    def _on_end(self, event: h2.events.Event) -> None:
        assert isinstance(event, h2.events.StreamEnded) and event.stream_id is not None
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            sid = event.stream_id
            task = asyncio.get_running_loop().create_task(self._respond(sid, stream))
            self.tasks[sid] = task
            task.add_done_callback(lambda _: self.tasks.pop(sid, None))

    def _on_window(self, event: h2.events.Event) -> None:
        """A window grew: wake the streams waiting on it (all of them for the connection's, or new SETTINGS)."""
        stream_id = getattr(event, "stream_id", 0) or 0
        for sid in list(self.window_waiters) if stream_id == 0 else [stream_id]:
            waiter = self.window_waiters.pop(sid, None)
            if waiter is not None:
                waiter.set()

    def _on_reset(self, event: h2.events.Event) -> None:
        assert isinstance(event, h2.events.StreamReset) and event.stream_id is not None
        self.streams.pop(event.stream_id, None)
        task = self.tasks.pop(event.stream_id, None)
        if task is not None:
            task.cancel()
        waiter = self.window_waiters.pop(event.stream_id, None)
        if waiter is not None:
            waiter.set()

    async def _respond(self, stream_id: int, stream: _Stream) -> None:
        pseudo = {k: v for k, v in stream.headers if k.startswith(":")}
        method, path = pseudo.get(":method", "GET"), pseudo.get(":path", "/")
        headers = [(k, v) for k, v in stream.headers if not k.startswith(":")]
        status, out, payload = await self.proxy.answer(method, path, headers, bytes(stream.body))
        sent = [(":status", str(status))] + [(k.lower(), v) for k, v in out if k.lower() not in _H2_FORBIDDEN]
        try:
            body = b"" if method == "HEAD" else payload
            self.conn.send_headers(stream_id, sent, end_stream=not body)
            self.flush()
            await self._send_body(stream_id, body)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return

    async def _send_body(self, stream_id: int, body: bytes) -> None:
        """Send ``body`` on the stream within the flow-control windows, waiting for WINDOW_UPDATEs."""
        view = memoryview(body)
        offset = 0
        while offset < len(body):
            window = self.conn.local_flow_control_window(stream_id)  # min(stream, connection) window
            if window <= 0:
                waiter = self.window_waiters.setdefault(stream_id, asyncio.Event())
                await waiter.wait()
                continue
            size = min(window, self.conn.max_outbound_frame_size, len(body) - offset)
            self.conn.send_data(
                stream_id, bytes(view[offset : offset + size]), end_stream=offset + size == len(body)
            )
            offset += size
            self.flush()
            await self.writer.drain()


_H2_FORBIDDEN = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
