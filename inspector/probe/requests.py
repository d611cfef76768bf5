"""The distribution API requests the probe makes, as functions over ``RegistryClient.send``.

Each returns what the registry answered or raises the client's typed error (``RegistryError``
with status, OCI error codes and body; ``TransportError``; ``AuthError``), which
``inspector.probe.classify`` then judges. Nothing here retries writes or decides anything: the client
retries reads (GET/HEAD) on 429/5xx itself, the probe retries writes.

Plain uploads, manifest PUTs and DELETEs use ``RegistryClient.push_blob``, ``put_manifest``,
``delete_manifest`` and ``delete_tag``; what is here are the requests only the probe makes. Upload
sessions are always completed with ``PUT <Location>&digest=`` rather than cancelled with
``DELETE``: a cancel needs the ``delete`` token scope, which the probe only asks for with
``--delete``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from inspector.errors import InvalidContent
from inspector.oci import mediatypes
from inspector.oci.digest import Digest
from inspector.oci.reference import Repository
from inspector.registry.client import MANIFEST_LIMIT, TAG_PAGE_LIMIT, RegistryClient, next_link

__all__ = [
    "UploadResult",
    "anonymous_ping",
    "catalog_page",
    "mount_blob",
    "referrers",
    "tags_page",
    "upload_chunked",
    "upload_single_post",
]

_OCTET = {"Content-Type": "application/octet-stream"}


@dataclass(frozen=True, slots=True)
class UploadResult:
    """How a blob upload went: ``direct`` is True when one request did it (201 on POST)."""

    direct: bool
    reported_digest: str | None
    requests: int


def _api(client: RegistryClient, repo: Repository, path: str, query: dict[str, str] | None = None) -> str:
    return client.url(repo.registry, f"/v2/{repo.path}{path}", query)


def _with_digest(location: str, digest: Digest) -> str:
    return str(httpx.URL(location).copy_merge_params({"digest": str(digest)}))


def anonymous_ping(client: RegistryClient, registry: str) -> httpx.Response:
    """``GET /v2/`` without credentials: the raw challenge (401 + WWW-Authenticate) or 200."""
    return client.send_anonymous("GET", client.url(registry, "/v2/"), what=f"ping {registry}")


def _finish(client: RegistryClient, location: str, data: bytes, digest: Digest, what: str) -> str | None:
    response, _ = client.send(
        "PUT", _with_digest(location, digest), what=what, headers=_OCTET, content=data, ok=(201, 204)
    )
    reported: str | None = response.headers.get("Docker-Content-Digest")
    return reported


def upload_single_post(client: RegistryClient, repo: Repository, data: bytes, digest: Digest) -> UploadResult:
    """``POST …/blobs/uploads/?digest=`` with the body: 201 = done; 202 = body ignored, finish with PUT."""
    what = f"single-POST upload {digest.short}"
    response, _ = client.send(
        "POST",
        _api(client, repo, "/blobs/uploads/", {"digest": str(digest)}),
        what=what,
        headers=_OCTET,
        content=data,
        ok=(201, 202),
    )
    if response.status_code == 201:
        return UploadResult(True, response.headers.get("Docker-Content-Digest"), 1)
    reported = _finish(client, client.upload_location(response, what), data, digest, what)
    return UploadResult(False, reported, 2)


def upload_chunked(
    client: RegistryClient, repo: Repository, data: bytes, digest: Digest, *, chunks: int = 2
) -> UploadResult:
    """``POST``, one ``PATCH`` per chunk (``Content-Range``), then ``PUT <Location>&digest=`` (empty)."""
    what = f"chunked upload {digest.short}"
    response, _ = client.send(
        "POST", _api(client, repo, "/blobs/uploads/"), what=what, content=b"", ok=(202,)
    )
    location = client.upload_location(response, what)
    step = max(1, -(-len(data) // chunks))
    requests = 1
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        response, _ = client.send(
            "PATCH",
            location,
            what=what,
            headers={**_OCTET, "Content-Range": f"{start}-{start + len(chunk) - 1}"},
            content=chunk,
            ok=(202, 204),
        )
        location = client.upload_location(response, what)
        requests += 1
    response, _ = client.send(
        "PUT", _with_digest(location, digest), what=what, headers=_OCTET, content=b"", ok=(201, 204)
    )
    return UploadResult(False, response.headers.get("Docker-Content-Digest"), requests + 1)


def mount_blob(
    client: RegistryClient, repo: Repository, digest: Digest, source: Repository, data: bytes
) -> UploadResult:
    """``POST …/uploads/?mount=&from=``: 201 = mounted; 202 = not mounted, the blob is then uploaded."""
    what = f"mount {digest.short} from {source.path}"
    response, _ = client.send(
        "POST",
        _api(client, repo, "/blobs/uploads/", {"mount": str(digest), "from": source.path}),
        what=what,
        content=b"",
        ok=(201, 202),
    )
    if response.status_code == 201:
        return UploadResult(True, response.headers.get("Docker-Content-Digest"), 1)
    reported = _finish(client, client.upload_location(response, what), data, digest, what)
    return UploadResult(False, reported, 2)


def tags_page(
    client: RegistryClient, repo: Repository, *, n: int | None = None, url: str | None = None
) -> tuple[list[str], str | None]:
    """One page of ``tags/list`` (``n`` as asked) and the absolute URL of the next page, if any."""
    return client.tag_page(repo, page_size=n, url=url)


def catalog_page(client: RegistryClient, registry: str, n: int) -> tuple[int, bool]:
    """``GET /v2/_catalog?n=``: (repositories on the page, whether a Link to the next page came)."""
    response, raw = client.send(
        "GET", client.url(registry, "/v2/_catalog", {"n": str(n)}), what="catalog", limit=TAG_PAGE_LIMIT
    )
    try:
        doc = json.loads(raw)
        names = doc.get("repositories") if isinstance(doc, dict) else None
    except ValueError:
        raise InvalidContent("catalog: the answer is not JSON") from None
    if not isinstance(names, list):
        raise InvalidContent("catalog: the answer has no repositories list")
    return len(names), bool(next_link(response.headers.get_list("Link")))


def referrers(client: RegistryClient, repo: Repository, digest: Digest) -> tuple[str, bytes]:
    """``GET …/referrers/<digest>``: (Content-Type, body) of a 200; errors raise."""
    response, raw = client.send(
        "GET",
        _api(client, repo, f"/referrers/{digest}"),
        what=f"referrers of {digest.short}",
        headers={"Accept": mediatypes.OCI_INDEX},
        limit=MANIFEST_LIMIT,
    )
    return response.headers.get("Content-Type", ""), raw
