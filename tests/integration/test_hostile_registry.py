"""A malicious registry, token realm and redirect target against the real CLI in a subprocess.

Each test scripts one lie (``tests/harness/evilserver.py``); everything else is the real docker-registry behind it.
The rules they hold the client to are the README's Transport section: GET and HEAD follow at most 10
redirects, never from HTTPS down to plain HTTP; DELETE, PUT, PATCH and POST follow none (a redirect would
move a write, or the refresh token in a token POST's body, to whatever host the Location names); a refused
redirect is exit 8. A token answer is capped at 1 MiB and must arrive whole within ``--timeout``.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from inspector.oci import mediatypes
from tests.harness.evilserver import EvilServer, Reply, Request, json_reply
from tests.harness.registry import LocalRegistry, load_samples, seed_sample
from tests.harness.support import run_cli

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SECRET = "refresh-token-" + uuid.uuid4().hex


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("cacheinspect: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _challenge(server_host: str, scheme: str = "http") -> Reply:
    return Reply(401, {"WWW-Authenticate": f'Bearer realm="{scheme}://{server_host}/token",service="evil"'})


@pytest.fixture
def third() -> Iterator[EvilServer]:
    """The host a redirect points at: it records what arrives and answers like a registry would."""
    with EvilServer(lambda r: json_reply(200, '{"token": "stolen", "name": "app", "tags": ["x"]}')) as server:
        yield server


def _docker_config(tmp_path: Path, host: str) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {host: {"identitytoken": SECRET}}}))
    return {"DOCKER_CONFIG": str(tmp_path)}


# --------------------------------------------------------------------------- point 1: the refresh token


def test_token_post_redirected_to_another_host_keeps_the_refresh_token(
    tmp_path: Path, third: EvilServer
) -> None:
    # auth.py sends an identitytoken as grant_type=refresh_token in a POST body (docker's OAuth2 flow);
    # a 307 keeps method and body (RFC 9110 §15.4.8), so following it hands the token to `third`.
    def script(request: Request) -> Reply | None:
        if request.path == "/token":
            return Reply(307, {"Location": f"http://{third.host}/token"})
        return _challenge(realm_host)

    with EvilServer(script) as realm:
        realm_host = realm.host
        result = run_cli("tags", f"{realm.host}/app", env=_docker_config(tmp_path, realm.host), timeout=60)
        posted = realm.requests("POST")
    assert posted and SECRET.encode() in posted[0].body  # the flow did send it, to the realm itself
    assert third.seen == []
    assert result.returncode == 8, result.stderr
    assert "never redirected" in _one_line(result.stderr)
    assert SECRET not in result.stdout + result.stderr


# --------------------------------------------------------------------------- point 2: gc's DELETE


def test_gc_delete_redirected_to_another_registry_deletes_nothing_there(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    repo = f"hostile/gc-{uuid.uuid4().hex[:8]}"
    sample = next(s for s in load_samples() if s["name"] == "multistage-max")
    tags = seed_sample(registry.host, repo, sample)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    # `other` is a second registry (the same storage behind another origin): a DELETE arriving there
    # deletes for real, so without the policy gc would report the deletion and exit 0.
    with EvilServer(upstream=registry.url) as other:

        def script(request: Request) -> Reply | None:
            if request.method == "DELETE":
                return Reply(307, {"Location": f"http://{other.host}{request.path}"})
            return None

        with EvilServer(script, upstream=registry.url) as evil:
            result = run_cli(
                "gc", f"{evil.host}/{repo}", "-t", "{branch}", "--branches-file", str(branches), "--apply"
            )
            redirected = evil.requests("DELETE")
        assert other.requests("DELETE") == []
    assert redirected, "gc sent no DELETE: the test proves nothing"
    assert result.returncode == 8, result.stdout + result.stderr
    assert "never redirected" in _one_line(result.stderr)
    for tag in tags:  # every tag (each one's branch is gone) is still there
        answer = httpx.head(
            f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": mediatypes.MANIFEST_ACCEPT}
        )
        assert answer.status_code == 200, tag


# --------------------------------------------------------------------------- point 3: probe's upload POST


def test_probe_upload_post_redirected_creates_nothing_on_another_registry(registry: LocalRegistry) -> None:
    repo = f"hostile/probe-{uuid.uuid4().hex[:8]}"
    seed_sample(registry.host, repo, next(s for s in load_samples() if s["name"] == "multistage-max"))
    with EvilServer(upstream=registry.url) as other:

        def script(request: Request) -> Reply | None:
            if request.method == "POST" and "/blobs/uploads/" in request.path:
                return Reply(307, {"Location": f"http://{other.host}{request.path}?{request.query}"})
            return None

        with EvilServer(script, upstream=registry.url) as evil:
            result = run_cli("probe", f"{evil.host}/{repo}", "--json", "--no-near-limit", timeout=120)
            redirected = evil.requests("POST")
        assert redirected, "probe sent no upload POST: the test proves nothing"
        assert [r for r in other.seen if r.method != "GET"] == []
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)
    upload = next(c for c in doc["checks"] if c["id"] == "blob-upload")
    assert upload["status"] != "supported", upload
    assert "redirect" in json.dumps(upload).lower(), upload


# --------------------------------------------------------------------------- point 5: the token body


def _over(transport: str, tmp_path: Path) -> tuple[ssl.SSLContext | None, list[str]]:
    """The server's TLS context and the client's flags for ``transport``: "http" (the synchronous client) or
    "https" (HTTPS runs on the client's event loop, ``inspector/registry/_h2.py``: the caps and the timeout must
    hold there too)."""
    if transport == "http":
        return None, []
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, ["--ca-file", str(ca_file)]


@pytest.mark.parametrize("transport", ["http", "https"])
def test_token_body_over_the_cap_is_refused_without_reading_it_all(transport: str, tmp_path: Path) -> None:
    tls, flags = _over(transport, tmp_path)
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        chunk = b" " * 65536
        while sent < 64 * 1024 * 1024:  # 64 MiB, undeclared: well past the 1 MiB cap
            sent += len(chunk)
            yield chunk

    def script(request: Request) -> Reply | None:
        if request.path == "/token":
            return Reply(200, {"Content-Type": "application/json"}, endless())
        return _challenge(realm_host, "https" if tls else "http")

    with EvilServer(script, tls=tls) as realm:
        realm_host = realm.host
        result = run_cli("tags", f"{realm.host}/app", *flags, timeout=60)
    assert result.returncode == 4, result.stderr
    assert "1048576 byte limit" in _one_line(result.stderr)
    assert sent < 16 * 1024 * 1024  # the client hung up near the cap (socket buffers hold the rest)


@pytest.mark.parametrize(
    ("transport", "declared"),
    [("http", False), ("https", False), ("https", True)],
    ids=["http", "https", "https-declared"],
)
def test_token_body_trickled_a_byte_at_a_time_obeys_the_timeout(
    transport: str, declared: bool, tmp_path: Path
) -> None:
    """``declared``: the answer says its 54 bytes in ``Content-Length``, so the HTTPS event loop reads it whole
    before handing it over (``_h2.PREFETCH``): that read must keep the same deadline."""
    tls, flags = _over(transport, tmp_path)
    length = {"Content-Length": "54"} if declared else {}

    def trickle() -> Iterator[bytes]:
        for byte in b'{"token": "t"}' + b" " * 40:  # 54 bytes at 0.2 s: 10.8 s in all, each read quick
            time.sleep(0.2)
            yield bytes([byte])

    def script(request: Request) -> Reply | None:
        if request.path == "/token":
            return Reply(200, {"Content-Type": "application/json", **length}, trickle())
        return _challenge(realm_host, "https" if tls else "http")

    with EvilServer(script, tls=tls) as realm:
        realm_host = realm.host
        started = time.monotonic()
        result = run_cli("tags", f"{realm.host}/app", "--timeout", "2", *flags, timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 6, result.stderr
    assert "token request" in _one_line(result.stderr)
    assert elapsed < 8, elapsed  # 2 s deadline (+ start-up), far below the 10.8 s the body takes


# --------------------------------------------------------------------------- point 8: malformed answers


def test_redirect_loop_is_a_typed_error() -> None:
    def script(request: Request) -> Reply | None:
        hop = int(request.query.rpartition("=")[2] or 0) if request.query else 0
        return Reply(302, {"Location": f"/v2/app/tags/list?hop={(hop + 1) % 3}"})

    with EvilServer(script) as evil:
        result = run_cli("tags", f"{evil.host}/app", timeout=60)
        hops = len(evil.seen)
    assert result.returncode == 8, result.stderr
    assert "loop" in _one_line(result.stderr)
    assert hops <= 11


def test_endless_redirects_stop_after_ten_hops() -> None:
    def script(request: Request) -> Reply | None:
        hop = int(request.query.rpartition("=")[2] or 0) if request.query else 0
        return Reply(307, {"Location": f"/v2/app/tags/list?hop={hop + 1}"})

    with EvilServer(script) as evil:
        result = run_cli("tags", f"{evil.host}/app", timeout=60)
        hops = len(evil.seen)
    assert result.returncode == 8, result.stderr
    assert "more than 10 redirects" in _one_line(result.stderr)
    assert hops == 11  # the request and its 10 allowed hops


def test_digest_with_a_trailing_newline_is_invalid_content() -> None:
    config = b"{}"
    hex_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            # Go's regexp "$" (distribution's digest check) ends the text; Python's also matches before a
            # final "\n", so only a full match refuses this digest.
            "config": {
                "mediaType": "application/vnd.buildkit.cacheconfig.v0",
                "digest": f"sha256:{hex_digest}\n",
                "size": 2,
            },
            "layers": [],
        }
    ).encode()

    def script(request: Request) -> Reply | None:
        if "/manifests/" in request.path:
            return Reply(200, {"Content-Type": OCI_MANIFEST}, manifest)
        return Reply(200, {"Content-Type": "application/octet-stream"}, config)

    with EvilServer(script) as evil:
        result = run_cli("show", f"{evil.host}/app:cache", "--no-check-blobs", timeout=60)
    assert result.returncode == 8, result.stderr
    assert "invalid digest" in _one_line(result.stderr)


# --------------------------------------------------------------------------- point 9: downgrade, credentials


def test_https_registry_redirecting_to_plain_http_on_loopback_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    plain = EvilServer(lambda r: json_reply(200, '{"name": "app", "tags": ["from-plain-http"]}'))
    try:

        def script(request: Request) -> Reply | None:
            return Reply(307, {"Location": f"http://{plain.host}{request.path}"})

        with EvilServer(script, tls=context) as evil:
            result = run_cli("tags", f"{evil.host}/app", "--ca-file", str(ca_file), timeout=60)
            assert evil.seen, "the TLS server saw nothing: the test proves nothing"
        assert plain.seen == []
    finally:
        plain.close()
    assert result.returncode == 8, result.stderr
    assert "down to plain HTTP" in _one_line(result.stderr)


@pytest.mark.parametrize("command", ["show", "tags"])
def test_credentials_in_a_reference_are_refused_and_never_echoed(command: str) -> None:
    password = "hunter2-" + uuid.uuid4().hex[:6]
    target = f"alice:{password}@127.0.0.1:9/app" + (":main" if command == "show" else "")
    result = run_cli(command, target, "--json", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "credentials do not belong in a reference" in _one_line(result.stderr)
    assert password not in result.stdout + result.stderr
    assert "alice" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["error"]["exitCode"] == 2
