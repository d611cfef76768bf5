"""Media type constants and the few predicates the rest of the code needs."""

from __future__ import annotations

__all__ = [
    "BUILDKIT_CACHE_CONFIG",
    "DOCKER_IMAGE_CONFIG",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "OCI_IMAGE_CONFIG",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "base",
    "compression_of",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
BUILDKIT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

# Sent on every manifest request: distribution answers 404 MANIFEST_UNKNOWN to an
# OCI manifest or index that the Accept header does not admit.
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, "*/*;q=0.1"))

# Annotations BuildKit writes on cache layer descriptors (spec §1.3).
ANNOTATION_UNCOMPRESSED = "containerd.io/uncompressed"
ANNOTATION_CREATED = "buildkit/createdat"
ANNOTATION_STARGZ_TOC = "containerd.io/snapshot/stargz/toc.digest"


def base(content_type: str) -> str:
    """Media type without parameters, lowercased: ``A/B; charset=x`` -> ``a/b``."""
    return content_type.split(";", 1)[0].strip().lower()


def compression_of(media_type: str, annotations: dict[str, str] | None = None) -> str:
    """Name of a layer's compression: gzip, zstd, estargz, uncompressed, or the type itself."""
    mt = base(media_type)
    if annotations and ANNOTATION_STARGZ_TOC in annotations:
        return "estargz"
    if mt.endswith(("+gzip", ".tar.gzip")):
        return "gzip"
    if mt.endswith(("+zstd", ".tar.zstd")):
        return "zstd"
    if mt.endswith((".tar", ".diff.tar")):
        return "uncompressed"
    if "nydus" in mt:
        return "nydus"
    return mt or "unknown"
