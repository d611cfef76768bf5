"""A small token server (distribution's token auth) for tests against a real docker-registry.

It answers ``GET /token?service=…&scope=…`` like Docker's auth service: Basic credentials are checked
per user, every requested scope is intersected with the actions that user may have, and the grant is
returned as a JWT signed (RS256) by a throwaway key. The token carries its certificate in the ``x5c``
header; the registry trusts it because ``rootcertbundle`` is that certificate (see
``registry_auth_config``). Issued tokens are remembered so tests can search output for them.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["TokenServer", "User", "start_token_server"]

SERVICE = "cacheinspect-test-registry"
ISSUER = "cacheinspect-test-issuer"


@dataclass(frozen=True)
class User:
    password: str
    #: repository name (or "*") -> actions this user may have there
    grants: Mapping[str, frozenset[str]]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenServer:
    users: Mapping[str, User]
    cert_path: Path
    _key: rsa.RSAPrivateKey = field(repr=False)
    _cert_der: bytes = field(repr=False)
    _server: ThreadingHTTPServer | None = None
    issued: list[str] = field(default_factory=list, repr=False)
    #: (user or "-", requested scopes, granted access) per request
    requests: list[tuple[str, list[str], list[dict[str, Any]]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def realm(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/token"

    def registry_auth_config(self) -> dict[str, Any]:
        """The ``auth`` section of a registry config that trusts this server's tokens."""
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.cert_path),
            }
        }

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access: list[dict[str, Any]] = []
        allowed = self.users[user].grants if user is not None else {}
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
            if kind != "repository":
                continue
            mine = allowed.get(name, allowed.get("*", frozenset()))
            wanted = set(actions.split(","))
            granted = sorted(wanted) if "*" in mine else sorted(wanted & mine)
            access.append({"type": kind, "name": name, "actions": granted})
        return access

    def sign(self, subject: str, access: list[dict[str, Any]], lifetime: int = 300) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode("ascii")]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        ).encode("ascii")
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        token = signing_input.decode("ascii") + "." + _b64url(signature)
        with self._lock:
            self.issued.append(token)
        return token

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        if url.path != "/token":
            handler.send_error(404)
            return
        query = parse_qs(url.query)
        user: str | None = None
        authorization = handler.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            known = self.users.get(name)
            if known is None or not secrets.compare_digest(known.password, password):
                self._reply(handler, 401, {"details": "invalid credentials"})
                return
            user = name
        if user is None:
            # Anonymous: nothing is granted, so refuse outright (as a private registry's auth does).
            self._reply(handler, 401, {"details": "authentication required"})
            return
        scopes = [s for value in query.get("scope", []) for s in value.split()]
        access = self.grant(user, scopes)
        with self._lock:
            self.requests.append((user, scopes, access))
        token = self.sign(user, access)
        issued_at = datetime.datetime.now(datetime.UTC).isoformat()
        self._reply(
            handler, 200, {"token": token, "access_token": token, "expires_in": 300, "issued_at": issued_at}
        )

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        if status == 401:
            handler.send_header("WWW-Authenticate", 'Basic realm="cacheinspect-test-token"')
        handler.end_headers()
        handler.wfile.write(data)

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def start_token_server(workdir: Path, users: Mapping[str, User]) -> TokenServer:
    """Generate a signing key and self-signed certificate in ``workdir`` and start serving tokens."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cacheinspect test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = workdir / "token-signer.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server = TokenServer(users, cert_path, key, cert.public_bytes(serialization.Encoding.DER))
    server.start()
    return server
