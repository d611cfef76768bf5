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

The proxy learns every manifest pushed through it (by tag or digest) and forgets it when a digest
DELETE succeeds. Upload times are the moment of the push unless a test sets them (``set_uploaded``),
as ECR's push times are set on moto's model: no API can set them on the real service.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from tests.harness.vendor_proxy import (
    ArtifactRegistry,
    ProxyRequest,
    ProxyResponse,
    VendorProxy,
    replace_body,
    vendor_proxy,
)

__all__ = ["ArtifactRegistryContract", "artifact_registry"]


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

    def __post_init__(self) -> None:
        self.name = "gcr" if self.gcr else "artifact-registry"

    def set_uploaded(self, repo: str, digest: str, when: datetime) -> None:
        with self.lock:
            self.manifests[(repo, digest)].uploaded_ms = int(when.timestamp() * 1000)

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
