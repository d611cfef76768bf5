"""RegistryClient writes used by gc: push_blob, put_manifest, delete_manifest, delete_tag."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from inspector.errors import DigestMismatch, InvalidContent, NotFound, ServerError, UsageError
from inspector.oci import mediatypes
from inspector.oci.digest import sha256_digest
from inspector.oci.reference import parse_reference, parse_repository
from inspector.registry.client import ClientOptions, RegistryClient

REPO = parse_repository("r.test/team/app")
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, sleeps: list[float] | None = None) -> RegistryClient:
    recorded = sleeps if sleeps is not None else []
    return RegistryClient(
        ClientOptions(retries=2), transport=httpx.MockTransport(handler), sleep=recorded.append
    )


def test_push_blob_posts_a_session_then_puts_the_bytes_with_the_digest_added_to_its_query() -> None:
    seen: list[httpx.Request] = []
    data = b"{}"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/team/app/blobs/uploads/u1?_state=abc%3D"})
        return httpx.Response(201, headers={"Docker-Content-Digest": sha256_digest(data)})

    with client(handler) as c:
        assert c.push_blob(REPO, data) == sha256_digest(data)
    post, put = seen
    assert (post.method, post.url.path, post.content) == ("POST", "/v2/team/app/blobs/uploads/", b"")
    assert put.method == "PUT" and put.url.path == "/v2/team/app/blobs/uploads/u1"
    assert dict(put.url.params) == {"_state": "abc=", "digest": sha256_digest(data)}
    assert put.content == data and put.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("post", "put", "error"),
    [
        (httpx.Response(202), None, InvalidContent),  # no Location
        (
            httpx.Response(202, headers={"Location": "https://r.test/v2/team/app/blobs/uploads/u"}),
            httpx.Response(201, headers={"Docker-Content-Digest": sha256_digest(b"other")}),
            DigestMismatch,
        ),
    ],
)
def test_push_blob_checks_the_registry_answers(
    post: httpx.Response, put: httpx.Response | None, error: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return post if request.method == "POST" else (put or httpx.Response(500))

    with client(handler) as c, pytest.raises(error):
        c.push_blob(REPO, b"data")


def test_an_upload_is_never_retried() -> None:
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        return httpx.Response(503)

    with client(handler) as c, pytest.raises(ServerError):
        c.push_blob(REPO, b"data")
    assert methods == ["POST"]


def test_put_manifest_sends_its_type_and_is_retried_on_a_transient_failure() -> None:
    raw = b'{"schemaVersion":2}'
    answers = iter(
        [httpx.Response(503), httpx.Response(201, headers={"Docker-Content-Digest": sha256_digest(raw)})]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    sleeps: list[float] = []
    with client(handler, sleeps) as c:
        assert c.put_manifest(
            parse_reference("r.test/team/app:t"), raw, mediatypes.OCI_MANIFEST
        ) == sha256_digest(raw)
    assert [r.url.path for r in seen] == ["/v2/team/app/manifests/t"] * 2 and len(sleeps) == 1
    assert seen[1].headers["Content-Type"] == mediatypes.OCI_MANIFEST and seen[1].content == raw


def test_put_manifest_refuses_a_digest_reference_that_does_not_match_and_a_wrong_answer() -> None:
    raw = b"{}"
    with client(lambda r: httpx.Response(201)) as c, pytest.raises(UsageError):
        c.put_manifest(REPO.at(sha256_digest(b"x")), raw, mediatypes.OCI_MANIFEST)
    answer = httpx.Response(201, headers={"Docker-Content-Digest": sha256_digest(b"x")})
    with client(lambda r: answer) as c, pytest.raises(DigestMismatch):
        c.put_manifest(parse_reference("r.test/team/app:t"), raw, mediatypes.OCI_MANIFEST)


def test_deletes_use_the_right_path_accept_202_and_retry_transient_failures() -> None:
    digest = sha256_digest(b"m")
    answers = iter([httpx.Response(503), httpx.Response(202), httpx.Response(202)])
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return next(answers)

    with client(handler) as c:
        c.delete_manifest(REPO, digest)
        c.delete_tag(REPO.tag("old-buildcache"))
    assert seen == [
        ("DELETE", f"/v2/team/app/manifests/{digest}"),
        ("DELETE", f"/v2/team/app/manifests/{digest}"),
        ("DELETE", "/v2/team/app/manifests/old-buildcache"),
    ]


def test_delete_errors_are_typed() -> None:
    missing = httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})
    with client(lambda r: missing) as c:
        with pytest.raises(NotFound):
            c.delete_manifest(REPO, sha256_digest(b"m"))
        with pytest.raises(UsageError):
            c.delete_tag(REPO.at(sha256_digest(b"m")))


def test_an_upload_location_cannot_downgrade_to_plain_http() -> None:
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.method)
        return httpx.Response(202, headers={"Location": "http://r.test/v2/team/app/blobs/uploads/u"})

    with client(handler) as c, pytest.raises(InvalidContent, match="another host or scheme"):
        c.push_blob(REPO, b"data")
    assert requests == ["POST"]  # the bytes never went out over plain HTTP
