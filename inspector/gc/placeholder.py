"""The placeholder manifest gc pushes to remove one tag: its format, built and recognised in one place.

Without tag deletion a tag is removed as regclient's ``TagDelete`` does it: the tag is re-pointed
to a unique tiny placeholder manifest, and the placeholder is deleted by digest
(``backends.base.PlaceholderPusher``). Placeholders carry ``artifactType``
``application/vnd.cacheinspect.gc.placeholder.v1`` and annotations naming the tag and the manifest
they replaced, so a run that is killed between the two steps is finished by the next one
(``inventory`` recognises them, ``plan`` deletes them, ``execute`` finishes them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from inspector.errors import InvalidContent, InvalidReference
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import ManifestDocument

__all__ = [
    "EMPTY_CONFIG",
    "EMPTY_MEDIA_TYPE",
    "PLACEHOLDER_ANNOTATION",
    "PLACEHOLDER_ARTIFACT_TYPE",
    "REPLACES_ANNOTATION",
    "PlaceholderInfo",
    "build_placeholder",
    "parse_placeholder",
]

PLACEHOLDER_ARTIFACT_TYPE = "application/vnd.cacheinspect.gc.placeholder.v1"
PLACEHOLDER_ANNOTATION = "cacheinspect.gc.placeholder-for"
REPLACES_ANNOTATION = "cacheinspect.gc.replaces"

# The OCI empty descriptor's content (image-spec 1.1 "Guidance for an empty descriptor").
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"


@dataclass(frozen=True, slots=True)
class PlaceholderInfo:
    """A tiny manifest gc pushes to a tag to remove only that tag (regclient's method)."""

    digest: Digest
    size: int
    tag: str
    replaces: Digest | None


def build_placeholder(tag: str, replaces: Digest, *, nonce: str, created: datetime) -> bytes:
    """A unique, recognisable, tiny OCI artifact manifest (config and only layer: the empty descriptor)."""
    empty = {
        "mediaType": EMPTY_MEDIA_TYPE,
        "digest": str(sha256_digest(EMPTY_CONFIG)),
        "size": len(EMPTY_CONFIG),
    }
    document = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": PLACEHOLDER_ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
        "annotations": {
            PLACEHOLDER_ANNOTATION: tag,
            REPLACES_ANNOTATION: str(replaces),
            "cacheinspect.gc.nonce": nonce,
            "org.opencontainers.image.created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    return json.dumps(document, separators=(",", ":")).encode()


def parse_placeholder(document: ManifestDocument) -> PlaceholderInfo | None:
    """The placeholder a gc run pushed, recognised by its artifact type and annotation; else None."""
    if document.kind != "manifest" or document.size > 64 * 1024:
        return None
    try:
        doc = gojson.load(document.raw, "placeholder")
        f = gojson.fields(doc, ("artifactType", "annotations"), "placeholder")
        if gojson.as_str(f.get("artifactType"), "artifactType") != PLACEHOLDER_ARTIFACT_TYPE:
            return None
        annotations = gojson.as_str_map(f.get("annotations"), "annotations")
    except InvalidContent:
        return None
    tag = annotations.get(PLACEHOLDER_ANNOTATION)
    if not tag:
        return None
    replaces = annotations.get(REPLACES_ANNOTATION)
    try:
        replaced = Digest(replaces) if replaces else None
    except InvalidReference:
        replaced = None
    return PlaceholderInfo(document.digest, document.size, tag, replaced)
