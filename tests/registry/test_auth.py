"""RegistryAuth against a scripted registry + token server (httpx.MockTransport)."""

from __future__ import annotations

import base64
import json
import logging
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector._redact import redact
from inspector.errors import AuthError, CacheInspectError, TransportError
from inspector.registry.auth import (
    Challenge,
    RegistryAuth,
    derive_scope,
    parse_www_authenticate,
)
from inspector.registry.credentials import Credentials

REGISTRY = "https://reg.test"
REALM = "https://auth.test/token"
PASSWORD = "pw-SECRET-1234"
REFRESH = "refresh-SECRET-5678"
STATIC = "static-SECRET-9012"
SECRETS = (PASSWORD, REFRESH, STATIC, "SECRET-tok")
MANIFEST = f"{REGISTRY}/v2/team/app/manifests/latest"


def wanted_scope(request: httpx.Request) -> str:
    """The scope the fake registry demands; written independently of derive_scope."""
    parts = request.url.path.split("/")
    if request.url.path == "/v2/_catalog":
        return "registry:catalog:*"
    for keyword in ("manifests", "blobs", "tags", "referrers"):
        if keyword in parts[2:]:
            name = "/".join(parts[2 : parts.index(keyword, 2)])
            break
    else:
        return ""
    action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(request.method, "pull,push")
    return f"repository:{name}:{action}"


