"""A small threaded HTTP proxy on 127.0.0.1 in front of the real test registry, emulating vendors.

Every request is forwarded to the registry unchanged (Host header included, so the registry's
``Location`` headers point back at the proxy), except the requests a vendor profile answers
itself. Each emulated answer reproduces a behaviour documented in
``shared/spec/registries.md`` and names its source id there in an ``X-Emulated-By`` header
(``ecr [E1]``); where the note records only a status (no body), the emulation sends only that.

Profiles that change delete semantics keep a little state: the proxy remembers which digest
each tag was pushed with, so "untag" (Google, Quay) can hide a tag without the registry below
(distribution 2.8 cannot untag) and "still referenced by a tag" can be answered.

``proxy.log`` records every request (method, path, status, source id or None) for assertions
such as "the probe never sent a DELETE".
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = [
    "PROFILES",
    "Composite",
    "LogEntry",
    "Profile",
    "ProxyRequest",
    "ProxyResponse",
    "RateLimit",
    "Storage",
    "VendorProxy",
    "check_junit",
    "seed_repository",
    "storage_state",
    "vendor_proxy",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}
)
_PATH = re.compile(
    r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs/uploads|blobs|tags/list|referrers)(?:/(?P<ref>[^/]*))?/?$"
)


@dataclass
class ProxyRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lowercased names
    body: bytes
    repo: str | None = None
    kind: str | None = None  # manifests, blobs, blobs/uploads, tags/list, referrers, catalog, base
    ref: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip()

    @property
    def is_digest(self) -> bool:
        return bool(self.ref and self.ref.startswith("sha256:"))


@dataclass
class ProxyResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class LogEntry:
    method: str
    path: str
    query: str
    status: int
    source: str | None


def oci_error(
    status: int,
    code: str,
    message: str,
    emulated: str,
    *,
    detail: object = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> ProxyResponse:
    """A distribution error envelope, marked with the profile and source it reproduces."""
    entry: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    body = json.dumps({"errors": [entry]}).encode()
    return ProxyResponse(
        status, [("Content-Type", "application/json"), ("X-Emulated-By", emulated), *headers], body
    )


def raw_answer(status: int, body: bytes, emulated: str, content_type: str = "text/plain") -> ProxyResponse:
    return ProxyResponse(status, [("Content-Type", content_type), ("X-Emulated-By", emulated)], body)


class Profile:
    """Forwards everything. Subclasses answer some requests (``answer``) or rewrite answers (``adjust``)."""

    name = "distribution"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        return None

    def adjust(self, proxy: VendorProxy, request: ProxyRequest, response: ProxyResponse) -> ProxyResponse:
        return response

    def mark(self, source: str) -> str:
        return f"{self.name} [{source}]"


class Composite(Profile):
    """Several profiles: the first that answers wins; every ``adjust`` applies in order."""

    def __init__(self, *profiles: Profile) -> None:
        self.profiles = profiles
        self.name = "+".join(p.name for p in profiles)

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        for profile in self.profiles:
            found = profile.answer(proxy, request)
            if found is not None:
                return found
        return None

    def adjust(self, proxy: VendorProxy, request: ProxyRequest, response: ProxyResponse) -> ProxyResponse:
        for profile in self.profiles:
            response = profile.adjust(proxy, request, response)
        return response


class _Untagging(Profile):
    """Shared by vendors whose tag DELETE only untags (Google, Quay ≥ 3.13): the proxy hides the tag."""

    untag_source = ""

    def untag(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse:
        assert request.repo is not None and request.ref is not None
        if proxy.live_digest(request.repo, request.ref) is None:
            return oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown", self.mark(self.untag_source))
        proxy.hide_tag(request.repo, request.ref)
        return ProxyResponse(202, [("X-Emulated-By", self.mark(self.untag_source))], b"")

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "manifests" and request.method in ("GET", "HEAD") and not request.is_digest:
            assert request.repo is not None and request.ref is not None
            if proxy.is_hidden(request.repo, request.ref):
                return oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown", self.mark(self.untag_source))
        return None

    def adjust(self, proxy: VendorProxy, request: ProxyRequest, response: ProxyResponse) -> ProxyResponse:
        if request.kind == "tags/list" and response.status == 200 and request.repo is not None:
            doc = json.loads(response.body)
            doc["tags"] = [t for t in doc.get("tags") or [] if not proxy.is_hidden(request.repo, t)]
            return replace_body(response, json.dumps(doc).encode())
        return response


def replace_body(response: ProxyResponse, body: bytes) -> ProxyResponse:
    headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
    return ProxyResponse(response.status, headers, body)


def _first_child(body: bytes) -> str:
    try:
        return str(json.loads(body)["manifests"][0]["digest"])
    except (ValueError, KeyError, IndexError, TypeError):
        return "sha256:unknown"


class Ecr(Profile):
    """AWS ECR: index and list caches refused; a missing repository is NAME_UNKNOWN."""

    name = "ecr"

    def __init__(self, missing_repositories: tuple[str, ...] = ()) -> None:
        self.missing = missing_repositories

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.repo in self.missing:
            # [E14]: what ECR answers for a repository that does not exist.
            return oci_error(
                404,
                "NAME_UNKNOWN",
                f"The repository with name '{request.repo}' does not exist in the registry with id '123456789012'",
                self.mark("E14"),
            )
        if request.kind == "manifests" and request.method == "PUT":
            if request.content_type == DOCKER_LIST:
                # [E1]: the body ECR sent for a Docker manifest list cache, verbatim (no errors array).
                body = json.dumps(
                    {"code": "UNSUPPORTED", "message": f'Unsupported manifest type: "{DOCKER_LIST}"'}
                ).encode()
                return raw_answer(400, body, self.mark("E1"), "application/json")
            if request.content_type == OCI_INDEX:
                # [E5][E6][S1]: "400 Bad Request"; the body after 2020 is unknown, so none is sent.
                return raw_answer(400, b"", self.mark("E5"))
        return None


class _GoogleDeletes(_Untagging):
    """Tag DELETE untags; digest DELETE while a tag points at it: GOOGLE_MANIFEST_DANGLING_TAG."""

    untag_source = "C2"
    dangling_source = "C2"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "manifests" and request.method == "DELETE":
            assert request.repo is not None and request.ref is not None
            if not request.is_digest:
                return self.untag(proxy, request)
            tags = proxy.live_tags(request.repo, request.ref)
            if tags:
                return oci_error(
                    400,
                    "GOOGLE_MANIFEST_DANGLING_TAG",
                    f"Manifest is still referenced by tag: {tags[0]}",
                    self.mark(self.dangling_source),
                )
            return None
        return super().answer(proxy, request)


class Gcr(_GoogleDeletes):
    """Legacy gcr.io: index cache refused [C1]; list refused with a 400 whose body was not captured [C1]."""

    name = "gcr"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "manifests" and request.method == "PUT":
            if request.content_type == OCI_INDEX:
                return oci_error(
                    400,
                    "MANIFEST_INVALID",
                    f'Failed to parse manifest for request "/v2/{request.repo}/manifests/{request.ref}": Image '
                    "index child manifest not supported: application/vnd.oci.image.layer.v1.tar+gzip.",
                    self.mark("C1"),
                )
            if request.content_type == DOCKER_LIST:
                return raw_answer(400, b"", self.mark("C1"))
        return super().answer(proxy, request)


class ArtifactRegistry(_GoogleDeletes):
    """Google Artifact Registry: stores every cache form here; deletes like GCR [C4]."""

    name = "artifact-registry"
    untag_source = "C4"
    dangling_source = "C4"


class Quay(_Untagging):
    """Quay: both legacy forms refused [Q3][Q1]; tag DELETE (≥ 3.13) untags [Q2]; untagged digest 404 [Q1]."""

    name = "quay"
    untag_source = "Q2"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "manifests" and request.method == "PUT":
            if request.content_type == DOCKER_LIST:
                return oci_error(
                    400,
                    "MANIFEST_INVALID",
                    "manifest data does not match schema: 'platform' is a required property",
                    self.mark("Q3"),
                )
            if request.content_type == OCI_INDEX:
                return oci_error(
                    400,
                    "MANIFEST_INVALID",
                    f"failed to parse manifest: Could not find child manifest with digest {_first_child(request.body)}",
                    self.mark("Q1"),
                )
        if request.kind == "manifests" and request.method == "DELETE":
            assert request.repo is not None and request.ref is not None
            if not request.is_digest:
                return self.untag(proxy, request)
            if not proxy.live_tags(request.repo, request.ref):
                return oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown", self.mark("Q1"))
            return None
        return super().answer(proxy, request)


class Harbor(Profile):
    """Harbor: index/list PUT 404 (children must be artifacts) [H1][H3]; tag DELETE 400 UNSUPPORTED [H1]."""

    name = "harbor"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if (
            request.kind == "manifests"
            and request.method == "PUT"
            and request.content_type in (OCI_INDEX, DOCKER_LIST)
        ):
            # Status from [H1][H2][H3]; the message is illustrative (the note quotes only "404 Not Found").
            return oci_error(
                404,
                "NOT_FOUND",
                f"artifact {request.repo}@{_first_child(request.body)} not found",
                self.mark("H1"),
            )
        if request.kind == "manifests" and request.method == "DELETE" and not request.is_digest:
            return oci_error(400, "UNSUPPORTED", f"unsupported digest {request.ref}", self.mark("H1"))
        return None


class Ghcr(Profile):
    """GHCR: no DELETE through /v2 (405 UNSUPPORTED) [G3]; referrers 404 [G8]; no catalog [G6]."""

    name = "ghcr"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "manifests" and request.method == "DELETE":
            return oci_error(405, "UNSUPPORTED", "The operation is unsupported.", self.mark("G3"))
        if request.kind == "referrers":
            return oci_error(404, "NOT_FOUND", "not found", self.mark("G8"))
        if request.kind == "catalog":
            # [G6] says "not supported"; the status is not recorded there, 404 is assumed.
            return oci_error(404, "NOT_FOUND", "not found", self.mark("G6"))
        return None


class DockerHub(Profile):
    """Docker Hub: digest-only, untagged-only DELETE [D1]; no referrers [D5]; tags paginated with Link [D8]."""

    name = "docker-hub"
    page_size = 100

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "manifests" and request.method == "DELETE":
            assert request.repo is not None and request.ref is not None
            if not request.is_digest:
                return oci_error(405, "UNSUPPORTED", "Only digest-based deletion is allowed", self.mark("D1"))
            if proxy.live_tags(request.repo, request.ref):
                # [D1]: 403 while tagged or referenced; the message text is not recorded there.
                return oci_error(403, "DENIED", "the manifest is still tagged", self.mark("D1"))
            return None
        if request.kind == "referrers":
            return oci_error(404, "NOT_FOUND", "not found", self.mark("D5"))
        return None

    def adjust(self, proxy: VendorProxy, request: ProxyRequest, response: ProxyResponse) -> ProxyResponse:
        if request.kind != "tags/list" or response.status != 200 or request.repo is None:
            return response
        doc = json.loads(response.body)
        tags = sorted(doc.get("tags") or [])
        n = int(request.query.get("n", [str(self.page_size)])[0])
        last = request.query.get("last", [""])[0]
        rest = [t for t in tags if t > last] if last else tags
        page = rest[:n]
        headers = [(k, v) for k, v in response.headers if k.lower() not in ("content-length", "link")]
        if len(rest) > n:
            query = urlencode({"n": n, "last": page[-1]})
            headers.append(("Link", f'</v2/{request.repo}/tags/list?{query}>; rel="next"'))
        headers.append(("X-Emulated-By", self.mark("D8")))
        return ProxyResponse(200, headers, json.dumps({"name": request.repo, "tags": page}).encode())


class FalseReferrers(Profile):
    """A registry answering 200 on /referrers/ without supporting it [P2]."""

    name = "false-referrers"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "referrers":
            return raw_answer(200, b'{"status":"ok"}', self.mark("P2"), "application/json")
        return None


class ZotBefore213(Profile):
    """zot < 2.1.3: a tag cannot change its manifest media type [Z4]."""

    name = "zot-2.1.2"

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if request.kind == "manifests" and request.method == "PUT" and not request.is_digest:
            assert request.repo is not None and request.ref is not None
            previous = proxy.tag_media_type(request.repo, request.ref)
            if previous is not None and previous != request.content_type:
                return oci_error(
                    400,
                    "MANIFEST_INVALID",
                    "manifest invalid",
                    self.mark("Z4"),
                    detail=f"cannot change media-type from {previous} to {request.content_type}",
                )
        return None


class RateLimit(Profile):
    """429 TOOMANYREQUESTS with Retry-After for the first ``times`` matching requests [D4]."""

    name = "rate-limit"

    def __init__(
        self, match: Callable[[ProxyRequest], bool], *, times: int = 1, retry_after: str = "1"
    ) -> None:
        self.match = match
        self.left = times
        self.retry_after = retry_after
        self.lock = threading.Lock()

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        if not self.match(request):
            return None
        with self.lock:
            if self.left == 0:
                return None
            self.left -= 1
        return oci_error(
            429,
            "TOOMANYREQUESTS",
            "You have reached your pull rate limit.",
            self.mark("D4"),
            headers=(("Retry-After", self.retry_after),),
        )


PROFILES: dict[str, Callable[[], Profile]] = {
    "distribution": Profile,
    "ecr": Ecr,
    "gcr": Gcr,
    "artifact-registry": ArtifactRegistry,
    "quay": Quay,
    "harbor": Harbor,
    "ghcr": Ghcr,
    "docker-hub": DockerHub,
    "false-referrers": FalseReferrers,
    "zot-2.1.2": ZotBefore213,
}


@dataclass
class _State:
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest
    media_types: dict[tuple[str, str], str] = field(default_factory=dict)
    hidden: set[tuple[str, str]] = field(default_factory=set)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a body cap doing its job) is not an error worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class VendorProxy:
    """The proxy server; use ``vendor_proxy(upstream, profile)`` as a context manager."""

    def __init__(self, upstream: str, profile: Profile) -> None:
        self.upstream = upstream
        self.profile = profile
        self.log: list[LogEntry] = []
        self._state = _State()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- tag state (for profiles)

    def live_digest(self, repo: str, tag: str) -> str | None:
        with self._lock:
            if (repo, tag) in self._state.hidden:
                return None
            return self._state.tags.get((repo, tag))

    def live_tags(self, repo: str, digest: str) -> list[str]:
        with self._lock:
            return sorted(
                t
                for (r, t), d in self._state.tags.items()
                if r == repo and d == digest and (r, t) not in self._state.hidden
            )

    def hide_tag(self, repo: str, tag: str) -> None:
        with self._lock:
            self._state.hidden.add((repo, tag))

    def is_hidden(self, repo: str, tag: str) -> bool:
        with self._lock:
            return (repo, tag) in self._state.hidden

    def tag_media_type(self, repo: str, tag: str) -> str | None:
        with self._lock:
            return self._state.media_types.get((repo, tag))

    def _observe(self, request: ProxyRequest, response: ProxyResponse) -> None:
        if request.kind != "manifests" or request.repo is None or request.ref is None:
            return
        with self._lock:
            if request.method == "PUT" and response.status == 201 and not request.is_digest:
                key = (request.repo, request.ref)
                self._state.tags[key] = response.header("Docker-Content-Digest") or ""
                self._state.media_types[key] = request.content_type
                self._state.hidden.discard(key)
            elif request.method == "DELETE" and response.status == 202 and request.is_digest:
                # distribution removes every tag on a deleted digest
                for key in [
                    k for k, d in self._state.tags.items() if k[0] == request.repo and d == request.ref
                ]:
                    del self._state.tags[key]
                    self._state.media_types.pop(key, None)
                    self._state.hidden.discard(key)

    # -- serving

    def _parse(self, handler: BaseHTTPRequestHandler) -> ProxyRequest:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = ProxyRequest(
            handler.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        if parts.path.rstrip("/") == "/v2":
            request.kind = "base"
        elif parts.path.rstrip("/") == "/v2/_catalog":
            request.kind = "catalog"
        else:
            match = _PATH.match(parts.path)
            if match:
                request.repo, request.kind, request.ref = (
                    match.group("name"),
                    match.group("kind"),
                    match.group("ref"),
                )
        return request

    def _forward(self, handler: BaseHTTPRequestHandler, request: ProxyRequest) -> ProxyResponse:
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(request.method, handler.path, body=request.body or None, headers=headers)
            upstream = connection.getresponse()
            body = upstream.read()
            kept = [(k, v) for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP]
            return ProxyResponse(upstream.status, kept, body)
        finally:
            connection.close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        request = self._parse(handler)
        response = self.profile.answer(self, request)
        emulated = response is not None
        if response is None:
            response = self._forward(handler, request)
            self._observe(request, response)
            response = self.profile.adjust(self, request, response)
        source = response.header("X-Emulated-By")
        with self._lock:
            self.log.append(
                LogEntry(request.method, request.path, urlsplit(handler.path).query, response.status, source)
            )
        handler.send_response(response.status)
        has_length = False
        for name, value in response.headers:
            if name.lower() in ("date", "server"):
                continue
            if name.lower() == "content-length":
                has_length = True
                if emulated or request.method != "HEAD":
                    continue
            handler.send_header(name, value)
        if request.method != "HEAD" or not has_length:
            handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        if request.method != "HEAD":
            handler.wfile.write(response.body)

    def requests(self, method: str | None = None) -> list[LogEntry]:
        with self._lock:
            return [e for e in self.log if method is None or e.method == method]


@contextmanager
def vendor_proxy(upstream: str, profile: Profile | None = None) -> Iterator[VendorProxy]:
    proxy = VendorProxy(upstream, profile or Profile())
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


# --------------------------------------------------------------------------- helpers shared by the probe tests

_JUNIT_SUITE_CHILDREN = frozenset({"properties", "testcase", "system-out", "system-err"})
_JUNIT_CASE_CHILDREN = frozenset({"failure", "error", "skipped", "system-out", "system-err"})


def check_junit(text: str) -> Any:
    """Parse JUnit XML and check it against the usual JUnit schema; returns the root element.

    testsuites > testsuite (name, tests, failures, errors, skipped, time) > testcase (classname,
    name, time) with at most one of failure/error (message, type) or skipped; counts must add up.
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    assert root.tag == "testsuites", root.tag
    suites = root.findall("testsuite")
    assert suites, "no testsuite"
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        assert suite.get("name")
        assert {child.tag for child in suite} <= _JUNIT_SUITE_CHILDREN
        cases = suite.findall("testcase")
        counts = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            assert case.get("name") and case.get("classname")
            float(case.get("time", "0"))
            tags = [child.tag for child in case]
            assert set(tags) <= _JUNIT_CASE_CHILDREN, tags
            outcomes = [t for t in tags if t in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1, outcomes
            for outcome in outcomes:
                node = case.find(outcome)
                assert node is not None and node.get("message") is not None
                if outcome != "skipped":
                    assert node.get("type")
                counts[
                    "failures" if outcome == "failure" else "errors" if outcome == "error" else "skipped"
                ] += 1
        for key, value in counts.items():
            assert int(suite.get(key, "-1")) == value, (key, suite.get(key), value)
            totals[key] += value
        float(suite.get("time", "x"))
        for prop in suite.findall("properties/property"):
            assert prop.get("name") is not None and prop.get("value") is not None
    for key, value in totals.items():
        assert int(root.get(key, "-1")) == value, (key, root.get(key), value)
    return root


def seed_repository(
    registry_url: str, repository: str, tag: str = "seed", *, auth: tuple[str, str] | None = None
) -> str:
    """Create ``repository`` with one tagged manifest (plain httpx, no inspector code); its digest."""
    import hashlib

    import httpx

    config = json.dumps({"seed": repository}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    with httpx.Client(timeout=30, auth=auth) as client:
        response = client.post(f"{registry_url}/v2/{repository}/blobs/uploads/", content=b"")
        assert response.status_code == 202, response.text
        location = httpx.URL(response.headers["Location"]).copy_merge_params({"digest": config_digest})
        assert client.put(location, content=config).status_code == 201
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
        response = client.put(
            f"{registry_url}/v2/{repository}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert response.status_code == 201, response.text
        return str(response.headers["Docker-Content-Digest"])


@dataclass(frozen=True)
class Storage:
    """What distribution 2.8 keeps for a repository on disk: tags, manifest revisions, blob links."""

    tags: frozenset[str]
    manifests: frozenset[str]
    blobs: frozenset[str]


def storage_state(root: Any, repository: str) -> Storage:
    """Read ``<root>/data/docker/registry/v2/repositories/<repository>`` (a revision counts while its link exists)."""
    from pathlib import Path

    base = Path(root) / "data" / "docker" / "registry" / "v2" / "repositories" / repository
    tags_dir = base / "_manifests" / "tags"
    tags = (
        frozenset(p.name for p in tags_dir.iterdir() if (p / "current" / "link").is_file())
        if tags_dir.is_dir()
        else frozenset()
    )
    manifests = frozenset(
        "sha256:" + p.parent.name for p in (base / "_manifests" / "revisions" / "sha256").glob("*/link")
    )
    blobs = frozenset("sha256:" + p.parent.name for p in (base / "_layers" / "sha256").glob("*/link"))
    return Storage(tags, manifests, blobs)
