"""Copy a cache to another repository or registry, optionally in the other wire form.

Blobs go first (layers, then the config), the manifest last, so a reader of the destination tag never sees a
cache whose blobs are not there yet. On one registry a blob is mounted (``?mount=&from=``); elsewhere, or where
the registry declines the mount, it is streamed from the source to the destination a chunk at a time and
verified against its digest on the way. Blobs the destination already has are skipped (HEAD).

The wrapper conversion is BuildKit's exporter (``cache/remotecache/export.go``, ``Finalize``): the same layer
descriptors in the same order, their media types mapped to OCI ones (``compression.ConvertAllLayerMediaTypes``
with ``oci=true``; the image-manifest form requires OCI types), and the cacheconfig descriptor as BuildKit makes
it (``mediaType``, ``digest``, ``size`` and nothing else): last entry of the index's ``manifests``, or the
manifest's ``config``. The bytes are Go ``encoding/json`` output, so a converted wrapper is the one BuildKit
would have pushed for the same config. The config blob itself is never changed.

Writes go to the destination only; nothing is ever deleted. A destination tag that names another manifest is
left alone unless the caller forces it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from inspector.cache.fetch import Form, form_of, load_cache
from inspector.cache.source import RegistrySource
from inspector.errors import CacheInspectError, ExitCode, InvalidContent, MissingContent, NotFound, UsageError
from inspector.oci import gojson, mediatypes
from inspector.oci.models import Descriptor, ManifestDocument
from inspector.oci.reference import Reference
from inspector.registry.client import RegistryClient
from inspector.registry.credentials import same_registry

__all__ = [
    "TARGET_FORMS",
    "BlobMove",
    "CopyPlan",
    "CopyResult",
    "DestinationTagTaken",
    "TargetForm",
    "convert_wrapper",
    "copy_plan_to_json",
    "execute_copy",
    "plan_copy",
]

TargetForm = Literal["image-manifest", "oci-index"]
TARGET_FORMS: tuple[TargetForm, ...] = ("image-manifest", "oci-index")
Action = Literal["present", "mount", "stream"]

# BuildKit's toOCILayerType (util/compression/compression.go): Docker layer types to their OCI twins.
_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_OCI_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
_TO_OCI_LAYER = {
    _DOCKER_LAYER: _OCI_LAYER,
    _DOCKER_LAYER + ".gzip": _OCI_LAYER + "+gzip",
    _DOCKER_LAYER + ".zstd": _OCI_LAYER + "+zstd",
    _DOCKER_FOREIGN: _OCI_NONDISTRIBUTABLE,
    _DOCKER_FOREIGN + ".gzip": _OCI_NONDISTRIBUTABLE + "+gzip",
}

# Go struct field order of image-spec's Descriptor and Platform (specs-go/v1/descriptor.go).
_DESCRIPTOR_FIELDS = (
    "mediaType",
    "digest",
    "size",
    "urls",
    "annotations",
    "data",
    "platform",
    "artifactType",
)
_PLATFORM_FIELDS = ("architecture", "os", "os.version", "os.features", "variant", "features")


class DestinationTagTaken(CacheInspectError):
    """The destination tag names another manifest; copy does not move it without ``--force``."""

    exit_code = ExitCode.REFUSED


@dataclass(frozen=True, slots=True)
class BlobMove:
    """One blob of the cache and what the copy does with it."""

    descriptor: Descriptor
    action: Action


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """Everything the copy will write, decided before the first write."""

    source: Reference
    destination: Reference
    source_form: Form
    target_form: Form
    manifest_raw: bytes
    manifest_media_type: str
    layers: tuple[BlobMove, ...]
    config: BlobMove
    config_raw: bytes
    replaces: str | None  # the digest the destination tag names now, when it is another manifest (--force)
    force: bool

    @property
    def manifest_digest(self) -> str:
        from inspector.oci.digest import sha256_digest

        return str(sha256_digest(self.manifest_raw))

    @property
    def blobs(self) -> tuple[BlobMove, ...]:
        return (*self.layers, self.config)

    def bytes_for(self, action: Action) -> int:
        return sum(move.descriptor.size for move in self.blobs if move.action == action)


@dataclass(frozen=True, slots=True)
class CopyResult:
    plan: CopyPlan
    mounted: int
    streamed: int
    mount_declined: int  # mounts the registry answered with an upload session instead (202): streamed
    bytes_streamed: int


def _go_json(value: Any) -> bytes:
    """Go ``encoding/json`` compact bytes of a JSON value whose dicts are already in Go field order."""
    return gojson.encode(value)


def _go_descriptor(entry: Mapping[str, Any], *, layer: bool) -> dict[str, Any]:
    """A descriptor as Go marshals ``ocispecs.Descriptor``: field order, ``omitempty``, sorted map keys.

    A layer's media type goes through BuildKit's OCI conversion; unknown fields are dropped (Go's unmarshal
    into the struct drops them too).
    """
    out: dict[str, Any] = {}
    for name in _DESCRIPTOR_FIELDS:
        value = entry.get(name)
        if name in ("mediaType", "digest", "size"):
            out[name] = value if value is not None else ("" if name != "size" else 0)
            continue
        if not value:
            continue  # omitempty
        if name == "annotations":
            value = dict(sorted(value.items()))
        elif name == "platform":
            value = {key: value[key] for key in _PLATFORM_FIELDS if value.get(key)}
        out[name] = value
    if layer:
        out["mediaType"] = _TO_OCI_LAYER.get(out["mediaType"], out["mediaType"])
    return out


def convert_wrapper(manifest: ManifestDocument, target: TargetForm) -> tuple[bytes, str]:
    """The cache's wrapper in ``target`` form, as BuildKit writes it; the raw bytes when already in that form.

    Returns the bytes and their media type.
    """
    if form_of(manifest) == target:
        return manifest.raw, manifest.media_type
    doc = json.loads(manifest.raw)
    if manifest.kind == "index":
        entries = doc["manifests"]
        configs = [e for e in entries if e.get("mediaType") == mediatypes.BUILDKIT_CACHE_CONFIG]
        if not configs:
            raise InvalidContent(f"manifest {manifest.digest}: no {mediatypes.BUILDKIT_CACHE_CONFIG} entry")
        config_entry = configs[-1]  # import.go: the last one wins
        layer_entries = [e for e in entries if e.get("mediaType") != mediatypes.BUILDKIT_CACHE_CONFIG]
    else:
        config_entry, layer_entries = doc["config"], doc.get("layers") or []
    config = {key: config_entry[key] for key in ("mediaType", "digest", "size")}
    layers = [_go_descriptor(entry, layer=True) for entry in layer_entries]
    if target == "image-manifest":
        wrapper = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": config,
            "layers": layers,
        }
        return _go_json(wrapper), mediatypes.OCI_MANIFEST
    wrapper = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [*layers, config]}
    return _go_json(wrapper), mediatypes.OCI_INDEX


def plan_copy(
    client: RegistryClient,
    source: Reference,
    destination: Reference,
    *,
    to: TargetForm | None = None,
    force: bool = False,
) -> CopyPlan:
    """Read the source cache and the destination; decide every blob's action. Sends only GET and HEAD."""
    if destination.digest is not None:
        raise UsageError(f"copy: the destination {destination} must be a tag, not a digest")
    if source.repository == destination.repository and (
        source.digest is None and source.tag == destination.tag
    ):
        raise UsageError(f"copy: {source} is both the source and the destination")
    documents = load_cache(RegistrySource(client, source))
    if documents.config_raw is None:
        raise InvalidContent(f"{source}: its cache config cannot be read ({documents.config_error})")
    target_form: Form = to or documents.form
    raw, media_type = (
        convert_wrapper(documents.manifest, to)
        if to
        else (
            documents.manifest.raw,
            documents.manifest.media_type,
        )
    )
    replaces = _destination_tag(client, destination, raw, force=force)
    layers = _unique(documents.layer_descriptors)
    mount = source.repository != destination.repository and same_registry(
        source.repository.registry, destination.repository.registry
    )
    wanted = [*layers, documents.config_descriptor]
    at_destination = client.map_bounded(lambda d: client.head_blob(destination.repository, d.digest), wanted)
    moves = [
        BlobMove(d, "present" if stat.exists else ("mount" if mount else "stream"))
        for d, stat in zip(wanted, at_destination, strict=True)
    ]
    _require_source_blobs(client, source, [m.descriptor for m in moves[:-1] if m.action != "present"])
    return CopyPlan(
        source=source,
        destination=destination,
        source_form=documents.form,
        target_form=target_form,
        manifest_raw=raw,
        manifest_media_type=media_type,
        layers=tuple(moves[:-1]),
        config=moves[-1],
        config_raw=documents.config_raw,
        replaces=replaces,
        force=force,
    )


