"""``history``: the manifests that held one cache tag, newest first, and who wrote them.

A cache tag is overwritten on every export (``--cache-to type=registry,ref=…``): the old manifest loses its
tag and, on registries that keep untagged manifests, stays. The registry API cannot list those (no endpoint
lists untagged manifests), but vendor APIs can, with the time each was pushed:

* GHCR: the package's versions (GitHub REST ``…/packages/container/{name}/versions``: ``name`` is the digest,
  ``created_at`` the push, ``metadata.container.tags``);
* Artifact Registry / GCR: the ``manifest`` map of ``tags/list`` (``timeUploadedMs``, ``tag``);
* ECR: ``DescribeImages`` (``imagePushedAt``, ``imageTags``; ECR keeps an image whose tag moved, untagged).

The history of tag T is the version tagged T and the untagged versions pushed before it (a version whose tags
are all others belongs to other caches), keeping those that are caches (an untagged version may also be an
image's platform child or attestation). Nothing records which tag an untagged version once had, so on a
package that holds several cache tags the untagged caches of the others interleave; the first differing step
against the next-older version shows where they do.

Each version's platforms come from its resolved bases (``coverage``: ``--base REF`` resolves each ``FROM``
image once); when the sequence goes back to a platform set after another one wrote, two (or more) writers
alternate on one tag — single-platform jobs for different platforms sharing one ``--cache-to`` ref, each
export throwing away the other's cache ("last writer wins").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from inspector.cache.coverage import PlatformCoverage, coverage_to_json, platform_coverage
from inspector.cache.diff import CacheDiff, StageDiff, diff_caches
from inspector.cache.naming.bases import ResolvedBase, name_bases
from inspector.cache.report import CacheReport, inspect_cache
from inspector.cache.source import RegistrySource
from inspector.errors import CacheInspectError, ExitCode, MissingContent, NotACache, NotFound, UsageError
from inspector.oci.digest import Digest
from inspector.oci.reference import Reference, Repository
from inspector.registry.client import RegistryClient
from inspector.registry.ecr import EcrClient
from inspector.registry.github_packages import GhcrClient, Package
from inspector.registry.google import read_manifest_map

__all__ = [
    "DEFAULT_LIMIT",
    "Alternation",
    "CacheHistory",
    "FirstDifference",
    "HistoryApi",
    "HistoryEntry",
    "HistoryUnavailable",
    "ListedVersion",
    "cache_history",
    "candidates",
    "detect_alternation",
    "ecr_versions",
    "first_difference",
    "ghcr_versions",
    "google_versions",
    "history_tag",
    "history_to_json",
]

DEFAULT_LIMIT = 20
EXAMINE_FACTOR = (
    5  # read at most limit x this many versions looking for caches (the rest are images, children)
)
HistoryApi = Literal["ghcr", "google", "ecr"]


class HistoryUnavailable(CacheInspectError):
    """The registry has no API that lists a tag's earlier manifests with their push times."""

    exit_code = ExitCode.REFUSED


@dataclass(frozen=True, slots=True)
class ListedVersion:
    """One manifest as a vendor API lists it."""

    digest: Digest
    tags: tuple[str, ...]
    pushed_at: datetime | None


def ghcr_versions(client: GhcrClient, package: Package) -> list[ListedVersion]:
    """Every active version of a GHCR package (``created_at`` is when its manifest was pushed)."""
    return [ListedVersion(v.digest, v.tags, v.created_at) for v in client.versions(package)]


def google_versions(client: RegistryClient, repository: Repository) -> list[ListedVersion]:
    """Every manifest of an Artifact Registry / GCR repository, from the ``tags/list`` manifest map."""
    return [
        ListedVersion(m.digest, m.tags, m.uploaded) for m in read_manifest_map(client, repository).values()
    ]


def ecr_versions(client: EcrClient, name: str) -> list[ListedVersion]:
    """Every image of an ECR repository, tagged or not (``DescribeImages``)."""
    return [ListedVersion(i.digest, i.tags, i.pushed_at) for i in client.images(name)]


def candidates(versions: Sequence[ListedVersion], tag: str) -> list[ListedVersion]:
    """The version tagged ``tag``, then every untagged one pushed before it, newest first.

    An untagged version pushed after the tagged one cannot have held the tag (an export re-tags what it
    pushes); versions tagged only with other tags are other caches. Versions without a time sort last.
    """
    ordered = sorted(versions, key=lambda v: (v.pushed_at is not None, v.pushed_at), reverse=True)
    current = next((i for i, v in enumerate(ordered) if tag in v.tags), None)
    if current is None:
        return []
    return [ordered[current], *(v for v in ordered[current + 1 :] if not v.tags)]


@dataclass(frozen=True, slots=True)
class FirstDifference:
    """Where a version stops matching the next-older one (the first differing stage, in the older one's order)."""

    kind: Literal["identical", "step", "new-stage", "stage-gone", "not-comparable"]
    stage: str | None = None
    stage_diff: StageDiff | None = None


def first_difference(diff: CacheDiff) -> FirstDifference:
    if not diff.comparable:
        return FirstDifference("not-comparable")
    for stage in diff.stages:
        if stage.first_difference is not None:
            return FirstDifference("step", stage.b.label, stage)
    if diff.only_in_b:
        return FirstDifference("new-stage", diff.only_in_b[0].label)
    if diff.only_in_a:
        return FirstDifference("stage-gone", diff.only_in_a[0].label)
    return FirstDifference("identical")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    version: ListedVersion
    report: CacheReport
    coverage: PlatformCoverage
    difference: FirstDifference | None  # against the next-older entry; None for the oldest shown

    @property
    def size(self) -> int:
        """Bytes of the cache's distinct layer blobs (what the manifest lists)."""
        return self.report.total_size

    @property
    def writer(self) -> str | None:
        """The platform set that wrote this version (``linux/amd64+linux/arm64``), None when unknown."""
        return "+".join(self.coverage.platforms) or None


