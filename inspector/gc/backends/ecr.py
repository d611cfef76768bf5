"""``gc`` on Amazon ECR: a ``DeleteBackend`` on ECR's API, push times for ages, untagged caches.

Reads (tag list, HEAD, GET) stay on the distribution API, as for every backend; ECR's API
(``inspector.registry.ecr``) adds what the distribution API lacks (spec registries.md §3, §5.4):

* **ages**: ``DescribeImages``' ``imagePushedAt`` replaces ``buildkit/createdat`` as a cache's age
  (``with_push_times``): max-age and keep-last then rank caches by when the registry received them;
* **deletes** go through ``BatchDeleteImage`` [E10]. Right before each call the image is described
  again (a bounded window): a manifest is deleted by digest only when ECR lists on it no tag other than
  the ones the plan deletes (``allow_tags``). Whole manifests go up to 100 in one call
  (``delete_manifests``, BatchDeleteImage's limit): the repository is listed once right before the
  call, and that listing is each image's last look; a tag is removed by ``imageTag`` only while ECR still lists
  it on the planned digest and another tag keeps the image (ECR deletes an image with its last tag).
  ``ImageNotFound`` for an id means it is already gone; any other per-id failure is that item's failure;
* **untagged caches** (``gc --untagged``): ``DescribeImages`` lists untagged images, and the selection
  is GHCR's (``gc.untagged.select_untagged_caches``): a BuildKit cache manifest that no image index in the
  repository lists, never a multi-arch child or an attestation manifest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from inspector.errors import CacheInspectError
from inspector.gc.backends.base import Capabilities, Untagged, timestamp
from inspector.gc.inventory import CacheInfo, Inventory
from inspector.gc.plan import RepositoryPlan
from inspector.gc.policy import Rules, format_duration, whole_days
from inspector.gc.untagged import CacheSelection, add_selected, recheck_selection, select_in_registry
from inspector.oci.digest import Digest
from inspector.oci.models import ManifestDocument
from inspector.oci.reference import Repository
from inspector.registry.client import RegistryClient
from inspector.registry.ecr import BATCH_LIMIT, EcrClient, EcrImage, ImageId
from inspector.registry.github_packages import PackageVersion

__all__ = ["EcrBackend", "lifecycle_policy", "plan_untagged", "recheck_untagged", "with_push_times"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EcrBackend:
    """Deletes through ``BatchDeleteImage``; not thread-safe (the executor is sequential)."""

    def __init__(self, client: RegistryClient, repository: Repository, ecr: EcrClient) -> None:
        self.client = client
        self.repository = repository
        self.ecr = ecr
        self.name = repository.path
        self._allowed: frozenset[str] = frozenset()
        self._images: list[EcrImage] | None = None
        self._capabilities: Capabilities | None = None
        self._lock = threading.Lock()

    def allow_tags(self, tags: Iterable[str]) -> None:
        """The tags the plan deletes: the only tags an image deleted by digest may still carry."""
        self._allowed = frozenset(tags)

    def images(self) -> list[EcrImage]:
        """Every image of the repository (DescribeImages, all pages), listed once per run."""
        if self._images is None:
            self._images = self.ecr.images(self.name)
        return self._images

    # -- DeleteBackend -----------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        with self._lock:
            if self._capabilities is None:
                settings = self.ecr.repository(self.name)
                self._capabilities = Capabilities(
                    "ecr",
                    True,
                    "native",
                    True,
                    f"ECR API (registry {self.ecr.registry_id}, repository {self.name}, tags "
                    f"{settings.tag_mutability}): BatchDeleteImage by digest deletes an image with its tags, "
                    "by tag removes one tag; each image is described again right before",
                )
            return self._capabilities

    def untag(self, tag: str, digest: Digest) -> Untagged:
        image = self.ecr.image(self.name, digest)
        if image is None or tag not in image.tags:
            where = self._where(tag)
            if where is None:
                return Untagged(tag, "tag-delete", already_gone=True)
            raise CacheInspectError(f"{tag} moved to {where.short} on ECR since the last check: left alone")
        if len(image.tags) == 1:
            raise CacheInspectError(
                f"{tag} is now the only tag on {digest.short}: removing it would delete the image "
                "(ECR deletes an image with its last tag), which the plan keeps: left alone"
            )
        deleted, failures = self.ecr.batch_delete(self.name, [ImageId(tag=tag)])
        for failure in failures:
            if failure.code == "ImageNotFound":
                return Untagged(tag, "tag-delete", already_gone=True)
            raise CacheInspectError(f"ECR did not remove tag {tag}: {failure.code} {failure.reason}".rstrip())
        if not deleted:
            raise CacheInspectError(f"ECR answered neither success nor failure for tag {tag}")
        return Untagged(tag, "tag-delete")

    def delete_manifest(self, digest: Digest) -> bool:
        return self._judge(digest, self._delete({digest: self.ecr.image(self.name, digest)}))

    @property
    def batch_limit(self) -> int:
        return BATCH_LIMIT

    def delete_manifests(self, digests: Sequence[Digest]) -> dict[Digest, bool | CacheInspectError]:
        """Up to ``BATCH_LIMIT`` manifests in one BatchDeleteImage, after one listing (their last look)."""
        listed = {i.digest: i for i in self.ecr.images(self.name)}
        return self._delete({d: listed.get(d) for d in digests})

    def _delete(self, images: Mapping[Digest, EcrImage | None]) -> dict[Digest, bool | CacheInspectError]:
        """Delete the images as ECR listed them just now, each only without a tag the plan keeps."""
        results: dict[Digest, bool | CacheInspectError] = {}
        ids = []
        for digest, image in images.items():
            if image is None:
                results[digest] = False
                continue
            foreign = sorted(set(image.tags) - self._allowed)
            if foreign:
                results[digest] = CacheInspectError(
                    f"ECR lists {', '.join(foreign)} on {digest.short} now, which the plan keeps: not deleted"
                )
                continue
            ids.append(ImageId(digest=digest))
        if not ids:
            return results
        deleted, failures = self.ecr.batch_delete(self.name, ids)
        for image_id in deleted:
            if image_id.digest is not None and image_id.digest in images:
                results[image_id.digest] = True
        for failure in failures:
            failed = failure.image.digest
            if failed is None or failed not in images:
                continue
            results[failed] = (
                False
                if failure.code == "ImageNotFound"
                else CacheInspectError(
                    f"ECR did not delete {failed.short}: {failure.code} {failure.reason}".rstrip()
                )
            )
        # An answer naming neither (moto's for an untagged image) is judged by describing it again.
        for image_id in ids:
            unanswered = image_id.digest
            if unanswered is not None and unanswered not in results:
                results[unanswered] = (
                    CacheInspectError(f"ECR did not delete {unanswered.short} and reported no failure")
                    if self.ecr.image(self.name, unanswered) is not None
                    else True
                )
        gone = {d for d, r in results.items() if r is True}
        if self._images is not None and gone:
            self._images = [i for i in self._images if i.digest not in gone]
        return results

    @staticmethod
    def _judge(digest: Digest, results: Mapping[Digest, bool | CacheInspectError]) -> bool:
        result = results[digest]
        if isinstance(result, CacheInspectError):
            raise result
        return result

    def _where(self, tag: str) -> Digest | None:
        """The digest ECR lists ``tag`` on now (a fresh listing), or None."""
        self._images = None
        return next((i.digest for i in self.images() if tag in i.tags), None)


def with_push_times(inventory: Inventory, images: Iterable[EcrImage]) -> Inventory:
    """``inventory`` with every cache aged by ECR's ``imagePushedAt`` and its ``lastRecordedPullTime``
    (``--unpulled-for``), where ECR lists the image."""
    listed: Mapping[Digest, EcrImage] = {i.digest: i for i in images if i.pushed_at is not None}
    caches: dict[Digest, CacheInfo] = {}
    for digest, cache in inventory.caches.items():
        image = listed.get(digest)
        if image is None or image.pushed_at is None:
            caches[digest] = cache
            continue
        pulled = timestamp(image.last_pulled) if image.last_pulled is not None else None
        caches[digest] = replace(
            cache, created_at=timestamp(image.pushed_at), age_source="pushed", last_pulled=pulled
        )
    note = "ages are ECR push times (DescribeImages imagePushedAt), not the caches' buildkit/createdat"
    return replace(inventory, caches=MappingProxyType(caches), notes=(*inventory.notes, note))


def _version(index: int, image: EcrImage) -> PackageVersion:
    when = image.pushed_at or _EPOCH
    return PackageVersion(index, image.digest, image.tags, when, when)


def _select(
    backend: EcrBackend,
) -> tuple[CacheSelection, dict[Digest, ManifestDocument], dict[Digest, EcrImage]]:
    """GHCR's untagged-cache selection over every ECR image (one manifest GET each)."""
    images = backend.images()
    versions = [_version(n, image) for n, image in enumerate(images)]
    selection, documents = select_in_registry(backend.client, backend.repository, versions)
    return selection, documents, {i.digest: i for i in images}


