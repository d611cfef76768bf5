"""Fetch a cache: the top-level document, its cacheconfig blob, and nothing else.

This mirrors BuildKit's importer (``cache/remotecache/import.go``): the
document's type is detected from its body; in an index or manifest list the
entry with media type ``application/vnd.buildkit.cacheconfig.v0`` is the config
and every other entry is a layer blob; in an image manifest the config
descriptor is. Anything else is reported as what it is, not as a cache.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from inspector.cache.config import CacheConfig, import_error, parse_cache_config
from inspector.cache.source import CacheSource
from inspector.errors import InvalidContent, NotACache
from inspector.oci import gojson, mediatypes
from inspector.oci.models import Descriptor, ManifestDocument
from inspector.registry.client import MANIFEST_LIMIT

__all__ = [
    "FORM_WRITERS",
    "IMPORT_LIMIT",
    "CacheDocuments",
    "Form",
    "find_cache_config",
    "form_of",
    "load_cache",
]

# BuildKit's importer refuses a manifest or config larger than this (import.go readBlob).
IMPORT_LIMIT = 1 << 20

Form = Literal["image-manifest", "oci-index", "docker-manifest-list", "docker-manifest"]

FORM_WRITERS: dict[Form, str] = {
    "image-manifest": "BuildKit >= 0.21 by default, or >= 0.12 with image-manifest=true",
    "oci-index": "BuildKit 0.8-0.20 by default, or image-manifest=false",
    "docker-manifest-list": "BuildKit < 0.8, or oci-mediatypes=false (0.8-0.20; with image-manifest=false on 0.21; "
    "alone on >= 0.22)",
    "docker-manifest": "no BuildKit version writes this form; BuildKit still imports it",
}


@dataclass(frozen=True, slots=True)
class CacheDocuments:
    """The fetched parts of one cache. ``config`` is None when it could not be parsed (see ``config_error``)."""

    manifest: ManifestDocument
    form: Form
    config_descriptor: Descriptor
    layer_descriptors: tuple[Descriptor, ...]
    config_raw: bytes | None
    config: CacheConfig | None
    config_error: str | None


def form_of(manifest: ManifestDocument) -> Form:
    if manifest.kind == "manifest":
        return "docker-manifest" if manifest.media_type == mediatypes.DOCKER_MANIFEST else "image-manifest"
    return "docker-manifest-list" if manifest.media_type == mediatypes.DOCKER_MANIFEST_LIST else "oci-index"


def find_cache_config(manifest: ManifestDocument) -> tuple[Descriptor, tuple[Descriptor, ...]] | None:
    """The cacheconfig descriptor and the layer descriptors, or None when this is not a cache."""
    if manifest.kind == "index":
        # import.go assigns configDesc for every cacheconfig entry in turn: the last one wins.
        config = next(
            (d for d in reversed(manifest.manifests) if d.media_type == mediatypes.BUILDKIT_CACHE_CONFIG),
            None,
        )
        if config is None:
            return None
        layers = tuple(d for d in manifest.manifests if d.media_type != mediatypes.BUILDKIT_CACHE_CONFIG)
        return config, layers
    if manifest.config is not None and manifest.config.media_type == mediatypes.BUILDKIT_CACHE_CONFIG:
        return manifest.config, manifest.layers
    return None


def _describe_non_cache(source: CacheSource, manifest: ManifestDocument) -> NotACache:
    where = source.display
    if manifest.kind == "index":
        kinds = sorted({d.media_type for d in manifest.manifests})
        platforms = sorted({str(d.platform) for d in manifest.manifests if d.platform is not None})
        what = f"an image index ({manifest.media_type}) with {len(manifest.manifests)} entries"
        if platforms:
            what += f" for {', '.join(platforms)}"
        elif kinds:
            what += f" of {', '.join(kinds)}"
        return NotACache(
            f"{where} is {what}, not a BuildKit cache (no {mediatypes.BUILDKIT_CACHE_CONFIG} entry)",
            hint="point cacheinspect at the tag your --cache-to ref= names",
        )
    config = manifest.config
    if config is None:
        return NotACache(f"{where} is a manifest without a config, not a BuildKit cache")
    if config.media_type in (mediatypes.OCI_IMAGE_CONFIG, mediatypes.DOCKER_IMAGE_CONFIG):
        inline = _has_inline_cache(source, config)
        if inline:
            return NotACache(
                f"{where} is a container image carrying inline cache metadata (--cache-to type=inline), "
                "not a registry cache; inline cache holds only the image's own layers",
                hint="registry caches are written with --cache-to type=registry,ref=…",
            )
        return NotACache(
            f"{where} is a container image ({len(manifest.layers)} layer{'s' if len(manifest.layers) != 1 else ''}, "
            f"config {config.media_type}), "
            "not a BuildKit cache",
            hint="point cacheinspect at the tag your --cache-to ref= names",
        )
    return NotACache(f"{where} is an artifact with config type {config.media_type}, not a BuildKit cache")


def _has_inline_cache(source: CacheSource, config: Descriptor) -> bool:
    """Does an image config carry ``moby.buildkit.cache.v0`` (base64 records JSON, spec §6.5)?"""
    try:
        raw = source.fetch_blob(config, limit=MANIFEST_LIMIT)
        doc = gojson.load(raw, "image config")
    except InvalidContent:
        return False
    if not isinstance(doc, gojson.Obj):
        return False
    value = dict(doc).get("moby.buildkit.cache.v0")
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def load_cache(source: CacheSource) -> CacheDocuments:
    """Fetch the document and its config; a config BuildKit could not parse is kept as ``config_error``."""
    manifest = source.fetch_manifest()
    found = find_cache_config(manifest)
    if found is None:
        raise _describe_non_cache(source, manifest)
    config_descriptor, layers = found
    config_raw: bytes | None = None
    config: CacheConfig | None = None
    error: str | None = None
    if config_descriptor.size > MANIFEST_LIMIT:
        error = f"config is {config_descriptor.size} bytes; cacheinspect does not fetch configs over {MANIFEST_LIMIT}"
    else:
        config_raw = source.fetch_blob(config_descriptor, limit=MANIFEST_LIMIT)
        try:
            config = parse_cache_config(config_raw)
        except InvalidContent as exc:
            error = str(exc)
        if config is not None:
            listed = {d.digest for d in layers}
            error = import_error(config, listed.__contains__)
            if error is not None:
                config = None
    return CacheDocuments(
        manifest=manifest,
        form=form_of(manifest),
        config_descriptor=config_descriptor,
        layer_descriptors=layers,
        config_raw=config_raw,
        config=config,
        config_error=error,
    )
