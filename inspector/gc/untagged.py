"""Which untagged manifests gc may delete: BuildKit caches that no image index needs.

A registry that lists untagged manifests (GHCR's package versions, ECR's images) hands gc every
version; this is the policy over them, the same for each vendor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from inspector.cache.fetch import find_cache_config
from inspector.errors import InvalidContent, NotFound
from inspector.gc.inventory import Inventory, add_untagged
from inspector.gc.plan import RepositoryPlan, drop_unselected
from inspector.oci.digest import Digest
from inspector.oci.models import ManifestDocument
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient
from inspector.registry.github_packages import PackageVersion

__all__ = [
    "CacheSelection",
    "Exclusion",
    "add_selected",
    "recheck_selection",
    "select_in_registry",
    "select_untagged_caches",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")
R = TypeVar("R")

_REFERENCE_TYPE = "vnd.docker.reference.type"  # BuildKit attestation manifests in an index


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A version ``select_untagged_caches`` keeps, and why."""

    version: PackageVersion
    reason: str


@dataclass(frozen=True, slots=True)
class CacheSelection:
    selected: tuple[PackageVersion, ...]
    excluded: tuple[Exclusion, ...]


def select_untagged_caches(
    versions: Sequence[PackageVersion],
    fetch_manifest: Callable[[Digest], ManifestDocument],
    *,
    map_bounded: Callable[[Callable[[PackageVersion], _Fetched], Sequence[PackageVersion]], list[_Fetched]]
    | None = None,
) -> CacheSelection:
    """The untagged versions that are BuildKit caches and that no image index references.

    Every version's manifest is read (``fetch_manifest(digest)``, e.g. ``RegistryClient.get_manifest``
    of ``repo@digest`` against ghcr.io; ``map_bounded`` such as ``RegistryClient.map_bounded`` fetches
    concurrently). A version is selected only when it is untagged, its manifest carries an
    ``application/vnd.buildkit.cacheconfig.v0`` config (``cache.fetch.find_cache_config``) and no index among
    the versions lists it in ``manifests[]`` — multi-arch children and attestation manifests
    (``vnd.docker.reference.*``) stay, even when shaped like a cache. Everything else is excluded with
    its reason. A manifest the registry no longer has (404) or that does not parse is excluded; other
    failures (auth, network) propagate, since without every index the children cannot be known.
    """
    fetched = (map_bounded or _map)(lambda v: _fetch(v, fetch_manifest), versions)
    referenced: dict[Digest, str] = {}
    for item in fetched:
        manifest = item.manifest
        if manifest is None or manifest.kind != "index":
            continue
        owner = _describe_version(item.version)
        for entry in manifest.manifests:
            kind = entry.annotations.get(_REFERENCE_TYPE)
            label = "attestation manifest in" if kind == "attestation-manifest" else "listed by"
            referenced.setdefault(entry.digest, f"{label} image index {owner}")
    selected: list[PackageVersion] = []
    excluded: list[Exclusion] = []
    for item in fetched:
        version = item.version
        if version.tagged:
            excluded.append(Exclusion(version, f"tagged ({', '.join(version.tags)})"))
        elif item.problem is not None:
            excluded.append(Exclusion(version, item.problem))
        elif version.digest in referenced:
            excluded.append(Exclusion(version, referenced[version.digest]))
        elif item.manifest is None or find_cache_config(item.manifest) is None:
            excluded.append(Exclusion(version, f"not a BuildKit cache ({_describe_manifest(item.manifest)})"))
        else:
            selected.append(version)
    return CacheSelection(tuple(selected), tuple(excluded))


def select_in_registry(
    client: RegistryClient, repository: Repository, versions: Sequence[PackageVersion]
) -> tuple[CacheSelection, dict[Digest, ManifestDocument]]:
    """``select_untagged_caches`` over ``versions`` listed by a vendor API (ECR's images, Google's
    manifest map), their manifests read concurrently from the registry API; also every manifest read."""
    documents: dict[Digest, ManifestDocument] = {}
    lock = threading.Lock()

    def fetch(digest: Digest) -> ManifestDocument:
        document = client.get_manifest(repository.at(digest))
        with lock:
            documents[digest] = document
        return document

    return select_untagged_caches(versions, fetch, map_bounded=client.map_bounded), documents


def add_selected(
    inventory: Inventory,
    selection: CacheSelection,
    documents: dict[Digest, ManifestDocument],
    *,
    what: str,
    verb: str,
) -> Inventory:
    """``inventory`` plus the selected untagged caches of a vendor listing (ECR's images, Google's map),
    each detailed with when the vendor says it was ``verb`` (its ``updated_at``; the epoch: unknown)."""
    found = []
    for version in selection.selected:
        when = version.updated_at
        said = f"{when:%Y-%m-%d %H:%M} UTC" if when > _EPOCH else "at an unknown time"
        found.append((documents[version.digest], f"untagged {what} {verb} {said}; no image index lists it"))
    kept = sum(1 for e in selection.excluded if not e.version.tagged)
    notes = (
        [f"untagged {what}s kept: {kept} (image-index children, attestations or not caches)"] if kept else []
    )
    return add_untagged(inventory, found, notes)


def recheck_selection(plan: RepositoryPlan, selection: CacheSelection, missing: str) -> RepositoryPlan:
    """``plan`` without the untagged caches a fresh ``selection`` no longer picks (``drop_unselected``)."""
    selected = {v.digest for v in selection.selected}
    reasons = {e.version.digest: e.reason for e in selection.excluded}
    return drop_unselected(plan, selected, reasons, missing)


@dataclass(frozen=True, slots=True)
class _Fetched:
    version: PackageVersion
    manifest: ManifestDocument | None
    problem: str | None = None


def _fetch(version: PackageVersion, fetch_manifest: Callable[[Digest], ManifestDocument]) -> _Fetched:
    try:
        return _Fetched(version, fetch_manifest(version.digest))
    except NotFound:
        return _Fetched(version, None, "manifest not found in the registry")
    except InvalidContent as exc:
        return _Fetched(version, None, f"unreadable manifest ({exc})")


def _map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    return [fn(item) for item in items]


def _describe_version(version: PackageVersion) -> str:
    tags = f" ({', '.join(version.tags)})" if version.tags else " (untagged)"
    return f"{version.digest.short}{tags}"


def _describe_manifest(manifest: ManifestDocument | None) -> str:
    if manifest is None:
        return "no manifest"
    if manifest.kind == "index":
        return f"{manifest.media_type} with {len(manifest.manifests)} entries"
    config = manifest.config.media_type if manifest.config is not None else "none"
    return f"{manifest.media_type}, config {config}"
