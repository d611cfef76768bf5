"""Descriptors and top-level documents (image manifest, index, manifest list).

A ``ManifestDocument`` keeps the raw bytes it was parsed from: digests are
computed over those bytes, never over re-serialised JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from inspector.errors import InvalidContent
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest, sha256_digest

__all__ = ["Descriptor", "DocumentKind", "ManifestDocument", "Platform", "parse_descriptor", "parse_manifest"]

DocumentKind = Literal["manifest", "index"]
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform; ``os_version``/``os_features`` (``os.version``, ``os.features``) matter on Windows."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A content descriptor (OCI image-spec ``descriptor.md``)."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    platform: Platform | None = None


def parse_platform(value: Any, where: str) -> Platform:
    """An image-spec platform object (an index entry's ``platform``, or an image config's top level)."""
    p = gojson.fields(value, ("os", "architecture", "variant", "os.version", "os.features"), where)
    features = gojson.as_list(p.get("os.features"), f"{where}.os.features")
    return Platform(
        gojson.as_str(p.get("os"), f"{where}.os"),
        gojson.as_str(p.get("architecture"), f"{where}.architecture"),
        gojson.as_str(p.get("variant"), f"{where}.variant"),
        gojson.as_str(p.get("os.version"), f"{where}.os.version"),
        tuple(gojson.as_str(feature, f"{where}.os.features[]") for feature in features),
    )


def parse_descriptor(value: Any, where: str) -> Descriptor:
    f = gojson.fields(value, ("mediaType", "digest", "size", "annotations", "platform"), where)
    size = gojson.as_int(f.get("size"), f"{where}.size")
    if size < 0:
        raise InvalidContent(f"{where}.size: negative size {size}")
    platform = None
    if f.get("platform") is not None:
        platform = parse_platform(f["platform"], f"{where}.platform")
    annotations = gojson.as_str_map(f.get("annotations"), f"{where}.annotations")
    return Descriptor(
        media_type=gojson.as_str(f.get("mediaType"), f"{where}.mediaType"),
        digest=gojson.as_digest(f.get("digest"), f"{where}.digest"),
        size=size,
        annotations=MappingProxyType(annotations) if annotations else _EMPTY,
        platform=platform,
    )


@dataclass(frozen=True, slots=True)
class ManifestDocument:
    """A top-level document as served: raw bytes, their digest, and its parsed form.

    ``media_type`` is the effective type: the body's ``mediaType`` when present,
    else inferred from structure the way BuildKit's importer does
    (``util/imageutil/config.go`` DetectManifestBlobMediaType).
    """

    raw: bytes = field(repr=False)
    digest: Digest
    media_type: str
    content_type: str
    kind: DocumentKind
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


def parse_manifest(raw: bytes, *, content_type: str = "", what: str = "manifest") -> ManifestDocument:
    """Parse a manifest, index or manifest list, rejecting what BuildKit's importer rejects."""
    doc = gojson.load(raw, what)
    f = gojson.fields(
        doc, ("schemaVersion", "mediaType", "config", "layers", "manifests", "fsLayers", "signatures"), what
    )
    if not isinstance(doc, gojson.Obj):
        raise InvalidContent(f"{what}: expected a JSON object")
    schema_version = gojson.as_int(f.get("schemaVersion"), f"{what}.schemaVersion")
    if schema_version == 1 or "fsLayers" in f:
        raise InvalidContent(f"{what} is a Docker schema 1 manifest (deprecated; never a BuildKit cache)")
    declared = gojson.as_str(f.get("mediaType"), f"{what}.mediaType")
    has_manifest_fields = f.get("config") is not None or f.get("layers") is not None
    if has_manifest_fields and f.get("manifests") is not None:
        raise InvalidContent(
            f"{what} has both 'manifests' and 'config'/'layers' (ambiguous manifest and index)"
        )
    kind: DocumentKind = "manifest" if has_manifest_fields else "index"
    inferred = mediatypes.DOCKER_MANIFEST if kind == "manifest" else mediatypes.DOCKER_MANIFEST_LIST
    if declared in mediatypes.INDEX_TYPES | mediatypes.MANIFEST_TYPES:
        if (declared in mediatypes.INDEX_TYPES) != (kind == "index"):
            raise InvalidContent(f"{what}: mediaType {declared} does not match its contents (a {kind})")
        media_type = declared
    elif declared:
        media_type = declared
    else:
        served = mediatypes.base(content_type)
        media_type = served if served in mediatypes.INDEX_TYPES | mediatypes.MANIFEST_TYPES else inferred
    if kind == "manifest":
        config = parse_descriptor(f.get("config"), f"{what}.config") if f.get("config") is not None else None
        layers = tuple(
            parse_descriptor(item, f"{what}.layers[{i}]")
            for i, item in enumerate(gojson.as_list(f.get("layers"), f"{what}.layers"))
        )
        return ManifestDocument(
            raw, sha256_digest(raw), media_type, content_type, kind, config=config, layers=layers
        )
    manifests = tuple(
        parse_descriptor(item, f"{what}.manifests[{i}]")
        for i, item in enumerate(gojson.as_list(f.get("manifests"), f"{what}.manifests"))
    )
    return ManifestDocument(raw, sha256_digest(raw), media_type, content_type, kind, manifests=manifests)
