"""Application Default Credentials for Google hosts (``inspector.registry.google.default_credentials``).

The real google-auth library is used: a ``service_account`` key file as ADC
(``GOOGLE_APPLICATION_CREDENTIALS``; a fresh RSA key) whose ``token_uri`` is a token endpoint on
loopback (google-auth honours a service account's ``token_uri``; an ``authorized_user`` file's is
always replaced by Google's). The refresh is google-auth's own signed-JWT grant (RFC 7523,
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``), answered as Google's OAuth 2.0 token
endpoint answers (RFC 6749 §5.1/§5.2: ``access_token``, ``expires_in``; ``error`` on refusal).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from inspector.errors import AuthError
from inspector.registry.google import ADC_SOURCE, default_credentials

ACCESS_TOKEN = "ya29.loopback-access-token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class TokenEndpoint:
    def __init__(self, *, refuse: bool = False) -> None:
        self.forms: list[dict[str, list[str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                owner.forms.append(parse_qs(body))
                answer: dict[str, object]
                if refuse:
                    status, answer = 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                else:
                    status, answer = (
                        200,
                        {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"},
                    )
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[TokenEndpoint]:
    started = TokenEndpoint(refuse=getattr(request, "param", False))
    started.thread.start()
    yield started
    started.server.shutdown()
    started.server.server_close()


def adc_file(tmp_path: Path, token_uri: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "adc.json"
    info = {
        "type": "service_account",
        "project_id": "loopback",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "cache-gc@loopback.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path


def test_adc_gives_an_access_token_as_oauth2accesstoken(
    endpoint: TokenEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc_file(tmp_path, endpoint.url)))
    found = default_credentials("europe-docker.pkg.dev")
    assert found is not None
    assert (found.username, found.password, found.source) == ("oauth2accesstoken", ACCESS_TOKEN, ADC_SOURCE)
    assert ACCESS_TOKEN not in repr(found)
    assert endpoint.forms[0]["grant_type"] == [JWT_BEARER]


def test_another_host_never_asks_google(
    endpoint: TokenEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc_file(tmp_path, endpoint.url)))
    assert default_credentials("registry.example.com") is None
    assert default_credentials("ghcr.io") is None
    assert endpoint.forms == []


@pytest.mark.parametrize("endpoint", [True], indirect=True)
def test_a_refused_refresh_is_one_auth_error_without_secrets(
    endpoint: TokenEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc_file(tmp_path, endpoint.url)))
    with pytest.raises(AuthError) as caught:
        default_credentials("gcr.io")
    message = caught.value.message
    assert message.startswith(f"{ADC_SOURCE}: no access token for gcr.io: ")
    assert (
        "\n" not in message
        and "PRIVATE KEY" not in message
        and endpoint.forms[0]["assertion"][0] not in message
    )
    assert "oauth2accesstoken --password-stdin" in (caught.value.hint or "")


def test_without_adc_or_without_google_auth_access_stays_anonymous(tmp_path: Path) -> None:
    """No ADC file, no gcloud config, no metadata server (NO_GCE_CHECK): None, and nothing else is tried.
    A google-auth that cannot be imported stands for a machine without the gcp extra."""
    env = {
        "HOME": str(tmp_path),
        "NO_GCE_CHECK": "True",
        "PATH": "/usr/bin:/bin",
        "CLOUDSDK_CONFIG": str(tmp_path),
    }
    code = "from inspector.registry.google import default_credentials; print(default_credentials('gcr.io'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "None"
    (tmp_path / "google").mkdir()
    (tmp_path / "google" / "__init__.py").write_text("raise ImportError('No module named google')\n")
    blocked = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); " + code
    done = subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "None"


def test_the_core_never_imports_google_auth() -> None:
    code = (
        "import sys, inspector\n"
        "from inspector.cli.entry import run\n"
        "run(['--version']); run(['tags', '--help']); run(['gc', '--help'])\n"
        "print(sorted(m for m in sys.modules if m == 'google' or m.startswith('google.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
