"""Where gc deletes: the OCI API, or a vendor's (GHCR packages REST, ECR), behind one protocol."""

from inspector.gc.backends.base import (
    BACKEND_KINDS,
    Capabilities,
    DeleteBackend,
    DeleteDenied,
    ManifestKept,
    UntagIncomplete,
    untagged_hint,
)
from inspector.gc.backends.factory import backend_kind, check_untagged, select_backend
from inspector.gc.backends.oci import OciBackend

__all__ = [
    "BACKEND_KINDS",
    "Capabilities",
    "DeleteBackend",
    "DeleteDenied",
    "ManifestKept",
    "OciBackend",
    "UntagIncomplete",
    "backend_kind",
    "check_untagged",
    "select_backend",
    "untagged_hint",
]
