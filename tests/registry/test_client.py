"""Protocol edge cases of RegistryClient, with httpx.MockTransport standing in for the registry."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from inspector.errors import (
    DigestMismatch,
    InvalidContent,
    InvalidRequest,
    NotFound,
    RateLimited,
    RedirectRefused,
    ServerError,
    TransportError,
    Unauthorized,
)
from inspector.oci import mediatypes
from inspector.oci.digest import sha256_digest
from inspector.oci.models import Descriptor
from inspector.oci.reference import parse_reference, parse_repository
from inspector.registry.client import ClientOptions, RegistryClient
from inspector.registry.credentials import Credentials

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.BUILDKIT_CACHE_CONFIG, "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [],
    }
).encode()
Handler = Callable[[httpx.Request], httpx.Response]


def make_client(
    handler: Handler, sleeps: list[float] | None = None, *, retries: int = 4, concurrency: int = 8
) -> RegistryClient:
    recorded = sleeps if sleeps is not None else []
    return RegistryClient(
        ClientOptions(retries=retries, concurrency=concurrency),
        transport=httpx.MockTransport(handler),
        sleep=recorded.append,
    )


def test_manifest_by_tag_sends_full_accept_list_and_parses() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": mediatypes.OCI_MANIFEST})

    with make_client(handler) as client:
        document = client.get_manifest(parse_reference("registry.test/team/cache:main"))
    assert document.digest == sha256_digest(MANIFEST)
    request = seen[0]
    assert str(request.url) == "https://registry.test/v2/team/cache/manifests/main"
    for media_type in (
        mediatypes.OCI_MANIFEST,
        mediatypes.OCI_INDEX,
        mediatypes.DOCKER_MANIFEST,
        mediatypes.DOCKER_MANIFEST_LIST,
    ):
        assert media_type in request.headers["Accept"]


def test_loopback_uses_plain_http_and_others_https() -> None:
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(200, content=MANIFEST)

    with make_client(handler) as client:
        client.get_manifest(parse_reference("127.0.0.1:5000/a:b"))
        client.get_manifest(parse_reference("localhost:5000/a:b"))
        client.get_manifest(parse_reference("alpine"))
    assert urls == [
        "http://127.0.0.1:5000/v2/a/manifests/b",
        "http://localhost:5000/v2/a/manifests/b",
        "https://registry-1.docker.io/v2/library/alpine/manifests/latest",
    ]


def test_digest_mismatch_is_refused() -> None:
    ref = parse_reference("registry.test/a@" + sha256_digest(b"something else"))
    with (
        make_client(lambda r: httpx.Response(200, content=MANIFEST)) as client,
        pytest.raises(DigestMismatch),
    ):
        client.get_manifest(ref)


def test_oversized_manifest_refused_by_content_length() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(5 * 1024 * 1024)}, content=b"{}")

    with make_client(handler) as client, pytest.raises(InvalidContent, match="over the 4194304 byte limit"):
        client.get_manifest(parse_reference("registry.test/a:b"))


def test_oversized_streamed_manifest_refused_without_reading_everything() -> None:
    produced = []

    def chunks() -> object:
        for _ in range(100):
            produced.append(1)
            yield b"x" * (1024 * 1024)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())  # type: ignore[arg-type]

    with make_client(handler) as client, pytest.raises(InvalidContent, match="longer than"):
        client.get_manifest(parse_reference("registry.test/a:b"))
    assert len(produced) < 10


def test_retries_5xx_honouring_retry_after() -> None:
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(502),
            httpx.Response(200, content=MANIFEST),
        ]
    )
    sleeps: list[float] = []
    with make_client(lambda r: next(answers), sleeps) as client:
        client.get_manifest(parse_reference("registry.test/a:b"))
    assert sleeps[0] == 2.0
    assert len(sleeps) == 2 and 0 < sleeps[1] <= 0.5


def test_gives_up_after_bounded_retries() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "try later"}]})

    with (
        make_client(handler, retries=3) as client,
        pytest.raises(ServerError, match=r"UNAVAILABLE: try later") as info,
    ):
        client.get_manifest(parse_reference("registry.test/a:b"))
    assert len(calls) == 4
    assert info.value.exit_code == 6


def test_rate_limit_with_long_retry_after_fails_fast() -> None:
    with (
        make_client(lambda r: httpx.Response(429, headers={"Retry-After": "3600"})) as client,
        pytest.raises(RateLimited) as info,
    ):
        client.get_manifest(parse_reference("registry.test/a:b"))
    assert info.value.retry_after == 3600


def test_connection_errors_retried_then_reported() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    with (
        make_client(handler, retries=2) as client,
        pytest.raises(TransportError, match=r"cannot connect to registry\.test"),
    ):
        client.get_manifest(parse_reference("registry.test/a:b"))
    assert len(calls) == 3


def test_truncated_body_is_retried() -> None:
    answers = iter(["truncated", "full"])

    def handler(request: httpx.Request) -> httpx.Response:
        if next(answers) == "truncated":
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            )
        return httpx.Response(200, content=MANIFEST)

    with make_client(handler) as client:
        assert client.get_manifest(parse_reference("registry.test/a:b")).raw == MANIFEST


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            404,
            {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {"Tag": "b"}}]},
            NotFound,
        ),
        (
            404,
            {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]},
            NotFound,
        ),
        (401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, Unauthorized),
        (
            400,
            {"errors": [{"code": "DIGEST_INVALID", "message": "provided digest did not match"}]},
            InvalidRequest,
        ),
        (404, "404 page not found\n", NotFound),
    ],
)
def test_error_envelopes_map_to_typed_errors(status: int, body: object, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with make_client(handler) as client, pytest.raises(error) as info:
        client.get_manifest(parse_reference("registry.test/a:b"))
    assert "fetch manifest registry.test/a:b" in str(info.value)


def test_tag_pagination_follows_link_headers() -> None:
    pages = {
        "/v2/a/tags/list": (["t1", "t2"], '</v2/a/tags/list?n=2&last=t2>; rel="next"'),
        "/v2/a/tags/list?n=2&last=t2": (["t3", "t4"], '</v2/a/tags/list?n=2&last=t4>; rel="next"'),
        "/v2/a/tags/list?n=2&last=t4": (["t5"], None),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.raw_path.decode()
        if key == "/v2/a/tags/list?n=2":
            key = "/v2/a/tags/list"
        tags, link = pages[key]
        headers = {"Link": link} if link else {}
        return httpx.Response(200, json={"name": "a", "tags": tags}, headers=headers)

    with make_client(handler) as client:
        assert client.list_tags(parse_repository("registry.test/a"), page_size=2) == [
            "t1",
            "t2",
            "t3",
            "t4",
            "t5",
        ]


def test_tag_pagination_loop_is_detected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"tags": ["x"]}, headers={"Link": '</v2/a/tags/list>; rel="next"'})

    with make_client(handler) as client, pytest.raises(InvalidContent, match="loops"):
        client.list_tags(parse_repository("registry.test/a"))


def test_tag_pagination_to_another_host_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"tags": ["x"]}, headers={"Link": '<https://evil.test/v2/a/tags/list>; rel="next"'}
        )

    with make_client(handler) as client, pytest.raises(InvalidContent, match="another host"):
        client.list_tags(parse_repository("registry.test/a"))


def test_null_tag_list_is_empty() -> None:
    with make_client(lambda r: httpx.Response(200, json={"name": "a", "tags": None})) as client:
        assert client.list_tags(parse_repository("registry.test/a")) == []


def test_head_blob_404_is_an_answer() -> None:
    digest = sha256_digest(b"x")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("present"):
            return httpx.Response(200)
        return httpx.Response(404)

    with make_client(handler) as client:
        stat = client.head_blob(parse_repository("registry.test/a"), digest)
    assert not stat.exists


def test_get_blob_verifies_size_and_digest() -> None:
    data = b'{"layers":[]}'
    good = Descriptor(mediatypes.BUILDKIT_CACHE_CONFIG, sha256_digest(data), len(data))
    repo = parse_repository("registry.test/a")
    with make_client(lambda r: httpx.Response(200, content=data)) as client:
        assert client.get_blob(repo, good, limit=1024) == data
        with pytest.raises(DigestMismatch):
            client.get_blob(repo, Descriptor(good.media_type, sha256_digest(b"other"), len(data)), limit=1024)
        with pytest.raises(InvalidContent, match="refusing"):
            client.get_blob(repo, Descriptor(good.media_type, good.digest, 5000), limit=1024)


def test_blob_redirect_to_storage_is_followed() -> None:
    data = b"blob"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "registry.test":
            return httpx.Response(
                307, headers={"Location": "https://storage.test/blob?X-Amz-Signature=secret"}
            )
        return httpx.Response(200, content=data)

    with make_client(handler) as client:
        got = client.get_blob(
            parse_repository("registry.test/a"), Descriptor("x", sha256_digest(data), 4), limit=10
        )
    assert got == data


def test_redirect_down_to_plain_http_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "http://storage.test/blob"})

    # A downgrade is a refused redirect (exit 8), whatever the host: the README promises no downgrade.
    with make_client(handler) as client, pytest.raises(RedirectRefused, match="down to plain HTTP"):
        client.get_blob(
            parse_repository("registry.test/a"), Descriptor("x", sha256_digest(b"x"), 1), limit=10
        )


def test_map_bounded_keeps_order_and_limits_concurrency() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1
        return n * 2

    with make_client(lambda r: httpx.Response(200), concurrency=3) as client:
        assert client.map_bounded(work, list(range(20))) == [n * 2 for n in range(20)]
    assert peak == 3


def test_request_count_includes_challenges_token_fetches_and_retries() -> None:
    seen: list[str] = []
    failures = iter([503])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "tok"})
        if request.headers.get("Authorization") != "Bearer tok":
            challenge = 'Bearer realm="https://registry.test/token",service="registry.test"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        status = next(failures, 200)
        if status != 200:
            return httpx.Response(status)
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": mediatypes.OCI_MANIFEST})

    with make_client(handler) as client:
        client.get_manifest(parse_reference("registry.test/team/cache:main"))
        # 401 challenge, token, the retried request answered 503, then 200.
        assert seen == [
            "GET /v2/team/cache/manifests/main",
            "GET /token",
            *["GET /v2/team/cache/manifests/main"] * 2,
        ]
        assert client.request_count == len(seen)


# -- the public low-level API (what the probe uses): send, send_anonymous, on_retry, upload_location, tag_page


def test_send_returns_the_answer_and_its_capped_body_and_judges_other_statuses() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["a", "b"]})
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": "no such repo"}]})

    with make_client(handler) as client:
        url = client.url("registry.test", "/v2/_catalog", {"n": "2"})
        assert url == "https://registry.test/v2/_catalog?n=2"  # a non-loopback host: HTTPS
        response, body = client.send("GET", url, what="catalog", limit=1024)
        assert response.status_code == 200 and json.loads(body) == {"repositories": ["a", "b"]}
        with pytest.raises(InvalidContent, match=r"is \d+ bytes, over the 8 byte limit"):
            client.send("GET", url, what="catalog", limit=8)
        with pytest.raises(NotFound, match="NAME_UNKNOWN"):
            client.send("GET", client.url("registry.test", "/v2/x/tags/list"), what="tags")


def test_on_retry_hears_every_wait_of_the_block_and_nothing_after() -> None:
    """Two 503s then 200 on a GET: two retries, so two waits, each told to the listener before it happens."""
    answers = iter([httpx.Response(503), httpx.Response(503), httpx.Response(200), httpx.Response(503)])
    answers_after = iter([httpx.Response(503), httpx.Response(200)])
    sleeps: list[float] = []
    heard: list[float] = []
    with make_client(lambda r: next(answers), sleeps) as client:
        with client.on_retry(heard.append):
            client.send("GET", client.url("registry.test", "/v2/"), what="ping")
        assert heard == sleeps and len(heard) == 2
    with make_client(lambda r: next(answers_after), sleeps) as client:
        with client.on_retry(heard.append):
            pass
        client.send("GET", client.url("registry.test", "/v2/"), what="ping")
    assert len(heard) == 2 and len(sleeps) == 3  # the third wait came after the block: not heard


def test_send_anonymous_carries_no_credentials_and_answers_no_challenge() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    with RegistryClient(
        ClientOptions(),
        credentials=lambda host: Credentials("user", "secret-pw", source="test"),
        transport=httpx.MockTransport(handler),
    ) as client:
        response = client.send_anonymous(
            "GET", client.url("registry.test", "/v2/"), what="ping registry.test"
        )
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == 'Basic realm="r"'
    assert len(seen) == 1 and "authorization" not in seen[0].headers  # the Basic challenge was not answered


def test_send_anonymous_turns_a_network_failure_into_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("boom", request=request)

    with make_client(handler) as client, pytest.raises(TransportError, match=r"^ping r: ConnectError: boom"):
        client.send_anonymous("GET", client.url("registry.test", "/v2/"), what="ping r")


def test_upload_location_is_absolute_and_stays_on_the_registry_origin() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        where = request.url.params.get("to", "/v2/a/blobs/uploads/u1?_state=x")
        return httpx.Response(202, headers={"Location": where} if where != "none" else {})

    with make_client(handler) as client:
        start = client.url("registry.test", "/v2/a/blobs/uploads/")
        session, _ = client.send("POST", start, what="start", ok=(202,), content=b"")
        assert (
            client.upload_location(session, "start") == "https://registry.test/v2/a/blobs/uploads/u1?_state=x"
        )
        # Same host, default port spelled out: the same origin (scheme, host, port).
        same, _ = client.send("POST", f"{start}?to=https://REGISTRY.test:443/v2/a/u2", what="s", ok=(202,))
        assert client.upload_location(same, "start") == "https://REGISTRY.test:443/v2/a/u2"
        for elsewhere in (
            "https://evil.test/v2/a/u3",
            "http://registry.test/v2/a/u4",
            "https://registry.test:5000/u",
        ):
            other, _ = client.send("POST", f"{start}?to={elsewhere}", what="s", ok=(202,))
            with pytest.raises(InvalidContent, match="another host or scheme"):
                client.upload_location(other, "start")
        missing, _ = client.send("POST", f"{start}?to=none", what="s", ok=(202,))
        with pytest.raises(InvalidContent, match="answered 202 without a Location header"):
            client.upload_location(missing, "start")


def test_tag_page_returns_one_page_and_the_absolute_next_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("last") == "b":
            return httpx.Response(200, json={"name": "a", "tags": ["c"]})
        assert request.url.params.get("n") == "2"
        link = '</v2/a/tags/list?n=2&last=b>; rel="next"'
        return httpx.Response(200, json={"name": "a", "tags": ["a", "b"]}, headers={"Link": link})

    repo = parse_repository("registry.test/a")
    with make_client(handler) as client:
        page, following = client.tag_page(repo, page_size=2)
        assert page == ["a", "b"] and following == "https://registry.test/v2/a/tags/list?n=2&last=b"
        assert client.tag_page(repo, url=following) == (["c"], None)


def _jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_granted_actions_from_the_token_claims() -> None:
    token = _jwt({"access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            assert request.url.params["scope"] == "repository:team/app:pull"
            return httpx.Response(200, json={"token": token})
        if request.headers.get("Authorization") != f"Bearer {token}":
            challenge = 'Bearer realm="https://auth.example/token",service="r.example"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(
            200,
            headers={
                "Docker-Content-Digest": "sha256:" + "0" * 64,
                "Content-Type": mediatypes.OCI_MANIFEST,
                "Content-Length": "10",
            },
        )

    repo = parse_repository("r.example/team/app")
    with RegistryClient(ClientOptions(), transport=httpx.MockTransport(handler)) as client:
        assert client.granted_actions(repo) is None
        head = client.head_manifest(repo.tag("latest"))
        assert head.media_type == mediatypes.OCI_MANIFEST
        assert client.granted_actions(repo) == ("pull", "push")
        assert client.granted_actions(parse_repository("r.example/other")) is None
