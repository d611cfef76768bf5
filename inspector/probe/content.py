"""The bytes the probe pushes: one tiny layer, one cache config, and caches in each wire form.

Documents are encoded the way BuildKit's Go encoders write them (compact JSON, struct field
order, sorted annotation keys), so the registry sees exactly the shapes of buildkit-cache.md
§1.4. The layer blob is deterministic (a ~100-byte gzipped tar), so repeated runs reuse it; the
cache config carries the run id in its record digest, so every run uploads a fresh blob and
every document digest is unique to the run. Each layer descriptor also carries a
``dev.cacheinspect.probe`` annotation naming the run and the document's purpose, which gives
the delete tests their own manifests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inspector.cache.fetch import IMPORT_LIMIT, Form
from inspector.oci import mediatypes
from inspector.oci.digest import Digest, sha256_digest

__all__ = ["PROBE_ANNOTATION", "Blob", "ProbeContent", "ProbeDocument", "make_content"]

PROBE_ANNOTATION = "dev.cacheinspect.probe"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_MEDIA_TYPES: dict[Form, str] = {
    "image-manifest": mediatypes.OCI_MANIFEST,
    "oci-index": mediatypes.OCI_INDEX,
    "docker-manifest-list": mediatypes.DOCKER_MANIFEST_LIST,
}


def _go_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _go_time(moment: datetime) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed, as Go's ``time.MarshalText`` (UTC)."""
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    digest: Digest
    media_type: str
    purpose: str

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class ProbeDocument:
    """A top-level cache document: exact bytes, their digest, and the Content-Type to PUT it with."""

    raw: bytes
    digest: Digest
    media_type: str
    form: Form
    purpose: str

    @property
    def size(self) -> int:
        return len(self.raw)


@dataclass(frozen=True, slots=True)
class ProbeContent:
    run_id: str
    created_at: str
    layer: Blob
    diff_id: Digest
    config: Blob

    def _layer_descriptor(self, form: Form, purpose: str, *, padding: str = "") -> dict[str, Any]:
        annotations = {
            "buildkit/createdat": self.created_at,
            "containerd.io/uncompressed": str(self.diff_id),
            PROBE_ANNOTATION: f"{self.run_id}/{purpose}{padding}",
        }
        return {
            "mediaType": DOCKER_LAYER_GZIP if form == "docker-manifest-list" else OCI_LAYER_GZIP,
            "digest": str(self.layer.digest),
            "size": self.layer.size,
            "annotations": dict(sorted(annotations.items())),
        }

    def _config_descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": mediatypes.BUILDKIT_CACHE_CONFIG,
            "digest": str(self.config.digest),
            "size": self.config.size,
        }

    def _encode(self, form: Form, layers: list[dict[str, Any]]) -> bytes:
        media_type = _MEDIA_TYPES[form]
        if form == "image-manifest":
            return _go_json(
                {
                    "schemaVersion": 2,
                    "mediaType": media_type,
                    "config": self._config_descriptor(),
                    "layers": layers,
                }
            )
        return _go_json(
            {"schemaVersion": 2, "mediaType": media_type, "manifests": [*layers, self._config_descriptor()]}
        )

    def document(self, form: Form, purpose: str | None = None) -> ProbeDocument:
        """The cache in ``form``: the layer and the config, BuildKit's layout for that form."""
        purpose = purpose or form
        raw = self._encode(form, [self._layer_descriptor(form, purpose)])
        return ProbeDocument(raw, sha256_digest(raw), _MEDIA_TYPES[form], form, purpose)

    def near_limit(self, size: int = IMPORT_LIMIT) -> ProbeDocument:
        """An image-manifest cache of exactly ``size`` bytes (the layer listed again and again).

        BuildKit refuses to import a manifest over 1 MiB; a ``mode=max`` cache of a big build
        lists thousands of layer descriptors, so this is the largest cache BuildKit can still use.
        """
        form: Form = "image-manifest"
        purpose = "near-limit"
        one = len(_go_json(self._layer_descriptor(form, f"{purpose}/00000"))) + 1
        count = max(1, (size - len(self._encode(form, []))) // one)
        while True:
            layers = [self._layer_descriptor(form, f"{purpose}/{i:05d}") for i in range(count)]
            missing = size - len(self._encode(form, layers))
            if missing >= 0:
                break
            count -= 1
        layers[-1] = self._layer_descriptor(form, f"{purpose}/{count - 1:05d}", padding="-" * missing)
        raw = self._encode(form, layers)
        assert len(raw) == size, (len(raw), size)
        return ProbeDocument(raw, sha256_digest(raw), _MEDIA_TYPES[form], form, purpose)

    def extra_blob(self, purpose: str, size: int = 96) -> Blob:
        """A blob unique to this run and purpose (upload variants, mount)."""
        seed = f"cacheinspect probe {self.run_id} {purpose}\n".encode()
        data = (seed * (size // len(seed) + 1))[:size] if size > len(seed) else seed
        return Blob(data, sha256_digest(data), "application/octet-stream", purpose)


def _layer_tar() -> tuple[bytes, bytes]:
    """(gzipped tar, tar): one small file, every timestamp and owner fixed."""
    payload = b"cacheinspect registry probe layer\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("cacheinspect-probe.txt")
        info.size = len(payload)
        info.mtime = 0
        info.mode = 0o644
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=9, mtime=0), tar_bytes


def make_content(run_id: str, now: datetime) -> ProbeContent:
    """The probe's blobs and documents for one run."""
    layer_gz, layer_tar = _layer_tar()
    layer = Blob(layer_gz, sha256_digest(layer_gz), OCI_LAYER_GZIP, "layer")
    created = _go_time(now)
    record = "sha256:" + hashlib.sha256(f"cacheinspect-probe:{run_id}".encode()).hexdigest()
    config_doc = {
        "layers": [{"blob": str(layer.digest), "parent": -1}],
        "records": [{"layers": [{"layer": 0, "createdAt": created}], "digest": record}],
    }
    config_raw = _go_json(config_doc)
    config = Blob(config_raw, sha256_digest(config_raw), mediatypes.BUILDKIT_CACHE_CONFIG, "config")
    return ProbeContent(run_id, created, layer, sha256_digest(layer_tar), config)