@dataclass
class FakeRegistry:
    """reg.test answers 401 + challenge unless the bearer token covers the scope it wants."""

    scheme: str = "bearer"
    realm: str = REALM
    scope_in_challenge: bool = True
    wanted: Callable[[httpx.Request], str] = wanted_scope
    username: str = "alice"
    password: str = PASSWORD
    token_status: int = 200
    token_body: bytes | None = None
    token_delay: float = 0.0
    token_extra: dict[str, object] = field(default_factory=dict)
    always_401: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    token_requests: list[httpx.Request] = field(default_factory=list)
    registry_requests: list[httpx.Request] = field(default_factory=list)
    other_requests: list[httpx.Request] = field(default_factory=list)
    issued: dict[str, str] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == httpx.URL(self.realm).host and request.url.path == httpx.URL(self.realm).path:
            return self.token_endpoint(request)
        if host == "reg.test" or host == "127.0.0.1":
            return self.registry(request)
        with self.lock:
            self.other_requests.append(request)
        return httpx.Response(200, content=b"blob bytes")

    def token_endpoint(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.token_requests.append(request)
            number = len(self.token_requests)
        if self.token_delay:
            time.sleep(self.token_delay)
        if self.token_status != 200 or self.token_body is not None:
            return httpx.Response(self.token_status, content=self.token_body or b'{"details":"nope"}')
        if request.method == "POST":
            form = parse_qs(request.content.decode())
            scope = form.get("scope", [""])[0]
        else:
            header = request.headers.get("authorization")
            if header is not None and header != basic(self.username, self.password):
                return httpx.Response(401, json={"details": "incorrect username or password"})
            scope = " ".join(request.url.params.get_list("scope"))
        token = f"SECRET-tok-{number}"
        with self.lock:
            self.issued[token] = scope
        key = "access_token" if request.method == "POST" else "token"
        return httpx.Response(200, json={key: token, **self.token_extra})

    def registry(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            # A copy: the auth flow re-sends the same Request object with new headers.
            self.registry_requests.append(httpx.Request(request.method, request.url, headers=request.headers))
        wanted = self.wanted(request)
        header = request.headers.get("authorization", "")
        if not self.always_401:
            if self.scheme == "bearer" and header.startswith("Bearer "):
                granted = self.issued.get(header[len("Bearer ") :], "")
                if header == f"Bearer {STATIC}" or set(wanted.split()) <= set(granted.split()):
                    return self.ok(request)
            if self.scheme == "basic" and header == basic(self.username, self.password):
                return self.ok(request)
        if self.scheme == "basic":
            challenge = 'Basic realm="Registry Realm"'
        else:
            challenge = f'Bearer realm="{self.realm}",service="reg.test"'
            if self.scope_in_challenge and wanted:
                challenge += f',scope="{wanted}"'
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": challenge},
            json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
        )

    def ok(self, request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path:
            return httpx.Response(307, headers={"Location": "https://storage.test/blob?X-Amz-Signature=abc"})
        return httpx.Response(200, json={"ok": True})

    @property
    def unauthenticated(self) -> list[httpx.Request]:
        return [r for r in self.registry_requests if "authorization" not in r.headers]


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def make_client(
    fake: FakeRegistry,
    creds: Credentials | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> tuple[httpx.Client, RegistryAuth]:
    auth = RegistryAuth(lambda host: creds, clock=clock, wall_clock=wall_clock)
    client = httpx.Client(transport=httpx.MockTransport(fake), auth=auth, follow_redirects=True)
    auth.bind(lambda request: client.send(request, auth=None))
    return client, auth


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="inspector")
    yield
    for record in caplog.records:
        assert_no_secret(record.getMessage())


# --------------------------------------------------------------------------- bearer flow


def test_anonymous_bearer_flow_then_token_up_front() -> None:
    fake = FakeRegistry()
    client, _ = make_client(fake)
    with client:
        first = client.get(MANIFEST)
        second = client.get(MANIFEST)
    assert first.status_code == 200
    assert second.status_code == 200
    assert len(fake.token_requests) == 1
    token_request = fake.token_requests[0]
    assert token_request.method == "GET"
    assert "authorization" not in token_request.headers
    assert token_request.url.params.get("service") == "reg.test"
    assert token_request.url.params.get("scope") == "repository:team/app:pull"
    # One 401 round trip in total; the second GET carried the token from the start.
    assert len(fake.unauthenticated) == 1
    assert len(fake.registry_requests) == 3
    assert fake.registry_requests[2].headers["authorization"] == "Bearer SECRET-tok-1"


def test_other_repository_gets_its_own_token_up_front() -> None:
    fake = FakeRegistry()
    client, _ = make_client(fake)
    with client:
        assert client.get(MANIFEST).status_code == 200
        assert client.head(f"{REGISTRY}/v2/team/other/manifests/v1").status_code == 200
    assert [r.url.params.get("scope") for r in fake.token_requests] == [
        "repository:team/app:pull",
        "repository:team/other:pull",
    ]
    assert len(fake.unauthenticated) == 1


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v2/team/app/manifests/latest", "repository:team/app:pull"),
        ("HEAD", "/v2/a/b/c/manifests/sha256:abc", "repository:a/b/c:pull"),
        ("GET", "/v2/app/blobs/sha256:abc", "repository:app:pull"),
        ("GET", "/v2/app/tags/list", "repository:app:pull"),
        ("GET", "/v2/app/referrers/sha256:abc", "repository:app:pull"),
        ("PUT", "/v2/team/app/manifests/v1", "repository:team/app:pull,push"),
        ("POST", "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"),
        ("PATCH", "/v2/team/app/blobs/uploads/1234-abcd", "repository:team/app:pull,push"),
        ("DELETE", "/v2/team/app/manifests/sha256:abc", "repository:team/app:delete"),
        ("delete", "/v2/team/app/manifests/sha256:abc", "repository:team/app:delete"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("GET", "/v2/", None),
        ("GET", "/elsewhere", None),
        ("OPTIONS", "/v2/app/manifests/x", None),
    ],
)
def test_derive_scope(method: str, path: str, scope: str | None) -> None:
    assert derive_scope(method, path) == scope


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("DELETE", "/v2/team/app/manifests/sha256:abc", "repository:team/app:delete"),
        ("PUT", "/v2/team/app/manifests/v1", "repository:team/app:pull,push"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
    ],
)
def test_scope_derived_from_request_when_challenge_has_none(method: str, path: str, scope: str) -> None:
    fake = FakeRegistry(scope_in_challenge=False)
    client, _ = make_client(fake)
    with client:
        response = client.request(method, f"{REGISTRY}{path}", content=b"{}" if method == "PUT" else None)
    assert response.status_code == 200
    assert [r.url.params.get("scope") for r in fake.token_requests] == [scope]


def test_challenge_scope_differing_from_derived_one_is_fetched_and_remembered() -> None:
    mount = "repository:team/app:pull repository:team/base:pull"
    fake = FakeRegistry(wanted=lambda request: mount)
    client, _ = make_client(fake)
    with client:
        assert client.get(MANIFEST).status_code == 200  # anonymous -> 401 (mount scope) -> token
        assert client.get(MANIFEST).status_code == 200  # up front with the remembered scope
    assert len(fake.token_requests) == 1
    assert fake.token_requests[0].url.params.get_list("scope") == mount.split()
    assert len(fake.registry_requests) == 3


