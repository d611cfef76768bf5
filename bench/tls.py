"""TLS for the HTTP/2 rows: a throwaway test CA (``trustme``) and the real registry serving TLS.

Go's ``net/http`` server, which distribution 2.8.2 is, negotiates HTTP/2 through ALPN on every TLS
listener unless told otherwise, so the registry started here speaks HTTP/2 and HTTP/1.1.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.harness.registry import INSTANCE_HEADER, LocalRegistry, RegistryUnavailable, find_registry_binary

__all__ = ["TlsFiles", "make_tls", "start_tls_registry"]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA to trust, and the certificate (for 127.0.0.1 and localhost) with its key."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def cert_dir(self) -> Path:
        """A directory with the CA as ``ca.crt``, as skopeo's ``--cert-dir`` wants it."""
        directory = self.ca.parent / "certs.d"
        directory.mkdir(exist_ok=True)
        (directory / "ca.crt").write_bytes(self.ca.read_bytes())
        return directory


def make_tls(directory: Path) -> TlsFiles:
    """A new CA and a server certificate for ``127.0.0.1`` and ``localhost``, written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.private_key_pem.write_to_path(str(files.key))
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return files


def start_tls_registry(
    storage: Path, workdir: Path, tls: TlsFiles, *, extra: dict[str, Any] | None = None
) -> LocalRegistry:
    """The real registry serving ``storage`` over TLS on a free loopback port, once it (and only it) answers.

    ``extra`` replaces top-level config sections (``storage`` options, ``log``) as ``start_registry``'s does.
    """
    binary = find_registry_binary()
    if binary is None:
        raise RegistryUnavailable("docker-registry is not installed (apt-get install -y docker-registry)")
    trusted = tls.client_context()
    last_error = ""
    for _attempt in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        instance = uuid.uuid4().hex
        root = workdir / f"tls-registry-{port}"
        root.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {
                "addr": f"127.0.0.1:{port}",
                "headers": {INSTANCE_HEADER: [instance]},
                "tls": {"certificate": str(tls.cert), "key": str(tls.key)},
            },
        }
        config.update(extra or {})
        (root / "config.yml").write_text(json.dumps(config, indent=2))  # YAML is a superset of JSON
        log_path = root / "registry.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, "serve", str(root / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        registry = LocalRegistry(f"127.0.0.1:{port}", root, instance, process, log_path)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and registry.alive():
            try:
                response = httpx.get(f"https://{registry.host}/v2/", timeout=1, verify=trusted)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.headers.get(INSTANCE_HEADER) == instance:
                return registry
            last_error = f"port {port} is answered by another process"
            break
        else:
            last_error = "did not answer within 20 s" if registry.alive() else registry.log()[-500:]
        registry.stop()
    raise RegistryUnavailable(f"TLS docker-registry would not start: {last_error}")
