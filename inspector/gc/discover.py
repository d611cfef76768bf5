"""Repositories found rather than listed (``[[discover]]``, ``--discover``), and the shard a run takes.

A *source* is ``REGISTRY[/PREFIX]``; what lists its repositories depends on the registry's backend:

* distribution, Harbor, zot (the ``oci`` backend): ``GET /v2/_catalog`` page by page
  (``inspector.registry.catalog``), the names under ``PREFIX/``;
* GHCR (``ghcr``): the container packages of the organisation or user ``PREFIX``'s first segment names
  (GitHub REST, ``GhcrClient.iter_container_packages``), each package ``NAME`` being ``ghcr.io/OWNER/NAME``;
* ECR (``ecr``): ``DescribeRepositories`` (the optional boto3 extra), the names under ``PREFIX/``;
* Artifact Registry (``google``, ``LOCATION-docker.pkg.dev/PROJECT/REPOSITORY[/PREFIX]``): the packages
  of that one repository (REST ``packages.list``, ``inspector.registry.google.iter_packages``), each
  package ``P`` being ``LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/P``, the names under ``PREFIX/``.

GCR sources (``gcr.io/PROJECT``) are refused (``UsageError``): GCR lists nested images only through
``tags/list``'s ``child`` names, one request per level, which this tool does not walk; ``gcr.io`` is
now served by an Artifact Registry repository named after it (registries.md [C3]), discovered as such.

``match`` is an ``fnmatch`` glob over the part of the name below ``PREFIX/`` (``*`` crosses ``/``); a
name it does not match is skipped as ``excluded-by-glob``. Whether a matching repository is planned
is decided later, from its one tag listing (``has_template_tag``): one with no tag any of its templates
reads is skipped as ``no-matching-tag``.

A shard (``--shard K/N``, 0-based: ``K`` in ``0..N-1``, as Kubernetes' ``JOB_COMPLETION_INDEX``) holds
the repositories whose sha256 of ``registry/path`` (``str(Repository)``), read as a big-endian
integer, is ``K`` mod ``N``. The hash depends on the name alone, so the shards are disjoint, cover
every repository, and a repository added or removed moves no other one between shards.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from inspector.errors import UsageError
from inspector.gc.backends.factory import backend_kind
from inspector.gc.policy import Settings, TagTemplate, parse_backend
from inspector.oci.reference import Repository, parse_repository
from inspector.registry.catalog import iter_catalog
from inspector.registry.client import RegistryClient
from inspector.registry.ecr import EcrClient
from inspector.registry.github_packages import GhcrClient
from inspector.registry.google import (
    API_URL_ENV,
    ARTIFACT_REGISTRY_API,
    LOCATION_ENV,
    iter_packages,
    location_of,
)

__all__ = [
    "SKIP_REASONS",
    "DiscoverSource",
    "Discovery",
    "Lister",
    "Shard",
    "SkipReason",
    "Skipped",
    "SourceKind",
    "discovery_to_json",
    "has_template_tag",
    "list_source",
    "parse_discover_source",
    "parse_shard",
    "select_names",
    "source_kind",
]

SourceKind = Literal["catalog", "ghcr", "ecr", "artifact-registry"]
SkipReason = Literal["excluded-by-glob", "other-shard", "no-matching-tag", "error", "time-budget"]
#: Why a repository a source listed is not planned: its name does not match the glob, it belongs to
#: another shard, none of its tags matches a template, or reading it failed (the run's exit code says
#: how). A repository a ``[[repository]]`` table names is planned under that table, once.
SKIP_REASONS: tuple[SkipReason, ...] = (
    "excluded-by-glob",
    "other-shard",
    "no-matching-tag",
    "error",
)
#: ``lister(source, settings)``: the repository paths (``owner/name``) the source lists, in its order
#: (``settings``: the source's merged settings; ``list_source`` does it given the clients).
Lister = Callable[["DiscoverSource", Settings], Iterable[str]]

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    """``--shard K/N``: this worker's part of the repositories (module docstring)."""

    index: int
    count: int

    def holds(self, repository: Repository) -> bool:
        digest = hashlib.sha256(str(repository).encode("utf-8")).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``K/N`` with ``0 <= K < N``; anything else is a ``UsageError`` (exit 2)."""
    found = _SHARD.match(text)
    if found is None:
        raise UsageError(
            f"--shard {text!r}: expected K/N, 0-based (0/4 1/4 2/4 3/4), e.g. --shard $JOB_COMPLETION_INDEX/4"
        )
    index, count = int(found[1]), int(found[2])
    if count < 1:
        raise UsageError(f"--shard {text!r}: N must be at least 1")
    if index >= count:
        raise UsageError(f"--shard {text!r}: K counts from 0, so it must be below N (0..{count - 1})")
    return Shard(index, count)


@dataclass(frozen=True, slots=True)
class DiscoverSource:
    """One ``[[discover]]`` table (or ``--discover``/``--match``): where to list, which names, which rules."""

    source: str  # as written: REGISTRY[/PREFIX]
    registry: str
    prefix: str  # "" or a path without a trailing "/"
    match: str
    settings: Settings

    def repository(self, path: str) -> Repository:
        return parse_repository(f"{self.registry}/{path}")

    def below_prefix(self, path: str) -> str | None:
        """``path`` without ``PREFIX/``, or None when it is not under the prefix."""
        if not self.prefix:
            return path
        return path[len(self.prefix) + 1 :] if path.startswith(self.prefix + "/") else None


def parse_discover_source(text: str, match: str, settings: Settings, where: str) -> DiscoverSource:
    """``REGISTRY[/PREFIX]`` and a glob; the registry is checked as a repository name would be."""
    registry, _, prefix = text.strip().partition("/")
    prefix = prefix.strip("/")
    if not registry or not match:
        raise UsageError(f"{where}: expected source = 'REGISTRY[/PREFIX]' and a non-empty match glob")
    if settings.package is not None:
        raise UsageError(f"{where}: package names one repository; a discovered one is its own package")
    try:
        parse_repository(f"{registry}/{prefix or 'x'}")
    except UsageError as exc:
        raise UsageError(f"{where}: source {text!r}: {exc.message}") from None
    return DiscoverSource(text.strip(), registry, prefix, match, settings)


def source_kind(source: DiscoverSource, backend: str | None) -> SourceKind:
    """What lists the source's repositories, from its backend (``auto``: by host)."""
    kind = backend_kind(Repository(source.registry, source.prefix or "x"), parse_backend(backend))
    if kind == "google":
        host = source.registry.split(":", 1)[0].lower()
        if host == "gcr.io" or host.endswith(".gcr.io"):
            raise UsageError(
                f"discover {source.source}: GCR discovery is not supported; discover the Artifact "
                "Registry repository that serves it (LOCATION-docker.pkg.dev/PROJECT/gcr.io) or name "
                "the repositories in [[repository]] tables"
            )
        if len(source.prefix.split("/")) < 2:
            raise UsageError(
                f"discover {source.source}: Artifact Registry discovery lists one repository: "
                "LOCATION-docker.pkg.dev/PROJECT/REPOSITORY[/PREFIX]"
            )
        if location_of(source.registry, os.environ) is None:
            raise UsageError(
                f"discover {source.source}: which Artifact Registry location? {source.registry} names none "
                f"(LOCATION-docker.pkg.dev); set {LOCATION_ENV}"
            )
        return "artifact-registry"
    if kind == "ghcr" and not source.prefix:
        raise UsageError(
            f"discover {source.source}: GHCR discovery needs an owner (ghcr.io/ORG or ghcr.io/USER)"
        )
    return "catalog" if kind == "oci" else kind