def test_up_front_token_with_insufficient_scope_is_retried_once_with_the_challenge_scope() -> None:
    wanted = {"scope": "repository:team/app:pull"}
    fake = FakeRegistry(wanted=lambda request: wanted["scope"])
    client, _ = make_client(fake)
    with client:
        assert client.get(MANIFEST).status_code == 200
        wanted["scope"] = "repository:team/app:pull,push"
        assert client.get(MANIFEST).status_code == 200
    assert [r.url.params.get("scope") for r in fake.token_requests] == [
        "repository:team/app:pull",
        "repository:team/app:pull,push",
    ]
    # 401 anon, 200, 401 with old token, 200 after one retry.
    assert [r.headers.get("authorization") for r in fake.registry_requests] == [
        None,
        "Bearer SECRET-tok-1",
        "Bearer SECRET-tok-1",
        "Bearer SECRET-tok-2",
    ]


def test_401_after_the_retry_is_returned() -> None:
    fake = FakeRegistry(always_401=True)
    client, _ = make_client(fake)
    with client:
        response = client.get(MANIFEST)
    assert response.status_code == 401
    assert len(fake.registry_requests) == 2
    assert len(fake.token_requests) == 1


def test_rejected_cached_token_is_replaced_once() -> None:
    fake = FakeRegistry()
    client, _ = make_client(fake)
    with client:
        assert client.get(MANIFEST).status_code == 200
        fake.issued.clear()  # the registry forgets the token early
        assert client.get(MANIFEST).status_code == 200
    assert len(fake.token_requests) == 2
    assert fake.registry_requests[-1].headers["authorization"] == "Bearer SECRET-tok-2"


def test_401_without_a_challenge_is_returned_untouched() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401)

    auth = RegistryAuth(lambda host: None, lambda request: httpx.Response(500))
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        assert client.get(MANIFEST).status_code == 401
    assert len(calls) == 1


def test_unrelated_statuses_pass_through_without_credential_lookup() -> None:
    looked_up: list[str] = []

    def lookup(host: str) -> Credentials | None:
        looked_up.append(host)
        return None

    auth = RegistryAuth(lookup, lambda request: httpx.Response(500))
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    with httpx.Client(transport=transport, auth=auth) as client:
        assert client.get(MANIFEST).status_code == 404
    assert looked_up == []


# --------------------------------------------------------------------------- credentials


def test_basic_challenge_retries_with_credentials_then_sends_them_up_front() -> None:
    fake = FakeRegistry(scheme="basic")
    client, _ = make_client(fake, Credentials(username="alice", password=PASSWORD, source="flags"))
    with client:
        assert client.get(MANIFEST).status_code == 200
        assert client.get(MANIFEST).status_code == 200
    assert [r.headers.get("authorization") for r in fake.registry_requests] == [
        None,
        basic("alice", PASSWORD),
        basic("alice", PASSWORD),
    ]
    assert fake.token_requests == []


def test_basic_challenge_without_credentials_is_not_retried() -> None:
    fake = FakeRegistry(scheme="basic")
    client, _ = make_client(fake)
    with client:
        assert client.get(MANIFEST).status_code == 401
    assert len(fake.registry_requests) == 1


def test_basic_credentials_rejected_up_front_are_not_resent() -> None:
    fake = FakeRegistry(scheme="basic", password="other")
    client, _ = make_client(fake, Credentials(username="alice", password=PASSWORD, source="flags"))
    with client:
        assert client.get(MANIFEST).status_code == 401  # anon, then Basic: two requests
        assert client.get(MANIFEST).status_code == 401  # Basic up front, not repeated
    assert len(fake.registry_requests) == 3


def test_token_request_uses_basic_auth_when_credentials_have_a_password() -> None:
    fake = FakeRegistry()
    client, _ = make_client(fake, Credentials(username="alice", password=PASSWORD, source="flags"))
    with client:
        assert client.get(MANIFEST).status_code == 200
    assert fake.token_requests[0].headers["authorization"] == basic("alice", PASSWORD)
    # The registry itself never sees the password.
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in fake.registry_requests[1:])


def test_identity_token_is_exchanged_with_an_oauth2_post() -> None:
    fake = FakeRegistry()
    creds = Credentials(username="alice", identity_token=REFRESH, source="config.json")
    client, _ = make_client(fake, creds)
    with client:
        assert client.get(MANIFEST).status_code == 200
    (request,) = fake.token_requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in request.headers
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "service": ["reg.test"],
        "scope": ["repository:team/app:pull"],
        "client_id": ["cacheinspect"],
        "refresh_token": [REFRESH],
    }


