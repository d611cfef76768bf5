"""A real registry for tests and the demo: Debian's ``docker-registry`` (CNCF distribution 2.8.2).

Each instance gets its own storage directory and a free loopback port, and
answers with a header carrying a random instance id: ``start_registry`` checks
that the process it started is alive *and* is the one answering, so a port
collision can never send requests to somebody else's registry.

Samples from ``testdata/`` are pushed with oras-py (an independent client), so
our reader is checked against bytes that our own code did not upload.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.harness.paths import TESTDATA

__all__ = [
    "INSTANCE_HEADER",
    "LocalRegistry",
    "RegistryUnavailable",
    "find_registry_binary",
    "seed_sample",
    "start_registry",
]

INSTANCE_HEADER = "X-Cacheinspect-Instance"


class RegistryUnavailable(RuntimeError):
    """The registry binary is missing or would not start."""


def find_registry_binary() -> str | None:
    found = shutil.which("docker-registry")
    if found:
        return found
    return "/usr/bin/docker-registry" if os.access("/usr/bin/docker-registry", os.X_OK) else None


@dataclass
class LocalRegistry:
    host: str
    root: Path
    instance: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def garbage_collect(self, *, delete_untagged: bool = False) -> str:
        """Run the registry's own offline GC against this instance's storage (stop the server first)."""
        binary = find_registry_binary()
        assert binary is not None
        args = [binary, "garbage-collect", str(self.root / "config.yml")]
        if delete_untagged:
            args.append("--delete-untagged")
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(
    root: Path, port: int, instance: str, delete: bool, storage: Path | None, extra: dict[str, Any] | None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage or root / "data")},
            "delete": {"enabled": delete},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "headers": {INSTANCE_HEADER: [instance]}},
    }
    if extra:
        config.update(extra)
    return config


def start_registry(
    workdir: Path,
    *,
    delete: bool = True,
    storage: Path | None = None,
    extra_config: dict[str, Any] | None = None,
) -> LocalRegistry:
    """Start a registry on a free loopback port and wait until it (and only it) answers.

    ``storage``: serve this data directory (another registry's ``root / "data"``) instead of a new one.
    """
    binary = find_registry_binary()
    if binary is None:
        raise RegistryUnavailable("docker-registry is not installed (apt-get install -y docker-registry)")
    last_error = ""
    for _attempt in range(5):
        port = _free_port()
        instance = uuid.uuid4().hex
        root = workdir / f"registry-{port}"
        root.mkdir(parents=True, exist_ok=True)
        # YAML is a superset of JSON, so the config is written as JSON.
        (root / "config.yml").write_text(
            json.dumps(_config(root, port, instance, delete, storage, extra_config), indent=2)
        )
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
        while time.monotonic() < deadline:
            if not registry.alive():
                last_error = f"exited with {process.returncode}: {registry.log()[-500:]}"
                break
            try:
                response = httpx.get(f"{registry.url}/v2/", timeout=1)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.headers.get(INSTANCE_HEADER) != instance:
                last_error = f"port {port} is answered by another process"
                registry.stop()
                break
            return registry
        else:
            registry.stop()
            last_error = "did not answer within 20 s"
    raise RegistryUnavailable(f"docker-registry would not start: {last_error}")


def _oras_registry(host: str, basic_auth: tuple[str, str] | None) -> Any:
    import oras.provider

    if basic_auth is None:
        return oras.provider.Registry(hostname=host, insecure=True)
    registry = oras.provider.Registry(hostname=host, insecure=True, auth_backend="basic")
    registry.auth.set_basic_auth(*basic_auth)
    return registry


_MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)


def seed_sample(
    host: str, repository: str, sample: dict[str, Any], *, basic_auth: tuple[str, str] | None = None
) -> dict[str, str]:
    """Push one ``testdata/samples.json`` entry with oras-py; returns tag -> manifest digest.

    Every tag of the layout's ``index.json`` goes to ``sample["push"][tag]`` (``"<repository>:<tag>"``)
    when the sample names one, else to ``<repository>:<tag>``. For each tag the blobs its document
    refers to are uploaded to that repository, child manifests of an image index are PUT by digest
    first (children before their index), then the tagged document is PUT byte for byte. Finally
    ``removed_blobs`` are deleted again, so the registry serves a cache whose blob is gone. A cache in
    the OCI-index or Docker-list form lists blobs, not manifests, as its children: those are uploaded.
    """
    import oras.container

    layout: Path = TESTDATA / sample["layout"]
    registry = _oras_registry(host, basic_auth)
    folders = [layout / "blobs" / "sha256", layout / "removed-blobs" / "sha256"]
    uploaded: dict[str, set[str]] = {}  # repository -> blob digests uploaded there

    def path_of(digest: str) -> Path:
        name = digest.split(":", 1)[1]
        for folder in folders:
            if (folder / name).is_file():
                return folder / name
        raise FileNotFoundError(f"{digest} is not in {layout}")

    def upload(repo: str, descriptor: dict[str, Any]) -> None:
        done = uploaded.setdefault(repo, set())
        if descriptor["digest"] in done:
            return
        path = path_of(descriptor["digest"])
        container = oras.container.Container(f"{host}/{repo}:seed")
        layer = {
            "digest": descriptor["digest"],
            "size": path.stat().st_size,
            "mediaType": "application/octet-stream",
        }
        response = registry.upload_blob(str(path), container, layer)
        if response.status_code not in (200, 201, 202):
            raise RuntimeError(f"upload of {path.name} failed: {response.status_code} {response.text[:200]}")
        done.add(descriptor["digest"])

    def put(repo: str, reference: str, media_type: str, raw: bytes) -> str:
        document = json.loads(raw)
        if "manifests" in document:
            for child in document["manifests"]:
                if child["mediaType"] in _MANIFEST_TYPES:
                    put(repo, child["digest"], child["mediaType"], path_of(child["digest"]).read_bytes())
                else:
                    upload(repo, child)
        else:
            for child in [document["config"], *document.get("layers", [])]:
                upload(repo, child)
        url = f"http://{host}/v2/{repo}/manifests/{reference}"
        response = registry.do_request(url, "PUT", data=raw, headers={"Content-Type": media_type})
        if response.status_code != 201:
            raise RuntimeError(f"PUT {repo}:{reference} failed: {response.status_code} {response.text[:300]}")
        return str(response.headers["Docker-Content-Digest"])

    index = json.loads((layout / "index.json").read_bytes())
    targets: dict[str, str] = sample.get("push", {})
    pushed: dict[str, str] = {}
    for entry in index["manifests"]:
        tag = entry["annotations"]["org.opencontainers.image.ref.name"]
        repo, _, reference = targets.get(tag, f"{repository}:{tag}").rpartition(":")
        pushed[tag] = put(repo, reference, entry["mediaType"], path_of(entry["digest"]).read_bytes())
    for digest in sample.get("removed_blobs", []):
        for repo, digests in uploaded.items():
            if digest not in digests:
                continue
            response = registry.do_request(f"http://{host}/v2/{repo}/blobs/{digest}", "DELETE")
            if response.status_code != 202:
                raise RuntimeError(f"DELETE blob {digest} failed: {response.status_code}")
    return pushed


def load_samples() -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = json.loads((TESTDATA / "samples.json").read_text())
    return samples


#: The gc demo repository (``scripts/demo.sh`` and the docs' gc examples): one cache tag per branch, as teams
#: push them with ``--cache-to type=registry,ref=REPO:${BRANCH_SLUG}-buildcache``. Each tag is a distinct
#: manifest taken from a sample: tag -> (sample name, the sample's own tag).
GC_DEMO_REPOSITORY = "demo/app-cache"
GC_DEMO_TAGS = {
    "main-buildcache": ("multistage-max", "image-manifest"),
    "feature-a-buildcache": ("mixed-compression", "latest"),
    "gone-buildcache": ("multistage-max", "oci-index"),
    "pr-7-buildcache": ("multistage-max", "docker-manifest-list"),
}


def seed_gc_demo(host: str, repository: str = GC_DEMO_REPOSITORY) -> dict[str, str]:
    """Push (again) the gc demo repository's tags; returns tag -> manifest digest.

    A sample's tags that the demo does not use go to ``<repository>-sources``, never into the demo repository.
    """
    wanted: dict[str, dict[str, str]] = {}  # sample name -> its tag -> the demo tag
    for tag, (name, source_tag) in GC_DEMO_TAGS.items():
        wanted.setdefault(name, {})[source_tag] = tag
    pushed: dict[str, str] = {}
    for sample in load_samples():
        chosen = wanted.get(sample["name"])
        if chosen is None:
            continue
        push = {
            t: f"{repository}:{chosen[t]}" if t in chosen else f"{repository}-sources:{t}"
            for t in sample["tags"]
        }
        digests = seed_sample(host, repository, {**sample, "push": push})
        pushed.update({chosen[t]: digest for t, digest in digests.items() if t in chosen})
    return pushed
