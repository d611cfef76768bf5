"""The Python peers, each run as its own process: ``python -m bench.peers COMMAND HOST REPO [TAG]``.

* ``oras-show``: oras-py (the ORAS Python SDK) does what ``cacheinspect show`` does on the
  wire: GET the manifest, GET the config blob, HEAD every layer blob; one at a time, as
  oras-py has no concurrency.
* ``naive-show``: the same with a plain sequential loop over one keep-alive ``httpx.Client``
  that answers a Bearer challenge once and reuses the token.
* ``threads-show``: a control, not a peer: the same requests from bare ``httpx`` with a thread
  pool of ``CONCURRENCY`` (the token fetched once, up front, after the first 401), to show what
  this machine allows at that concurrency with no analysis or checks at all.
* ``oras-tags``: oras-py ``get_tags`` (follows ``Link`` pages).
* ``h2-show``: a control for the HTTP/2 rows: the requests of ``threads-show`` from one
  ``httpx.AsyncClient(http2=True)`` on one connection, every blob HEAD in flight at once (httpx
  keeps them within the server's ``SETTINGS_MAX_CONCURRENT_STREAMS``).
* ``h2-du``: the same for ``du``'s least work: the tag list, then every tag's manifest GET at once.

With ``BENCH_CA_FILE`` set, every peer speaks HTTPS and trusts that CA (the HTTP/2 rows' proxy).

Each prints one JSON line saying what it saw, so the suite can check that the work was done.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
from typing import Any

__all__ = ["main"]

_MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def _ca_file() -> str | None:
    return os.environ.get("BENCH_CA_FILE") or None


def _scheme() -> str:
    return "https" if _ca_file() else "http"


def _verify() -> ssl.SSLContext | bool:
    ca = _ca_file()
    return ssl.create_default_context(cafile=ca) if ca else True


def _oras(host: str) -> Any:
    import oras.provider

    ca = _ca_file()
    return oras.provider.Registry(hostname=host, insecure=ca is None, tls_verify=ca or True)


def _layers(manifest: dict[str, Any]) -> list[str]:
    if "layers" in manifest:
        return [str(d["digest"]) for d in manifest["layers"]]
    return [
        str(d["digest"])
        for d in manifest.get("manifests", [])
        if d.get("mediaType") != "application/vnd.buildkit.cacheconfig.v0"
    ]


def _config(manifest: dict[str, Any]) -> str:
    if "config" in manifest:
        return str(manifest["config"]["digest"])
    return next(
        str(d["digest"])
        for d in manifest["manifests"]
        if d.get("mediaType") == "application/vnd.buildkit.cacheconfig.v0"
    )


def oras_show(host: str, repo: str, tag: str) -> dict[str, Any]:
    registry = _oras(host)
    container = registry.get_container(f"{host}/{repo}:{tag}")
    manifest = registry.get_manifest(container)
    config = registry.get_blob(container, _config(manifest))
    if config.status_code != 200:
        raise SystemExit(f"config: HTTP {config.status_code}")
    present = 0
    layers = list(dict.fromkeys(_layers(manifest)))
    for digest in layers:
        response = registry.get_blob(container, digest, head=True)
        present += response.status_code == 200
    return {"layers": len(layers), "present": present, "config_bytes": len(config.content)}


class _NaiveClient:
    """One keep-alive connection, sequential requests, one anonymous token fetched on the first 401."""

    def __init__(self, pool: int = 1) -> None:
        import httpx

        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        self.http = httpx.Client(timeout=60, trust_env=False, limits=limits, verify=_verify())
        self.token: str | None = None

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> Any:
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = self.http.request(method, url, headers=headers)
        if response.status_code == 401 and "www-authenticate" in response.headers:
            params = dict(re.findall(r'(\w+)="([^"]*)"', response.headers["www-authenticate"]))
            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            token = self.http.get(params["realm"], params=query).json()
            self.token = token.get("token") or token.get("access_token")
            headers["Authorization"] = f"Bearer {self.token}"
            response = self.http.request(method, url, headers=headers)
        return response


def naive_show(host: str, repo: str, tag: str) -> dict[str, Any]:
    client = _NaiveClient()
    base = f"{_scheme()}://{host}/v2/{repo}"
    response = client.request("GET", f"{base}/manifests/{tag}", {"Accept": _MANIFEST_ACCEPT})
    response.raise_for_status()
    manifest = response.json()
    config = client.request("GET", f"{base}/blobs/{_config(manifest)}")
    config.raise_for_status()
    present = 0
    layers = list(dict.fromkeys(_layers(manifest)))
    for digest in layers:
        present += client.request("HEAD", f"{base}/blobs/{digest}").status_code == 200
    return {"layers": len(layers), "present": present, "config_bytes": len(config.content)}


def threads_show(host: str, repo: str, tag: str, concurrency: str) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    workers = int(concurrency)
    client = _NaiveClient(workers)
    base = f"{_scheme()}://{host}/v2/{repo}"
    response = client.request("GET", f"{base}/manifests/{tag}", {"Accept": _MANIFEST_ACCEPT})
    response.raise_for_status()
    manifest = response.json()
    config = client.request("GET", f"{base}/blobs/{_config(manifest)}")
    config.raise_for_status()
    layers = list(dict.fromkeys(_layers(manifest)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(lambda d: client.request("HEAD", f"{base}/blobs/{d}").status_code, layers))
    return {"layers": len(layers), "present": codes.count(200), "config_bytes": len(config.content)}


async def _h2_client() -> Any:
    import httpx

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)  # one connection, many streams
    return httpx.AsyncClient(http2=True, timeout=60, trust_env=False, limits=limits, verify=_verify())


async def _h2_get(client: Any, token: list[str], method: str, url: str, accept: str = "") -> Any:
    """One request with the shared token; on a 401, fetch an anonymous token for its challenge first."""
    headers = {"Accept": accept} if accept else {}
    if token:
        headers["Authorization"] = f"Bearer {token[0]}"
    response = await client.request(method, url, headers=headers)
    if response.status_code == 401 and "www-authenticate" in response.headers:
        params = dict(re.findall(r'(\w+)="([^"]*)"', response.headers["www-authenticate"]))
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        answer = (await client.get(params["realm"], params=query)).json()
        token[:] = [answer.get("token") or answer.get("access_token")]
        headers["Authorization"] = f"Bearer {token[0]}"
        response = await client.request(method, url, headers=headers)
    return response


async def _h2_show(host: str, repo: str, tag: str) -> dict[str, Any]:
    import asyncio

    base = f"{_scheme()}://{host}/v2/{repo}"
    token: list[str] = []
    async with await _h2_client() as client:
        response = await _h2_get(client, token, "GET", f"{base}/manifests/{tag}", _MANIFEST_ACCEPT)
        response.raise_for_status()
        manifest = response.json()
        config = await _h2_get(client, token, "GET", f"{base}/blobs/{_config(manifest)}")
        config.raise_for_status()
        layers = list(dict.fromkeys(_layers(manifest)))
        answers = await asyncio.gather(*(_h2_get(client, token, "HEAD", f"{base}/blobs/{d}") for d in layers))
        version = response.http_version
    present = sum(1 for a in answers if a.status_code == 200)
    return {"layers": len(layers), "present": present, "config_bytes": len(config.content), "http": version}


async def _h2_du(host: str, repo: str) -> dict[str, Any]:
    import asyncio

    base = f"{_scheme()}://{host}/v2/{repo}"
    token: list[str] = []
    async with await _h2_client() as client:
        listed = await _h2_get(client, token, "GET", f"{base}/tags/list")
        listed.raise_for_status()
        tags = listed.json()["tags"]
        answers = await asyncio.gather(
            *(_h2_get(client, token, "GET", f"{base}/manifests/{t}", _MANIFEST_ACCEPT) for t in tags)
        )
    digests = {a.headers.get("docker-content-digest") for a in answers if a.status_code == 200}
    return {"tags": len(tags), "manifests": len(digests), "http": listed.http_version}


def h2_show(host: str, repo: str, tag: str) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_h2_show(host, repo, tag))


def h2_du(host: str, repo: str) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_h2_du(host, repo))


def oras_tags(host: str, repo: str) -> dict[str, Any]:
    registry = _oras(host)
    tags = registry.get_tags(f"{host}/{repo}")
    return {"tags": len(tags)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(
            "usage: python -m bench.peers oras-show|naive-show|threads-show|oras-tags|h2-show|h2-du HOST REPO [TAG [C]]",
            file=sys.stderr,
        )
        return 2
    command, rest = args[0], args[1:]
    if command == "oras-show":
        result = oras_show(*rest)
    elif command == "naive-show":
        result = naive_show(*rest)
    elif command == "threads-show":
        result = threads_show(*rest)
    elif command == "oras-tags":
        result = oras_tags(*rest)
    elif command == "h2-show":
        result = h2_show(*rest)
    elif command == "h2-du":
        result = h2_du(*rest)
    else:
        print(f"unknown peer {command!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