def test_registry_token_is_sent_as_bearer_without_a_token_endpoint() -> None:
    fake = FakeRegistry()
    client, _ = make_client(fake, Credentials(registry_token=STATIC, source="flags"))
    with client:
        assert client.get(MANIFEST).status_code == 200
        assert client.get(MANIFEST).status_code == 200
    assert fake.token_requests == []
    assert [r.headers.get("authorization") for r in fake.registry_requests] == [
        None,
        f"Bearer {STATIC}",
        f"Bearer {STATIC}",
    ]


def test_credentials_are_looked_up_once_per_host_and_failures_are_remembered() -> None:
    looked_up: list[str] = []

    def lookup(host: str) -> Credentials | None:
        looked_up.append(host)
        raise AuthError("credential helper docker-credential-gone is not installed")

    fake = FakeRegistry()
    auth = RegistryAuth(lookup)
    with httpx.Client(transport=httpx.MockTransport(fake), auth=auth) as client:
        auth.bind(lambda request: client.send(request, auth=None))
        for _ in range(3):
            with pytest.raises(AuthError, match="docker-credential-gone"):
                client.get(MANIFEST)
    assert looked_up == ["reg.test"]


def test_lookup_gets_host_with_port() -> None:
    looked_up: list[str] = []

    def lookup(host: str) -> Credentials | None:
        looked_up.append(host)
        return None

    fake = FakeRegistry(realm="http://127.0.0.1:5000/token")
    auth = RegistryAuth(lookup)
    with httpx.Client(transport=httpx.MockTransport(fake), auth=auth) as client:
        auth.bind(lambda request: client.send(request, auth=None))
        assert client.get("http://127.0.0.1:5000/v2/app/manifests/v1").status_code == 200
        assert client.get("http://127.0.0.1:5000/v2/app/manifests/v2").status_code == 200
    assert looked_up == ["127.0.0.1:5000"]


# --------------------------------------------------------------------------- token endpoint failures


def test_rejected_credentials_raise_auth_error_without_secrets() -> None:
    fake = FakeRegistry(password="the-right-one")
    creds = Credentials(username="alice", password=PASSWORD, source="/root/.docker/config.json")
    client, _ = make_client(fake, creds)
    with client, pytest.raises(AuthError) as caught:
        client.get(MANIFEST)
    message = str(caught.value)
    assert "credentials from /root/.docker/config.json were rejected by auth.test" in message
    assert_no_secret(message + (caught.value.hint or ""))
    assert caught.value.exit_code == 4


def test_rejected_identity_token_raises_auth_error_without_secrets() -> None:
    fake = FakeRegistry(token_status=401)
    creds = Credentials(identity_token=REFRESH, source="DOCKER_AUTH_CONFIG")
    client, _ = make_client(fake, creds)
    with client, pytest.raises(AuthError) as caught:
        client.get(MANIFEST)
    assert "credentials from DOCKER_AUTH_CONFIG were rejected by auth.test" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_anonymous_token_refused() -> None:
    fake = FakeRegistry(token_status=403)
    client, _ = make_client(fake)
    with client, pytest.raises(AuthError, match=r"auth.test refused an anonymous token .*HTTP 403"):
        client.get(MANIFEST)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, b"oops", "failed: HTTP 500"),
        (200, b"not json", "invalid JSON"),
        (200, b'{"token": ""}', "without a token"),
        (200, b'["token"]', "without a token"),
    ],
)
def test_token_endpoint_failures(status: int, body: bytes, expected: str) -> None:
    fake = FakeRegistry(token_status=status, token_body=body)
    client, _ = make_client(fake)
    with client, pytest.raises(AuthError, match=expected):
        client.get(MANIFEST)