@dataclass(frozen=True, slots=True)
class Alternation:
    """Platform sets that took turns writing one tag, in the order of their latest write."""

    writers: tuple[str, ...]
    switches: int

    @property
    def sentence(self) -> str:
        names = list(self.writers)
        listed = " and ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + " and " + names[-1]
        count = "two" if len(names) == 2 else str(len(names))
        return f"{count} writers alternate on this tag: {listed} — use separate cache refs per platform"


def detect_alternation(entries: Sequence[HistoryEntry]) -> Alternation | None:
    """Alternation: a platform set writes again after another one wrote (A, B, A), versions of unknown platform
    skipped. One change (A, A, B) is a build that switched platforms, not two writers."""
    known = [e.writer for e in entries if e.writer is not None]
    runs = [w for i, w in enumerate(known) if i == 0 or known[i - 1] != w]
    if len(runs) != len(set(runs)):
        return Alternation(tuple(dict.fromkeys(runs)), len(runs) - 1)
    return None


@dataclass(frozen=True, slots=True)
class CacheHistory:
    reference: str
    tag: str
    api: HistoryApi
    entries: tuple[HistoryEntry, ...]
    examined: int  # versions read (caches and others)
    not_caches: int  # no cache (images, platform children, attestations), or gone since listed
    more: bool  # older candidates were left unread (--limit)
    alternation: Alternation | None


def history_tag(reference: Reference) -> str:
    """The tag whose history is asked for; a digest is a usage error (checked before any request)."""
    if reference.digest is not None:
        raise UsageError(f"{reference}: history follows a tag: give REPOSITORY:TAG, not a digest")
    return reference.tag or "latest"


def cache_history(
    client: RegistryClient,
    reference: Reference,
    versions: Sequence[ListedVersion],
    *,
    api: HistoryApi,
    limit: int = DEFAULT_LIMIT,
    bases: Sequence[ResolvedBase] = (),
) -> CacheHistory:
    """Read the candidates of ``reference``'s tag newest first until ``limit`` caches are found."""
    tag = history_tag(reference)
    queue = candidates(versions, tag)
    if not queue:
        raise MissingContent(
            f"{reference.repository}: no version carries the tag {tag!r}",
            hint="list the tags with 'cacheinspect tags REPOSITORY'",
        )
    found: list[tuple[ListedVersion, CacheReport]] = []
    examined = not_caches = 0
    budget = limit * EXAMINE_FACTOR

    def read(version: ListedVersion) -> CacheReport | None:
        source = RegistrySource(client, reference.repository.at(version.digest))
        try:
            report = inspect_cache(source, check_blobs=False)
        except NotACache:
            return None
        except NotFound:  # deleted since it was listed
            return None
        if bases and report.graph is not None:
            report = replace(report, graph=name_bases(report.graph, bases))
        return report

    position = 0
    while position < len(queue) and len(found) < limit and examined < budget:
        batch = queue[position : position + min(limit - len(found), budget - examined)]
        position += len(batch)
        examined += len(batch)
        for version, report in zip(batch, client.map_bounded(read, batch), strict=True):
            if report is None:
                not_caches += 1
            elif len(found) < limit:
                found.append((version, report))
    entries: list[HistoryEntry] = []
    for index, (version, report) in enumerate(found):
        older = found[index + 1][1] if index + 1 < len(found) else None
        difference = first_difference(diff_caches(older, report)) if older is not None else None
        entries.append(HistoryEntry(version, report, platform_coverage(report.graph), difference))
    return CacheHistory(
        str(reference),
        tag,
        api,
        tuple(entries),
        examined,
        not_caches,
        position < len(queue),
        detect_alternation(entries),
    )


def _difference_json(difference: FirstDifference | None) -> dict[str, Any] | None:
    if difference is None:
        return None
    step = difference.stage_diff.first_difference if difference.stage_diff is not None else None
    return {
        "kind": difference.kind,
        "stage": difference.stage,
        "change": step.change if step else None,
        "stepA": step.number_a if step else None,
        "stepB": step.number_b if step else None,
        "recordA": str(step.record_a) if step and step.record_a else None,
        "recordB": str(step.record_b) if step and step.record_b else None,
        "instruction": (step.instruction_b or step.instruction_a) if step else None,
        "changedInputs": [i.kind for i in step.changed_inputs] if step else [],
    }


def _utc(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def history_to_json(history: CacheHistory) -> dict[str, Any]:
    """The ``history --json`` document (schema: ``inspector/schemas/history.schema.json``)."""
    return {
        "schemaVersion": 1,
        "reference": history.reference,
        "tag": history.tag,
        "api": history.api,
        "examined": history.examined,
        "notCaches": history.not_caches,
        "more": history.more,
        "alternation": {"writers": list(history.alternation.writers), "message": history.alternation.sentence}
        if history.alternation
        else None,
        "versions": [
            {
                "digest": str(entry.version.digest),
                "tags": list(entry.version.tags),
                "pushedAt": _utc(entry.version.pushed_at),
                "size": entry.size,
                "form": entry.report.documents.form,
                "platforms": coverage_to_json(entry.coverage),
                "firstDifference": _difference_json(entry.difference),
            }
            for entry in history.entries
        ],
    }
