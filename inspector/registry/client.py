"""A small, strict client for the OCI distribution API.

One ``httpx.Client`` (keep-alive, bounded pool) serves every request; fan-out
uses a bounded thread pool over it. Every answer is judged in one place
(``_fail``); retries happen only for transient failures (connection errors,
429 and 5xx) on idempotent requests (a 429 on any request: the registry did not
act on it), with capped jittered backoff that honours ``Retry-After``. Bodies
are capped and content is verified against the digest it was fetched by (a
mismatch is fetched again, as boundedly, before it is refused).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from inspector._version import __version__
from inspector.errors import (
    AuthError,
    DigestMismatch,
    InvalidContent,
    RedirectRefused,
    RegistryError,
    TransportError,
    UsageError,
    registry_error_from_response,
)
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import Descriptor, ManifestDocument, parse_manifest
from inspector.oci.reference import Reference, Repository, is_loopback_host
from inspector.registry.auth import RegistryAuth
from inspector.registry.credentials import Credentials

__all__ = [
    "MANIFEST_LIMIT",
    "MAX_REDIRECTS",
    "MAX_TAGS",
    "TAG_PAGE_LIMIT",
    "TOKEN_LIMIT",
    "BlobStat",
    "ClientOptions",
    "RegistryClient",
    "send_following_redirects",
]

log = logging.getLogger(__name__)

MANIFEST_LIMIT = 4 * 1024 * 1024
DEFAULT_DEADLINE = 50.0
TAG_PAGE_LIMIT = 32 * 1024 * 1024
MAX_TAGS = 1_000_000  # names one tag listing may hold: a registry that pages without end stops here
TOKEN_LIMIT = 1024 * 1024  # a token answer; real ones are a few KiB (a JWT and its expiry)
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NOT_FORWARDED = frozenset({"authorization", "cookie", "host", "content-length", "transfer-encoding"})
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD"})
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
    concurrency: int = 8
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
        self._auth = RegistryAuth(credentials or (lambda host: None), send=self._send_without_auth)
        verify: ssl.SSLContext | bool = True
        if self.options.insecure:
            verify = False
        elif self.options.ca_file:
            try:
                verify = ssl.create_default_context(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"cannot load CA file {self.options.ca_file}: {exc}") from None
        pool = max(self.options.concurrency, 1)
        self._http = httpx.Client(
            auth=self._auth,
            verify=verify,
            timeout=httpx.Timeout(self.options.timeout, connect=min(self.options.timeout, 10.0)),
            limits=httpx.Limits(max_connections=pool + 2, max_keepalive_connections=pool + 2),
            follow_redirects=False,  # send_following_redirects applies the one redirect policy
            headers={"User-Agent": self.options.user_agent},
            transport=transport,
            event_hooks={"request": [self._check_scheme, self._count]},
        )
        self._counter_lock = threading.Lock()
        self.request_count = 0

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def scheme_for(self, host: str) -> str:
        """HTTPS unless ``plain_http``; loopback hosts default to HTTP, except when a CA file asks for TLS."""
        if self.options.plain_http:
            return "http"
        if is_loopback_host(host) and not self.options.ca_file:
            return "http"
        return "https"

    def _url(self, registry: str, path: str, query: dict[str, str] | None = None) -> str:
        host = "registry-1.docker.io" if registry == "docker.io" else registry
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
            body = _read_capped(response, TOKEN_LIMIT, what, deadline=deadline)
        except InvalidContent as exc:
            raise AuthError(exc.message) from None
        finally:
            response.close()
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=response.request
        )

    def _count(self, request: httpx.Request) -> None:
        """Count every request on the wire: retries, redirects, auth challenges' repeats, token fetches."""
        with self._counter_lock:
            self.request_count += 1

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``attempt`` (0-based), or None to give up."""
        if attempt >= self.options.retries:
            return None
        if response is not None:
            after = _retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return after if after <= self.options.max_retry_after else None
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    def _request(
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
        """Send with retries; return the response and up to ``limit`` bytes of its body.

        Non-``ok`` statuses become typed errors. A body longer than ``limit``
        raises ``InvalidContent`` without reading the rest. Only idempotent
        requests are retried: GET and HEAD, or a caller that says a repeat is
        harmless (``idempotent=True``); a 429 is retried for every request, since
        a rate-limited request was not acted on. A streamed body (an iterable) is
        never sent twice: it is consumed by the first attempt.
        """
        ok_statuses = frozenset(ok)
        replayable = content is None or isinstance(content, bytes)
        retryable = replayable and (method in _IDEMPOTENT if idempotent is None else idempotent)
        attempt = 0
        clock = _Attempts(self.options.deadline)
        while True:
            clock.attempts += 1
            request = self._http.build_request(
                method, url, headers=headers, content=content, timeout=clock.timeout(self.options.timeout)
            )
            started = time.monotonic()
            try:
                response = send_following_redirects(self._http, request)
                # httpx's read timeout is per read: a body trickling in a byte at a time would never hit it.
                deadline = time.monotonic() + min(self.options.timeout, clock.remaining())
                try:
                    if response.status_code in ok_statuses:
                        if limit:
                            body = _read_capped(response, limit, what, deadline=deadline)
                        else:
                            # Drain the (empty or tiny) body: a stream closed unread loses its keep-alive
                            # connection, which turned every blob HEAD into a new TCP (and TLS) handshake.
                            _read_capped(response, 64 * 1024, what, truncate=True, deadline=deadline)
                            body = b""
                        log.debug(
                            "%s %s -> %s in %.0f ms",
                            method,
                            _loggable(url),
                            response.status_code,
                            (time.monotonic() - started) * 1000,
                        )
                        return response, body
                    error_body = _read_capped(response, 64 * 1024, what, truncate=True, deadline=deadline)
                finally:
                    response.close()
            except httpx.TransportError as exc:
                refused = _connection_refused(exc)
                said = f"{method} {_loggable(url)} failed ({type(exc).__name__})"
                delay = self._retry_delay(clock, attempt, None, retryable and not refused, said)
                if delay is None:
                    tried = "" if refused else f" ({clock.summary()})"
                    raise TransportError(f"{what}: {_describe_transport_error(exc, url)}{tried}") from None
                self._sleep(delay)
                attempt += 1
                continue
            log.debug("%s %s -> %s", method, _loggable(url), response.status_code)
            if response.status_code in _RETRY_STATUS and (
                retryable or (replayable and response.status_code == 429)
            ):
                said = f"{method} {_loggable(url)} answered {response.status_code}"
                delay = self._retry_delay(clock, attempt, response, True, said)
                if delay is not None:
                    self._sleep(delay)
                    attempt += 1
                    continue
            raise self._fail(response, error_body, method, url, what)

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
            url=_loggable(url),
            body=body,
            what=what,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
        if response.status_code == 401 and not error.hint:
            error.hint = self._login_hint(url)
        return error

    def map_bounded(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_done: Callable[[int, int], None] | None = None,
    ) -> list[R]:
        """Apply ``fn`` to every item with at most ``concurrency`` in flight; results keep input order."""
        if not items:
            return []
        results: list[R] = []
        total = len(items)
        if self.options.concurrency == 1 or total == 1:
            for done, item in enumerate(items, 1):
                results.append(fn(item))
                if on_done:
                    on_done(done, total)
            return results
        with ThreadPoolExecutor(max_workers=min(self.options.concurrency, total)) as pool:
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
        response, _ = self._request("GET", self._url(registry, "/v2/"), what=f"ping {registry}")
        return response.headers

    def head_manifest(self, ref: Reference) -> Descriptor:
        """Resolve a reference to a descriptor without fetching the body."""
        repo = ref.repository
        response, _ = self._request(
            "HEAD",
            self._url(repo.registry, f"/v2/{repo.path}/manifests/{ref.identifier}"),
            what=f"resolve {ref}",
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        reported = response.headers.get("Docker-Content-Digest")
        size = _header_int(response.headers.get("Content-Length"))
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
            self._url(repo.registry, f"/v2/{repo.path}/manifests/{ref.identifier}"),
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
            response, _ = self._request(
                "HEAD",
                self._url(repo.registry, f"/v2/{repo.path}/blobs/{digest}"),
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
            size=_header_int(length),
            reported_digest=response.headers.get("Docker-Content-Digest"),
        )

    def get_blob(self, repo: Repository, descriptor: Descriptor, *, limit: int) -> bytes:
        """Fetch a small blob (config) in full, verified against its descriptor's digest and size."""
        if descriptor.size > limit:
            raise InvalidContent(
                f"blob {descriptor.digest} is {descriptor.size} bytes; refusing to fetch more than {limit}"
            )
        _, data = self._get_verified(
            self._url(repo.registry, f"/v2/{repo.path}/blobs/{descriptor.digest}"),
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
            response, raw = self._request("GET", url, what=what, headers=headers, limit=limit)
            try:
                check(raw)
            except DigestMismatch:
                delay = self._backoff(attempt, None)
                if delay is None:
                    raise
                log.debug("%s: the content does not match its digest; fetching it again", what)
                self._sleep(delay)
                attempt += 1
                continue
            return response, raw

    def list_tags(self, repo: Repository, *, page_size: int | None = None) -> list[str]:
        """Every tag of a repository, following ``Link: <…>; rel="next"`` pages (``MAX_TAGS`` at most)."""
        return [tag for page in self.iter_tag_pages(repo, page_size=page_size) for tag in page]

    def iter_tag_pages(self, repo: Repository, *, page_size: int | None = None) -> Iterator[list[str]]:
        """The tag list page by page: each page's body is dropped once parsed, so a caller that does not keep
        the names holds one page at a time. More than ``MAX_TAGS`` names in all, or ``_MAX_PAGES`` pages, is
        ``InvalidContent`` (exit 8) before the page that crosses the cap is handed out."""
        count = 0
        for raw in self.iter_tag_list_bodies(repo, page_size=page_size):
            page = _parse_tag_page(raw, repo)
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
        url = self._url(repo.registry, f"/v2/{repo.path}/tags/list", query)
        seen: set[bytes] = set()  # hashes of the page URLs: a loop is found without holding long URLs
        while url:
            key = hashlib.sha256(url.encode()).digest()
            if key in seen:
                raise InvalidContent(
                    f"list tags of {repo}: the registry's Link pagination loops back to {_loggable(url)}"
                )
            if len(seen) >= _MAX_PAGES:
                raise InvalidContent(f"list tags of {repo}: the registry sent more than {_MAX_PAGES:,} pages")
            seen.add(key)
            response, raw = self._request("GET", url, what=f"list tags of {repo}", limit=TAG_PAGE_LIMIT)
            next_url = _next_link(response.headers.get_list("Link"))
            yield raw
            del raw
            url = urljoin(url, next_url) if next_url else ""
            if url and urlsplit(url).netloc != urlsplit(self._url(repo.registry, "/")).netloc:
                raise InvalidContent(
                    f"list tags of {repo}: pagination Link points to another host ({_loggable(url)})"
                )

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
        start = self._url(repo.registry, f"/v2/{repo.path}/blobs/uploads/")
        response, _ = self._request(
            "POST", start, what=f"start upload of blob {digest.short}", ok=(202,), content=b""
        )
        self._finish_upload(start, response, digest, data, len(data))
        return digest

    def mount_blob(self, repo: Repository, digest: Digest, source: Repository) -> httpx.Response | None:
        """Ask the registry to link ``digest`` from ``source`` into ``repo`` (``?mount=&from=``, cross-repository
        blob mount): None when it did (201); else its 202 answer, an upload session to send the bytes to
        (``upload_blob_stream(..., session=…)``), as distribution does when it cannot mount.

        Not retried except after a 429: a repeated POST opens a second session.
        """
        start = self._url(
            repo.registry, f"/v2/{repo.path}/blobs/uploads/", {"mount": str(digest), "from": source.path}
        )
        response, _ = self._request(
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
        start = self._url(repo.registry, f"/v2/{repo.path}/blobs/uploads/")
        if session is None:
            session, _ = self._request(
                "POST", start, what=f"start upload of blob {descriptor.digest.short}", ok=(202,), content=b""
            )
        self._finish_upload(start, session, descriptor.digest, chunks, descriptor.size)

    def _finish_upload(
        self, start: str, session: httpx.Response, digest: Digest, content: bytes | Iterable[bytes], size: int
    ) -> None:
        """PUT the bytes to the session's ``Location`` with ``digest=``.

        The Location must stay on the registry's origin (scheme, host, port), as oras-go requires
        (GHSA-jxpm-75mh-9fp7): a registry must not steer our upload, or a loopback PUT, elsewhere. The POST
        itself is never redirected.
        """
        location = session.headers.get("Location")
        if not location:
            raise InvalidContent(f"start upload of blob {digest.short}: the registry sent no Location")
        target = urlsplit(urljoin(start, location))
        if _origin(urlunsplit(target)) != _origin(start):
            raise InvalidContent(
                f"start upload of blob {digest.short}: the registry's upload Location points to another "
                f"host or scheme ({_loggable(urlunsplit(target))}); refusing to send the blob there"
            )
        query = urlencode([*parse_qsl(target.query, keep_blank_values=True), ("digest", str(digest))])
        response, _ = self._request(
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
        url = self._url(repo.registry, f"/v2/{repo.path}/blobs/{descriptor.digest}")
        what = f"fetch blob {descriptor.digest.short}"
        clock = _Attempts(self.options.deadline)
        attempt = 0
        while True:
            clock.attempts += 1
            request = self._http.build_request("GET", url, timeout=clock.timeout(self.options.timeout))
            try:
                response = send_following_redirects(self._http, request)
            except httpx.TransportError as exc:
                refused = _connection_refused(exc)
                delay = self._retry_delay(clock, attempt, None, not refused, f"GET {_loggable(url)} failed")
                if delay is None:
                    raise TransportError(f"{what}: {_describe_transport_error(exc, url)}") from None
                self._sleep(delay)
                attempt += 1
                continue
            if response.status_code == 200:
                break
            try:
                body = _read_capped(response, 64 * 1024, what, truncate=True)
            finally:
                response.close()
            if response.status_code in _RETRY_STATUS:
                said = f"GET {_loggable(url)} answered {response.status_code}"
                delay = self._retry_delay(clock, attempt, response, True, said)
                if delay is not None:
                    self._sleep(delay)
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
        response, _ = self._request(
            "PUT",
            self._url(repo.registry, f"/v2/{repo.path}/manifests/{ref.identifier}"),
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
        self._request(
            "DELETE",
            self._url(repo.registry, f"/v2/{repo.path}/manifests/{digest}"),
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
        self._request(
            "DELETE",
            self._url(repo.registry, f"/v2/{repo.path}/manifests/{ref.tag}"),
            what=f"delete tag {ref}",
            ok=_DELETED,
            idempotent=True,
        )


def send_following_redirects(
    http: httpx.Client,
    request: httpx.Request,
    *,
    authenticate: bool = True,
) -> httpx.Response:
    """Send ``request`` (streamed) under the one redirect policy of every registry and API request.

    GET and HEAD follow up to ``MAX_REDIRECTS`` hops (blob downloads go to a CDN); a hop to another
    origin carries no Authorization or Cookie and gets no answer to a challenge (no client auth). Every
    other method (DELETE, PUT, PATCH, POST: writes, and the token POST with its refresh token) follows
    nothing: a redirect would move the write, or a secret in the body, to whatever the Location names.
    Refused with ``RedirectRefused``: a redirected write, a loop, too many hops, a hop from HTTPS to
    plain HTTP (loopback included), a scheme other than http(s).
    """
    first = _origin(str(request.url))
    seen = {str(request.url)}
    with_auth = authenticate
    while True:
        response = http.send(
            request, stream=True, auth=httpx.USE_CLIENT_DEFAULT if with_auth else None, follow_redirects=False
        )
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECTS or location is None:
            return response
        response.close()
        method, url = request.method, request.url
        where = f"{method} {_loggable(str(url))}"
        if method not in _IDEMPOTENT:
            raise RedirectRefused(
                f"{where}: the server redirected it ({response.status_code}) to {_loggable_location(url, location)}; "
                f"a {method} is never redirected (it would act, or send its body, elsewhere)"
            )
        try:
            target = url.join(location)
        except httpx.InvalidURL:
            raise RedirectRefused(f"{where}: the server redirected it to an unusable Location") from None
        if target.scheme not in ("http", "https") or not target.host:
            raise RedirectRefused(f"{where}: redirect to a {target.scheme!r} URL refused")
        if url.scheme == "https" and target.scheme == "http":
            raise RedirectRefused(
                f"{where}: redirect from HTTPS down to plain HTTP ({_loggable(str(target))}) refused"
            )
        if str(target) in seen:
            raise RedirectRefused(f"{where}: the server's redirects loop back to {_loggable(str(target))}")
        if len(seen) > MAX_REDIRECTS:
            raise RedirectRefused(f"{where}: more than {MAX_REDIRECTS} redirects")
        seen.add(str(target))
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _NOT_FORWARDED]
        request = http.build_request(method, target, headers=headers)
        with_auth = authenticate and _origin(str(target)) == first


def _loggable_location(base: httpx.URL, location: str) -> str:
    try:
        return _loggable(str(base.join(location)))
    except httpx.InvalidURL:
        return "an unusable Location"


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


def _read_capped(
    response: httpx.Response,
    limit: int,
    what: str,
    *,
    truncate: bool = False,
    deadline: float | None = None,
) -> bytes:
    """Up to ``limit`` bytes of the body (``InvalidContent`` beyond, unless ``truncate``).

    With ``deadline`` (on the monotonic clock) the whole body must have come by then, else
    ``httpx.ReadTimeout``: a read timeout bounds each read, not a body sent a byte at a time.
    """
    declared = response.headers.get("Content-Length")
    declared_size = _header_int(declared)
    if not truncate and declared_size is not None and declared_size > limit:
        raise InvalidContent(f"{what}: the response is {int(declared)} bytes, over the {limit} byte limit")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        if deadline is not None and time.monotonic() > deadline:
            raise httpx.ReadTimeout("the body did not arrive within the timeout", request=response.request)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                break
            raise InvalidContent(f"{what}: the response is longer than the {limit} byte limit")
    return b"".join(chunks)[:limit] if truncate else b"".join(chunks)


def _parse_tag_page(raw: bytes, repo: Repository) -> list[str]:
    doc = gojson.load(raw, f"tag list of {repo}")
    f = gojson.fields(doc, ("name", "tags"), f"tag list of {repo}")
    return [
        gojson.as_str(t, f"tag list of {repo}.tags")
        for t in gojson.as_list(f.get("tags"), f"tag list of {repo}.tags")
    ]


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, lower-case host and port (default ports made explicit) of ``url``."""
    parts = httpx.URL(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.host.lower(), port


def _next_link(values: list[str]) -> str | None:
    """The target of the ``rel="next"`` link, from one or several Link headers."""
    for value in values:
        for part in value.split(","):
            url_part, _, params = part.partition(";")
            url_part = url_part.strip()
            if not (url_part.startswith("<") and url_part.endswith(">")):
                continue
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key.strip().lower() == "rel" and "next" in val.strip().strip('"').lower().split():
                    return url_part[1:-1]
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    seconds = _header_int(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _header_int(value: str | None) -> int | None:
    """A non-negative decimal header value (ASCII digits only: ``str.isdigit`` also accepts '²')."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 18 or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _loggable(url: str) -> str:
    """A URL without its query string (pre-signed storage URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


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


def _connection_refused(exc: httpx.TransportError) -> bool:
    """Nothing listens at the address: a wrong address, not a failure that a retry can outlast."""
    if not isinstance(exc, httpx.ConnectError):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _host_port(url: str) -> str:
    """``host:port`` of ``url``, the port spelled out (443 for https, 80 for http) as a connection needs it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _describe_transport_error(exc: httpx.TransportError, url: str) -> str:
    host = urlsplit(url).netloc
    if _connection_refused(exc):
        return f"nothing listens at {_host_port(url)} — is the registry address right?"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out talking to {host}"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
            return (
                f"TLS certificate of {host} not trusted (use --ca-file, or --insecure to skip verification)"
            )
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text.lower():
            return f"{host} does not speak TLS (for a plain-HTTP registry use --plain-http)"
        return f"cannot connect to {host} ({text or type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{host} closed the connection or sent a malformed response ({exc})"
    return f"network error talking to {host} ({type(exc).__name__}: {exc})"
