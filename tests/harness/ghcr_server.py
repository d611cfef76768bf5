"""A GitHub REST emulator for the Packages endpoints ``inspector.registry.github_packages`` uses, backed by a real registry.

A threaded stdlib HTTP server on 127.0.0.1 (free port, Nagle off, keep-alive). Package versions are
the registry's manifests: every digest a tag of ``OWNER/NAME`` resolves to (``tags/list`` + HEAD), plus
every digest the emulator has seen before that the registry still has (tracked untagged pushes, and
digests whose tag moved away). Deleting a version is ``DELETE /v2/OWNER/NAME/manifests/<digest>`` on the
real registry, which drops the manifest and all its tags.

Endpoints and shapes follow github/rest-api-description
(``descriptions-next/api.github.com/api.github.com.2022-11-28.yaml``)::

    GET    /orgs/{org}/packages/container/{package_name}/versions            packages/get-all-package-versions-for-package-owned-by-org
    GET    /users/{username}/packages/container/{package_name}/versions      packages/get-all-package-versions-for-package-owned-by-user
    GET    /user/packages/container/{package_name}/versions                  packages/get-all-package-versions-for-package-owned-by-authenticated-user
    GET    …/versions/{package_version_id}        packages/get-package-version-for-organization | -for-user | -for-authenticated-user
    DELETE …/versions/{package_version_id}        packages/delete-package-version-for-org | -for-user | -for-authenticated-user
    GET    /user                                   users/get-authenticated (a subset of public-user)

    GET    /orgs/{org}/packages?package_type=container          packages/list-packages-for-organization
    GET    /users/{username}/packages?package_type=container    packages/list-packages-for-user
    GET    /user/packages?package_type=container                packages/list-packages-for-authenticated-user

The packages of an owner are the backing registry's repositories under ``OWNER/`` (its ``_catalog``)
that hold a version; each is a ``package`` object (id, name, package_type, owner, version_count,
visibility, url, html_url, created_at, updated_at). ``package_type`` is a required query parameter
(GitHub: "REST API endpoints for packages", List packages for an organization / for a user); without it
the emulator answers 400. Private packages are listed only by ``/user/packages``. github.com has been
reported to answer these listings without a ``Link`` header although more pages exist (github/community
discussion 128552, octokit/octokit.js#2400): ``packages_link = False`` does the same.

    DELETE /orgs/{org}/packages/container/{package_name}   packages/delete-package-for-org (-for-user, -for-authenticated-user)

Lists page with ``page``/``per_page`` (default 30, max 100) and a GitHub-style ``Link`` header, and take
``state`` (``active``, the default, or ``deleted``); errors are ``basic-error`` bodies.

What github.com does and the OpenAPI document does not say, enforced here so that a test cannot pass
where github.com would fail (sources in ``../shared/spec/registries.md``, addendum "GitHub Packages
REST facts", and GitHub's docs named there):

* **the last version** of a package cannot be deleted: 400 "You cannot delete the last version of a
  package. You must delete the package instead." ([G11], [G12]); deleting the package is allowed;
* **content limits** ([G14], "Rate limits for the REST API", "Best practices for using the REST API"):
  per token, a DELETE less than one second after the previous one, or beyond 80 in a minute or 500 in
  an hour, is answered as GitHub answers a secondary limit — 403 with its message and ``retry-after``
  (seconds until the request would have been allowed, at least 1). Refused requests do not count;
* **deleted versions** stay restorable for 30 days ("Deleting and restoring a package", [G13]): they are
  listed with ``state=deleted``; what a GET of one answers is not documented, so ``deleted_get``
  chooses: 404 (default), 200 with ``deleted_at``, or 200 without it;
* **the primary limit** (``primary``, off by default: every answer then states 4999 of 5000 left):
  ``PrimaryLimit`` counts each token's requests in a window that starts with its first request; every
  answer states ``x-ratelimit-limit``, ``-remaining``, ``-used`` and ``-reset`` (UTC epoch seconds), and a
  request beyond the limit is answered 403 with ``x-ratelimit-remaining: 0`` and GitHub's message
  (GitHub "Rate limits for the REST API": "Checking the status of your rate limit", "Exceeding the
  rate limit");
* **SAML SSO**: an organisation in ``sso_orgs`` answers 403 with ``X-GitHub-SSO: required; url=…`` and
  GitHub's SAML message to every token ([G16], "Authorizing a personal access token for use with SAML
  single sign-on").
 Knobs: ``page_size_cap`` (serve fewer per page than asked), tokens without
delete permission (``TokenInfo.can_delete``; refused with ``deny_delete_status`` 403 or 404),
``undeletable`` digests (the 5,000-downloads refusal), private user packages (only ``/user/…`` serves
them), ``loop_links``, and scripted faults (``add_fault``): 429 with Retry-After, secondary rate limits
with and without ``retry-after``, the primary limit (``x-ratelimit-remaining: 0``), a flaky 502, a 502
*after* acting (a DELETE whose answer was lost), and a dropped connection.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import httpx

from inspector.oci import mediatypes

__all__ = [
    "LAST_VERSION_MESSAGE",
    "PACKAGE_VERSION_SCHEMA",
    "ContentLimits",
    "FakeClock",
    "Fault",
    "FaultKind",
    "GitHubEmulator",
    "PrimaryLimit",
    "RecordedRequest",
    "TokenInfo",
    "push_blob",
    "push_manifest",
]

OwnerKind = Literal["org", "user"]
FaultKind = Literal["429", "secondary", "secondary-bare", "primary", "502", "502-after", "drop"]

DOCS = "https://docs.github.com/rest/packages/packages"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID 0000:0000."
)
PRIMARY_MESSAGE = "API rate limit exceeded for user ID 1."
LAST_VERSION_MESSAGE = "You cannot delete the last version of a package. You must delete the package instead."
SSO_MESSAGE = (
    "Resource protected by organization SAML enforcement. "
    "You must grant your Personal Access token access to this organization."
)
DeletedGet = Literal["404", "deleted_at", "plain"]
#: What the emulator says when a token may not delete (the text GitHub uses for admin-only refusals).
DENY_MESSAGE = "Must have admin rights to Repository."
DOWNLOADS_MESSAGE = (
    "Publicly visible package versions with more than 5000 downloads cannot be deleted. "
    "Contact GitHub support for further assistance."
)

#: ``components/schemas/package-version`` of github/rest-api-description (2022-11-28), transcribed.
PACKAGE_VERSION_SCHEMA: dict[str, Any] = {
    "title": "Package Version",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "url": {"type": "string"},
        "package_html_url": {"type": "string"},
        "html_url": {"type": "string"},
        "license": {"type": "string"},
        "description": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "deleted_at": {"type": "string", "format": "date-time"},
        "metadata": {
            "type": "object",
            "properties": {
                "package_type": {
                    "type": "string",
                    "enum": ["npm", "maven", "rubygems", "docker", "nuget", "container"],
                },
                "container": {
                    "type": "object",
                    "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
                    "required": ["tags"],
                },
            },
            "required": ["package_type"],
        },
    },
    "required": ["id", "name", "url", "package_html_url", "created_at", "updated_at"],
}

_ACCEPT = ", ".join(
    (
        mediatypes.OCI_MANIFEST,
        mediatypes.OCI_INDEX,
        mediatypes.DOCKER_MANIFEST,
        mediatypes.DOCKER_MANIFEST_LIST,
    )
)


class FakeClock:
    """A clock that moves only when slept on: share ``time`` with the emulator, ``sleep`` with the client."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


