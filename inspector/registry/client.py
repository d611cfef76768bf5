"""A small, strict client for the OCI distribution API.

One ``httpx.Client`` (keep-alive, bounded pool; HTTP/2 where a TLS registry
negotiates it, so one connection carries many streams: see ``_h2``) serves every request;
fan-out uses a thread pool over it, and a gate (``Concurrency``) in front of
every request holds the number in flight at a fixed or adaptive limit. Every
answer is judged in one place (``_fail``); retries happen only for transient
failures (connection errors, 429 and 5xx) on idempotent requests (a 429 on any
request: the registry did not act on it), with capped jittered backoff that
honours ``Retry-After``. Bodies are capped and content is verified against the
digest it was fetched by (a mismatch is fetched again, as boundedly, before it
is refused).
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from inspector._version import __version__
from inspector.errors import (
    AuthError,
    DigestMismatch,
    InvalidContent,
    RegistryError,
    TransportError,
    UsageError,
    registry_error_from_response,
)
from inspector.oci import mediatypes
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import Descriptor, ManifestDocument, parse_manifest
from inspector.oci.reference import DOCKER_HUB, DOCKER_HUB_API, Reference, Repository, is_loopback_host
from inspector.registry._http import (
    IDEMPOTENT,
    DeferredTrust,
    RetryPolicy,
    connection_refused,
    describe_transport_error,
    header_int,
    loggable,
    next_link,
    origin,
    parse_tag_page,
    read_capped,
    retry_after,
    send_following_redirects,
)
from inspector.registry.auth import RegistryAuth
from inspector.registry.concurrency import HTTP1_CEILING, Concurrency
from inspector.registry.credentials import Credentials

__all__ = [
    "MANIFEST_LIMIT",
    "MAX_TAGS",
    "TAG_PAGE_LIMIT",
    "TOKEN_LIMIT",
    "BlobStat",
    "ClientOptions",
    "RegistryClient",
    "RetryPolicy",
    "next_link",
]

log = logging.getLogger(__name__)

MANIFEST_LIMIT = 4 * 1024 * 1024
DEFAULT_DEADLINE = 50.0
TAG_PAGE_LIMIT = 32 * 1024 * 1024
MAX_TAGS = 1_000_000  # names one tag listing may hold: a registry that pages without end stops here
TOKEN_LIMIT = 1024 * 1024  # a token answer; real ones are a few KiB (a JWT and its expiry)
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_DELETED = (200, 202, 204)  # DELETE answers: 202 per the spec; some registries say 200 or 204
_MAX_PAGES = 100_000

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Transport settings. Plain HTTP is used for loopback hosts (unless ``ca_file`` asks for TLS), or everywhere
    with ``plain_http``."""

    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    timeout: float = 30.0  # seconds to connect, for the answer's headers, and for its whole body
    #: Seconds one request may take with all its retries: a registry that accepts connections and never
    #: answers fails within a minute, not after retries x timeout (2 m 33 s with the defaults).
    deadline: float = DEFAULT_DEADLINE
    concurrency: int = 8  # requests in flight: fixed, or where the adaptive limit starts
    #: Let the limit move between 1 and a ceiling (``inspector.registry.concurrency``); else fixed (``-j N``).
    adaptive: bool = False
    #: HTTP/1.1 only; by default HTTP/2 where a TLS registry offers it (ALPN), never over plain HTTP (no h2c).
    http1: bool = False
    retries: int = 4
    backoff_base: float = 0.25
    backoff_cap: float = 8.0
    max_retry_after: float = 60.0
    user_agent: str = f"cacheinspect/{__version__}"


@dataclass(frozen=True, slots=True)
class BlobStat:
    """What a blob HEAD said: whether it exists, and the size and digest the registry reports."""

    digest: Digest
    exists: bool
    size: int | None = None
    reported_digest: str | None = None