def plan_untagged(backend: EcrBackend, inventory: Inventory) -> Inventory:
    """``inventory`` plus the repository's untagged caches; reads every image's manifest once."""
    selection, documents, _ = _select(backend)
    return add_selected(inventory, selection, documents, what="ECR image", verb="pushed")


def recheck_untagged(plan: RepositoryPlan, backend: EcrBackend) -> RepositoryPlan:
    """``plan`` without the untagged caches the selection no longer picks (before ``--apply-plan``)."""
    if not plan.untagged_deletions:
        return plan
    return recheck_selection(plan, _select(backend)[0], "no such ECR image")


def lifecycle_policy(rules: Rules, *, untagged: bool) -> tuple[dict[str, Any], list[str]]:
    """The ECR lifecycle policy for what of ``rules`` ECR can express, and what it cannot.

    The properties are those of AWS's "Lifecycle policy properties in Amazon ECR": ``rulePriority``
    (unique, lowest first), ``selection.tagStatus`` (``untagged``: no tag lists; ``tagged``: a
    ``tagPrefixList`` or ``tagPatternList``, a tag list selecting only images carrying *all* its
    entries, at most four ``*`` per pattern), ``countType`` ``sinceImagePushed`` (with ``countUnit``
    ``days``) or ``imageCountMoreThan``, ``countNumber`` > 0, ``action.type`` ``expire``. So each
    template gets rules of its own, one pattern each (``{branch}``/``{number}`` become ``*``).
    """
    emitted: list[dict[str, Any]] = []
    missing: list[str] = []

    def rule(description: str, selection: dict[str, Any]) -> None:
        emitted.append(
            {
                "rulePriority": len(emitted) + 1,
                "description": description[:256],
                "selection": selection,
                "action": {"type": "expire"},
            }
        )

    days = whole_days(rules.max_age) if rules.max_age is not None else None
    if rules.max_age is not None and days is not None and timedelta(days=days) != rules.max_age:
        missing.append(
            f"max-age {format_duration(rules.max_age)}: ECR counts whole days, rounded up to {days}d"
        )
    if untagged:
        since = days or 1
        rule(
            f"untagged images pushed more than {since} days ago (cacheinspect gc --untagged)",
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": since,
            },
        )
        missing.append(
            "--untagged selects only BuildKit caches that no image index lists; an ECR rule cannot tell "
            "caches from other untagged images (multi-arch children, attestations): use it only in a "
            "repository that holds caches alone"
        )
    if rules.protect:
        missing.append(
            f"--protect {' '.join(rules.protect)}: an ECR rule cannot exempt tags, so no tag rule is emitted "
            "(protected caches would match the templates' patterns)"
        )
    elif rules.max_age is not None or rules.keep_last is not None:
        for template in rules.templates:
            pattern = f"{template.prefix}*{template.suffix}"
            if days is not None:
                rule(
                    f"{template.text}: pushed more than {days} days ago (cacheinspect --max-age)",
                    {
                        "tagStatus": "tagged",
                        "tagPatternList": [pattern],
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": days,
                    },
                )
            if rules.keep_last is not None:
                rule(
                    f"{template.text}: all but the {rules.keep_last} newest (cacheinspect --keep-last)",
                    {
                        "tagStatus": "tagged",
                        "tagPatternList": [pattern],
                        "countType": "imageCountMoreThan",
                        "countNumber": rules.keep_last,
                    },
                )
            if template.kind == "number":
                missing.append(
                    f"{template.text}: the pattern {pattern} also matches tags whose middle is not a number"
                )
        if emitted:
            missing.append(
                "ECR ages tagged images by push time and counts images, not tags: an image with a tag of another "
                "template counts here too"
            )
    missing.append("branch gone (--branches-from-git, --branches-file): ECR knows no branches")
    return {"rules": emitted}, missing
