"""The probe's results: checks, leftovers, the recommendation, the ``--cache-to`` verdict, the report.

Frozen value types shared by ``probe`` (which runs the checks), ``probe_verdict`` (which judges
them) and the renderers. ``CHECKS`` lists every check in report order with the knowledge-base
topic that documents it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from inspector.cache.fetch import Form
from inspector.errors import ExitCode
from inspector.oci import mediatypes
from inspector.oci.reference import Reference, Repository
from inspector.probe.cacheto import Problem
from inspector.probe.classify import Answer, Status
from inspector.probe.kb import Fact, FamilyMatch

__all__ = [
    "CHECKS",
    "CONTENT_TYPE_FORMS",
    "EMPTY",
    "FORM_CHECKS",
    "FORM_NAMES",
    "FORM_ORDER",
    "FORM_TAGS",
    "SPECS",
    "VERDICT_EXIT",
    "Basis",
    "CacheToVerdict",
    "Check",
    "CheckSpec",
    "CleanupAdvice",
    "Leftover",
    "Observed",
    "ProbeOptions",
    "ProbeReport",
    "Recommendation",
    "Verdict",
]

Basis = Literal["probed", "existing-cache", "documented"]
Observed = Mapping[str, str | int | bool | None]
EMPTY: Observed = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    group: str
    title: str
    topic: str | None


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("discovery", "discovery", "GET /v2/ without credentials: challenge, API version", "auth"),
    CheckSpec("auth", "discovery", "GET /v2/ with the credentials", "auth"),
    CheckSpec("repository", "discovery", "the repository exists (the probe never creates one)", "repository"),
    CheckSpec("existing-cache", "read", "the cache at the --cache-to ref", None),
    CheckSpec("blob-upload", "upload", "blob upload: POST + PUT, read back by HEAD", None),
    CheckSpec("blob-upload-single-post", "upload", "single-POST blob upload (optional)", None),
    CheckSpec("blob-upload-chunked", "upload", "chunked blob upload: PATCH + PUT (optional)", None),
    CheckSpec("blob-mount", "upload", "cross-repository blob mount (--mount-from)", "mount"),
    CheckSpec(
        "manifest-image", "manifest", "OCI image manifest cache (image-manifest=true)", "image-manifest"
    ),
    CheckSpec("manifest-index", "manifest", "OCI image index cache (blobs + cacheconfig entry)", "oci-index"),
    CheckSpec(
        "manifest-list", "manifest", "Docker manifest list cache (oci-mediatypes=false)", "manifest-list"
    ),
    CheckSpec(
        "manifest-migration", "manifest", "a tag changing form: index, then image manifest", "migration"
    ),
    CheckSpec("manifest-near-limit", "manifest", "a 1 MiB manifest (BuildKit's import limit)", "limits"),
    CheckSpec("tags-list", "listing", "tags/list lists the probe's tags (following Link)", "tags-pagination"),
    CheckSpec("tags-n", "listing", "tags/list?n=1 honoured", "tags-pagination"),
    CheckSpec("tags-link", "listing", "Link pagination of tags/list", "tags-pagination"),
    CheckSpec("catalog", "listing", "GET /v2/_catalog", "catalog"),
    CheckSpec("referrers", "referrers", "OCI referrers API", "referrers"),
    CheckSpec("delete-tag", "delete", "DELETE /manifests/<tag>", "delete-tag"),
    CheckSpec(
        "delete-digest-tagged", "delete", "DELETE /manifests/<digest> of a tagged manifest", "delete-digest"
    ),
    CheckSpec(
        "delete-digest-untagged",
        "delete",
        "DELETE /manifests/<digest> of an untagged manifest",
        "delete-digest",
    ),
    CheckSpec("token-scopes", "auth", "actions granted by the registry token", "auth"),
    CheckSpec("cleanup", "cleanup", "removal of everything the probe created", None),
)
SPECS: Mapping[str, CheckSpec] = MappingProxyType({c.id: c for c in CHECKS})

#: The check that decides each wire form.
FORM_CHECKS: Mapping[Form, str] = MappingProxyType(
    {
        "image-manifest": "manifest-image",
        "oci-index": "manifest-index",
        "docker-manifest-list": "manifest-list",
    }
)
FORM_ORDER: tuple[Form, ...] = ("image-manifest", "oci-index", "docker-manifest-list")
FORM_TAGS: Mapping[Form, str] = MappingProxyType(
    {"image-manifest": "oman", "oci-index": "oidx", "docker-manifest-list": "dlist"}
)
FORM_NAMES: Mapping[Form, str] = MappingProxyType(
    {
        "image-manifest": "OCI image manifest",
        "oci-index": "OCI image index",
        "docker-manifest-list": "Docker manifest list",
        "docker-manifest": "Docker image manifest",
    }
)
CONTENT_TYPE_FORMS: Mapping[str, Form] = MappingProxyType(
    {
        mediatypes.OCI_MANIFEST: "image-manifest",
        mediatypes.OCI_INDEX: "oci-index",
        mediatypes.DOCKER_MANIFEST_LIST: "docker-manifest-list",
        mediatypes.DOCKER_MANIFEST: "docker-manifest",
    }
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Check:
    """One check's result. ``basis``: how it was decided (live, from the existing cache, or documented)."""

    id: str
    group: str
    title: str
    status: Status
    summary: str
    basis: Basis = "probed"
    answer: Answer | None = None
    hint: str | None = None
    documented: tuple[Fact, ...] = ()
    blocked_by: str | None = None
    retries: int = 0
    observed: Observed = field(default_factory=lambda: EMPTY)
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class Leftover:
    """Something the probe created that is still in the registry (``kind``: tag, manifest, blob)."""

    kind: Literal["tag", "manifest", "blob"]
    reference: str
    reason: str


