"""Values and parsing: digests, references, media types, descriptors and manifests. No I/O."""

from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import Descriptor, ManifestDocument, Platform, parse_descriptor, parse_manifest
from inspector.oci.reference import Reference, Repository, parse_reference, parse_repository

__all__ = [
    "Descriptor",
    "Digest",
    "ManifestDocument",
    "Platform",
    "Reference",
    "Repository",
    "parse_descriptor",
    "parse_manifest",
    "parse_reference",
    "parse_repository",
    "sha256_digest",
]