def test_token_endpoint_connection_failure_is_a_transport_error() -> None:
    def send(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake = FakeRegistry()
    auth = RegistryAuth(lambda host: None, send)
    with (
        httpx.Client(transport=httpx.MockTransport(fake), auth=auth) as client,
        pytest.raises(TransportError, match=r"token request to auth\.test failed"),
    ):
        client.get(MANIFEST)


def test_missing_sender_is_reported() -> None:
    fake = FakeRegistry()
    auth = RegistryAuth(lambda host: None)
    with (
        httpx.Client(transport=httpx.MockTransport(fake), auth=auth) as client,
        pytest.raises(CacheInspectError, match="no token sender"),
    ):
        client.get(MANIFEST)


# --------------------------------------------------------------------------- realm safety


def test_plain_http_realm_refused_for_https_registry() -> None:
    fake = FakeRegistry(realm="http://auth.test/token")
    client, _ = make_client(fake, Credentials(username="alice", password=PASSWORD, source="flags"))
    with client, pytest.raises(AuthError, match=r"refusing plain-http token realm auth\.test"):
        client.get(MANIFEST)
    assert fake.token_requests == []


@pytest.mark.parametrize("realm", ["file:///etc/passwd", "ftp://auth.test/token", "javascript:alert(1)"])
def test_non_http_realm_refused(realm: str) -> None:
    fake = FakeRegistry(realm=realm)
    client, _ = make_client(fake)
    with client, pytest.raises(AuthError, match="refusing token realm with scheme"):
        client.get(MANIFEST)


def test_plain_http_realm_allowed_for_plain_http_registry() -> None:
    fake = FakeRegistry(realm="http://127.0.0.1:5001/token")
    client, _ = make_client(fake)
    with client:
        assert client.get("http://127.0.0.1:5000/v2/app/manifests/v1").status_code == 200
    assert len(fake.token_requests) == 1


def test_relative_realm_resolves_against_the_registry() -> None:
    fake = FakeRegistry(realm="/token")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return fake.token_endpoint(request)
        return fake.registry(request)

    auth = RegistryAuth(lambda host: None)
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        auth.bind(lambda request: client.send(request, auth=None))
        assert client.get(MANIFEST).status_code == 200
    assert str(fake.token_requests[0].url).startswith("https://reg.test/token?")


# --------------------------------------------------------------------------- redirects


def test_cross_host_blob_redirect_drops_authorization() -> None:
    fake = FakeRegistry()
    client, _ = make_client(fake)
    with client:
        response = client.get(f"{REGISTRY}/v2/team/app/blobs/sha256:abc")
    assert response.status_code == 200
    assert response.content == b"blob bytes"
    assert fake.registry_requests[-1].headers["authorization"] == "Bearer SECRET-tok-1"
    (storage,) = fake.other_requests
    assert storage.url.host == "storage.test"
    assert "authorization" not in storage.headers


def test_401_from_a_redirect_target_is_not_answered() -> None:
    fake = FakeRegistry()
    evil_realm = "https://evil.test/token"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.test":
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{evil_realm}"'})
        if request.url.host == "evil.test":
            raise AssertionError("credentials sent to the redirect target's realm")
        return fake(request)

    creds = Credentials(username="alice", password=PASSWORD, source="flags")
    auth = RegistryAuth(lambda host: creds)
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth, follow_redirects=True) as client:
        auth.bind(lambda request: client.send(request, auth=None))
        # Learn the registry's challenge first, so the blob GET carries a token from the start
        # and the storage 401 is the answer to its first attempt.
        assert client.get(MANIFEST).status_code == 200
        response = client.get(f"{REGISTRY}/v2/team/app/blobs/sha256:abc")
        assert response.status_code == 401
        assert response.url.host == "storage.test"
        # On the retry path too: the registry forgets its token, the retry is redirected, storage says 401.
        fake.issued.clear()
        assert client.get(f"{REGISTRY}/v2/team/app/blobs/sha256:abc").status_code == 401
    assert len(fake.token_requests) == 2


# --------------------------------------------------------------------------- caching and threads


def test_token_cached_until_expiry_minus_margin() -> None:
    now = [1000.0]
    fake = FakeRegistry(token_extra={"expires_in": 300})
    client, _ = make_client(fake, clock=lambda: now[0])
    with client:
        client.get(MANIFEST)
        now[0] += 289
        client.get(MANIFEST)
        assert len(fake.token_requests) == 1
        now[0] += 2  # past 300 - 10 s margin
        client.get(MANIFEST)
        assert len(fake.token_requests) == 2
    assert len(fake.unauthenticated) == 1


def test_token_lifetime_counts_from_issued_at_and_is_at_least_60_seconds() -> None:
    now = [1000.0]
    wall = datetime(2023, 11, 14, 22, 15, 0, tzinfo=UTC).timestamp() + 100
    fake = FakeRegistry(token_extra={"expires_in": 300, "issued_at": "2023-11-14T22:15:00.123456789Z"})
    client, _ = make_client(fake, clock=lambda: now[0], wall_clock=lambda: wall)
    with client:
        client.get(MANIFEST)
        now[0] += 189
        client.get(MANIFEST)
        assert len(fake.token_requests) == 1
        now[0] += 2  # 300 - 100 - 10
        client.get(MANIFEST)
        assert len(fake.token_requests) == 2

    now = [1000.0]
    fake = FakeRegistry(token_extra={"expires_in": 5})
    client, _ = make_client(fake, clock=lambda: now[0])
    with client:
        client.get(MANIFEST)
        now[0] += 49
        client.get(MANIFEST)
    assert len(fake.token_requests) == 1