def list_source(
    source: DiscoverSource,
    settings: Settings,
    *,
    client: RegistryClient,
    github: GhcrClient | None = None,
    ecr: EcrClient | None = None,
    google_token: str | None = None,
    page_size: int | None = None,
) -> Iterator[str]:
    """The repository paths the source lists (``settings``: its merged settings, for the backend); the
    GitHub or ECR client is needed for those sources only, the Google access token (None: anonymous)
    for Artifact Registry's."""
    kind = source_kind(source, settings.backend)
    if kind == "artifact-registry":
        project, repository = source.prefix.split("/")[:2]
        location = location_of(source.registry, os.environ)
        assert location is not None  # source_kind refused it otherwise
        api_url = os.environ.get(API_URL_ENV, "").strip() or ARTIFACT_REGISTRY_API
        packages = iter_packages(
            client, api_url, project, location, repository, token=google_token, page_size=page_size
        )
        return (f"{project}/{repository}/{name}" for name in packages)
    if kind == "ghcr":
        assert github is not None
        owner = source.prefix.split("/")[0]
        return (f"{owner}/{name}" for name in github.iter_container_packages(owner))
    if kind == "ecr":
        assert ecr is not None
        return ecr.iter_repository_names()
    return iter_catalog(client, source.registry, page_size=page_size)


@dataclass(frozen=True, slots=True)
class Skipped:
    repository: str  # registry/path as listed (a name that is no valid repository is skipped too)
    reason: SkipReason
    detail: str


def select_names(
    source: DiscoverSource, paths: Iterable[str], shard: Shard | None
) -> Iterator[Repository | Skipped]:
    """Each name under the source's prefix, once: the repository to read, or why it is skipped (the glob,
    a name that is no repository name, another shard)."""
    seen: set[str] = set()
    for path in paths:
        below = source.below_prefix(path)
        if below is None or path in seen:
            continue
        seen.add(path)
        name = f"{source.registry}/{path}"
        if not fnmatchcase(below, source.match):
            yield Skipped(name, "excluded-by-glob", f"{below!r} does not match {source.match!r}")
            continue
        try:
            repository = source.repository(path)
        except UsageError as exc:  # a listing is not trusted: a bad name is reported, the rest go on
            yield Skipped(name, "error", exc.message)
            continue
        if shard is not None and not shard.holds(repository):
            yield Skipped(name, "other-shard", f"not in shard {shard}")
        else:
            yield repository


def has_template_tag(tags: Iterable[str], templates: Iterable[TagTemplate]) -> bool:
    """Whether any tag is read by one of the templates (a repository without one is not gc's business)."""
    chosen = tuple(templates)
    return any(t.match(tag) is not None for tag in tags for t in chosen)


@dataclass(frozen=True, slots=True)
class Discovery:
    """What discovery looked at: the sources, how many names they listed, and each one not planned."""

    sources: tuple[str, ...]
    shard: Shard | None
    looked_at: int
    planned: int
    skipped: tuple[Skipped, ...]

    def count(self, reason: SkipReason) -> int:
        return sum(1 for s in self.skipped if s.reason == reason)


def discovery_to_json(discovery: Discovery, errors: Mapping[str, str]) -> dict[str, Any]:
    """The ``discovery`` member of the gc JSON document (``inspector/schemas/gc-plan.schema.json``);
    ``errors``: message by source text, for the sources that could not be listed."""
    return {
        "sources": [{"source": source, "error": errors.get(source)} for source in discovery.sources],
        "shard": str(discovery.shard) if discovery.shard is not None else None,
        "lookedAt": discovery.looked_at,
        "planned": discovery.planned,
        "skipped": [
            {"repository": s.repository, "reason": s.reason, "detail": s.detail} for s in discovery.skipped
        ],
    }
