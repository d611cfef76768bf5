"""``gc`` on Artifact Registry and GCR: upload times for ages, untagged caches, tags before digests.

Everything goes through the registry API; what Google adds is the ``manifest`` map of its
``tags/list`` answer (``inspector.registry.google``, spec registries.md §2 "GCR" [C8]):

* **ages**: ``timeUploadedMs`` (when the registry received the manifest) replaces
  ``buildkit/createdat`` (``with_upload_times``), as ECR's push time does;
* **untagged caches** (``gc --untagged``): the map lists untagged manifests too; the selection is
  ``gc.untagged``'s (a BuildKit cache that no image index lists; never a child or an attestation);
* **deletes**: tag DELETE untags; a digest still tagged is refused with ``GOOGLE_MANIFEST_DANGLING_TAG``
  [C2][C4], so ``digest_delete_removes_tags`` is false and the executor removes the planned tags
  first. A refusal there means a tag the plan keeps is on it now: the manifest is reported kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from inspector.errors import RegistryError
from inspector.gc.backends.base import ManifestKept, timestamp
from inspector.gc.backends.oci import OciBackend
from inspector.gc.inventory import CacheInfo, Inventory
from inspector.gc.plan import RepositoryPlan
from inspector.gc.policy import Rules, format_duration, whole_days
from inspector.gc.untagged import CacheSelection, add_selected, recheck_selection, select_in_registry
from inspector.oci.digest import Digest
from inspector.oci.models import ManifestDocument
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient
from inspector.registry.github_packages import PackageVersion
from inspector.registry.google import GoogleManifest, read_manifest_map

__all__ = [
    "DANGLING_TAG",
    "GoogleBackend",
    "cleanup_policy",
    "package_name",
    "plan_untagged",
    "recheck_untagged",
    "with_upload_times",
]

DANGLING_TAG = "GOOGLE_MANIFEST_DANGLING_TAG"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_POLICIES = 10  # cleanup policies per repository (Artifact Registry "Configure cleanup policies")


class GoogleBackend(OciBackend):
    """The OCI backend with Google's delete order, plus the manifest map (read once per run)."""

    def __init__(self, client: RegistryClient, repository: Repository) -> None:
        super().__init__(client, repository, google=True)
        self._manifests: Mapping[Digest, GoogleManifest] | None = None

    def manifests(self, *, fresh: bool = False) -> Mapping[Digest, GoogleManifest]:
        """Every manifest of the repository, tagged or not, from the ``tags/list`` manifest map."""
        if self._manifests is None or fresh:
            self._manifests = read_manifest_map(self.client, self.repository)
        return self._manifests

    def delete_manifest(self, digest: Digest) -> bool:
        try:
            return super().delete_manifest(digest)
        except RegistryError as exc:
            if DANGLING_TAG not in exc.codes:
                raise
            raise ManifestKept(
                f"the registry still lists a tag on {digest.short} ({exc.message}), which the plan keeps: "
                "left alone"
            ) from None


def with_upload_times(inventory: Inventory, manifests: Mapping[Digest, GoogleManifest]) -> Inventory:
    """``inventory`` with every cache aged by the manifest map's ``timeUploadedMs``, where it lists one."""
    caches: dict[Digest, CacheInfo] = {}
    for digest, cache in inventory.caches.items():
        listed = manifests.get(digest)
        if listed is None or listed.uploaded is None:
            caches[digest] = cache
            continue
        caches[digest] = replace(cache, created_at=timestamp(listed.uploaded), age_source="pushed")
    note = "ages are the registry's upload times (tags/list manifest timeUploadedMs), not buildkit/createdat"
    return replace(inventory, caches=MappingProxyType(caches), notes=(*inventory.notes, note))


def _versions(manifests: Iterable[GoogleManifest]) -> list[PackageVersion]:
    out = []
    for n, listed in enumerate(manifests):
        when = listed.uploaded or listed.created or _EPOCH
        out.append(PackageVersion(n, listed.digest, listed.tags, when, when))
    return out


def _select(backend: GoogleBackend, *, fresh: bool) -> tuple[CacheSelection, dict[Digest, ManifestDocument]]:
    """The untagged-cache selection over every manifest the map lists (one manifest GET each)."""
    versions = _versions(backend.manifests(fresh=fresh).values())
    return select_in_registry(backend.client, backend.repository, versions)


def plan_untagged(backend: GoogleBackend, inventory: Inventory) -> Inventory:
    """``inventory`` plus the repository's untagged caches; reads every listed manifest once."""
    selection, documents = _select(backend, fresh=False)
    return add_selected(inventory, selection, documents, what="manifest", verb="uploaded")


def recheck_untagged(plan: RepositoryPlan, backend: GoogleBackend) -> RepositoryPlan:
    """``plan`` without the untagged caches a fresh selection no longer picks (before ``--apply-plan``)."""
    if not plan.untagged_deletions:
        return plan
    return recheck_selection(plan, _select(backend, fresh=True)[0], "not in the registry's manifest map")


