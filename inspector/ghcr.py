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

Rate limits follow GitHub's "Rate limits for the REST API": a 403/429 with ``retry-after`` waits that
long; with ``x-ratelimit-remaining: 0`` it waits until ``x-ratelimit-reset``; a secondary-limit message
without either waits at least a minute, doubling. Waits up to ``GhcrOptions.max_wait`` are slept,
longer ones raise ``RateLimited`` saying when to retry. Connection errors and 5xx are retried with
capped jittered backoff. A DELETE that answers 404 is checked with a GET of the same version: gone
means already deleted (a retried DELETE that had succeeded), still there means GitHub's 404 for a
token that may not manage the package.

The token (explicit, else ``GH_TOKEN``, else ``GITHUB_TOKEN``, gh's order) is sent only to the
configured API origin and never appears in messages or logs.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx

from . import _json
from ._version import __version__
from .cache import find_cache_config
from .client import _describe_transport_error as _describe
from .client import _loggable as _path
from .client import _next_link, _read_capped, _retry_after, send_following_redirects
from .digest import Digest
from .errors import (
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
from .models import ManifestDocument
from .reference import Repository, is_loopback_host, parse_repository

__all__ = [
    "DEFAULT_API_URL",
    "GHCR_HOST",
    "TOKEN_HINT",
    "CacheSelection",
    "DeleteOutcome",
    "Exclusion",
    "GhcrClient",
    "GhcrOptions",
    "Package",
    "PackageScope",
    "PackageVersion",
    "ghcr_package_name",
    "select_untagged_caches",
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
_ENV_TOKENS = ("GH_TOKEN", "GITHUB_TOKEN")  # gh's precedence
_BODY_LIMIT = 16 * 1024 * 1024
_SECONDARY_WAIT = 60.0  # GitHub: "wait for at least one minute before retrying"
_REFERENCE_TYPE = "vnd.docker.reference.type"  # BuildKit attestation manifests in an index

PackageScope = Literal["org", "user", "authenticated-user"]
DeleteOutcome = Literal["deleted", "already-deleted"]
T = TypeVar("T")
R = TypeVar("R")


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


@dataclass(frozen=True, slots=True)
class Package:
    """A container package and the endpoint family that serves it."""

    owner: str
    name: str
    scope: PackageScope

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
        return f"{GHCR_HOST}/{self.owner}/{self.name}"


@dataclass(frozen=True, slots=True)
class PackageVersion:
    """One package version: one manifest digest and every tag on it."""

    id: int
    digest: Digest
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def tagged(self) -> bool:
        return bool(self.tags)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A version ``select_untagged_caches`` keeps, and why."""

    version: PackageVersion
    reason: str


@dataclass(frozen=True, slots=True)
class CacheSelection:
    selected: tuple[PackageVersion, ...]
    excluded: tuple[Exclusion, ...]


def ghcr_package_name(repository: Repository | str) -> tuple[str, str]:
    """``(owner, name)`` of ``ghcr.io/OWNER/NAME``; NAME may contain slashes."""
    repo = parse_repository(repository) if isinstance(repository, str) else repository
    if repo.registry != GHCR_HOST:
        raise UsageError(f"{repo} is not on {GHCR_HOST}: the GitHub Packages API only serves ghcr.io")
    owner, _, name = repo.path.partition("/")
    if not name:
        raise UsageError(f"{repo}: expected ghcr.io/OWNER/NAME")
    return owner, name


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
        self._origin = _origin(str(base))
        self._token = _pick_token(token, os.environ if env is None else env)
        self._sleep = sleep
        self._clock = clock
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

    def __enter__(self) -> GhcrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def has_token(self) -> bool:
        return self._token is not None

    # -- API ---------------------------------------------------------------------------------------

    def package(self, owner: str, name: str) -> Package:
        """The package ``ghcr.io/owner/name``, its owner kind decided by the API (once per client).

        The org endpoint is asked first; on 404 the user's: ``/user/…`` when the token belongs to
        ``owner`` (private packages of the token's user are served there), else ``/users/{owner}/…``.
        """
        key = (owner.lower(), name.lower())
        with self._resolve_lock:
            known = self._packages.get(key)
            if known is not None:
                return known
            found = self._probe(Package(owner, name, "org"))
            if found is None:
                found = self._probe(Package(owner, name, self._user_scope(owner)))
            if found is None:
                raise NotFound(
                    f"no container package {name!r} owned by {owner!r} "
                    "(asked GitHub's organisation and user package endpoints)",
                    status=404,
                    method="GET",
                    url=self._origin,
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

    def package_for(self, repository: Repository | str) -> Package:
        """The package behind ``ghcr.io/OWNER/NAME``."""
        return self.package(*ghcr_package_name(repository))

    def iter_versions(self, package: Package) -> Iterator[PackageVersion]:
        """Every active version, newest first as GitHub serves them, following ``Link: rel="next"``.

        Page-number paging shifts when versions are deleted meanwhile: list everything, then delete.
        """
        url = self._url(package.path + "/versions", per_page=self.options.page_size)
        seen: set[str] = set()
        what = f"list versions of {package}"
        while url:
            if url in seen or len(seen) >= self.options.max_pages:
                raise InvalidContent(f"{what}: the API's Link pagination loops back to {_path(url)}")
            seen.add(url)
            response = self._call("GET", url, what=what)
            if response.status != 200:
                raise self._error(response, "GET", what, hint=_READ_HINT)
            yield from _parse_versions(response.body, what)
            next_url = _next_link(response.headers.get_list("Link"))
            url = urljoin(url, next_url) if next_url else ""
            if url and _origin(url) != self._origin:
                raise InvalidContent(f"{what}: pagination Link points to another host ({_path(url)})")

    def versions(self, package: Package) -> list[PackageVersion]:
        """Every active version, each once (a version seen on two pages is kept once)."""
        out: dict[int, PackageVersion] = {}
        for version in self.iter_versions(package):
            out.setdefault(version.id, version)
        return list(out.values())

    def get_version(self, package: Package, version_id: int) -> PackageVersion | None:
        """One version, or None when GitHub answers 404."""
        what = f"get version {version_id} of {package}"
        response = self._call("GET", self._url(f"{package.path}/versions/{int(version_id)}"), what=what)
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._error(response, "GET", what, hint=_READ_HINT)
        return _parse_version(_json.load(response.body, what), what)

    def delete_version(self, package: Package, version_id: int) -> DeleteOutcome:
        """Delete one version: the manifest and all its tags (delete-package-version-for-org/-user/…).

        ``"deleted"`` when this call deleted it (also when a retried attempt found it gone: the lost
        answer was ours), ``"already-deleted"`` when it was gone before. A 404 is checked with a GET of
        the version, because GitHub also answers 404 to a token that may not manage the package.
        """
        what = f"delete version {version_id} of {package}"
        url = self._url(f"{package.path}/versions/{int(version_id)}")
        response, retried = self._exchange("DELETE", url, what=what)
        if 200 <= response.status < 300:  # 204 No Content
            return "deleted"
        if response.status == 404:
            if self.get_version(package, version_id) is None:
                return "deleted" if retried else "already-deleted"
            raise self._error(response, "DELETE", what, cls=Denied, hint=TOKEN_HINT)
        raise self._error(response, "DELETE", what, hint=TOKEN_HINT)

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
                fields = _json.fields(_json.load(response.body, "GET /user"), ("login",), "GET /user")
                login = _json.as_str(fields.get("login"), "GET /user.login") or None
            elif response.status not in (401, 403):
                raise self._error(response, "GET", "identify the token's user")
        self._login, self._login_known = login, True
        return login

    def _url(self, path: str, **query: int) -> str:
        url = f"{self._base}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    def _guard(self, request: httpx.Request) -> None:
        """Credentials go to the configured origin only, whatever redirects or Links say."""
        if _origin(str(request.url)) != self._origin:
            request.headers.pop("Authorization", None)
        elif self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

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
            request = self._http.build_request(method, url)
            try:
                with self._lock:
                    self.request_count += 1
                streamed = send_following_redirects(self._http, request)
                try:
                    body = _read_capped(
                        streamed, _BODY_LIMIT, what, deadline=time.monotonic() + self.options.timeout
                    )
                finally:
                    streamed.close()
                response = _Answer(streamed.status_code, streamed.headers, body, str(streamed.url))
            except httpx.TransportError as exc:
                log.debug("%s %s failed: %s", method, _path(url), type(exc).__name__)
                if attempt >= self.options.retries:
                    raise TransportError(f"{what}: {_describe(exc, url)}") from None
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            log.debug("%s %s -> %s", method, _path(url), response.status)
            wait = self._rate_limit_wait(response, limited)
            if wait is not None:
                if wait > self.options.max_wait or limited >= self.options.retries:
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

    def _rate_limit_wait(self, response: _Answer, previous: int) -> float | None:
        """Seconds GitHub asks us to wait, or None when the answer is not a rate limit."""
        if response.status not in (403, 429):
            return None
        after = _retry_after(response.headers.get("retry-after"))
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
            url=_path(response.url),
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
                "set GH_TOKEN or GITHUB_TOKEN (or pass a token): the Packages API needs one"
                if self._token is None
                else "GitHub rejected the token (expired, revoked, or not a GitHub token)"
            )
        elif cls is not Denied:
            hint = None
        return cls(
            f"{what}: {method} answered {status} ({message or 'no message'})",
            status=status,
            method=method,
            url=_path(response.url),
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


def select_untagged_caches(
    versions: Sequence[PackageVersion],
    fetch_manifest: Callable[[Digest], ManifestDocument],
    *,
    map_bounded: Callable[[Callable[[PackageVersion], _Fetched], Sequence[PackageVersion]], list[_Fetched]]
    | None = None,
) -> CacheSelection:
    """The untagged versions that are BuildKit caches and that no image index references.

    Every version's manifest is read (``fetch_manifest(digest)``, e.g. ``RegistryClient.get_manifest``
    of ``repo@digest`` against ghcr.io; ``map_bounded`` such as ``RegistryClient.map_bounded`` fetches
    concurrently). A version is selected only when it is untagged, its manifest carries an
    ``application/vnd.buildkit.cacheconfig.v0`` config (``cache.find_cache_config``) and no index among
    the versions lists it in ``manifests[]`` — multi-arch children and attestation manifests
    (``vnd.docker.reference.*``) stay, even when shaped like a cache. Everything else is excluded with
    its reason. A manifest the registry no longer has (404) or that does not parse is excluded; other
    failures (auth, network) propagate, since without every index the children cannot be known.
    """
    fetched = (map_bounded or _map)(lambda v: _fetch(v, fetch_manifest), versions)
    referenced: dict[Digest, str] = {}
    for item in fetched:
        manifest = item.manifest
        if manifest is None or manifest.kind != "index":
            continue
        owner = _describe_version(item.version)
        for entry in manifest.manifests:
            kind = entry.annotations.get(_REFERENCE_TYPE)
            label = "attestation manifest in" if kind == "attestation-manifest" else "listed by"
            referenced.setdefault(entry.digest, f"{label} image index {owner}")
    selected: list[PackageVersion] = []
    excluded: list[Exclusion] = []
    for item in fetched:
        version = item.version
        if version.tagged:
            excluded.append(Exclusion(version, f"tagged ({', '.join(version.tags)})"))
        elif item.problem is not None:
            excluded.append(Exclusion(version, item.problem))
        elif version.digest in referenced:
            excluded.append(Exclusion(version, referenced[version.digest]))
        elif item.manifest is None or find_cache_config(item.manifest) is None:
            excluded.append(Exclusion(version, f"not a BuildKit cache ({_describe_manifest(item.manifest)})"))
        else:
            selected.append(version)
    return CacheSelection(tuple(selected), tuple(excluded))


@dataclass(frozen=True, slots=True)
class _Fetched:
    version: PackageVersion
    manifest: ManifestDocument | None
    problem: str | None = None


def _fetch(version: PackageVersion, fetch_manifest: Callable[[Digest], ManifestDocument]) -> _Fetched:
    try:
        return _Fetched(version, fetch_manifest(version.digest))
    except NotFound:
        return _Fetched(version, None, "manifest not found in the registry")
    except InvalidContent as exc:
        return _Fetched(version, None, f"unreadable manifest ({exc})")


def _map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    return [fn(item) for item in items]


def _describe_version(version: PackageVersion) -> str:
    tags = f" ({', '.join(version.tags)})" if version.tags else " (untagged)"
    return f"{version.digest.short}{tags}"


def _describe_manifest(manifest: ManifestDocument | None) -> str:
    if manifest is None:
        return "no manifest"
    if manifest.kind == "index":
        return f"{manifest.media_type} with {len(manifest.manifests)} entries"
    config = manifest.config.media_type if manifest.config is not None else "none"
    return f"{manifest.media_type}, config {config}"


# -- parsing ---------------------------------------------------------------------------------------


def _parse_versions(raw: bytes, what: str) -> list[PackageVersion]:
    doc = _json.load(raw, what)
    return [_parse_version(item, f"{what}[{i}]") for i, item in enumerate(_json.as_list(doc, what))]


def _parse_version(value: Any, where: str) -> PackageVersion:
    """A ``package-version`` object (required: id, name, url, package_html_url, created_at, updated_at)."""
    f = _json.fields(value, ("id", "name", "created_at", "updated_at", "metadata"), where)
    if "id" not in f or "name" not in f:
        raise InvalidContent(f"{where}: a package version needs 'id' and 'name'")
    version_id = _json.as_int(f.get("id"), f"{where}.id")
    name = _json.as_str(f.get("name"), f"{where}.name")
    try:
        digest = Digest(name)
    except UsageError:
        raise InvalidContent(
            f"{where}: version {version_id} is named {name[:80]!r}, not a manifest digest "
            "(is this a container package?)"
        ) from None
    metadata = _json.fields(f.get("metadata"), ("package_type", "container"), f"{where}.metadata")
    container = _json.fields(metadata.get("container"), ("tags",), f"{where}.metadata.container")
    tags = tuple(
        _json.as_str(t, f"{where}.metadata.container.tags[{i}]")
        for i, t in enumerate(_json.as_list(container.get("tags"), f"{where}.metadata.container.tags"))
    )
    return PackageVersion(
        id=version_id,
        digest=digest,
        tags=tags,
        created_at=_time(f.get("created_at"), f"{where}.created_at"),
        updated_at=_time(f.get("updated_at"), f"{where}.updated_at"),
    )


def _time(value: Any, where: str) -> datetime:
    return _json.parse_go_time(_json.as_str(value, where), where).datetime


def _message(raw: bytes) -> str:
    """``message`` of a ``basic-error`` body, else the body's first line (both cut to 300 chars)."""
    try:
        doc = _json.load(raw, "error body")
        text = _json.as_str(_json.fields(doc, ("message",), "error body").get("message"), "message")
    except InvalidContent:
        lines = raw.decode("utf-8", "replace").strip().splitlines()
        text = lines[0] if lines else ""
    return text.strip()[:300]


def _pick_token(token: str | None, env: Mapping[str, str]) -> str | None:
    for candidate in (token, *(env.get(name) for name in _ENV_TOKENS)):
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
