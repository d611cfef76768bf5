"""GitHub Packages REST client for container packages: how a GHCR cache is listed and deleted.

GHCR refuses ``DELETE /v2/<name>/manifests/<digest>`` (405 UNSUPPORTED, spec registries.md §3); the
GitHub REST API deletes *package versions* instead, one version being one manifest digest with all its
tags. Every endpoint, parameter, status and field used here was checked against GitHub's OpenAPI
description (github/rest-api-description, ``descriptions-next/api.github.com/api.github.com.2022-11-28.yaml``)::

    GET    /orgs/{org}/packages/container/{package_name}/versions
               packages/get-all-package-versions-for-package-owned-by-org        page, per_page (max 100)
    GET    /users/{username}/packages/container/{package_name}/versions
               packages/get-all-package-versions-for-package-owned-by-user       (no paging parameters listed)
    GET    /user/packages/container/{package_name}/versions
               packages/get-all-package-versions-for-package-owned-by-authenticated-user
    GET    <one of the three>/{package_version_id}
               packages/get-package-version-for-organization | -for-user | -for-authenticated-user
    DELETE <one of the three>/{package_version_id}                                204; 401, 403, 404
               packages/delete-package-version-for-org | -for-user | -for-authenticated-user
    GET    /user   users/get-authenticated                                        (``login``)

A version is the ``package-version`` schema: ``id``, ``name`` (the manifest digest for containers),
``created_at``, ``updated_at``, ``metadata.container.tags``. Errors are ``basic-error``
(``message``, ``documentation_url``).

Which owner kind a name belongs to is decided from the API's answers, once per client: the org
endpoint first; on 404 the authenticated user's (``/user/…``, when the token's login is the owner) or
the public user endpoint (``/users/{username}/…``).

    DELETE /orgs/{org}/packages/container/{package_name}                        204; 400, 401, 403, 404
               packages/delete-package-for-org | -for-user | -for-authenticated-user

Rate limits follow GitHub's "Rate limits for the REST API": a 403/429 with ``retry-after`` waits that
long; with ``x-ratelimit-remaining: 0`` it waits until ``x-ratelimit-reset``; a secondary-limit message
without either waits at least a minute, doubling. Waits up to ``GhcrOptions.max_wait`` are slept,
longer ones raise ``RateLimited`` saying when to retry. Connection errors and 5xx are retried with
capped jittered backoff.

Deletions are *paced* (``Pace``) so that GitHub's secondary limits are not met in the first place:
at least one second between mutating requests, at most 80 content-creating requests a minute and 500
an hour (``../shared/spec/registries.md`` addendum [G14]; GitHub "Rate limits for the REST API" and
"Best practices for using the REST API"). ``backlog_seconds`` says how long N deletions take at that
pace. The pace is per client: other processes using the same token share GitHub's limits unseen, and
that is what the primary limit's headers show: every answer carries ``x-ratelimit-limit``,
``x-ratelimit-remaining`` and ``x-ratelimit-reset`` (GitHub "Rate limits for the REST API", "Checking
the status of your rate limit"). When at most a tenth of the limit (and at least ``_LOW_REMAINING``)
is left, deletions are spread over what is left of the window (``_Pacer.observe``: two requests per
deletion, its last look and the DELETE), and with none left the next one waits for the reset, rather
than running into the 403. ``limit_waits`` bounds every wait (pacing and rate limits) by a caller's
allowance, e.g. what is left of ``gc --time-budget``: a longer wait raises ``RateLimited``.

A DELETE answered 404 is looked at again, because GitHub answers 404 both for a version that is gone
and for a token that may not manage the package. GitHub keeps a deleted version restorable for 30
days ("Restore a package version") and does not document what a GET of it answers (registries.md
[G13]). So the version counts as gone when its GET is 404, or shows ``deleted_at``, or when the
version is absent from the package's *active* listing (``state=active``); only a version that is still
listed as active is a refusal. A retried DELETE whose first attempt reached GitHub therefore never
reads as "the token may not delete".

GitHub refuses to delete a package's last version (400 "You cannot delete the last version of a
package. You must delete the package instead.", registries.md [G11][G12]): ``LastVersionRefused``.

The token is sent only to the configured API origin and never appears in messages or logs. Which
environment variable holds it follows gh: for github.com (and ``*.ghe.com``) ``GH_TOKEN``, else
``GITHUB_TOKEN``; for a GitHub Enterprise Server API (``https://HOST/api/v3``) ``GH_ENTERPRISE_TOKEN``,
else ``GITHUB_ENTERPRISE_TOKEN`` — and ``GITHUB_TOKEN`` only inside a workflow of that same server
(``GITHUB_API_URL`` names it), so a github.com token is never sent to another host. An organisation
with SAML single sign-on answers 403 with ``X-GitHub-SSO: required; url=…`` to a token not authorised
for it; the hint says so and gives that URL (registries.md [G16]).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode, urljoin

import httpx

from inspector._version import __version__
from inspector.errors import (
    Denied,
    InvalidContent,
    InvalidRequest,
    NotFound,
    RateLimited,
    RegistryError,
    ServerError,
    TransportError,
    Unauthorized,
    UsageError,
)
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.reference import Repository, is_loopback_host, parse_repository
from inspector.registry._http import (
    RetryPolicy,
    describe_transport_error,
    header_int,
    loggable,
    next_link,
    origin,
    read_capped,
    retry_after,
    send_following_redirects,
)

__all__ = [
    "DEFAULT_API_URL",
    "GHCR_HOST",
    "TOKEN_HINT",
    "DeleteOutcome",
    "GhcrClient",
    "GhcrOptions",
    "LastVersionRefused",
    "Pace",
    "Package",
    "PackageScope",
    "PackageVersion",
    "backlog_seconds",
    "format_seconds",
    "ghcr_package_name",
]

log = logging.getLogger(__name__)

GHCR_HOST = "ghcr.io"
DEFAULT_API_URL = "https://api.github.com"
#: What a 401/403 from the Packages API means, in the terms GitHub's permissions use.
TOKEN_HINT = (
    "the token lacks delete:packages (classic PAT) or admin access to the package "
    "(GITHUB_TOKEN needs the package's Manage Actions access / admin role)"
)
_READ_HINT = (
    "listing needs read:packages (classic PAT) or read access to the package "
    "(GITHUB_TOKEN: the workflow's repository must be granted access to the package)"
)
_DOWNLOADS_HINT = (
    "GitHub refuses to delete a version of a public package that has more than 5,000 downloads; "
    "contact GitHub Support, or leave that version"
)
_ENV_TOKENS = ("GH_TOKEN", "GITHUB_TOKEN")  # gh's precedence for github.com
_ENTERPRISE_ENV_TOKENS = ("GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN")  # gh's, for other hosts
_GITHUB_API_HOST = "api.github.com"
_LAST_VERSION = "last version of a package"  # in GitHub's 400 message (registries.md [G11])
_BODY_LIMIT = 16 * 1024 * 1024
_SECONDARY_WAIT = 60.0  # GitHub: "wait for at least one minute before retrying"
_LOW_REMAINING = 20  # primary-limit requests left at or under which deletions are spread over the window
_REQUESTS_PER_DELETION = 2  # a deletion's last look (GET) and its DELETE

PackageScope = Literal["org", "user", "authenticated-user"]
DeleteOutcome = Literal["deleted", "already-deleted"]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Pace:
    """GitHub's documented limits for content-changing requests (registries.md addendum [G14]).

    "wait at least one second between each request" (mutating ones), and secondary limits of 80
    content-generating requests a minute and 500 an hour. A DELETE is paced as one of those.
    """

    min_interval: float = 1.0
    per_minute: int = 80
    per_hour: int = 500


@dataclass(frozen=True, slots=True)
class GhcrOptions:
    """Transport settings for the GitHub REST API."""

    base_url: str = DEFAULT_API_URL
    api_version: str = "2022-11-28"
    timeout: float = 30.0
    page_size: int = 100  # per_page; GitHub's maximum
    retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 16.0
    max_wait: float = 60.0  # longest rate-limit wait that is slept rather than raised
    max_pages: int = 100_000
    user_agent: str = f"cacheinspect/{__version__}"
    pace: Pace = field(default_factory=Pace)


@dataclass(frozen=True, slots=True)
class Package:
    """A container package and the endpoint family that serves it."""

    owner: str
    name: str
    scope: PackageScope
    host: str = GHCR_HOST  # the container registry that serves it (messages only)

    @property
    def path(self) -> str:
        """API path of the package; the name is one path segment (``a/b`` -> ``a%2Fb``)."""
        name = quote(self.name, safe="")
        if self.scope == "org":
            return f"/orgs/{quote(self.owner, safe='')}/packages/container/{name}"
        if self.scope == "user":
            return f"/users/{quote(self.owner, safe='')}/packages/container/{name}"
        return f"/user/packages/container/{name}"

    def __str__(self) -> str:
        return f"{self.host}/{self.owner}/{self.name}"


@dataclass(frozen=True, slots=True)
class PackageVersion:
    """One package version: one manifest digest and every tag on it."""

    id: int
    digest: Digest
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None  # set on a deleted (restorable) version, when GitHub shows one

    @property
    def tagged(self) -> bool:
        return bool(self.tags)


def ghcr_package_name(repository: Repository | str) -> tuple[str, str]:
    """``(owner, name)`` of ``ghcr.io/OWNER/NAME``; NAME may contain slashes."""
    repo = parse_repository(repository) if isinstance(repository, str) else repository
    if repo.registry != GHCR_HOST:
        raise UsageError(f"{repo} is not on {GHCR_HOST}: the GitHub Packages API only serves ghcr.io")
    owner, _, name = repo.path.partition("/")
    if not name:
        raise UsageError(f"{repo}: expected ghcr.io/OWNER/NAME")
    return owner, name


class LastVersionRefused(InvalidRequest):
    """GitHub refuses to delete a package's only version: the package itself must be deleted."""