def test_sixteen_concurrent_heads_fetch_one_token() -> None:
    fake = FakeRegistry(token_delay=0.05)
    client, _ = make_client(fake)
    barrier = threading.Barrier(16)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def head() -> None:
        try:
            barrier.wait()
            statuses.append(client.head(MANIFEST).status_code)
        except BaseException as exc:
            errors.append(exc)

    with client:
        threads = [threading.Thread(target=head) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert statuses == [200] * 16
    assert len(fake.token_requests) == 1


# --------------------------------------------------------------------------- WWW-Authenticate


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/alpine:pull",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        (
            'BASIC Realm="a, b", BEARER REALM="https://x/t", Scope="repo:a:pull,push"',
            [
                Challenge("basic", {"realm": "a, b"}),
                Challenge("bearer", {"realm": "https://x/t", "scope": "repo:a:pull,push"}),
            ],
        ),
        (
            r'Bearer realm="q\"uo\\te", error=insufficient_scope',
            [Challenge("bearer", {"realm": 'q"uo\\te', "error": "insufficient_scope"})],
        ),
        ("Negotiate abc123==, Basic realm=x", [Challenge("negotiate"), Challenge("basic", {"realm": "x"})]),
        (
            "Bearer realm=https://auth.test/token service = reg",
            [Challenge("bearer", {"realm": "https://auth.test/token", "service": "reg"})],
        ),
        ("Basic", [Challenge("basic")]),
        ("", []),
        ('  ,, , Basic  realm = "x" ,,', [Challenge("basic", {"realm": "x"})]),
        ('realm="orphan", Basic', [Challenge("basic")]),
        ('Bearer realm="unterminated', [Challenge("bearer", {"realm": "unterminated"})]),
        ("@@@ , Basic realm=x", [Challenge("basic", {"realm": "x"})]),
    ],
)
def test_parse_www_authenticate_examples(header: str, expected: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == expected


_TCHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
tokens = st.text(alphabet=_TCHARS, min_size=1, max_size=10)
values = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
challenges = st.builds(
    Challenge,
    scheme=tokens.map(str.lower),
    params=st.dictionaries(tokens.map(str.lower), values, max_size=4),
)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_challenge(challenge: Challenge, case: Callable[[str], str]) -> str:
    params = ", ".join(f"{case(name)}={quote(value)}" for name, value in challenge.params.items())
    return f"{case(challenge.scheme)} {params}".rstrip()


@given(st.lists(challenges, max_size=4), st.sampled_from([str.lower, str.upper, str.title]))
def test_parse_www_authenticate_round_trip(generated: list[Challenge], case: Callable[[str], str]) -> None:
    header = ", ".join(format_challenge(c, case) for c in generated)
    assert parse_www_authenticate(header) == generated


@given(st.text() | st.text(alphabet='"\\,= \tBasicBearer=realm'))
def test_parse_www_authenticate_never_raises(text: str) -> None:
    result = parse_www_authenticate(text)
    assert all(isinstance(c, Challenge) and c.scheme for c in result)


# --------------------------------------------------------------------------- redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        ("{'authorization': 'Bearer abc'}", "{'authorization': 'Bearer ***'}"),
        ("('authorization', 'Bearer abc')", "('authorization', 'Bearer ***')"),
        ("Authorization=rawsecret", "Authorization=***"),
        ("GET https://s3/x?X-Amz-Signature=abc&b=1", "GET https://s3/x?X-Amz-Signature=***&b=1"),
        ("refresh_token=xyz&client_id=c", "refresh_token=***&client_id=c"),
        ("?access_token=xyz", "?access_token=***"),
        ('{"token": "abc", "expires_in": 60}', '{"token": "***", "expires_in": 60}'),
        ('{"password":"p\\"w"}', '{"password":"***"}'),
        ("https://alice:pw@reg.test/v2/", "https://alice:***@reg.test/v2/"),
        ("scope=repository:a:pull&service=reg", "scope=repository:a:pull&service=reg"),
        ("no Authorization, retrying", "no Authorization, retrying"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_headers_dump() -> None:
    request = httpx.Request("GET", MANIFEST, headers={"Authorization": f"Bearer {STATIC}"})
    dumped = redact(json.dumps(dict(request.headers)) + repr(request.headers))
    assert STATIC not in dumped
