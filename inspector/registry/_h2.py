"""HTTP/2 for a client that fans out over threads: the connections live on one event loop, the threads wait.

httpcore's synchronous HTTP/2 cannot be shared by threads, for two reasons measured here:

* its ``HTTP2Connection`` changes the ``h2`` state machine outside its locks, so two threads can take one
  stream id or interleave their HPACK-encoded HEADERS (pydantic/httpx2#1153, open). Through the bench's HTTP/2
  proxy: HEADERS blocks with a duplicate ``:path`` and a ``KeyError`` inside httpcore (exit 70);
* with that serialised (tried: a subclass that locks every ``h2`` call), one thread still blocks in
  ``SSL_read`` while another calls ``SSL_write`` on the same TLS connection. OpenSSL forbids that for one
  ``SSL`` object (openssl/openssl#20446) and CPython's ``ssl`` releases the GIL around both: the connection was
  reset ("Server disconnected") in about half the runs of 1,000 HEADs at 64 threads.

On an asyncio event loop both go away: one thread drives every connection, and asyncio's TLS (a memory BIO)
reads and writes from that thread only. That is httpx's ``AsyncClient``, the path httpcore's HTTP/2 is built
and tested for. ``LoopTransport`` puts it under the synchronous ``httpx.Client``: auth, redirects, event hooks,
retries and body caps stay where they are; each request is handed to the loop, and its answer comes back
with its body when that is small and declared (``PREFETCH``), else with a body read chunk by chunk as the
caller reads it. The loop thread and its client start at the first request (and asyncio is imported then: a
run that never makes an HTTPS request does not pay for it).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from inspector.registry._http import header_int

if TYPE_CHECKING:
    import asyncio

__all__ = ["PREFETCH", "LoopTransport"]

PREFETCH = 64 * 1024  # bytes: a declared body up to this size is read on the loop in one trip

T = TypeVar("T")


class LoopTransport(httpx.BaseTransport):
    """Send requests through an ``httpx.AsyncClient`` (HTTP/2 by ALPN, else HTTP/1.1) on a loop thread.

    ``verify`` is called once, at the first request, for the TLS context (so the CA bundle is loaded only by a
    run that makes a TLS connection). Proxies come from the environment, as for ``httpx.Client``.
    """

    def __init__(self, *, verify: Callable[[], Any], limits: httpx.Limits, timeout: httpx.Timeout) -> None:
        self._verify = verify
        self._limits = limits
        self._timeout = timeout
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]:
        import asyncio

        with self._start_lock:
            if self._loop is None or self._client is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="cacheinspect-http", daemon=True)
                thread.start()
                self._client = httpx.AsyncClient(
                    http1=True,
                    http2=True,
                    verify=self._verify(),
                    limits=self._limits,
                    timeout=self._timeout,
                    follow_redirects=False,  # the synchronous client above applies the redirect policy
                )
                self._loop, self._thread = loop, thread
            return self._loop, self._client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        loop, client = self._started()
        stream = request.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            assert isinstance(stream, httpx.SyncByteStream)
            stream = _AsyncBody(iter(stream), loop)  # an upload fed by an iterator: read it off the loop
        sent = httpx.Request(
            request.method, request.url, headers=request.headers, stream=stream, extensions=request.extensions
        )
        answer, body = _run(loop, _exchange(client, sent))
        return httpx.Response(
            answer.status_code,
            headers=answer.headers,
            stream=_SyncBody(answer, loop) if body is None else httpx.ByteStream(body),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        with self._start_lock:
            loop, client, thread = self._loop, self._client, self._thread
            self._loop = self._client = self._thread = None
        if loop is None or client is None or thread is None:
            return
        try:
            _run(loop, client.aclose())  # a request still in flight fails at once (tested)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()


class _SyncBody(httpx.SyncByteStream):
    """An answer's body read on the loop, handed to the calling thread chunk by chunk; closed on the loop as
    soon as it ends (one trip to the loop per chunk, plus one for the end)."""

    def __init__(self, answer: httpx.Response, loop: asyncio.AbstractEventLoop) -> None:
        self._answer = answer
        self._loop = loop
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._answer.aiter_raw()
        while (chunk := _run(self._loop, _next(self._answer, chunks))) is not None:
            yield chunk
        self._closed = True

    def close(self) -> None:
        # Not ended (a body cap, an error): close it on the loop, unless the transport closed first.
        if not self._closed and self._loop.is_running():
            self._closed = True
            _run(self._loop, self._answer.aclose())


class _AsyncBody(httpx.AsyncByteStream):
    """A request body from a synchronous iterator, each chunk read in a worker thread (it may block: copy's
    upload reads a download, whose chunks come from this same loop)."""

    def __init__(self, chunks: Iterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop

    async def __aiter__(self) -> AsyncIterator[bytes]:
        done = object()
        while True:
            chunk = await self._loop.run_in_executor(None, next, self._chunks, done)
            if chunk is done:
                return
            assert isinstance(chunk, bytes)
            yield chunk


async def _exchange(client: httpx.AsyncClient, request: httpx.Request) -> tuple[httpx.Response, bytes | None]:
    """Send ``request``. A body known to be small (``Content-Length`` at most ``PREFETCH``: manifests, configs,
    token and error answers) is read here whole, as it comes (raw: the caller decodes), and the answer closed:
    one trip to the loop instead of three. It must arrive within the read timeout, as the caller would require
    of a body (``read_capped``'s deadline). Otherwise ``None``: the caller reads the body chunk by chunk."""
    import asyncio

    # Routed as httpx routes: the environment's proxy (HTTPS_PROXY, NO_PROXY), or none.
    answer = await client.send(request, stream=True)
    length = header_int(answer.headers.get("content-length"))
    if request.method == "HEAD" or length == 0:
        await answer.aclose()
        return answer, b""
    if length is None or length > PREFETCH:
        return answer, None
    try:
        async with asyncio.timeout(request.extensions.get("timeout", {}).get("read")):
            body = b"".join([chunk async for chunk in answer.aiter_raw()])
    except TimeoutError:
        raise httpx.ReadTimeout("the body did not arrive within the timeout", request=request) from None
    finally:
        await answer.aclose()
    return answer, body


def _run(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on ``loop`` (another thread's) and wait for its result; a loop that stops meanwhile
    (the client closed) is an error here, never a thread that waits for ever."""
    import asyncio

    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    while True:
        try:
            return future.result(timeout=1.0)
        except TimeoutError:
            if not loop.is_running():
                future.cancel()
                raise RuntimeError("the HTTP client was closed while a request was in flight") from None


async def _next(answer: httpx.Response, chunks: AsyncIterator[bytes]) -> bytes | None:
    """The next chunk of ``answer``'s body, or None once it ended (and then ``answer`` is closed)."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        await answer.aclose()
        return None
