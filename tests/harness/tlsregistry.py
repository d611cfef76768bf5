"""The real docker-registry serving TLS (Go's server: HTTP/2 and HTTP/1.1 by ALPN) for one test module.

``tls_registry(workdir)`` starts it on the run's test CA (``bench/tls.py``, which the bench's HTTP/2 rows use
too) and stops it afterwards; ``put_blob`` pushes bytes through the registry's own API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.tls import TlsFiles, make_tls, start_tls_registry
from tests.harness.registry import LocalRegistry
from tests.harness.support import require_registry_binary

__all__ = ["TlsRegistry", "put_blob", "tls_registry"]


@dataclass(frozen=True)
class TlsRegistry:
    tls: TlsFiles
    registry: LocalRegistry

    def client(self, *, http2: bool = False) -> httpx.Client:
        """A bare httpx client that trusts the test CA."""
        return httpx.Client(http2=http2, verify=self.tls.client_context(), trust_env=False, timeout=30)


@contextmanager
def tls_registry(workdir: Path) -> Iterator[TlsRegistry]:
    require_registry_binary()
    tls = make_tls(workdir / "tls")
    registry = start_tls_registry(workdir / "data", workdir, tls)
    try:
        yield TlsRegistry(tls, registry)
    finally:
        registry.stop()


def put_blob(client: httpx.Client, host: str, repo: str, data: bytes) -> str:
    """Push ``data`` to ``repo`` on ``host`` (monolithic upload: POST, then PUT with the digest); its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = client.post(f"https://{host}/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = httpx.URL(f"https://{host}").join(started.headers["Location"])
    put = client.put(location.copy_add_param("digest", digest), content=data)
    assert put.status_code == 201, put.text
    return digest