@dataclass(frozen=True, slots=True)
class CleanupAdvice:
    method: str
    text: str
    basis: Literal["probed", "documented"]
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The cache form to export, the ``--cache-to`` value for it, and how cleanup works here."""

    form: Form | None
    attributes: tuple[tuple[str, str], ...]
    cache_to: str | None
    basis: Literal["probed", "existing-cache", "documented", "none"]
    reason: str
    cleanup: CleanupAdvice
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


Verdict = Literal["works", "will-not-work", "unknown", "inconclusive", "denied", "config-error"]
VERDICT_EXIT: Mapping[str, ExitCode] = MappingProxyType(
    {
        "works": ExitCode.OK,
        "unknown": ExitCode.OK,
        "will-not-work": ExitCode.WILL_NOT_WORK,
        "inconclusive": ExitCode.NETWORK,
        "denied": ExitCode.AUTH,
        "config-error": ExitCode.NOT_FOUND,
    }
)


@dataclass(frozen=True, slots=True)
class CacheToVerdict:
    """Will the user's ``--cache-to`` work here? ``form`` is what BuildKit would write (None: export error)."""

    input: str
    attributes: Mapping[str, str]
    buildkit: str
    form: Form | None
    verdict: Verdict
    basis: Literal["probed", "existing-cache", "documented", "configuration", "none"]
    reason: str
    problems: tuple[Problem, ...]
    exit_code: int
    #: the failed check behind a failing verdict (none when BuildKit's attributes or the documentation decided)
    decided_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProbeReport:
    target: str
    mode: Literal["write", "read-only", "offline"]
    run_id: str | None
    family: FamilyMatch
    checks: tuple[Check, ...]
    recommendation: Recommendation
    cache_to: CacheToVerdict | None
    leftovers: tuple[Leftover, ...]
    exit_code: int
    started_at: str
    duration_ms: int
    requests: int = 0
    failed_by: tuple[str, ...] = ()  # the checks whose failure decided a non-zero exit code

    def check(self, check_id: str) -> Check | None:
        return next((c for c in self.checks if c.id == check_id), None)

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source id the report cites, in first-seen order."""
        seen: dict[str, None] = {}
        for check in self.checks:
            for fact in check.documented:
                seen.update(dict.fromkeys(fact.sources))
        for fact in self.family.family.facts:
            seen.update(dict.fromkeys(fact.sources))
        seen.update(dict.fromkeys(self.recommendation.sources))
        seen.update(dict.fromkeys(self.recommendation.cleanup.sources))
        if self.cache_to is not None:
            for problem in self.cache_to.problems:
                seen.update(dict.fromkeys(problem.sources))
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """What to probe. ``ref`` is an existing cache to read (REPO:TAG or the --cache-to ref)."""

    repository: Repository
    cache_to: str | None = None
    buildkit_version: str = "latest"
    ref: Reference | None = None
    delete: bool = False
    keep: bool = False  # leave what the probe created (for debugging); cleanup is the default
    read_only: bool = False
    family: str | None = None
    mount_from: Repository | None = None
    upload_variants: bool = False
    near_limit: bool = True
    run_id: str | None = None
    retries: int = 3
    max_wait: float = 30.0