class RegistryClient:
    """Distribution API client. Use as a context manager; safe to share between threads."""

    def __init__(
        self,
        options: ClientOptions | None = None,
        *,
        credentials: Callable[[str], Credentials | None] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options or ClientOptions()
        if self.options.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        self._sleep = sleep
        self._retry_listeners: list[Callable[[float], None]] = []
        self._retry_policy = RetryPolicy(
            retries=self.options.retries,
            base=self.options.backoff_base,
            cap=self.options.backoff_cap,
            max_retry_after=self.options.max_retry_after,
        )
        self._auth = RegistryAuth(credentials or (lambda host: None), send=self._send_without_auth)
        self._trust: DeferredTrust | None = None
        verify: ssl.SSLContext | bool
        if self.options.insecure:
            verify = False
        elif self.options.ca_file:
            try:
                verify = ssl.create_default_context(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"cannot load CA file {self.options.ca_file}: {exc}") from None
        else:
            self._trust = DeferredTrust()  # the CA bundle is loaded at the first TLS handshake, if any
            verify = cast(ssl.SSLContext, self._trust)
        self.concurrency = Concurrency(self.options.concurrency, adaptive=self.options.adaptive)
        # HTTP/1.1 needs a connection per request in flight (copy: a blob's GET stream and its upload, two);
        # HTTP/2 multiplexes them on one per origin.
        pool = max(self.options.concurrency, 2 * HTTP1_CEILING if self.options.adaptive else 1)
        timeout = httpx.Timeout(self.options.timeout, connect=min(self.options.timeout, 10.0))
        limits = httpx.Limits(max_connections=pool + 2, max_keepalive_connections=pool + 2)
        mounts: dict[str, httpx.BaseTransport] = {}
        if transport is None and not self.options.http1:
            # HTTPS goes through an event loop, where HTTP/2 is safe to share between threads (see _h2).
            from inspector.registry._h2 import LoopTransport

            trust = self._trust
            mounts["https://"] = LoopTransport(
                verify=(lambda: trust.context()) if trust is not None else (lambda: verify),
                limits=limits,
                timeout=timeout,
            )
        self._http = httpx.Client(
            auth=self._auth,
            verify=verify,
            timeout=timeout,
            limits=limits,
            follow_redirects=False,  # send_following_redirects applies the one redirect policy
            headers={"User-Agent": self.options.user_agent},
            transport=transport,
            mounts=mounts,
            event_hooks={"request": [self._check_scheme, self._count]},
        )
        self._counter_lock = threading.Lock()
        self.request_count = 0

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.concurrency.adaptive and self.concurrency.answers:  # -v: where the limit went
            log.info("%s", self.concurrency.summary())
        self._http.close()

    @property
    def tls_context_loaded(self) -> bool:
        """Whether the default CA bundle was loaded (only a TLS handshake loads it)."""
        return self._trust is None or self._trust.built

    # -- plumbing ---------------------------------------------------------------------------------

    def scheme_for(self, host: str) -> str:
        """HTTPS unless ``plain_http``; loopback hosts default to HTTP, except when a CA file asks for TLS."""
        if self.options.plain_http:
            return "http"
        if is_loopback_host(host) and not self.options.ca_file:
            return "http"
        return "https"

    def url(self, registry: str, path: str, query: dict[str, str] | None = None) -> str:
        """The absolute URL of an API ``path`` (``/v2/…``) on ``registry``, with this client's scheme."""
        host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        url = f"{self.scheme_for(host)}://{host}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    def _check_scheme(self, request: httpx.Request) -> None:
        """Refuse to follow a redirect from HTTPS down to plain HTTP on a non-loopback host."""
        if (
            request.url.scheme == "http"
            and not self.options.plain_http
            and not is_loopback_host(request.url.netloc.decode())
        ):
            raise UsageError(f"refusing plain HTTP to {request.url.host} (use --plain-http to allow it)")

    def _send_without_auth(self, request: httpx.Request) -> httpx.Response:
        """A token request (or probe's anonymous ping): under the redirect policy, body capped at
        ``TOKEN_LIMIT`` and whole within the timeout, returned already read."""
        response = send_following_redirects(self._http, request, authenticate=False)
        deadline = time.monotonic() + self.options.timeout
        what = f"answer of {request.url.host}"
        try:
            body = read_capped(response, TOKEN_LIMIT, what, deadline=deadline)
        except InvalidContent as exc:
            raise AuthError(exc.message) from None
        finally:
            response.close()
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=response.request
        )

    def send_anonymous(self, method: str, url: str, *, what: str) -> httpx.Response:
        """One request without credentials (no Authorization, no challenge answered) under the redirect
        policy, its body read and capped at ``TOKEN_LIMIT``; not retried. What the registry says to anyone
        (``GET /v2/``'s challenge). A network failure is ``TransportError``."""
        try:
            return self._send_without_auth(self._http.build_request(method, url))
        except httpx.TransportError as exc:
            raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from None

    @contextmanager
    def on_retry(self, listener: Callable[[float], None]) -> Iterator[None]:
        """Call ``listener(seconds)`` before each wait for a retry (429/5xx, network, a digest re-fetch), for
        as long as the block runs: how a caller counts the retries inside its own requests."""
        self._retry_listeners.append(listener)
        try:
            yield
        finally:
            self._retry_listeners.remove(listener)

    def credentials_for(self, host: str) -> Credentials | None:
        """The credentials this client sends to ``host`` (the Artifact Registry API takes the registry's)."""
        return self._auth.credentials_for(host)

    def granted_actions(self, repo: Repository) -> tuple[str, ...] | None:
        """Actions on ``repo`` the Bearer tokens held so far grant (``RegistryAuth.granted_actions``)."""
        return self._auth.granted_actions(repo.path)

    def _wait(self, seconds: float) -> None:
        """Wait before a retry, telling the ``on_retry`` listeners first."""
        for listener in list(self._retry_listeners):
            listener(seconds)
        self._sleep(seconds)

    def _count(self, request: httpx.Request) -> None:
        """Count every request on the wire: retries, redirects, auth challenges' repeats, token fetches."""
        with self._counter_lock:
            self.request_count += 1

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``attempt`` (0-based), or None to give up."""
        after = retry_after(response.headers.get("Retry-After")) if response is not None else None
        return self._retry_policy.delay(attempt, after)

    def send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: dict[str, str] | None = None,
        limit: int = 0,
        ok: Iterable[int] = (200,),
        content: bytes | Iterable[bytes] | None = None,
        idempotent: bool | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """One API request with this client's auth, redirect policy, retries, deadline and caps; returns the
        response (closed) and up to ``limit`` bytes of its body (drained and dropped when ``limit`` is 0).

        The low-level path every method here uses, public for requests the client has no method for (the
        probe's upload variants, catalog, referrers). Non-``ok`` statuses become typed errors. A body longer than ``limit``
        raises ``InvalidContent`` without reading the rest. Only idempotent
        requests are retried: GET and HEAD, or a caller that says a repeat is
        harmless (``idempotent=True``); a 429 is retried for every request, since
        a rate-limited request was not acted on. A streamed body (an iterable) is
        never sent twice: it is consumed by the first attempt.
        """
        ok_statuses = frozenset(ok)
        replayable = content is None or isinstance(content, bytes)
        retryable = replayable and (method in IDEMPOTENT if idempotent is None else idempotent)
        attempt = 0
        clock = _Attempts(self.options.deadline)
        while True:
            clock.attempts += 1
            request = self._http.build_request(
                method, url, headers=headers, content=content, timeout=clock.timeout(self.options.timeout)
            )
            try:
                with self.concurrency.slot():  # released before any wait for a retry
                    started = time.monotonic()
                    response = self._answered(request, started)
                    # httpx's read timeout is per read: a body trickling in a byte at a time would never hit it.
                    deadline = time.monotonic() + min(self.options.timeout, clock.remaining())
                    try:
                        if response.status_code in ok_statuses:
                            if limit:
                                body = read_capped(response, limit, what, deadline=deadline)
                            else:
                                # Drain the (empty or tiny) body: a stream closed unread loses its keep-alive
                                # connection, which turned every blob HEAD into a new TCP (and TLS) handshake.
                                read_capped(response, 64 * 1024, what, truncate=True, deadline=deadline)
                                body = b""
                            log.debug(
                                "%s %s -> %s in %.0f ms (%s)",
                                method,
                                loggable(url),
                                response.status_code,
                                (time.monotonic() - started) * 1000,
                                response.http_version,
                            )
                            return response, body
                        error_body = read_capped(response, 64 * 1024, what, truncate=True, deadline=deadline)
                    finally:
                        response.close()
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException):
                    self.concurrency.timed_out()
                refused = connection_refused(exc)
                said = f"{method} {loggable(url)} failed ({type(exc).__name__})"
                delay = self._retry_delay(clock, attempt, None, retryable and not refused, said)
                if delay is None:
                    tried = "" if refused else f" ({clock.summary()})"
                    raise TransportError(f"{what}: {describe_transport_error(exc, url)}{tried}") from None
                self._wait(delay)
                attempt += 1
                continue
            log.debug("%s %s -> %s", method, loggable(url), response.status_code)
            if response.status_code in _RETRY_STATUS and (
                retryable or (replayable and response.status_code == 429)
            ):
                said = f"{method} {loggable(url)} answered {response.status_code}"
                delay = self._retry_delay(clock, attempt, response, True, said)
                if delay is not None:
                    self._wait(delay)
                    attempt += 1
                    continue
            raise self._fail(response, error_body, method, url, what)

    def _answered(self, request: httpx.Request, started: float) -> httpx.Response:
        """``send_following_redirects``, telling the concurrency controller how long the answer took (its
        headers: time in a queue, the server's or a stream's, shows there) and over which protocol."""
        response = send_following_redirects(self._http, request)
        self.concurrency.learn(request.url.netloc.decode("ascii", "replace"), response.http_version)
        self.concurrency.answered(time.monotonic() - started, response.status_code)
        return response

    def _login_hint(self, url: str) -> str:
        """For a 401: whose credentials were refused, or that none were found (two different fixes)."""
        from inspector.registry.credentials import SOURCES_LOOKED_AT

        host = urlsplit(url).netloc
        source = self._auth.credentials_source(host)
        if source is None:
            return f"no credentials found for {host} (looked at {SOURCES_LOOKED_AT})"
        return f"credentials from {source}, refused by {host}: check or renew them"

    def _retry_delay(
        self,
        clock: _Attempts,
        attempt: int,
        response: httpx.Response | None,
        retryable: bool,
        said: str,
    ) -> float | None:
        """The wait before the next attempt, or None to give up (not retryable, retries spent, deadline near).

        Each retry is one line under ``-v``: what failed, which retry follows, and when.
        """
        delay = self._backoff(attempt, response) if retryable else None
        if delay is None:
            log.info("%s; not retried", said)
            return None
        if not clock.allows(delay):
            log.info("%s; not retried: --deadline %g s is (nearly) reached", said, clock.deadline)
            return None
        log.info("%s; retry %d of %d in %.1f s", said, attempt + 1, self.options.retries, delay)
        return delay

    def _fail(self, response: httpx.Response, body: bytes, method: str, url: str, what: str) -> RegistryError:
        error = registry_error_from_response(
            status=response.status_code,
            method=method,
            url=loggable(url),
            body=body,
            what=what,
            retry_after=retry_after(response.headers.get("Retry-After")),
        )
        if response.status_code == 401 and not error.hint:
            error.hint = self._login_hint(url)
        return error

    def map_bounded(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_done: Callable[[int, int], None] | None = None,
        *,
        at_most: int | None = None,
    ) -> list[R]:
        """Apply ``fn`` to every item, its requests held at the concurrency limit (fixed: at most ``concurrency``
        items at once; adaptive: threads up to the ceiling, the gate in front of each request decides);
        results keep input order. ``at_most``: never more items at once than that, whatever the adaptive
        limit (gc's checks count their round trips at a known number in flight)."""
        if not items:
            return []
        results: list[R] = []
        total = len(items)
        workers = (
            self.concurrency.workers if at_most is None else max(1, min(at_most, self.concurrency.workers))
        )
        if workers == 1 or total == 1:
            for done, item in enumerate(items, 1):
                results.append(fn(item))
                if on_done:
                    on_done(done, total)
            return results
        with ThreadPoolExecutor(max_workers=min(workers, total)) as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                for done, future in enumerate(futures, 1):
                    results.append(future.result())
                    if on_done:
                        on_done(done, total)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results

    # -- API ---------------------------------------------------------------------------------------

    def ping(self, registry: str) -> httpx.Headers:
        """``GET /v2/``; returns the response headers (authenticated if the registry asks)."""
        response, _ = self.send("GET", self.url(registry, "/v2/"), what=f"ping {registry}")
        return response.headers

    def head_manifest(self, ref: Reference) -> Descriptor:
        """Resolve a reference to a descriptor without fetching the body."""
        repo = ref.repository
        response, _ = self.send(
            "HEAD",
            self.url(repo.registry, f"/v2/{repo.path}/manifests/{ref.identifier}"),
            what=f"resolve {ref}",
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        reported = response.headers.get("Docker-Content-Digest")
        size = header_int(response.headers.get("Content-Length"))
        if not reported or size is None:
            document = self.get_manifest(ref)
            return document.descriptor
        try:
            digest = Digest(reported)
        except UsageError:
            raise InvalidContent(
                f"resolve {ref}: registry reported an invalid digest {reported[:80]!r}"
            ) from None
        if ref.digest is not None and digest != ref.digest:
            raise DigestMismatch(f"resolve {ref}: registry reported {digest}")
        return Descriptor(mediatypes.base(response.headers.get("Content-Type", "")), digest, size)

    def get_manifest(self, ref: Reference, *, limit: int = MANIFEST_LIMIT) -> ManifestDocument:
        """Fetch and parse a manifest/index; verified against ``ref.digest`` when there is one."""
        repo = ref.repository

        def check(raw: bytes) -> None:
            if ref.digest is not None and not ref.digest.matches(raw):
                raise DigestMismatch(
                    f"manifest {ref}: the registry served content that does not hash to {ref.digest}"
                )

        response, raw = self._get_verified(
            self.url(repo.registry, f"/v2/{repo.path}/manifests/{ref.identifier}"),
            what=f"fetch manifest {ref}",
            limit=limit,
            check=check,
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        document = parse_manifest(
            raw, content_type=response.headers.get("Content-Type", ""), what=f"manifest {ref}"
        )
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != document.digest:
            log.debug(
                "manifest %s: Docker-Content-Digest %s differs from computed %s",
                ref,
                reported,
                document.digest,
            )
        return document

    def head_blob(self, repo: Repository, digest: Digest) -> BlobStat:
        """Whether a blob exists, with its size; a 404 is an answer, not an error."""
        try:
            response, _ = self.send(
                "HEAD",
                self.url(repo.registry, f"/v2/{repo.path}/blobs/{digest}"),
                what=f"check blob {digest}",
            )
        except RegistryError as exc:
            if exc.status == 404:
                return BlobStat(digest, exists=False)
            raise
        length = response.headers.get("Content-Length")
        return BlobStat(
            digest,
            exists=True,
            size=header_int(length),
            reported_digest=response.headers.get("Docker-Content-Digest"),
        )

    def get_blob(self, repo: Repository, descriptor: Descriptor, *, limit: int) -> bytes:
        """Fetch a small blob (config) in full, verified against its descriptor's digest and size."""
        if descriptor.size > limit:
            raise InvalidContent(
                f"blob {descriptor.digest} is {descriptor.size} bytes; refusing to fetch more than {limit}"
            )
        _, data = self._get_verified(
            self.url(repo.registry, f"/v2/{repo.path}/blobs/{descriptor.digest}"),
            what=f"fetch blob {descriptor.digest.short}",
            limit=descriptor.size + 1,
            check=lambda data: verify_blob(descriptor, data),
        )
        return data

    def _get_verified(
        self,
        url: str,
        *,
        what: str,
        limit: int,
        check: Callable[[bytes], None],
        headers: dict[str, str] | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """GET ``url`` and ``check`` the body (raises ``DigestMismatch``).

        Content spoiled on the way, or served wrong once, is fetched again with the
        same bounded backoff as a transient failure before the mismatch stands.
        """
        attempt = 0
        while True:
            response, raw = self.send("GET", url, what=what, headers=headers, limit=limit)
            try:
                check(raw)
            except DigestMismatch:
                delay = self._backoff(attempt, None)
                if delay is None:
                    raise
                log.debug("%s: the content does not match its digest; fetching it again", what)
                self._wait(delay)
                attempt += 1
                continue
            return response, raw

    def list_tags(self, repo: Repository, *, page_size: int | None = None) -> list[str]:
        """Every tag of a repository, following ``Link: <…>; rel="next"`` pages (``MAX_TAGS`` at most)."""
        return [tag for page in self.iter_tag_pages(repo, page_size=page_size) for tag in page]

    def tag_page(
        self, repo: Repository, *, page_size: int | None = None, url: str | None = None
    ) -> tuple[list[str], str | None]:
        """One page of ``tags/list`` (the first, with ``n=page_size`` when given, or the page at ``url``) and
        the absolute URL its ``Link: <…>; rel="next"`` names, if any."""
        raw, following = self.tag_page_body(repo, page_size=page_size, url=url)
        return parse_tag_page(raw, repo), following

    def tag_page_body(
        self, repo: Repository, *, page_size: int | None = None, url: str | None = None
    ) -> tuple[bytes, str | None]:
        """``tag_page``'s body as sent (capped at ``TAG_PAGE_LIMIT``; vendor fields such as Google's
        ``manifest`` map live there) and the absolute URL of the next page, if any."""
        query = {"n": str(page_size)} if page_size else None
        url = url or self.url(repo.registry, f"/v2/{repo.path}/tags/list", query)
        response, raw = self.send("GET", url, what=f"list tags of {repo}", limit=TAG_PAGE_LIMIT)
        following = next_link(response.headers.get_list("Link"))
        return raw, urljoin(url, following) if following else None

    def iter_tag_pages(self, repo: Repository, *, page_size: int | None = None) -> Iterator[list[str]]:
        """The tag list page by page: each page's body is dropped once parsed, so a caller that does not keep
        the names holds one page at a time. More than ``MAX_TAGS`` names in all, or ``_MAX_PAGES`` pages, is
        ``InvalidContent`` (exit 8) before the page that crosses the cap is handed out."""
        count = 0
        for raw in self.iter_tag_list_bodies(repo, page_size=page_size):
            page = parse_tag_page(raw, repo)
            del raw
            count += len(page)
            if count > MAX_TAGS:
                raise InvalidContent(
                    f"list tags of {repo}: the registry lists more than {MAX_TAGS:,} tags; refusing to read "
                    "more (a registry that pages without end?)"
                )
            yield page

    def iter_tag_list_bodies(self, repo: Repository, *, page_size: int | None = None) -> Iterator[bytes]:
        """Each ``tags/list`` page's body as sent (for vendor fields such as Google's ``manifest`` map),
        following ``Link: <…>; rel="next"`` on the same host; a loop or more than ``_MAX_PAGES`` pages is
        ``InvalidContent``, each body is capped at ``TAG_PAGE_LIMIT``."""
        query = {"n": str(page_size)} if page_size else None
        url = self.url(repo.registry, f"/v2/{repo.path}/tags/list", query)
        return self.iter_linked_bodies(url, what=f"list tags of {repo}", max_pages=_MAX_PAGES)

    def iter_linked_bodies(self, url: str, *, what: str, max_pages: int) -> Iterator[bytes]:
        """GET ``url`` and each page its ``Link: <…>; rel="next"`` names, yielding each body (capped at
        ``TAG_PAGE_LIMIT``) as sent: the distribution API's pagination (``tags/list``, ``_catalog``). A
        ``Link`` to another host, a loop or more than ``max_pages`` pages is ``InvalidContent``."""
        home = urlsplit(url).netloc
        seen: set[bytes] = set()  # hashes of the page URLs: a loop is found without holding long URLs
        while url:
            key = hashlib.sha256(url.encode()).digest()
            if key in seen:
                raise InvalidContent(f"{what}: the registry's Link pagination loops back to {loggable(url)}")
            if len(seen) >= max_pages:
                raise InvalidContent(f"{what}: the registry sent more than {max_pages:,} pages")
            seen.add(key)
            response, raw = self.send("GET", url, what=what, limit=TAG_PAGE_LIMIT)
            following = next_link(response.headers.get_list("Link"))
            yield raw
            del raw
            url = urljoin(url, following) if following else ""
            if url and urlsplit(url).netloc != home:
                raise InvalidContent(f"{what}: pagination Link points to another host ({loggable(url)})")

    # -- writes (gc) -------------------------------------------------------------------------------

    def push_blob(self, repo: Repository, data: bytes) -> Digest:
        """Upload a small blob monolithically (POST a session, PUT the bytes with ``digest=``).

        Neither request is retried, except after a 429 (not acted on): a repeated
        POST opens a second session and a repeated PUT of a finished session is
        refused, so a transient failure is the caller's to judge. HEAD the blob
        first to skip an upload. The upload ``Location`` must stay on the
        registry's origin (scheme, host, port).
        """
        digest = sha256_digest(data)
        start = self.url(repo.registry, f"/v2/{repo.path}/blobs/uploads/")
        response, _ = self.send(
            "POST", start, what=f"start upload of blob {digest.short}", ok=(202,), content=b""
        )
        self._finish_upload(response, digest, data, len(data))
        return digest

    def mount_blob(self, repo: Repository, digest: Digest, source: Repository) -> httpx.Response | None:
        """Ask the registry to link ``digest`` from ``source`` into ``repo`` (``?mount=&from=``, cross-repository
        blob mount): None when it did (201); else its 202 answer, an upload session to send the bytes to
        (``upload_blob_stream(..., session=…)``), as distribution does when it cannot mount.

        Not retried except after a 429: a repeated POST opens a second session.
        """
        start = self.url(
            repo.registry, f"/v2/{repo.path}/blobs/uploads/", {"mount": str(digest), "from": source.path}
        )
        response, _ = self.send(
            "POST", start, what=f"mount blob {digest.short} from {source}", ok=(201, 202), content=b""
        )
        return None if response.status_code == 201 else response

    def upload_blob_stream(
        self,
        repo: Repository,
        descriptor: Descriptor,
        chunks: Iterable[bytes],
        *,
        session: httpx.Response | None = None,
    ) -> None:
        """Upload a blob of any size from ``chunks`` in one PUT with its Content-Length (no chunked encoding,
        which some registries refuse); memory holds one chunk. ``session``: a 202 answer that already opened
        the upload (a mount the registry declined). Never retried: the chunks are consumed once.
        """
        start = self.url(repo.registry, f"/v2/{repo.path}/blobs/uploads/")
        if session is None:
            session, _ = self.send(
                "POST", start, what=f"start upload of blob {descriptor.digest.short}", ok=(202,), content=b""
            )
        self._finish_upload(session, descriptor.digest, chunks, descriptor.size)

    def upload_location(self, session: httpx.Response, what: str) -> str:
        """The absolute ``Location`` of an upload session answer (POST 202, PATCH 202), where its bytes go next.

        It must stay on the registry's origin (scheme, host, port), as oras-go requires
        (GHSA-jxpm-75mh-9fp7): a registry must not steer our upload, or a loopback PUT, elsewhere
        (``InvalidContent`` instead). The POST itself is never redirected.
        """
        location = session.headers.get("Location")
        if not location:
            raise InvalidContent(
                f"{what}: the registry answered {session.status_code} without a Location header"
            )
        target: str = urljoin(str(session.url), location)
        if origin(target) != origin(str(session.url)):
            raise InvalidContent(
                f"{what}: the registry's upload Location points to another host or scheme ({loggable(target)}); "
                "refusing to send the blob there"
            )
        return target

    def _finish_upload(
        self, session: httpx.Response, digest: Digest, content: bytes | Iterable[bytes], size: int
    ) -> None:
        """PUT the bytes to the session's ``Location`` (``upload_location``) with ``digest=``."""
        target = urlsplit(self.upload_location(session, f"start upload of blob {digest.short}"))
        query = urlencode([*parse_qsl(target.query, keep_blank_values=True), ("digest", str(digest))])
        response, _ = self.send(
            "PUT",
            urlunsplit(target._replace(query=query)),
            what=f"upload blob {digest.short}",
            ok=(201, 204),
            content=content,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise DigestMismatch(f"upload blob {digest.short}: the registry stored it as {reported[:80]}")

    @contextmanager
    def open_blob(self, repo: Repository, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        """Stream a blob of any size: the chunks are hashed as they pass and the last one is held back until the
        whole content matches the descriptor's digest and size (``DigestMismatch`` instead), so a consumer that
        forwards them (an upload) never completes with wrong bytes. Redirects (a CDN) follow the GET policy;
        opening is retried like any GET, the body is not (the caller copies it once).
        """
        url = self.url(repo.registry, f"/v2/{repo.path}/blobs/{descriptor.digest}")
        what = f"fetch blob {descriptor.digest.short}"
        clock = _Attempts(self.options.deadline)
        attempt = 0
        while True:
            clock.attempts += 1
            request = self._http.build_request("GET", url, timeout=clock.timeout(self.options.timeout))
            try:
                with self.concurrency.slot():  # held until the answer's headers: the body is the caller's
                    response = self._answered(request, time.monotonic())
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException):
                    self.concurrency.timed_out()
                refused = connection_refused(exc)
                delay = self._retry_delay(clock, attempt, None, not refused, f"GET {loggable(url)} failed")
                if delay is None:
                    raise TransportError(f"{what}: {describe_transport_error(exc, url)}") from None
                self._wait(delay)
                attempt += 1
                continue
            if response.status_code == 200:
                break
            try:
                body = read_capped(response, 64 * 1024, what, truncate=True)
            finally:
                response.close()
            if response.status_code in _RETRY_STATUS:
                said = f"GET {loggable(url)} answered {response.status_code}"
                delay = self._retry_delay(clock, attempt, response, True, said)
                if delay is not None:
                    self._wait(delay)
                    attempt += 1
                    continue
            raise self._fail(response, body, "GET", url, what)
        try:
            yield _verified_chunks(response, descriptor)
        finally:
            response.close()

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> Digest:
        """PUT a manifest under ``ref`` (a tag, or its own digest); returns the digest of ``raw``.

        Retried on transient failures: a repeated PUT of the same bytes to the same
        name leaves the same state.
        """
        digest = sha256_digest(raw)
        if ref.digest is not None and ref.digest != digest:
            raise UsageError(f"put manifest {ref}: the bytes hash to {digest}")
        repo = ref.repository
        response, _ = self.send(
            "PUT",
            self.url(repo.registry, f"/v2/{repo.path}/manifests/{ref.identifier}"),
            what=f"push manifest {ref}",
            ok=(200, 201, 202),
            content=raw,
            headers={"Content-Type": media_type},
            idempotent=True,
        )
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise DigestMismatch(
                f"push manifest {ref}: the registry reported {reported[:80]}, expected {digest}"
            )
        return digest

    def delete_manifest(self, repo: Repository, digest: Digest) -> None:
        """``DELETE /v2/<name>/manifests/<digest>``: on most registries every tag on it goes too.

        Retried on transient failures; a repeat of a DELETE that had succeeded
        answers 404, which the caller reads as "already gone".
        """
        self.send(
            "DELETE",
            self.url(repo.registry, f"/v2/{repo.path}/manifests/{digest}"),
            what=f"delete manifest {repo}@{digest.short}",
            ok=_DELETED,
            idempotent=True,
        )

    def delete_tag(self, ref: Reference) -> None:
        """``DELETE /v2/<name>/manifests/<tag>`` (OCI tag deletion): removes the tag, keeps the manifest.

        Registries without it refuse (distribution 2.8: 400 ``DIGEST_INVALID``;
        others 400/405 ``UNSUPPORTED``). Retried like ``delete_manifest``.
        """
        if ref.tag is None or ref.digest is not None:
            raise UsageError(f"delete tag: {ref} is not a tag reference")
        repo = ref.repository
        self.send(
            "DELETE",
            self.url(repo.registry, f"/v2/{repo.path}/manifests/{ref.tag}"),
            what=f"delete tag {ref}",
            ok=_DELETED,
            idempotent=True,
        )


def verify_blob(descriptor: Descriptor, data: bytes) -> None:
    """Raise unless ``data`` is exactly the content ``descriptor`` names."""
    if len(data) != descriptor.size:
        raise DigestMismatch(
            f"blob {descriptor.digest}: got {len(data)} bytes, its descriptor says {descriptor.size}"
        )
    if not descriptor.digest.matches(data):
        raise DigestMismatch(f"blob {descriptor.digest}: content does not hash to its digest")


#: Chunk size of a streamed blob copy: memory per blob in flight.
STREAM_CHUNK = 1 << 20


def _verified_chunks(response: httpx.Response, descriptor: Descriptor) -> Iterator[bytes]:
    """The body in chunks, the last one held back until size and digest match ``descriptor``."""
    digest = descriptor.digest
    hasher = hashlib.new(digest.algorithm)
    size = 0
    held: bytes | None = None
    for chunk in response.iter_bytes(STREAM_CHUNK):
        if not chunk:
            continue
        size += len(chunk)
        if size > descriptor.size:
            raise DigestMismatch(
                f"blob {digest}: longer than the {descriptor.size} bytes its descriptor says"
            )
        hasher.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if size != descriptor.size:
        raise DigestMismatch(f"blob {digest}: got {size} bytes, its descriptor says {descriptor.size}")
    if hasher.hexdigest() != digest.hex:
        raise DigestMismatch(f"blob {digest}: content does not hash to its digest")
    if held is not None:
        yield held


@dataclass
class _Attempts:
    """One request's attempts against the deadline: each attempt's timeout shrinks to the time left."""

    deadline: float
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0

    def remaining(self) -> float:
        return self.deadline - (time.monotonic() - self.started)

    def timeout(self, per_attempt: float) -> httpx.Timeout:
        budget = max(min(per_attempt, self.remaining()), 0.05)
        return httpx.Timeout(budget, connect=min(budget, 10.0))

    def allows(self, delay: float) -> bool:
        """True when, after waiting ``delay``, a second is still left for the next attempt."""
        return delay + 1.0 < self.remaining()

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        noun = "attempt" if self.attempts == 1 else "attempts"
        return f"{self.attempts} {noun} over {elapsed:.1f} s; --deadline {self.deadline:g} s"