class ContentLimits:
    """GitHub's limits on content-changing requests, per token (registries.md addendum [G14])."""

    def __init__(self, min_interval: float = 1.0, per_minute: int = 80, per_hour: int = 500) -> None:
        self.min_interval = min_interval
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._sent: dict[str, list[float]] = {}

    def admit(self, token: str, now: float) -> int | None:
        """None when the request may go (it is counted), else the ``retry-after`` seconds."""
        sent = [t for t in self._sent.get(token, []) if t > now - 3600.0]
        allowed = now
        if sent:
            allowed = max(allowed, sent[-1] + self.min_interval)
        minute = [t for t in sent if t > now - 60.0]
        if len(minute) >= self.per_minute:
            allowed = max(allowed, minute[len(minute) - self.per_minute] + 60.0)
        if len(sent) >= self.per_hour:
            allowed = max(allowed, sent[len(sent) - self.per_hour] + 3600.0)
        if allowed > now:
            self._sent[token] = sent
            return max(1, math.ceil(allowed - now))
        self._sent[token] = [*sent, now]
        return None


class PrimaryLimit:
    """GitHub's primary limit, per token: ``limit`` requests per ``window`` seconds (5,000 an hour for a
    personal access token), the window starting with the token's first request."""

    def __init__(self, limit: int = 5000, window: float = 3600.0) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, tuple[float, int]] = {}  # token -> (window start, requests in it)

    def take(self, token: str, now: float) -> tuple[dict[str, str], bool]:
        """Count one request: the headers its answer states, and whether it is within the limit."""
        start, used = self._windows.get(token, (now, 0))
        if now >= start + self.window:
            start, used = now, 0
        admitted = used < self.limit
        if admitted:
            used += 1
        self._windows[token] = (start, used)
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.limit - used),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(math.ceil(start + self.window)),
        }
        return headers, admitted


