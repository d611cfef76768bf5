"""Artifact Registry's contract in front of the real registry: the ``tags/list`` manifest map and
Google's delete order, on ``tests.harness.vendor_proxy``.

What is emulated, and where each shape comes from:

* tag DELETE untags, digest DELETE while a tag points at it is ``400 GOOGLE_MANIFEST_DANGLING_TAG``
  "Manifest is still referenced by tag: …" (registries.md §2 [C2][C4]; ``vendor_proxy.ArtifactRegistry``);
* ``tags/list`` carries ``manifest``: every manifest of the repository, tagged or not, keyed by digest,
  with ``imageSizeBytes`` (string), ``mediaType``, ``tag`` (list), ``timeCreatedMs`` (string) and
  ``timeUploadedMs`` — a number on Artifact Registry, a string on GCR (go-containerregistry
  ``pkg/v1/google/list.go``, ``rawManifestInfo``; registries.md §2 "GCR" [C8]). ``gcr=True`` sends GCR's
  string form. ``timeCreatedMs`` is the image config's ``created``: "0" here, as for a cache config,
  which has none.

* the Artifact Registry REST API's package listing, ``GET /v1/projects/{project}/locations/{location}/
  repositories/{repository}/packages?pageSize=N&pageToken=T`` ("Method: projects.locations.repositories.
  packages.list", https://cloud.google.com/artifact-registry/docs/reference/rest/v1/projects.locations.
  repositories.packages/list): ``{"packages": [{"name", "createTime", "updateTime"}], "nextPageToken"}``,
  ``pageSize`` at most 1,000 ("Maximum page size is 1,000", ``ListPackagesRequest``), the token absent on
  the last page; a package ``name`` is ``projects/P/locations/L/repositories/R/packages/{PACKAGE}`` with
  the image path below ``P/R`` URL-encoded (``a%2Fb``, as the issue states and gcloud prints it). A
  package is an image with at least one manifest pushed through the proxy. The location must be the
  one the server was given; a request without ``Bearer {token}`` (when a ``token`` is set) is 401.
  ``loop_token`` makes every page name the same next token (a lying server); ``pad_page`` pads each page
  body to that many bytes.

The proxy learns every manifest pushed through it (by tag or digest) and forgets it when a digest
DELETE succeeds. Upload times are the moment of the push unless a test sets them (``set_uploaded``),
as ECR's push times are set on moto's model: no API can set them on the real service.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from tests.harness.vendor_proxy import (
    ArtifactRegistry,
    ProxyRequest,
    ProxyResponse,
    VendorProxy,
    raw_answer,
    replace_body,
    vendor_proxy,
)

__all__ = ["LOCATION", "ArtifactRegistryContract", "artifact_registry"]

LOCATION = "us"  # the location the contract server answers for (as us-docker.pkg.dev)
_PACKAGES = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/repositories/([^/]+)/packages$")


@dataclass
class _Manifest:
    media_type: str
    size: int
    uploaded_ms: int


@dataclass
class ArtifactRegistryContract(ArtifactRegistry):
    """``ArtifactRegistry`` plus the manifest map; ``gcr``: GCR's string ``timeUploadedMs``."""

    gcr: bool = False
    #: digests whose ``tag`` list the map sends empty: a lying (or stale) map, for adversarial tests
    lie_untagged: set[str] = field(default_factory=set)
    manifests: dict[tuple[str, str], _Manifest] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the access token the packages API wants as ``Bearer`` (None: any request is answered)
    token: str | None = None
    loop_token: bool = False
    pad_page: int = 0
    #: the ``pageToken`` of every packages request, in order ("" for the first page)
    package_requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = "gcr" if self.gcr else "artifact-registry"

    def set_uploaded(self, repo: str, digest: str, when: datetime) -> None:
        with self.lock:
            self.manifests[(repo, digest)].uploaded_ms = int(when.timestamp() * 1000)

    def answer(self, proxy: VendorProxy, request: ProxyRequest) -> ProxyResponse | None:
        found = _PACKAGES.match(request.path)
        if found is None or request.method != "GET":
            return super().answer(proxy, request)
        project, location, repository = found.groups()
        mark = self.mark("packages.list")
        if self.token is not None and request.headers.get("authorization") != f"Bearer {self.token}":
            return raw_answer(401, b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}', mark)
        if location != LOCATION:
            return raw_answer(404, b'{"error": {"code": 404, "status": "NOT_FOUND"}}', mark)
        size = int(request.query.get("pageSize", ["1000"])[0])
        token = request.query.get("pageToken", [""])[0]
        self.package_requests.append(token)
        parent = f"projects/{project}/locations/{location}/repositories/{repository}"
        with self.lock:
            images = sorted({r for r, _ in self.manifests if r.startswith(f"{project}/{repository}/")})
        start = int(token) if token else 0
        page = images[start : start + min(size, 1000)]
        document: dict[str, object] = {
            "packages": [
                {
                    "name": f"{parent}/packages/{quote(image.split('/', 2)[2], safe='')}",
                    "createTime": "2026-01-01T00:00:00Z",
                    "updateTime": "2026-01-01T00:00:00Z",
                }
                for image in page
            ]
        }
        if self.loop_token:
            document["nextPageToken"] = "1"
        elif start + len(page) < len(images):
            document["nextPageToken"] = str(start + len(page))
        body = json.dumps(document).encode()
        body += b" " * max(0, self.pad_page - len(body))
        return raw_answer(200, body, mark, "application/json")

    def adjust(self, proxy: VendorProxy, request: ProxyRequest, response: ProxyResponse) -> ProxyResponse:
        if request.kind == "manifests" and request.repo is not None:
            digest = response.header("Docker-Content-Digest") or request.ref or ""
            with self.lock:
                if request.method == "PUT" and response.status == 201:
                    key = (request.repo, digest)
                    if key not in self.manifests:  # a re-push keeps the first upload time
                        now = int(time.time() * 1000)
                        self.manifests[key] = _Manifest(request.content_type, len(request.body), now)
                elif request.method == "DELETE" and response.status == 202 and request.is_digest:
                    self.manifests.pop((request.repo, request.ref or ""), None)
        response = super().adjust(proxy, request, response)
        if request.kind == "tags/list" and response.status == 200 and request.repo is not None:
            document = json.loads(response.body)
            document["manifest"] = self._map(proxy, request.repo)
            document.setdefault("child", [])
            response = replace_body(response, json.dumps(document).encode())
            response.headers.append(("X-Emulated-By", self.mark("C8")))
        return response

    def _map(self, proxy: VendorProxy, repo: str) -> dict[str, dict[str, object]]:
        with self.lock:
            entries = [(d, m) for (r, d), m in self.manifests.items() if r == repo]
        return {
            digest: {
                "imageSizeBytes": str(manifest.size),
                "layerId": "",
                "mediaType": manifest.media_type,
                "tag": [] if digest in self.lie_untagged else proxy.live_tags(repo, digest),
                "timeCreatedMs": "0",
                "timeUploadedMs": str(manifest.uploaded_ms) if self.gcr else manifest.uploaded_ms,
            }
            for digest, manifest in entries
        }


@contextmanager
def artifact_registry(
    upstream: str, *, gcr: bool = False
) -> Iterator[tuple[VendorProxy, ArtifactRegistryContract]]:
    """The contract server on a free loopback port in front of ``upstream`` (a real registry's host)."""
    profile = ArtifactRegistryContract(gcr=gcr)
    with vendor_proxy(upstream, profile) as proxy:
        yield proxy, profile