def _unique(descriptors: tuple[Descriptor, ...]) -> list[Descriptor]:
    """Each blob once: a cache may list one blob several times (the empty layer under different parents)."""
    seen: dict[str, Descriptor] = {}
    for descriptor in descriptors:
        seen.setdefault(descriptor.digest, descriptor)
    return list(seen.values())


def _destination_tag(
    client: RegistryClient, destination: Reference, raw: bytes, *, force: bool
) -> str | None:
    """The digest the destination tag names when that is another manifest (refused without ``force``)."""
    from inspector.oci.digest import sha256_digest

    try:
        current = client.head_manifest(destination).digest
    except NotFound:
        return None
    if current == sha256_digest(raw):
        return None
    if not force:
        raise DestinationTagTaken(
            f"copy: {destination} already names another manifest ({current.short}); not overwritten",
            hint="choose another tag, or pass --force to point it at the copy",
        )
    return str(current)


def _require_source_blobs(client: RegistryClient, source: Reference, layers: list[Descriptor]) -> None:
    """A layer the source lacks would make the copy as broken as the source: refused before any write."""
    stats = client.map_bounded(lambda d: client.head_blob(source.repository, d.digest), layers)
    missing = [stat.digest for stat in stats if not stat.exists]
    if missing:
        shown = ", ".join(d.short for d in missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise MissingContent(
            f"copy: {source} lists layer blobs the registry does not have ({shown}); nothing was copied",
            hint="`cacheinspect show` reports what that cache is missing",
        )


def execute_copy(
    client: RegistryClient, plan: CopyPlan, on_done: Callable[[int, int], None] | None = None
) -> CopyResult:
    """Write the plan: layers (concurrently), then the config, then the manifest under the destination tag."""
    source, destination = plan.source.repository, plan.destination.repository
    declined: list[int] = []

    def move(blob: BlobMove) -> int:
        """Bytes streamed for this blob (0 when mounted or already there)."""
        if blob.action == "present":
            return 0
        session = None
        if blob.action == "mount":
            session = client.mount_blob(destination, blob.descriptor.digest, source)
            if session is None:
                return 0
            declined.append(1)
        with client.open_blob(source, blob.descriptor) as chunks:
            client.upload_blob_stream(destination, blob.descriptor, chunks, session=session)
        return blob.descriptor.size

    streamed_bytes = sum(client.map_bounded(move, plan.layers, on_done))
    if plan.config.action != "present":
        client.push_blob(destination, plan.config_raw)
    _destination_tag(client, plan.destination, plan.manifest_raw, force=plan.force)
    client.put_manifest(plan.destination, plan.manifest_raw, plan.manifest_media_type)
    layers_moved = [b for b in plan.layers if b.action != "present"]
    return CopyResult(
        plan=plan,
        mounted=sum(1 for b in layers_moved if b.action == "mount") - len(declined),
        streamed=sum(1 for b in layers_moved if b.action == "stream") + len(declined),
        mount_declined=len(declined),
        bytes_streamed=streamed_bytes,
    )


def copy_plan_to_json(plan: CopyPlan, result: CopyResult | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "source": str(plan.source),
        "destination": str(plan.destination),
        "sourceForm": plan.source_form,
        "form": plan.target_form,
        "manifest": {"digest": plan.manifest_digest, "mediaType": plan.manifest_media_type},
        "replaces": plan.replaces,
        "blobs": [
            {"digest": str(b.descriptor.digest), "size": b.descriptor.size, "action": b.action}
            for b in plan.blobs
        ],
        "bytes": {action: plan.bytes_for(action) for action in ("present", "mount", "stream")},
        "applied": result is not None,
    }
    if result is not None:
        doc["result"] = {
            "mounted": result.mounted,
            "streamed": result.streamed,
            "mountDeclined": result.mount_declined,
            "bytesStreamed": result.bytes_streamed,
        }
    return doc