@dataclass(frozen=True)
class TokenInfo:
    """A token the emulator accepts. ``login`` None = an app/installation token (``GET /user`` is 403)."""

    login: str | None
    can_delete: bool = True


@dataclass
class Fault:
    """A scripted failure for the next ``times`` matching requests."""

    kind: FaultKind
    method: str | None = None
    path_contains: str | None = None
    times: int = 1
    seconds: int = 5  # Retry-After, or how far ahead x-ratelimit-reset is

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; ``auth`` is the Authorization scheme only, never the token."""

    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    auth: str | None
    status: int = 0
    at: float = 0.0  # the emulator's clock when the request arrived


@dataclass
class _Version:
    id: int
    digest: str
    created: float
    tags: tuple[str, ...] = ()
    deleted_at: float | None = None


@dataclass
class _Package:
    versions: dict[str, _Version] = field(default_factory=dict)  # digest -> version
    deleted: dict[int, _Version] = field(default_factory=dict)  # id -> soft-deleted version


class GitHubEmulator:
    """Start with ``with GitHubEmulator(...) as github:``; ``github.url`` is the API base URL."""

    def __init__(
        self,
        registry_host: str,
        *,
        owners: dict[str, OwnerKind],
        tokens: dict[str, TokenInfo],
        page_size_cap: int = 100,
        deny_delete_status: int = 403,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry_host = registry_host
        self.owners = owners
        self.tokens = tokens
        self.page_size_cap = page_size_cap
        self.deny_delete_status = deny_delete_status
        self.clock = clock
        self.undeletable: set[str] = set()
        self.private: set[tuple[str, str]] = set()
        self.sso_orgs: set[str] = set()
        self.deleted_get: DeletedGet = "404"
        self.limits: ContentLimits | None = ContentLimits()
        self.primary: PrimaryLimit | None = None
        self.fake_clock: FakeClock | None = None  # set by tests whose clients sleep on the emulator's clock
        self.loop_links = False
        self.packages_link = True  # False: package listings page without a Link header (module docstring)
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []  # exceptions inside the emulator (a test should see none)
        self._faults: list[Fault] = []
        self._packages: dict[str, _Package] = {}
        self._next_id = 1000
        self._lock = threading.RLock()
        self._registry = httpx.Client(base_url=f"http://{registry_host}", timeout=10)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.emulator = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="github-emulator",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> GitHubEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._registry.close()

    # -- test controls -----------------------------------------------------------------------------

    def add_fault(self, kind: FaultKind, **kwargs: Any) -> Fault:
        fault = Fault(kind, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def push_manifest(
        self, owner: str, name: str, raw: bytes, media_type: str, *, tag: str | None = None
    ) -> str:
        """PUT a manifest into the backing registry (by digest unless ``tag``) and remember its digest."""
        digest = push_manifest(self.registry_host, f"{owner}/{name}", raw, media_type, tag=tag)
        self.track(owner, name, digest)
        return digest

    def track(self, owner: str, name: str, digest: str) -> int:
        """Remember a manifest pushed by digest (GitHub sees every pushed manifest); returns its id."""
        with self._lock:
            return self._version(f"{owner}/{name}", digest).id

    def version_id(self, owner: str, name: str, digest: str) -> int:
        with self._lock:
            return self._packages[f"{owner}/{name}"].versions[digest].id

    def paths(self, method: str | None = None) -> list[str]:
        return [r.raw_path for r in self.requests if method is None or r.method == method]

    # -- the model ---------------------------------------------------------------------------------

    def _version(self, repo: str, digest: str) -> _Version:
        package = self._packages.setdefault(repo, _Package())
        version = package.versions.get(digest)
        if version is None:
            self._next_id += 1
            version = _Version(self._next_id, digest, self.clock())
            package.versions[digest] = version
        return version

    def _live_versions(self, repo: str) -> list[_Version] | None:
        """The package's versions, newest first, or None when the registry has no such repository."""
        tags_response = self._registry.get(f"/v2/{repo}/tags/list", params={"n": "10000"})
        tags: list[str] = []
        if tags_response.status_code == 200:
            tags = list(tags_response.json().get("tags") or [])
        elif tags_response.status_code != 404:
            raise RuntimeError(f"tags/list {repo}: {tags_response.status_code}")
        by_digest: dict[str, list[str]] = {}
        for tag in tags:
            head = self._registry.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": _ACCEPT})
            if head.status_code == 200:
                by_digest.setdefault(head.headers["Docker-Content-Digest"], []).append(tag)
        with self._lock:
            for digest in by_digest:
                self._version(repo, digest)
            package = self._packages.get(repo)
            known = list(package.versions.values()) if package else []
        live: list[_Version] = []
        for version in known:
            if version.digest not in by_digest:
                head = self._registry.head(
                    f"/v2/{repo}/manifests/{version.digest}", headers={"Accept": _ACCEPT}
                )
                if head.status_code != 200:
                    continue
            version.tags = tuple(sorted(by_digest.get(version.digest, ())))
            live.append(version)
        if tags_response.status_code == 404 and not live:
            return None
        return sorted(live, key=lambda v: v.id, reverse=True)

    def _delete(self, repo: str, version: _Version) -> None:
        response = self._registry.delete(f"/v2/{repo}/manifests/{version.digest}")
        if response.status_code not in (202, 404):
            raise RuntimeError(
                f"registry DELETE {version.digest}: {response.status_code} {response.text[:200]}"
            )
        with self._lock:
            package = self._packages[repo]
            package.versions.pop(version.digest, None)
            version.deleted_at = self.clock()
            package.deleted[version.id] = version

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: GitHubEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):  # a dropped connection is a scripted fault
            self.emulator.errors.append(repr(exc))


