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

Each prints one JSON line saying what it saw, so the suite can check that the work was done.
"""

from __future__ import annotations

import json
import re
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
    import oras.provider

    registry = oras.provider.Registry(hostname=host, insecure=True)
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
        self.http = httpx.Client(timeout=60, trust_env=False, limits=limits)
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
    base = f"http://{host}/v2/{repo}"
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
    base = f"http://{host}/v2/{repo}"
    response = client.request("GET", f"{base}/manifests/{tag}", {"Accept": _MANIFEST_ACCEPT})
    response.raise_for_status()
    manifest = response.json()
    config = client.request("GET", f"{base}/blobs/{_config(manifest)}")
    config.raise_for_status()
    layers = list(dict.fromkeys(_layers(manifest)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(lambda d: client.request("HEAD", f"{base}/blobs/{d}").status_code, layers))
    return {"layers": len(layers), "present": codes.count(200), "config_bytes": len(config.content)}


def oras_tags(host: str, repo: str) -> dict[str, Any]:
    import oras.provider

    registry = oras.provider.Registry(hostname=host, insecure=True)
    tags = registry.get_tags(f"{host}/{repo}")
    return {"tags": len(tags)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(
            "usage: python -m bench.peers oras-show|naive-show|threads-show|oras-tags HOST REPO [TAG [C]]",
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
    else:
        print(f"unknown peer {command!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