def package_name(repository: Repository) -> str:
    """The Artifact Registry package (image) of a repository: the path after PROJECT/REPOSITORY
    (``*-docker.pkg.dev``) or after PROJECT (``gcr.io``); another host's whole path."""
    host = repository.registry.split(":", 1)[0].lower()
    parts = repository.path.split("/")
    skip = 2 if host.endswith("-docker.pkg.dev") else 1 if host == "gcr.io" or host.endswith(".gcr.io") else 0
    return "/".join(parts[skip:]) or repository.path


def _older_than(value: timedelta, missing: list[str], what: str) -> str:
    days = whole_days(value)
    if timedelta(days=days) != value:
        missing.append(
            f"{what} {format_duration(value)}: the policy counts whole days, rounded up to {days}d"
        )
    return f"{days}d"


def cleanup_policy(rules: Rules, *, untagged: bool, package: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The Artifact Registry cleanup policies for what of ``rules`` they can express, and what they cannot.

    The file ``gcloud artifacts repositories set-cleanup-policies --policy=FILE`` reads is a JSON list
    of policies (Artifact Registry "Configure cleanup policies", registries.md [C7]): ``name``,
    ``action.type`` ``Delete`` or ``Keep``, and either ``condition`` (``tagState`` TAGGED, UNTAGGED or
    ANY, ``tagPrefixes``, ``packageNamePrefixes``, ``olderThan`` such as ``30d``) or, for Keep only,
    ``mostRecentVersions`` (``packageNamePrefixes``, ``keepCount``). A version matching a Keep policy
    is never deleted; ages are upload times. Tags match by prefix only, so a template's suffix and
    ``{number}``'s digits are lost, and a template without a prefix cannot be narrowed at all.
    """
    policies: list[dict[str, Any]] = []
    missing: list[str] = []
    scope = {"packageNamePrefixes": [package]}
    missing.append(
        f"packageNamePrefixes {package!r} also matches images whose name starts with it; the policy "
        "applies to the whole Artifact Registry repository's images that match"
    )
    age = _older_than(rules.max_age, missing, "max-age") if rules.max_age is not None else None
    if untagged:
        policies.append(
            {
                "name": "cacheinspect-untagged",
                "action": {"type": "Delete"},
                "condition": {"tagState": "UNTAGGED", **scope, "olderThan": age or "1d"},
            }
        )
        missing.append(
            "--untagged selects only BuildKit caches that no image index lists; a cleanup policy cannot tell "
            "caches from other untagged versions (multi-arch children, attestations): use it only for an "
            "image that holds caches alone"
        )
    keep: list[str] = []
    protect_lost = False
    for glob in rules.protect:
        stem = glob.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        if not stem:
            protect_lost = True
            missing.append(f"--protect {glob}: no fixed start to keep by tag prefix")
            continue
        keep.extend([stem, *(t.prefix + stem for t in rules.templates if t.prefix)])
    if keep:
        policies.append(
            {
                "name": "cacheinspect-protect",
                "action": {"type": "Keep"},
                "condition": {"tagState": "TAGGED", **scope, "tagPrefixes": sorted(set(keep))},
            }
        )
    if age is not None and not protect_lost:
        for n, template in enumerate(rules.templates, 1):
            if not template.prefix:
                missing.append(
                    f"{template.text}: max-age not emitted: the template has no fixed prefix, and a tag rule "
                    "without a prefix would delete every tagged version of the image"
                )
                continue
            policies.append(
                {
                    "name": f"cacheinspect-max-age-{n}",
                    "action": {"type": "Delete"},
                    "condition": {
                        "tagState": "TAGGED",
                        **scope,
                        "tagPrefixes": [template.prefix],
                        "olderThan": age,
                    },
                }
            )
            if template.suffix or template.kind == "number":
                missing.append(
                    f"{template.text}: the prefix {template.prefix!r} also matches tags of other shapes"
                )
    elif age is not None:
        missing.append("max-age: no tag rule emitted, since a protected tag could not be kept by prefix")
    if rules.keep_last is not None:
        policies.append(
            {
                "name": "cacheinspect-keep-last",
                "action": {"type": "Keep"},
                "mostRecentVersions": {**scope, "keepCount": rules.keep_last},
            }
        )
        missing.append(
            f"keep-last {rules.keep_last}: emitted only as a Keep of the image's {rules.keep_last} most recent "
            "versions (all templates and untagged versions count together); nothing is deleted for it"
        )
    missing.append("branch gone (--branches-from-git, --branches-file): Artifact Registry knows no branches")
    if len(policies) > MAX_POLICIES:
        missing.append(f"{len(policies)} policies: Artifact Registry allows {MAX_POLICIES} per repository")
    return policies, missing