@dataclass(frozen=True)
class _Route:
    scope: Literal["org", "user", "authenticated-user"]
    owner: str
    name: str
    version_id: int | None
    package_only: bool = False  # …/packages/container/{name} itself


def _packages_route(segments: list[str], login: str | None) -> tuple[str, str] | None:
    """``(scope, owner)`` of ``/orgs/X/packages``, ``/users/X/packages`` or ``/user/packages``."""
    if len(segments) == 3 and segments[0] in ("orgs", "users") and segments[2] == "packages":
        return ("org" if segments[0] == "orgs" else "user"), segments[1]
    if segments == ["user", "packages"] and login is not None:
        return "authenticated-user", login
    return None


def _route(segments: list[str], login: str | None) -> _Route | None:
    """Match ``…/packages/container/{name}/versions[/{id}]`` under /orgs/X, /users/X or /user."""
    scope: Literal["org", "user", "authenticated-user"]
    if len(segments) >= 2 and segments[0] in ("orgs", "users"):
        scope = "org" if segments[0] == "orgs" else "user"
        owner, rest = segments[1], segments[2:]
    elif segments and segments[0] == "user" and login is not None:
        scope, owner, rest = "authenticated-user", login, segments[1:]
    else:
        return None
    if len(rest) == 3 and rest[:2] == ["packages", "container"]:
        return _Route(scope, owner, rest[2], None, package_only=True)
    if len(rest) not in (4, 5) or rest[:2] != ["packages", "container"] or rest[3] != "versions":
        return None
    version_id: int | None = None
    if len(rest) == 5:
        if not rest[4].isdigit():
            return None
        version_id = int(rest[4])
    return _Route(scope, owner, rest[2], version_id)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    _record: RecordedRequest

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing ----------------------------------------------------------------------------------

    @property
    def emulator(self) -> GitHubEmulator:
        return self.server.emulator

    def _handle(self, method: str) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        query = parse_qs(raw_query)
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            token = ""
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        self._record = RecordedRequest(
            method, raw_path, query, headers, scheme or None, at=self.emulator.clock()
        )
        self._ratelimit: dict[str, str] = {}
        try:
            self._dispatch(method, raw_path, query, token.strip())
        except Exception as exc:  # the emulator's own failure: answer 500 and let the test see it
            self.emulator.errors.append(f"{method} {raw_path}: {exc!r}")
            self._json(500, {"message": f"emulator error: {exc}"})

    def _log_request(self, status: int) -> None:
        """Recorded before the answer is written, so a client never sees an answer that is not logged."""
        record = self._record
        with self.emulator._lock:
            self.emulator.requests.append(
                RecordedRequest(
                    record.method,
                    record.raw_path,
                    record.query,
                    record.headers,
                    record.auth,
                    status,
                    record.at,
                )
            )

    def _dispatch(self, method: str, raw_path: str, query: dict[str, list[str]], token: str) -> int:
        emulator = self.emulator
        fault = emulator._take_fault(method, raw_path)
        if fault is not None and fault.kind != "502-after":
            return self._fault(fault)
        info = emulator.tokens.get(token) if token else None
        if not token:
            return self._json(401, {"message": "Requires authentication", "documentation_url": DOCS})
        if info is None:
            return self._json(
                401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
            )
        if emulator.primary is not None:
            with emulator._lock:
                self._ratelimit, admitted = emulator.primary.take(token, emulator.clock())
            if not admitted:
                return self._json(403, {"message": PRIMARY_MESSAGE, "documentation_url": DOCS})
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        if segments == ["user"] and method == "GET":
            if info.login is None:
                return self._json(
                    403, {"message": "Resource not accessible by integration", "documentation_url": DOCS}
                )
            user_id = abs(hash(info.login)) % 10**8
            return self._json(
                200,
                {
                    "login": info.login,
                    "id": user_id,
                    "node_id": f"U_{user_id}",
                    "type": "User",
                    "site_admin": False,
                    "user_view_type": "public",
                },
            )
        if method == "DELETE" and emulator.limits is not None:
            with emulator._lock:
                wait = emulator.limits.admit(token, emulator.clock())
            if wait is not None:  # GitHub's secondary limit (registries.md [G14])
                body = {"message": SECONDARY_MESSAGE, "documentation_url": DOCS}
                return self._json(403, body, {"retry-after": str(wait)})
        listing = _packages_route(segments, info.login)
        if listing is not None and method == "GET":
            return self._packages(listing, raw_path, query)
        route = _route(segments, info.login)
        if route is None:
            return self._json(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            )
        if route.scope == "org" and route.owner in emulator.sso_orgs:
            sso = f"url=https://github.com/orgs/{route.owner}/sso?authorization_request=EMULATED0000"
            return self._json(
                403, {"message": SSO_MESSAGE, "documentation_url": DOCS}, {"X-GitHub-SSO": f"required; {sso}"}
            )
        expected = "org" if route.scope == "org" else "user"
        if emulator.owners.get(route.owner) != expected:
            return self._json(404, {"message": "Not Found", "documentation_url": DOCS})
        if route.scope == "user" and (route.owner, route.name) in emulator.private:
            return self._json(404, {"message": "Package not found.", "documentation_url": DOCS})
        repo = f"{route.owner}/{route.name}"
        versions = emulator._live_versions(repo)
        if not versions:  # a package exists while it has a version
            return self._json(404, {"message": "Package not found.", "documentation_url": DOCS})
        if route.package_only:
            if method != "DELETE" or not versions:
                return self._json(404, {"message": "Not Found", "documentation_url": DOCS})
            if not info.can_delete:
                return self._refuse_delete()
            for each in versions:  # the package goes with every version (restorable for 30 days)
                emulator._delete(repo, each)
            return self._empty(204)
        if route.version_id is None:
            if method != "GET":
                return self._json(404, {"message": "Not Found", "documentation_url": DOCS})
            if query.get("state", ["active"])[0] == "deleted":
                with emulator._lock:
                    gone = sorted(emulator._packages[repo].deleted.values(), key=lambda v: -v.id)
                return self._list(route, raw_path, query, gone)
            return self._list(route, raw_path, query, versions)
        version = next((v for v in versions if v.id == route.version_id), None)
        if version is None:
            with emulator._lock:
                deleted = emulator._packages[repo].deleted.get(route.version_id)
            if method == "GET" and deleted is not None and emulator.deleted_get != "404":
                shown = self._version_json(route, deleted)
                if emulator.deleted_get == "plain":
                    shown.pop("deleted_at", None)
                return self._json(200, shown)
            return self._json(404, {"message": "Package not found.", "documentation_url": DOCS})
        if method == "GET":
            return self._json(200, self._version_json(route, version))
        if not info.can_delete:
            return self._refuse_delete()
        if version.digest in emulator.undeletable:
            return self._json(400, {"message": DOWNLOADS_MESSAGE, "documentation_url": DOCS})
        if len(versions) == 1:  # registries.md [G11] [G12]
            return self._json(400, {"message": LAST_VERSION_MESSAGE, "documentation_url": DOCS})
        emulator._delete(repo, version)
        if fault is not None:  # 502-after: acted, then the answer is lost
            return self._fault(Fault("502"))
        return self._empty(204)

    def _packages(self, listing: tuple[str, str], raw_path: str, query: dict[str, list[str]]) -> int:
        """An owner's container packages, paged as the versions are (``_list``)."""
        scope, owner = listing
        emulator = self.emulator
        if query.get("package_type", [""])[0] != "container":
            if "package_type" not in query:
                return self._json(400, {"message": "package_type is required", "documentation_url": DOCS})
            return self._json(200, [])  # npm, maven, ...: none here
        if emulator.owners.get(owner) != ("org" if scope == "org" else "user"):
            return self._json(404, {"message": "Not Found", "documentation_url": DOCS})
        names = [repo.split("/", 1)[1] for repo in self._catalog() if repo.startswith(owner + "/")]
        visible = [
            name
            for name in names
            if not (scope == "user" and (owner, name) in emulator.private)
            and emulator._live_versions(f"{owner}/{name}")
        ]
        packages = [self._package_json(scope, owner, name) for name in sorted(visible)]
        return self._list_page(raw_path, query, packages, links=emulator.packages_link)

    def _catalog(self) -> list[str]:
        """Every repository of the backing registry (its ``_catalog``, 1000 a page: distribution's most)."""
        names: list[str] = []
        url: str | None = "/v2/_catalog?n=1000"
        while url:
            answer = self.emulator._registry.get(url)
            answer.raise_for_status()
            names += answer.json().get("repositories") or []
            url = answer.links.get("next", {}).get("url")
        return names

    def _package_json(self, scope: str, owner: str, name: str) -> dict[str, Any]:
        emulator = self.emulator
        with emulator._lock:
            package = emulator._packages.get(f"{owner}/{name}")
            versions = list(package.versions.values()) if package else []
        first = min((v.created for v in versions), default=emulator.clock())
        stamp = datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        owner_path = f"orgs/{owner}" if scope == "org" else f"users/{owner}"
        quoted = quote(name, safe="")
        return {
            "id": abs(hash((owner, name))) % 10**8,
            "name": name,
            "package_type": "container",
            "owner": {"login": owner, "type": "Organization" if scope == "org" else "User"},
            "version_count": len(versions),
            "visibility": "private" if (owner, name) in emulator.private else "public",
            "url": f"{emulator.url}/{owner_path}/packages/container/{quoted}",
            "html_url": f"https://github.com/{owner_path}/packages/container/package/{quoted}",
            "created_at": stamp,
            "updated_at": stamp,
        }

    def _refuse_delete(self) -> int:
        status = self.emulator.deny_delete_status
        message = DENY_MESSAGE if status == 403 else "Package not found."
        return self._json(status, {"message": message, "documentation_url": DOCS})

    def _list(self, route: _Route, raw_path: str, query: dict[str, list[str]], versions: list[Any]) -> int:
        return self._list_page(raw_path, query, [self._version_json(route, v) for v in versions])

    def _list_page(
        self, raw_path: str, query: dict[str, list[str]], items: list[Any], *, links: bool = True
    ) -> int:
        emulator = self.emulator
        try:
            per_page = int(query.get("per_page", ["30"])[0])
            page = int(query.get("page", ["1"])[0])
        except ValueError:
            return self._json(400, {"message": "Invalid page or per_page", "documentation_url": DOCS})
        per_page = max(1, min(per_page, 100, emulator.page_size_cap))
        page = max(page, 1)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers: list[str] = []

        def link(target: int, rel: str) -> str:
            params = {k: v[0] for k, v in query.items()}  # GitHub echoes the query it was given
            params["page"] = str(target)
            return f'<{emulator.url}{raw_path}?{urlencode(params)}>; rel="{rel}"'

        if not links:
            pass  # no Link at all, as github.com answers some listings
        elif emulator.loop_links:
            headers.append(link(1, "next"))
        elif page < last:
            headers += [link(page + 1, "next"), link(last, "last")]
        if links and page > 1:
            headers += [link(page - 1, "prev"), link(1, "first")]
        return self._json(200, chunk, {"Link": ", ".join(headers)} if headers else None)

    def _version_json(self, route: _Route, version: Any) -> dict[str, Any]:
        owner_path = {"org": f"orgs/{route.owner}", "user": f"users/{route.owner}"}.get(
            route.scope, f"users/{route.owner}"
        )
        api_prefix = {"org": f"/orgs/{route.owner}", "user": f"/users/{route.owner}"}.get(
            route.scope, "/user"
        )
        name = quote(route.name, safe="")
        stamp = datetime.fromtimestamp(version.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        deleted = (
            {"deleted_at": datetime.fromtimestamp(version.deleted_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            if version.deleted_at is not None
            else {}
        )
        return {
            "id": version.id,
            "name": version.digest,
            "url": f"{self.emulator.url}{api_prefix}/packages/container/{name}/versions/{version.id}",
            "package_html_url": f"https://github.com/{owner_path}/packages/container/package/{name}",
            "created_at": stamp,
            "updated_at": stamp,
            "html_url": f"https://github.com/{owner_path}/packages/container/{name}/{version.id}",
            "metadata": {"package_type": "container", "container": {"tags": list(version.tags)}},
            **deleted,
        }

    def _fault(self, fault: Fault) -> int:
        reset = str(int(self.emulator.clock()) + fault.seconds)
        if fault.kind == "drop":
            self._log_request(0)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return 0
        if fault.kind == "429":
            body = {"message": SECONDARY_MESSAGE, "documentation_url": DOCS}
            return self._json(429, body, {"Retry-After": str(fault.seconds)})
        if fault.kind == "secondary":
            body = {"message": SECONDARY_MESSAGE, "documentation_url": DOCS}
            return self._json(403, body, {"retry-after": str(fault.seconds)})
        if fault.kind == "secondary-bare":
            return self._json(403, {"message": SECONDARY_MESSAGE, "documentation_url": DOCS})
        if fault.kind == "primary":
            body = {"message": PRIMARY_MESSAGE, "documentation_url": DOCS}
            return self._json(403, body, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
        return self._json(502, {"message": "Server Error"})

    def _headers(self, status: int, extra: dict[str, str] | None, length: int) -> None:
        self._log_request(status)
        self.send_response(status)
        defaults = {
            "X-GitHub-Api-Version-Selected": self.headers.get("X-GitHub-Api-Version", "2022-11-28"),
            "X-GitHub-Request-Id": uuid.uuid4().hex[:16].upper(),
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(self.emulator.clock()) + 3600),
            "x-ratelimit-resource": "core",
            "Content-Length": str(length),
        }
        for key, value in {**defaults, **getattr(self, "_ratelimit", {}), **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()

    def _json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> int:
        data = json.dumps(body).encode()
        self._headers(status, {"Content-Type": "application/json; charset=utf-8", **(extra or {})}, len(data))
        self.wfile.write(data)
        return status

    def _empty(self, status: int) -> int:
        self._headers(status, None, 0)
        return status


# -- pushing content into the backing registry ------------------------------------------------------


def push_blob(registry_host: str, repo: str, data: bytes) -> str:
    """Monolithic blob upload (POST + PUT ?digest=); returns the digest."""
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=f"http://{registry_host}", timeout=10) as client:
        started = client.post(f"/v2/{repo}/blobs/uploads/")
        if started.status_code != 202:
            raise RuntimeError(f"blob upload to {repo}: {started.status_code} {started.text[:200]}")
        location = started.headers["Location"]
        separator = "&" if urlsplit(location).query else "?"
        done = client.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise RuntimeError(f"blob PUT {digest}: {done.status_code} {done.text[:200]}")
    return digest


def push_manifest(
    registry_host: str, repo: str, raw: bytes, media_type: str, *, tag: str | None = None
) -> str:
    """PUT a manifest by digest (or by ``tag``); returns the digest the registry reports."""
    import hashlib

    reference = tag or "sha256:" + hashlib.sha256(raw).hexdigest()
    response = httpx.put(
        f"http://{registry_host}/v2/{repo}/manifests/{reference}",
        content=raw,
        headers={"Content-Type": media_type},
        timeout=10,
    )
    if response.status_code != 201:
        raise RuntimeError(f"PUT {repo}:{reference}: {response.status_code} {response.text[:300]}")
    return response.headers["Docker-Content-Digest"]