class _Pacer:
    """Schedules mutating requests within ``Pace``; each call of ``wait`` takes the next free slot.

    A request counts from when its answer came back (``finished``), not from when it was sent: the
    previous request has then surely reached GitHub, so network jitter cannot bring two arrivals closer
    than ``min_interval``. Mutating requests are sequential (the executor is).
    """

    def __init__(self, pace: Pace, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._pace = pace
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()  # slots taken within the last hour, oldest first
        self._lock = threading.Lock()
        self._window_end = 0.0  # x-ratelimit-reset of a primary window that is running low
        self._gap = 0.0  # the spacing that spreads what is left of it until then (inf: none left)

    def observe(self, limit: int | None, remaining: int, reset: float) -> None:
        """The primary limit as an answer's ``x-ratelimit-*`` headers state it: low means spread."""
        now = self._clock()
        low = max(_LOW_REMAINING, (limit or 0) // 10)
        with self._lock:
            if remaining > low or reset <= now:
                self._window_end, self._gap = 0.0, 0.0
                return
            deletions = remaining // _REQUESTS_PER_DELETION
            self._window_end = reset
            self._gap = (reset - now) / deletions if deletions else math.inf

    def delay(self) -> float:
        """Seconds until the next request may go (without taking the slot)."""
        with self._lock:
            now = self._clock()
            return max(0.0, self.next_slot(now) - now)

    def wait(self, limit: float | None = None) -> float:
        """Sleep until the next request may go; returns the seconds slept.

        ``limit``: the longest wait allowed; a longer one takes no slot and raises ``_WaitTooLong``.
        """
        with self._lock:
            now = self._clock()
            slot = self.next_slot(now)
            if limit is not None and slot - now > limit:
                raise _WaitTooLong(slot - now)
            self._sent.append(slot)
        if slot > now:
            self._sleep(slot - now)
        return max(0.0, slot - now)

    def finished(self) -> None:
        """The request of the last ``wait`` was answered (or failed): it counts from now."""
        with self._lock:
            if self._sent:
                self._sent[-1] = max(self._sent[-1], self._clock())

    def next_slot(self, now: float) -> float:
        pace, sent = self._pace, self._sent
        while sent and sent[0] <= now - 3600.0:
            sent.popleft()
        slot = now
        while True:
            earliest = slot
            if sent:
                earliest = max(earliest, sent[-1] + pace.min_interval)
            for limit, window in ((pace.per_minute, 60.0), (pace.per_hour, 3600.0)):
                inside = [t for t in sent if t > earliest - window]
                if limit > 0 and len(inside) >= limit:
                    earliest = max(earliest, inside[len(inside) - limit] + window)
            if self._window_end > earliest:  # the primary window runs low: spread what is left of it
                if math.isinf(self._gap):
                    earliest = self._window_end + 1.0
                elif sent:
                    earliest = max(earliest, sent[-1] + self._gap)
            if earliest == slot:
                return slot
            slot = earliest


class _WaitTooLong(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"{seconds:.0f} s")
        self.seconds = seconds


def backlog_seconds(requests: int, pace: Pace | None = None) -> float:
    """How long ``requests`` paced mutating requests take from a standing start (the last one's start)."""
    now = [0.0]
    pacer = _Pacer(pace or Pace(), lambda: now[0], lambda seconds: None)
    for _ in range(requests):
        now[0] = pacer.next_slot(now[0])
        pacer._sent.append(now[0])
    return now[0]


def format_seconds(seconds: float) -> str:
    """``45 s``, ``8 min 19 s``, ``2 h 5 min``: durations as a person reads them."""
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


class GhcrClient:
    """GitHub Packages API client for container packages. Use as a context manager; thread-safe."""

    def __init__(
        self,
        options: GhcrOptions | None = None,
        *,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or GhcrOptions()
        if not 1 <= self.options.page_size <= 100:
            raise UsageError("the GitHub API pages at most 100 versions (per_page 1..100)")
        base = httpx.URL(self.options.base_url.rstrip("/"))
        if base.scheme != "https" and not (base.scheme == "http" and is_loopback_host(base.host)):
            raise UsageError(
                f"GitHub API URL {self.options.base_url} must be https (plain http: loopback only)"
            )
        self._base = base
        self._origin = origin(str(base))
        self._retry_policy = RetryPolicy(
            self.options.retries, self.options.backoff_base, self.options.backoff_cap
        )
        environment = os.environ if env is None else env
        self.enterprise = _is_enterprise(base.host)
        self._token_names = _token_names(str(base), environment)
        self._token = _pick_token(token, environment, self._token_names)
        self._sleep = sleep
        self._clock = clock
        self._pacer = _Pacer(self.options.pace, clock, sleep)
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": self.options.api_version,
            "User-Agent": self.options.user_agent,
        }
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.options.timeout, connect=min(self.options.timeout, 10.0)),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            follow_redirects=False,  # send_following_redirects: GET/HEAD only, never a DELETE
            transport=transport,
            event_hooks={"request": [self._guard]},
        )
        self._lock = threading.Lock()
        self._resolve_lock = threading.Lock()
        self._packages: dict[tuple[str, str], Package] = {}
        self._login: str | None = None
        self._login_known = False
        self.request_count = 0
        self._wait_limit: Callable[[], float] | None = None

    def limit_waits(self, allowance: Callable[[], float]) -> None:
        """Bound every later wait (pacing, rate limits) by ``allowance()`` seconds, e.g. what is left of a
        time budget: a wait that fits is slept, even past ``GhcrOptions.max_wait``; a longer one raises
        ``RateLimited`` before the request is sent."""
        self._wait_limit = allowance

    def __enter__(self) -> GhcrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- API ---------------------------------------------------------------------------------------

    def package(self, owner: str, name: str, *, host: str = GHCR_HOST) -> Package:
        """The package ``HOST/owner/name``, its owner kind decided by the API (once per client).

        The org endpoint is asked first; on 404 the user's: ``/user/…`` when the token belongs to
        ``owner`` (private packages of the token's user are served there), else ``/users/{owner}/…``.
        ``host`` is the container registry the package is pulled from; it only names it in messages.
        """
        key = (owner.lower(), name.lower())
        with self._resolve_lock:
            known = self._packages.get(key)
            if known is not None:
                return known
            found = self._probe(Package(owner, name, "org", host))
            if found is None:
                found = self._probe(Package(owner, name, self._user_scope(owner), host))
            if found is None:
                raise NotFound(
                    f"no container package {name!r} owned by {owner!r} "
                    "(asked GitHub's organisation and user package endpoints)",
                    status=404,
                    method="GET",
                    url=f"{self._base.scheme}://{self._base.netloc.decode('ascii')}".lower(),
                    hint="check ghcr.io/OWNER/NAME, and that the token can read the package (read:packages)",
                )
            self._packages[key] = found
            log.debug("%s: served by the %s endpoints", found, found.scope)
            return found

    def _probe(self, candidate: Package) -> Package | None:
        """``candidate`` if its versions endpoint answers 200, None on 404."""
        what = f"find {candidate}"
        response = self._call("GET", self._url(candidate.path + "/versions", per_page=1), what=what)
        if response.status == 200:
            return candidate
        if response.status == 404:
            return None
        raise self._error(response, "GET", what, hint=_READ_HINT)

    def iter_versions(self, package: Package) -> Iterator[PackageVersion]:
        """Every active version, newest first as GitHub serves them, following ``Link: rel="next"``.

        Page-number paging shifts when versions are deleted meanwhile: list everything, then delete.
        """
        url = self._url(package.path + "/versions", per_page=self.options.page_size, state="active")
        seen: set[str] = set()
        what = f"list versions of {package}"
        while url:
            if url in seen or len(seen) >= self.options.max_pages:
                raise InvalidContent(f"{what}: the API's Link pagination loops back to {loggable(url)}")
            seen.add(url)
            response = self._call("GET", url, what=what)
            if response.status != 200:
                raise self._error(response, "GET", what, hint=_READ_HINT)
            yield from _parse_versions(response.body, what)
            next_url = next_link(response.headers.get_list("Link"))
            url = urljoin(url, next_url) if next_url else ""
            if url and origin(url) != self._origin:
                raise InvalidContent(f"{what}: pagination Link points to another host ({loggable(url)})")

    def versions(self, package: Package) -> list[PackageVersion]:
        """Every active version, each once (a version seen on two pages is kept once)."""
        out: dict[int, PackageVersion] = {}
        for version in self.iter_versions(package):
            out.setdefault(version.id, version)
        return list(out.values())

    def iter_container_packages(self, owner: str) -> Iterator[str]:
        """The names of ``owner``'s container packages (an organisation's, else a user's), page by page.

        ``GET /orgs/{org}/packages?package_type=container`` (packages/list-packages-for-organization), on
        404 ``/user/packages`` when the token is ``owner``'s (its private packages too;
        packages/list-packages-for-authenticated-user), else ``/users/{username}/packages``
        (packages/list-packages-for-user); ``page``, ``per_page`` up to 100. github.com has been seen
        answering this listing without a ``Link`` header although more pages exist (github/community
        discussion 128552, octokit/octokit.js#2400): a ``Link: rel="next"`` is followed when sent; without
        any ``Link`` a full page asks for the next page number, and a short page ends the listing.
        """
        scoped = quote(owner, safe="")
        query: dict[str, int | str] = {"package_type": "container", "per_page": self.options.page_size}
        path = f"/orgs/{scoped}/packages"
        url = self._url(path, **query)
        what = f"list the container packages of {owner}"
        response = self._call("GET", url, what=what)
        if response.status == 404:
            mine = self._user_scope(owner) == "authenticated-user"
            path = "/user/packages" if mine else f"/users/{scoped}/packages"
            url = self._url(path, **query)
            response = self._call("GET", url, what=what)
        page, seen = 1, {url}
        while True:
            if response.status != 200:
                raise self._error(response, "GET", what, hint=_READ_HINT)
            names = _parse_package_names(response.body, what)
            yield from names
            links = response.headers.get_list("Link")
            following = next_link(links)
            page += 1
            if following:
                url = urljoin(url, following)
            elif not links and len(names) >= self.options.page_size:  # a Link without next: the last page
                url = self._url(path, **query, page=page)
            else:
                return
            if url in seen or len(seen) >= self.options.max_pages:
                raise InvalidContent(f"{what}: the API's pagination loops back to {loggable(url)}")
            if origin(url) != self._origin:
                raise InvalidContent(f"{what}: pagination Link points to another host ({loggable(url)})")
            seen.add(url)
            response = self._call("GET", url, what=what)

    def get_version(self, package: Package, version_id: int) -> PackageVersion | None:
        """One version, or None when GitHub answers 404."""
        what = f"get version {version_id} of {package}"
        response = self._call("GET", self._url(f"{package.path}/versions/{int(version_id)}"), what=what)
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._error(response, "GET", what, hint=_READ_HINT)
        return _parse_version(gojson.load(response.body, what), what)

    def delete_version(self, package: Package, version_id: int) -> DeleteOutcome:
        """Delete one version: the manifest and all its tags (delete-package-version-for-org/-user/…).

        ``"deleted"`` when this call deleted it (also when a retried attempt found it gone: the lost
        answer was ours), ``"already-deleted"`` when it was gone before. A 404 is judged by
        ``_still_active``, because GitHub also answers 404 to a token that may not manage the package.
        GitHub's refusal to delete the package's last version raises ``LastVersionRefused``.
        """
        what = f"delete version {version_id} of {package}"
        url = self._url(f"{package.path}/versions/{int(version_id)}")
        response, retried = self._exchange("DELETE", url, what=what)
        if 200 <= response.status < 300:  # 204 No Content
            return "deleted"
        if response.status == 404:
            if not self._still_active(package, version_id):
                return "deleted" if retried else "already-deleted"
            raise self._error(response, "DELETE", what, cls=Denied, hint=TOKEN_HINT)
        if response.status == 400 and _LAST_VERSION in _message(response.body).lower():
            raise self._error(response, "DELETE", what, cls=LastVersionRefused)
        raise self._error(response, "DELETE", what, hint=TOKEN_HINT)

    def delete_package(self, package: Package) -> DeleteOutcome:
        """Delete the whole package (delete-package-for-org/-user/…); restorable by GitHub for 30 days.

        A 404 is a package that is gone, unless the package still answers (then it is GitHub's 404 for
        a token that may not manage it).
        """
        what = f"delete package {package}"
        response, retried = self._exchange("DELETE", self._url(package.path), what=what)
        if 200 <= response.status < 300:
            return "deleted"
        if response.status == 404:
            probe = self._call("GET", self._url(package.path + "/versions", per_page=1), what=what)
            if probe.status == 404:
                return "deleted" if retried else "already-deleted"
            raise self._error(response, "DELETE", what, cls=Denied, hint=TOKEN_HINT)
        raise self._error(response, "DELETE", what, hint=TOKEN_HINT)

    def _still_active(self, package: Package, version_id: int) -> bool:
        """Whether a version GitHub answered 404 to a DELETE for is still an active version.

        GitHub does not document what a GET of a deleted (30-day restorable) version answers, so a
        version the GET still shows counts as active only when it has no ``deleted_at`` and the
        active listing has it too: a DELETE whose first attempt succeeded is never read as a refusal.
        """
        version = self.get_version(package, version_id)
        if version is None or version.deleted_at is not None:
            return False
        return any(v.id == version_id for v in self.iter_versions(package))

    # -- plumbing ----------------------------------------------------------------------------------

    def _user_scope(self, owner: str) -> PackageScope:
        login = self._authenticated_login()
        return "authenticated-user" if login is not None and login.lower() == owner.lower() else "user"

    def _authenticated_login(self) -> str | None:
        """``login`` of ``GET /user`` (users/get-authenticated), or None (no token, or an app token)."""
        if self._login_known:
            return self._login
        login: str | None = None
        if self._token is not None:
            response = self._call("GET", self._url("/user"), what="identify the token's user")
            if response.status == 200:
                fields = gojson.fields(gojson.load(response.body, "GET /user"), ("login",), "GET /user")
                login = gojson.as_str(fields.get("login"), "GET /user.login") or None
            elif response.status not in (401, 403):
                raise self._error(response, "GET", "identify the token's user")
        self._login, self._login_known = login, True
        return login

    def _url(self, path: str, **query: int | str) -> str:
        url = f"{self._base}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    def _guard(self, request: httpx.Request) -> None:
        """Credentials go to the configured origin only, whatever redirects or Links say."""
        if origin(str(request.url)) != self._origin:
            request.headers.pop("Authorization", None)
        elif self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"

    def _backoff(self, attempt: int) -> float:
        return self._retry_policy.backoff(attempt)

    def _call(self, method: str, url: str, *, what: str) -> _Answer:
        return self._exchange(method, url, what=what)[0]

    def _exchange(self, method: str, url: str, *, what: str) -> tuple[_Answer, bool]:
        """Send with waits and retries: the final response (body read, capped) for the caller to judge,
        and whether an attempt before it may have reached GitHub (a retried connection error or 5xx).

        Rate limits are waited out (when short) for every method: GitHub did not act on the request.
        Connection errors and 5xx are retried too; for DELETE the caller treats a later 404 as done.
        """
        attempt = 0
        limited = 0
        while True:
            if method != "GET":
                slept = self._paced(method, url, what)
                if slept:
                    log.debug("%s: paced %.1f s (GitHub's limits for mutating requests)", what, slept)
            request = self._http.build_request(method, url)
            try:
                with self._lock:
                    self.request_count += 1
                try:
                    streamed = send_following_redirects(self._http, request)
                    try:
                        body = read_capped(
                            streamed, _BODY_LIMIT, what, deadline=time.monotonic() + self.options.timeout
                        )
                    finally:
                        streamed.close()
                finally:
                    if method != "GET":
                        self._pacer.finished()
                response = _Answer(streamed.status_code, streamed.headers, body, str(streamed.url))
            except httpx.TransportError as exc:
                log.debug("%s %s failed: %s", method, loggable(url), type(exc).__name__)
                if attempt >= self.options.retries:
                    raise TransportError(f"{what}: {describe_transport_error(exc, url)}") from None
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            log.debug("%s %s -> %s", method, loggable(url), response.status)
            self._observe(response.headers)
            wait = self._rate_limit_wait(response, limited)
            if wait is not None:
                allowed = self._wait_limit() if self._wait_limit is not None else self.options.max_wait
                if wait > allowed or limited >= self.options.retries:
                    raise self._rate_limited(response, method, what, wait)
                log.debug("%s: rate limited, waiting %.1f s", what, wait)
                self._sleep(wait)
                limited += 1
                continue
            if response.status >= 500 and attempt < self.options.retries:
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            return response, attempt > 0

    def _paced(self, method: str, url: str, what: str) -> float:
        """The pacer's wait before a mutating request, bounded by ``limit_waits``."""
        limit = self._wait_limit() if self._wait_limit is not None else None
        try:
            return self._pacer.wait(limit)
        except _WaitTooLong as too_long:
            when = datetime.fromtimestamp(self._clock() + too_long.seconds, UTC)
            raise RateLimited(
                f"{what}: GitHub's rate limit is nearly spent (x-ratelimit-remaining); the next request "
                f"may go at {when:%Y-%m-%d %H:%M:%S} UTC (in {too_long.seconds:.0f} s), later than allowed",
                status=0,  # not sent: the pacer refused to wait that long
                method=method,
                url=loggable(url),
                retry_after=too_long.seconds,
                hint="run again after that time",
            ) from None

    def _observe(self, headers: httpx.Headers) -> None:
        """Feed the pacer the primary limit every answer states (absent or malformed: nothing)."""
        remaining = header_int(headers.get("x-ratelimit-remaining"))
        reset = header_int(headers.get("x-ratelimit-reset"))
        if remaining is not None and reset is not None:
            self._pacer.observe(header_int(headers.get("x-ratelimit-limit")), remaining, float(reset))

    def _rate_limit_wait(self, response: _Answer, previous: int) -> float | None:
        """Seconds GitHub asks us to wait, or None when the answer is not a rate limit."""
        if response.status not in (403, 429):
            return None
        after = retry_after(response.headers.get("retry-after"))
        if after is not None:
            return after
        if response.headers.get("x-ratelimit-remaining", "").strip() == "0":
            reset = response.headers.get("x-ratelimit-reset", "").strip()
            if reset.isdigit():
                return max(0.0, float(reset) - self._clock()) + 1.0
        message = _message(response.body).lower()
        if response.status == 429 or "rate limit" in message or "abuse" in message:
            return _SECONDARY_WAIT * (1 << min(previous, 16))
        return None

    def _rate_limited(self, response: _Answer, method: str, what: str, wait: float) -> RateLimited:
        when = datetime.fromtimestamp(self._clock() + wait, UTC)
        kind = "secondary rate limit" if "secondary" in _message(response.body).lower() else "rate limit"
        return RateLimited(
            f"{what}: GitHub's {kind} ({_message(response.body) or response.status}); "
            f"retry after {when:%Y-%m-%d %H:%M:%S} UTC (in {wait:.0f} s)",
            status=response.status,
            method=method,
            url=loggable(response.url),
            body=response.body[:4096].decode("utf-8", "replace"),
            retry_after=wait,
            hint=f"waits longer than {self.options.max_wait:.0f} s are not slept; run again after that time",
        )

    def _error(
        self,
        response: _Answer,
        method: str,
        what: str,
        *,
        cls: type[RegistryError] | None = None,
        hint: str | None = None,
    ) -> RegistryError:
        """The typed error for a final answer; ``hint`` explains a 403 (or a 404 that is a refusal)."""
        status = response.status
        message = _message(response.body)
        if cls is None:
            cls = _STATUS_CLASSES.get(status, ServerError if status >= 500 else RegistryError)
        if status in (400, 403, 422) and "download" in message.lower():
            cls, hint = InvalidRequest, _DOWNLOADS_HINT
        elif status == 401:
            hint = (
                f"set {' or '.join(self._token_names)} (or pass a token): the Packages API needs one"
                if self._token is None
                else "GitHub rejected the token (expired, revoked, or not a GitHub token)"
            )
        elif status == 403 and _sso_url(response.headers) is not None:
            cls, hint = Denied, _sso_hint(_sso_url(response.headers) or "")
        elif cls is not Denied:
            hint = None
        return cls(
            f"{what}: {method} answered {status} ({message or 'no message'})",
            status=status,
            method=method,
            url=loggable(response.url),
            body=response.body[:4096].decode("utf-8", "replace"),
            hint=hint,
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """A final HTTP answer with its (capped) body read."""

    status: int
    headers: httpx.Headers
    body: bytes = field(repr=False)
    url: str


_STATUS_CLASSES: dict[int, type[RegistryError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Denied,
    404: NotFound,
    422: InvalidRequest,
    429: RateLimited,
}


# -- parsing ---------------------------------------------------------------------------------------


def _parse_versions(raw: bytes, what: str) -> list[PackageVersion]:
    doc = gojson.load(raw, what)
    return [_parse_version(item, f"{what}[{i}]") for i, item in enumerate(gojson.as_list(doc, what))]


def _parse_package_names(raw: bytes, what: str) -> list[str]:
    """The ``name`` of each ``package`` object of a packages listing."""
    doc = gojson.load(raw, what)
    names = []
    for i, item in enumerate(gojson.as_list(doc, what)):
        name = gojson.as_str(gojson.fields(item, ("name",), f"{what}[{i}]").get("name"), f"{what}[{i}].name")
        if not name:
            raise InvalidContent(f"{what}[{i}]: a package needs a 'name'")
        names.append(name)
    return names


def _parse_version(value: Any, where: str) -> PackageVersion:
    """A ``package-version`` object (required: id, name, url, package_html_url, created_at, updated_at)."""
    f = gojson.fields(value, ("id", "name", "created_at", "updated_at", "deleted_at", "metadata"), where)
    if "id" not in f or "name" not in f:
        raise InvalidContent(f"{where}: a package version needs 'id' and 'name'")
    version_id = gojson.as_int(f.get("id"), f"{where}.id")
    name = gojson.as_str(f.get("name"), f"{where}.name")
    try:
        digest = Digest(name)
    except UsageError:
        raise InvalidContent(
            f"{where}: version {version_id} is named {name[:80]!r}, not a manifest digest "
            "(is this a container package?)"
        ) from None
    metadata = gojson.fields(f.get("metadata"), ("package_type", "container"), f"{where}.metadata")
    container = gojson.fields(metadata.get("container"), ("tags",), f"{where}.metadata.container")
    tags = tuple(
        gojson.as_str(t, f"{where}.metadata.container.tags[{i}]")
        for i, t in enumerate(gojson.as_list(container.get("tags"), f"{where}.metadata.container.tags"))
    )
    return PackageVersion(
        id=version_id,
        digest=digest,
        tags=tags,
        created_at=_time(f.get("created_at"), f"{where}.created_at"),
        updated_at=_time(f.get("updated_at"), f"{where}.updated_at"),
        deleted_at=_time(f.get("deleted_at"), f"{where}.deleted_at") if f.get("deleted_at") else None,
    )


def _time(value: Any, where: str) -> datetime:
    return gojson.parse_go_time(gojson.as_str(value, where), where).datetime


def _message(raw: bytes) -> str:
    """``message`` of a ``basic-error`` body, else the body's first line (both cut to 300 chars)."""
    try:
        doc = gojson.load(raw, "error body")
        text = gojson.as_str(gojson.fields(doc, ("message",), "error body").get("message"), "message")
    except InvalidContent:
        lines = raw.decode("utf-8", "replace").strip().splitlines()
        text = lines[0] if lines else ""
    return text.strip()[:300]


def _is_enterprise(host: str) -> bool:
    """gh's rule: every API host but github.com's and GHE.com tenancies (``api.X.ghe.com``) is Enterprise Server."""
    host = host.lower()
    return host != _GITHUB_API_HOST and not host.endswith(".ghe.com")


def _token_names(base_url: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """The environment variables that may hold a token for this API, in gh's order.

    On an Enterprise Server, ``GITHUB_TOKEN`` is that server's only inside its own workflows, which
    set ``GITHUB_API_URL`` to it; anywhere else it is a github.com token and is not sent there.
    """
    if not _is_enterprise(httpx.URL(base_url).host):
        return _ENV_TOKENS
    own_workflow = env.get("GITHUB_API_URL", "").strip().rstrip("/").lower() == base_url.rstrip("/").lower()
    return (*_ENTERPRISE_ENV_TOKENS, *(("GITHUB_TOKEN",) if own_workflow else ()))


def _pick_token(token: str | None, env: Mapping[str, str], names: Sequence[str]) -> str | None:
    for candidate in (token, *(env.get(name) for name in names)):
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return None


def _sso_url(headers: httpx.Headers) -> str | None:
    """The authorisation URL of ``X-GitHub-SSO: required; url=…`` ('' when none is given), else None."""
    value = headers.get("x-github-sso", "")
    kind, _, rest = value.partition(";")
    if kind.strip().lower() != "required":
        return None
    key, _, url = rest.strip().partition("=")
    return url.strip() if key.strip().lower() == "url" and url.strip().startswith("https://") else ""


def _sso_hint(url: str) -> str:
    where = f": {url}" if url else " (GitHub: Settings, Developer settings, the token, Configure SSO)"
    return (
        "the organisation uses SAML single sign-on and this token is not authorised for it; "
        f"authorise the token for the organisation{where}"
    )
