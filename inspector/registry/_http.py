"""HTTP plumbing shared by the registry layer's clients (distribution API and GitHub REST).

One redirect policy (``send_following_redirects``), one origin rule (``origin``), one capped body reader
(``read_capped``), one ``Retry-After`` reader and one backoff (``RetryPolicy``): the distribution client,
the GitHub Packages client and the ECR client each wait and compare origins the same way. Private to
``inspector.registry``; other layers use the clients' public methods.
"""

from __future__ import annotations

import email.utils
import random
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from inspector.errors import InvalidContent, RedirectRefused
from inspector.oci import gojson
from inspector.oci.reference import Repository

MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
NOT_FORWARDED = frozenset({"authorization", "cookie", "host", "content-length", "transfer-encoding"})
IDEMPOTENT = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait before retry ``attempt`` (0-based), or None to give up.

    Exponential from ``base``, capped at ``cap``; with ``jitter`` a uniform draw from the upper half of that
    ceiling (concurrent clients do not retry in step). A server's ``Retry-After`` wins when given, up to
    ``max_retry_after``; a longer one gives up at once rather than wait minutes.
    """

    retries: int
    base: float
    cap: float
    max_retry_after: float = float("inf")
    jitter: bool = True

    def delay(self, attempt: int, retry_after_seconds: float | None = None) -> float | None:
        if attempt >= self.retries:
            return None
        if retry_after_seconds is not None:
            return retry_after_seconds if retry_after_seconds <= self.max_retry_after else None
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        """The wait before retry ``attempt`` when the server named none (no retry limit applied)."""
        ceiling = min(self.cap, self.base * (2**attempt))
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling


class DeferredTrust:
    """httpx's default TLS context (``verify=True``: ``$SSL_CERT_FILE``, ``$SSL_CERT_DIR`` or certifi's bundle),
    built at the first TLS handshake instead of with the client.

    Loading the CA bundle costs 20-50 ms, which a run that only talks plain HTTP to a loopback registry
    (``tags``) need not pay. Verification is exactly httpx's: every attribute the connection uses
    (``set_alpn_protocols``, ``wrap_socket``, ``wrap_bio``) is the real context's.
    """

    def __init__(self) -> None:
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._context is not None

    def context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = httpx.create_ssl_context()
            return self._context

    def __getattr__(self, name: str) -> object:
        return getattr(self.context(), name)


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
    first = origin(str(request.url))
    seen = {str(request.url)}
    with_auth = authenticate
    while True:
        response = http.send(
            request, stream=True, auth=httpx.USE_CLIENT_DEFAULT if with_auth else None, follow_redirects=False
        )
        location = response.headers.get("Location")
        if response.status_code not in REDIRECTS or location is None:
            return response
        response.close()
        method, url = request.method, request.url
        where = f"{method} {loggable(str(url))}"
        if method not in IDEMPOTENT:
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
                f"{where}: redirect from HTTPS down to plain HTTP ({loggable(str(target))}) refused"
            )
        if str(target) in seen:
            raise RedirectRefused(f"{where}: the server's redirects loop back to {loggable(str(target))}")
        if len(seen) > MAX_REDIRECTS:
            raise RedirectRefused(f"{where}: more than {MAX_REDIRECTS} redirects")
        seen.add(str(target))
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in NOT_FORWARDED]
        request = http.build_request(method, target, headers=headers)
        with_auth = authenticate and origin(str(target)) == first


def _loggable_location(base: httpx.URL, location: str) -> str:
    try:
        return loggable(str(base.join(location)))
    except httpx.InvalidURL:
        return "an unusable Location"


def read_capped(
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
    declared_size = header_int(declared)
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


def parse_tag_page(raw: bytes, repo: Repository) -> list[str]:
    doc = gojson.load(raw, f"tag list of {repo}")
    f = gojson.fields(doc, ("name", "tags"), f"tag list of {repo}")
    return [
        gojson.as_str(t, f"tag list of {repo}.tags")
        for t in gojson.as_list(f.get("tags"), f"tag list of {repo}.tags")
    ]


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, lower-case host and port (default ports made explicit) of ``url``."""
    parts = httpx.URL(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.host.lower(), port


def next_link(values: list[str]) -> str | None:
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


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    seconds = header_int(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def header_int(value: str | None) -> int | None:
    """A non-negative decimal header value (ASCII digits only: ``str.isdigit`` also accepts '²')."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 18 or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def loggable(url: str) -> str:
    """A URL without its query string (pre-signed storage URLs carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def connection_refused(exc: httpx.TransportError) -> bool:
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


def describe_transport_error(exc: httpx.TransportError, url: str) -> str:
    host = urlsplit(url).netloc
    if connection_refused(exc):
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
