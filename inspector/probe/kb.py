"""Documented registry behaviour for BuildKit registry caches, per registry family.

Transcribed from ``registries.md`` (the research note behind ``cacheinspect probe``): every
``Fact`` names the topic it is about, a verdict, a one-line statement with its date, and the
source ids of that note (``[E3]``, ``[R7]`` …), which ``SOURCES`` resolves. The probe uses these
facts to explain live answers ("documented: ECR rejects the index form [S1][E3]") and, with
``--offline``, answers from them alone.

A family is recognised from the registry host (``FAMILIES[*].hosts``, regular expressions over
the host without port) or from the ``/v2/`` challenge (``challenge`` patterns over realm and
service), unless ``--family`` names it. Pure data and lookups: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from inspector.errors import UnknownFamily

__all__ = [
    "FAMILIES",
    "FAMILY_IDS",
    "SOURCES",
    "TOPICS",
    "CleanupMethod",
    "Fact",
    "Family",
    "FamilyMatch",
    "Verdict",
    "detect_family",
    "family_by_id",
]

Verdict = Literal["yes", "no", "likely", "partial", "unknown"]

#: Topics a fact can be about; probe checks map onto them.
TOPICS: Mapping[str, str] = MappingProxyType(
    {
        "image-manifest": "OCI image manifest cache (image-manifest=true)",
        "oci-index": "OCI image index cache (blob entries + cacheconfig entry)",
        "manifest-list": "Docker manifest list cache (oci-mediatypes=false)",
        "migration": "a cache tag changing form (index → image manifest, BuildKit 0.21)",
        "delete-tag": "DELETE /v2/<name>/manifests/<tag>",
        "delete-digest": "DELETE /v2/<name>/manifests/<digest>",
        "tags-pagination": "tags/list n, last and Link pagination",
        "catalog": "GET /v2/_catalog",
        "referrers": "OCI referrers API",
        "auth": "authentication",
        "repository": "repositories created on push",
        "mount": "cross-repository blob mount",
        "limits": "size and rate limits",
    }
)


@dataclass(frozen=True, slots=True)
class Fact:
    """One documented behaviour: ``verdict`` on ``topic``, said by ``sources`` (ids into ``SOURCES``)."""

    topic: str
    verdict: Verdict
    text: str
    sources: tuple[str, ...]
    #: what used to hold (history): shown beside the verdict, never deciding it
    note: str = ""


@dataclass(frozen=True, slots=True)
class CleanupMethod:
    """How probe (and cache) manifests are removed on a family: a stable id and what to do."""

    id: str
    text: str
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Family:
    id: str
    name: str
    hosts: tuple[str, ...]  # regexes over the lowercased host without port, full match
    facts: tuple[Fact, ...]
    cleanup: CleanupMethod
    challenge: tuple[str, ...] = ()  # regexes searched in "realm service" of a Bearer challenge
    examples: tuple[str, ...] = ()  # hosts the family is recognised from (documentation, tests)

    def facts_about(self, topic: str) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.topic == topic)

    def verdict(self, topic: str) -> Verdict:
        """The first fact's verdict on ``topic``, or ``unknown`` when there is none."""
        found = self.facts_about(topic)
        return found[0].verdict if found else "unknown"


@dataclass(frozen=True, slots=True)
class FamilyMatch:
    """The family a registry belongs to, and how that was decided."""

    family: Family
    basis: Literal["flag", "host", "challenge", "unknown"]


def _f(topic: str, verdict: Verdict, text: str, *sources: str, note: str = "") -> Fact:
    return Fact(topic, verdict, text, tuple(sources), note)


_OCI_DELETE = CleanupMethod(
    "oci-digest-delete",
    "DELETE /v2/<name>/manifests/<digest> removes the manifest and every tag on it",
    (),
)

FAMILIES: tuple[Family, ...] = (
    Family(
        id="ecr",
        name="AWS ECR",
        hosts=(r"[0-9]{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?",),
        examples=("123456789012.dkr.ecr.us-east-1.amazonaws.com",),
        facts=(
            _f(
                "manifest-list",
                "no",
                '400 UNSUPPORTED "Unsupported manifest type" for the list (2018-10-25); lists exist since '
                '2020-05 but cache lists had "an additional issue" (2020-07-22)',
                "E1",
                "E2",
            ),
            _f(
                "oci-index",
                "no",
                "BuildKit: error writing manifest blob … 400 Bad Request (2023-07-02, still 2024-09-03); "
                'ECR team: "we do NOT support the Image Index format" (2023-03-17)',
                "E5",
                "E6",
                "S1",
            ),
            _f(
                "image-manifest",
                "yes",
                "supported since BuildKit 0.12 (2023), in production 2026-07-12; a cache with no layers got "
                "405 (2023-09-28), current BuildKit skips empty exports",
                "E3",
                "E4",
                "E7",
                "S5",
            ),
            _f(
                "delete-digest",
                "yes",
                "DELETE by digest supported since 2023-05-15; removes the manifest and all tags on it",
                "E8",
                "E9",
            ),
            _f(
                "delete-tag",
                "unknown",
                "tag delete through /v2 undocumented; BatchDeleteImage with imageTag untags",
                "E10",
            ),
            _f("tags-pagination", "partial", "tags/list paginates (third-party, 2026-08-27)", "E17"),
            _f("referrers", "yes", "referrers API since 2024-06-27 (OCI 1.1)", "E12"),
            _f(
                "auth",
                "yes",
                "Basic, user AWS, password from aws ecr get-login-password, valid 12 h: a 401 mid-run "
                "usually means an expired token",
                "E16",
            ),
            _f(
                "repository",
                "no",
                "the repository must exist: 404 NAME_UNKNOWN, unless a create-on-push repository "
                "template covers it (2025-12-19)",
                "E14",
                "E15",
            ),
            _f(
                "mount",
                "partial",
                "cross-repository mount only since 2026-01-20 (third-party); a 202 (no mount) is not a failure",
                "E15",
            ),
            _f("limits", "partial", "max layer 52,000 MiB, 100,000 images per repository", "E11"),
        ),
        cleanup=CleanupMethod(
            "ecr-batch-delete-image",
            "DELETE /v2/<name>/manifests/<digest> (removes all tags), or the ECR API BatchDeleteImage "
            "(imageTag untags, imageDigest deletes; at most 100 ids per call); a lifecycle policy for "
            "untagged images removes overwritten cache manifests",
            ("E8", "E9", "E10"),
        ),
    ),
    Family(
        id="ghcr",
        name="GitHub Container Registry",
        hosts=(r"ghcr\.io", r"docker\.pkg\.github\.com"),
        challenge=(r"ghcr\.io/token",),
        examples=("ghcr.io",),
        facts=(
            _f(
                "manifest-list",
                "unknown",
                "no reports after 2020-12 (400s in 2020 predate GitHub's fix)",
                "A8",
            ),
            _f(
                "oci-index",
                "yes",
                "accepted since 2020-12-11 (GitHub fix); the UI shows it as an empty image",
                "G1",
                "S7",
            ),
            _f(
                "image-manifest",
                "likely",
                "OCI artifacts with custom config types accepted (2021-03-15); registry caches on GHCR "
                "in use with BuildKit ≥ 0.21 (2026-04-15)",
                "G2",
                "G10",
            ),
            _f(
                "delete-digest",
                "no",
                '405 UNSUPPORTED "The operation is unsupported." (2022-08-25, still 2026-08-18)',
                "G3",
            ),
            _f("delete-tag", "no", "no DELETE through /v2 (405 UNSUPPORTED)", "G3"),
            _f(
                "tags-pagination",
                "yes",
                "tags/list supports n/last and Link (pagination bug fixed 2021-08-18)",
                "G5",
            ),
            _f("catalog", "no", "no _catalog (2020-01-07, 2023-10-19)", "G6"),
            _f("referrers", "no", "referrers API answers 404 (2024-05-13, still 2026-02-01)", "G8"),
            _f(
                "auth",
                "yes",
                'Bearer realm="https://ghcr.io/token"; CI: GITHUB_TOKEN with job permissions packages: write',
                "G7",
                "G9",
            ),
            _f(
                "repository",
                "yes",
                "pushing to a new image name creates a new package (visibility and ownership side effects): "
                "probe only inside the existing cache package",
                "G4",
            ),
        ),
        cleanup=CleanupMethod(
            "github-rest",
            "GitHub REST packages API: GET /orgs/{org}/packages/container/{pkg}/versions (tags in "
            "metadata.container.tags), DELETE …/versions/{version_id} (or /user/…); needs a classic PAT "
            "with read:packages + delete:packages or GITHUB_TOKEN with admin on the package; a version is "
            "one manifest with all its tags",
            ("G4", "G3"),
        ),
    ),
    Family(
        id="gcr",
        name="gcr.io (served by Artifact Registry)",
        hosts=(r"gcr\.io", r"[a-z]+\.gcr\.io"),
        examples=("gcr.io", "eu.gcr.io"),
        # A cache pushed to gcr.io today lands in Artifact Registry [C3]: the form verdicts are Artifact
        # Registry's; what legacy Container Registry answered is kept as each fact's note.
        facts=(
            _f(
                "manifest-list",
                "unknown",
                "gcr.io is served by Artifact Registry since Container Registry writes ended 2025-03-18: no "
                "report for this form there",
                "C3",
                note="history: legacy Container Registry answered 400 on manifest PUT (2019-08-19), body not "
                "captured [C1]",
            ),
            _f(
                "oci-index",
                "yes",
                "gcr.io is served by Artifact Registry since Container Registry writes ended 2025-03-18; cache "
                "export works with Artifact Registry (2020-11-26, 2021-04-07)",
                "C3",
                "C1",
                note='history: legacy Container Registry refused it: 400 MANIFEST_INVALID "Image index child '
                'manifest not supported" (2019-08-19) [C1]',
            ),
            _f(
                "image-manifest",
                "likely",
                "gcr.io is served by Artifact Registry since Container Registry writes ended 2025-03-18; it "
                "accepts OCI artifacts with custom config media types (2020-10-01), a config blob must be present",
                "C3",
                "C5",
            ),
            _f("delete-tag", "yes", "DELETE tag untags (202)", "C2"),
            _f(
                "delete-digest",
                "partial",
                '400 GOOGLE_MANIFEST_DANGLING_TAG "Manifest is still referenced by tag" while tagged: '
                "untag first",
                "C2",
            ),
            _f(
                "tags-pagination",
                "unknown",
                "tags/list adds a non-standard manifest map with timeUploadedMs per digest (2023-02-17)",
                "C8",
            ),
            _f("auth", "yes", "username oauth2accesstoken with an access token", "C13"),
            _f("limits", "partial", "requires a layers field even when empty (2022-03-16)", "C10"),
        ),
        cleanup=CleanupMethod(
            "untag-then-delete",
            "DELETE every tag of the manifest (untag), then DELETE /v2/<name>/manifests/<digest>",
            ("C2", "C4"),
        ),
    ),
    Family(
        id="artifact-registry",
        name="Google Artifact Registry",
        hosts=(r"[a-z0-9-]+-docker\.pkg\.dev",),
        examples=("europe-west1-docker.pkg.dev",),
        facts=(
            _f("manifest-list", "unknown", "no report found", "C1"),
            _f(
                "oci-index",
                "yes",
                "cache export works with Artifact Registry (2020-11-26, 2021-04-07)",
                "C1",
            ),
            _f(
                "image-manifest",
                "likely",
                "OCI artifacts with custom config media types accepted (2020-10-01); a config blob must "
                "be present",
                "C5",
            ),
            _f("delete-tag", "yes", "DELETE tag untags", "C4"),
            _f(
                "delete-digest",
                "partial",
                "GOOGLE_MANIFEST_DANGLING_TAG while any tag points at the manifest: untag first, then "
                "delete the digest (2026-08-19)",
                "C4",
            ),
            _f("referrers", "unknown", "attachments (OCI artifacts with a subject) exist; probe", "C11"),
            _f("auth", "yes", "username oauth2accesstoken (gcloud auth configure-docker)", "C13"),
            _f(
                "limits",
                "partial",
                "per project and location: 60,000 requests/min, 18,000 writes/min, 18,000 deletes/min",
                "C6",
            ),
        ),
        cleanup=CleanupMethod(
            "untag-then-delete",
            "DELETE every tag of the manifest (untag), then DELETE /v2/<name>/manifests/<digest>; or "
            "gcloud artifacts docker images delete … --delete-tags, or cleanup policies",
            ("C4", "C7"),
        ),
    ),
    Family(
        id="docker-hub",
        name="Docker Hub",
        hosts=(r"docker\.io", r"registry-1\.docker\.io", r"index\.docker\.io"),
        challenge=(r"auth\.docker\.io/token",),
        examples=("docker.io", "registry-1.docker.io"),
        facts=(
            _f("manifest-list", "yes", "pushes accepted (2018; intermittent 400s in 2020)", "E1", "A8"),
            _f(
                "oci-index",
                "yes",
                "index PUT accepted (2021-04-14); a 400 regression was reported 2023-04-17",
                "S9",
                "S7",
                "D6",
            ),
            _f(
                "image-manifest",
                "likely",
                "OCI artifacts with arbitrary config types supported since 2022-11",
                "D7",
            ),
            _f(
                "delete-digest",
                "partial",
                "digest only, untagged manifests only (else 403), token scope pull,push,delete; deletes "
                "may time out and are retried server-side (2026-02-04)",
                "D1",
            ),
            _f(
                "delete-tag",
                "no",
                '405 "Only digest-based deletion is allowed"; tags are removed with the Hub API or UI',
                "D1",
                "D2",
                "D10",
            ),
            _f(
                "tags-pagination",
                "yes",
                "about 100 tags per page with Link (2026-05-15); always follow Link",
                "D8",
                "E17",
            ),
            _f("catalog", "unknown", "not in Docker's registry API reference", "D1"),
            _f("referrers", "no", "no referrers API (open request 2024-09-30)", "D5"),
            _f(
                "auth",
                "yes",
                'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
                "D9",
            ),
            _f(
                "limits",
                "partial",
                "GET of a manifest counts as a pull, HEAD does not; Personal accounts get one private "
                "repository",
                "D4",
            ),
        ),
        cleanup=CleanupMethod(
            "docker-hub-api",
            "remove the tag with the Hub API (DELETE https://hub.docker.com/v2/repositories/{ns}/{repo}/"
            "tags/{tag}) or the UI, then DELETE /v2/<name>/manifests/<digest> with a token scoped "
            "pull,push,delete",
            ("D1", "D2", "D10"),
        ),
    ),
    Family(
        id="quay",
        name="Quay",
        hosts=(r"quay\.io",),
        examples=("quay.io",),
        facts=(
            _f(
                "manifest-list",
                "no",
                "400 MANIFEST_INVALID \"manifest data does not match schema: 'platform' is a required "
                'property" (2020-07-01; schema unchanged 2026-08-21)',
                "Q3",
                "Q1",
            ),
            _f(
                "oci-index",
                "no",
                "each entry is loaded as a child manifest: 400 MANIFEST_INVALID (Could not find child "
                "manifest); self-hosted FEATURE_SPARSE_INDEX would accept it",
                "Q1",
                "Q3",
                "Q2",
            ),
            _f(
                "image-manifest",
                "yes",
                "Quay ≥ 3.12 (2024-06-07); 3.9–3.11 only with IGNORE_UNKNOWN_MEDIATYPES",
                "Q2",
                "Q4",
            ),
            _f(
                "delete-digest",
                "yes",
                "DELETE digest removes every tag on the manifest; an untagged manifest answers 404 "
                "MANIFEST_UNKNOWN",
                "Q1",
            ),
            _f("delete-tag", "yes", "tag delete since Quay 3.13 (2024-08-21)", "Q2"),
            _f(
                "tags-pagination",
                "yes",
                "n/last + Link, page size ≥ 100; older Quay used an opaque next_page token",
                "Q1",
                "Q5",
            ),
            _f("catalog", "partial", "_catalog exists; anonymous only with FEATURE_PUBLIC_CATALOG", "Q1"),
            _f("referrers", "yes", "referrers API since Quay 3.12 (FEATURE_REFERRERS_API)", "Q2"),
            _f("auth", "yes", "Bearer via /v2/auth; robot accounts (org+robot)", "Q1"),
        ),
        cleanup=CleanupMethod(
            "oci-digest-delete",
            "DELETE /v2/<name>/manifests/<digest> while tagged (removes every tag); untagged manifests "
            "expire with Quay's temporary tags",
            ("Q1",),
        ),
    ),
    Family(
        id="acr",
        name="Azure Container Registry",
        hosts=(r"[a-z0-9-]+\.azurecr\.(io|cn|us)",),
        examples=("myregistry.azurecr.io",),
        facts=(
            _f(
                "manifest-list", "yes", "compatible (2020-11-05); intermittent 400s reported 2020", "A8", "A5"
            ),
            _f("oci-index", "yes", "works (2021-07 table)", "S7"),
            _f("image-manifest", "yes", "OCI artifacts with custom config; OCI 1.1 (2024-06-27)", "A3"),
            _f(
                "delete-digest",
                "yes",
                "DELETE digest removes the image, its unique layers and all its tags",
                "A2",
            ),
            _f(
                "delete-tag",
                "no",
                "no tag delete through /v2 (2022-08-25); untag with az acr repository untag; locked "
                "repositories refuse deletes",
                "A4",
                "A9",
            ),
            _f("tags-pagination", "yes", "tags/list and _catalog with n/last + Link", "A6"),
            _f("catalog", "yes", "_catalog with n/last + Link", "A6"),
            _f("referrers", "yes", "referrers API (GA 2024-06-27)", "A3"),
            _f("limits", "partial", "manifest at most 4 MiB; layer at most 200 GiB", "A1"),
        ),
        cleanup=CleanupMethod(
            "acr-untag-then-delete",
            "az acr repository untag for single tags; DELETE /v2/<name>/manifests/<digest> removes the "
            "manifest with all its tags",
            ("A2", "A9"),
        ),
    ),
    Family(
        id="gitlab",
        name="GitLab container registry",
        hosts=(r"registry\.gitlab\.com",),
        challenge=(r"/jwt/auth",),
        examples=("registry.gitlab.com",),
        facts=(
            _f(
                "manifest-list",
                "yes",
                "lists with a cacheconfig entry are special-cased (LikelyBuildxCache): entries checked "
                "as blobs",
                "L1",
            ),
            _f("oci-index", "yes", "same code path as the list", "L1", "S7"),
            _f("image-manifest", "yes", "no config-type check; cacheconfig media type known", "L1"),
            _f("delete-digest", "yes", "DELETE digest (distribution-derived)", "L2"),
            _f(
                "delete-tag",
                "partial",
                "tag delete through the extension DELETE /v2/<name>/tags/reference/<tag>; protected or "
                "immutable tags answer PROTECTED_TAG / IMMUTABLE_TAG",
                "L2",
            ),
            _f(
                "tags-pagination",
                "yes",
                "/gitlab/v1/repositories/<path>/tags/list/ with n, last, before, sorting and Link",
                "L2",
            ),
            _f("catalog", "no", "_catalog denied on GitLab.com (401, 2026-03-12)", "L5"),
            _f("referrers", "no", "no OCI referrers endpoint in the source", "L2"),
            _f(
                "auth",
                "yes",
                "CI_REGISTRY_USER + CI_REGISTRY_PASSWORD or CI_JOB_TOKEN; JWTs live 5–15 min",
                "L3",
            ),
            _f("limits", "partial", "optional manifest payload size limit (MANIFEST_SIZE_LIMIT)", "L4"),
        ),
        cleanup=CleanupMethod(
            "gitlab-tags-reference",
            "DELETE /v2/<name>/tags/reference/<tag> (GitLab extension) or the GitLab REST API; DELETE "
            "/v2/<name>/manifests/<digest> for manifests",
            ("L2",),
        ),
    ),
    Family(
        id="harbor",
        name="Harbor",
        hosts=(r"demo\.goharbor\.io",),
        challenge=(r"harbor-registry",),
        examples=("demo.goharbor.io",),
        facts=(
            _f("manifest-list", "no", "same handler as the index", "H1"),
            _f(
                "oci-index",
                "no",
                "404 on manifest PUT: every index child must exist as an artifact (2023-02-02, still "
                "v2.9.1 2023-12-20; fix unmerged)",
                "H1",
                "H2",
                "H3",
            ),
            _f("image-manifest", "yes", "unknown config types become artifact type UNKNOWN", "H1"),
            _f("delete-digest", "yes", "DELETE digest deletes the artifact and its tags", "H1"),
            _f(
                "delete-tag",
                "no",
                '400 UNSUPPORTED ("unsupported digest …"); Harbor API deletes tags',
                "H1",
            ),
            _f("tags-pagination", "yes", "n/last + Link", "H1"),
            _f("catalog", "partial", "needs system-level catalog permission and basic auth", "H1"),
            _f("referrers", "yes", "referrers API since Harbor 2.8", "H4"),
            _f(
                "auth",
                "yes",
                'Bearer realm="<harbor>/service/token",service="harbor-registry"; robot accounts',
                "H1",
            ),
        ),
        cleanup=CleanupMethod(
            "oci-digest-delete",
            "DELETE /v2/<name>/manifests/<digest> (deletes the artifact and its tags); single tags with "
            "DELETE /api/v2.0/projects/{p}/repositories/{r}/artifacts/{ref}/tags/{tag}",
            ("H1",),
        ),
    ),
    Family(
        id="artifactory",
        name="JFrog Artifactory",
        hosts=(r"[a-z0-9-]+\.jfrog\.io",),
        examples=("acme.jfrog.io",),
        facts=(
            _f("manifest-list", "no", 'as of 2021-07 ("Does not allow pushes"); current unknown', "S7", "J1"),
            _f("oci-index", "no", "as of 2021-07; current unknown", "S7"),
            _f(
                "image-manifest",
                "likely",
                "JFrog KB documents --cache-to type=registry against Artifactory (2025-05-13)",
                "J2",
            ),
            _f("delete-digest", "unknown", "DELETE via /v2 answered 406 (2019-11-18); current unknown", "J4"),
            _f("delete-tag", "unknown", "DELETE via /v2 answered 406 (2019-11-18)", "J4"),
            _f("tags-pagination", "yes", "standard n/last in Link", "J6"),
            _f("catalog", "partial", "GET /api/docker/{repo}/v2/_catalog?n=&last=", "J5"),
            _f("referrers", "partial", "OCI 1.1 conformance from 7.90.1 for OCI repositories", "J3"),
        ),
        cleanup=CleanupMethod(
            "artifactory-api",
            "Artifactory REST API or cleanup policies (Docker: time-based only)",
            ("J7",),
        ),
    ),
    Family(
        id="distribution",
        name="CNCF distribution 2.x (registry:2)",
        hosts=(),
        examples=(),
        facts=(
            _f(
                "manifest-list",
                "yes",
                "201, verified on 2.8.2 (layer links pass the manifest check)",
                "R1",
                "R7",
            ),
            _f("oci-index", "yes", "201, verified on 2.8.2", "R1", "R7"),
            _f("image-manifest", "yes", "201, verified; config media type never validated", "R1", "R7"),
            _f(
                "delete-digest",
                "partial",
                "202 and every tag on the manifest removed, only with storage.delete.enabled; else 405 "
                "UNSUPPORTED (verified)",
                "R7",
            ),
            _f(
                "delete-tag",
                "no",
                '400 DIGEST_INVALID "provided digest did not match uploaded content" (verified)',
                "R7",
                "P3",
            ),
            _f("tags-pagination", "no", "tags/list ignores n and sends no Link (verified)", "R7", "R5"),
            _f("catalog", "yes", "_catalog paginates with Link (verified)", "R7"),
            _f("referrers", "no", "404 page not found (verified)", "R7"),
            _f("limits", "partial", "manifest PUT body at most 4 MiB", "R1"),
        ),
        cleanup=CleanupMethod(
            "oci-digest-delete",
            "DELETE /v2/<name>/manifests/<digest> (needs storage.delete.enabled), then registry "
            "garbage-collect --delete-untagged to reclaim space",
            ("R7",),
        ),
    ),
    Family(
        id="distribution-v3",
        name="CNCF distribution 3.x (registry:3)",
        hosts=(),
        examples=(),
        facts=(
            _f(
                "manifest-list",
                "no",
                "rejected by default: 400 MANIFEST_BLOB_UNKNOWN (code reading); accepted with "
                "validation.manifests.indexes.platforms: none",
                "R2",
                "R3",
            ),
            _f("oci-index", "no", "rejected by default, same handler", "R2"),
            _f("image-manifest", "yes", "same blob-existence check as 2.8, no config-type check", "R2"),
            _f(
                "delete-tag",
                "yes",
                "DELETE tag untags; 3.0.0–3.1.0 allowed it even with delete disabled",
                "R2",
                "R4",
            ),
            _f("delete-digest", "yes", "DELETE digest removes the manifest and all tags", "R2"),
            _f("tags-pagination", "yes", "n/last + Link, tags sorted", "R2", "R5"),
            _f("catalog", "yes", "_catalog paginated (default 100)", "R2"),
            _f("referrers", "no", "no referrers API in 3.1.1 (PR open 2026-03-26)", "R6"),
        ),
        cleanup=CleanupMethod(
            "tag-and-digest-delete",
            "DELETE /v2/<name>/manifests/<tag> (untag) and /v2/<name>/manifests/<digest>",
            ("R2",),
        ),
    ),
    Family(
        id="zot",
        name="zot",
        hosts=(),
        examples=(),
        facts=(
            _f(
                "manifest-list",
                "partial",
                'Docker media types rejected (415 MANIFEST_INVALID) unless http.compat: ["docker2s2"] '
                "(v2.1.2, 2025-01-17)",
                "Z1",
                "Z2",
            ),
            _f("oci-index", "yes", "entries only need to exist as blobs", "Z1", "Z3"),
            _f("image-manifest", "yes", "blob checks skipped for non-image config types", "Z1"),
            _f(
                "migration",
                "partial",
                "before v2.1.3 (2025-05-22) a tag could not change media type: 400 … cannot change media-type",
                "Z4",
            ),
            _f(
                "delete-digest",
                "yes",
                "202; a manifest referenced by an index answers 405 DENIED",
                "Z1",
            ),
            _f("delete-tag", "yes", "202", "Z1"),
            _f("tags-pagination", "yes", "n/last + Link for tags and _catalog", "Z1"),
            _f("catalog", "yes", "n/last + Link", "Z1"),
            _f("referrers", "yes", "/v2/{name}/referrers/{digest}", "Z1"),
        ),
        cleanup=CleanupMethod(
            "tag-and-digest-delete",
            "DELETE /v2/<name>/manifests/<tag> and /v2/<name>/manifests/<digest>",
            ("Z1",),
        ),
    ),
    Family(
        id="generic",
        name="unrecognised registry",
        hosts=(),
        facts=(),
        cleanup=_OCI_DELETE,
    ),
)

FAMILY_IDS: tuple[str, ...] = tuple(f.id for f in FAMILIES)
_BY_ID: Mapping[str, Family] = MappingProxyType({f.id: f for f in FAMILIES})


def family_by_id(name: str) -> Family | None:
    return _BY_ID.get(name.strip().lower())


def _bare_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def detect_family(host: str, *, challenge: str = "", override: str | None = None) -> FamilyMatch:
    """The family of ``host`` (``--family`` first, then the host name, then the Bearer challenge); an unknown
    ``override`` is ``UnknownFamily`` (exit 2)."""
    if override is not None:
        family = family_by_id(override)
        if family is None:
            raise UnknownFamily(f"--family {override!r}: expected one of {', '.join(FAMILY_IDS)}")
        return FamilyMatch(family, "flag")
    bare = _bare_host(host)
    for family in FAMILIES:
        if any(re.fullmatch(pattern, bare) for pattern in family.hosts):
            return FamilyMatch(family, "host")
    if challenge:
        for family in FAMILIES:
            if any(re.search(pattern, challenge) for pattern in family.challenge):
                return FamilyMatch(family, "challenge")
    return FamilyMatch(_BY_ID["generic"], "unknown")


#: Source ids of registries.md used by the facts above: id -> "what, when — where".
SOURCES: Mapping[str, str] = MappingProxyType(
    {
        "S1": "moby/buildkit PR #3724 (2023-03-17, merged 2023-05-11), incl. ECR team comment — https://github.com/moby/buildkit/pull/3724",
        "S2": "moby/buildkit PR #5892 (2025-04-08); v0.21.0 makes image-manifest the default — https://github.com/moby/buildkit/pull/5892",
        "S3": "moby/buildkit PR #5966 (2025-05-12): oci-mediatypes=false no longer forces image-manifest — https://github.com/moby/buildkit/pull/5966",
        "S5": "moby/buildkit cache/remotecache/export.go @73ed682 (2026-08-21) — https://github.com/moby/buildkit/blob/master/cache/remotecache/export.go",
        "S7": "moby/buildkit issue #2251 (registry table, 2021-07) — https://github.com/moby/buildkit/issues/2251",
        "S9": "moby/buildkit issue #2068 (Docker Hub log, 2021-04-14) — https://github.com/moby/buildkit/issues/2068",
        "P2": "sigstore/sigstore-js PR #1187 (2024-06-13): false 200 on /referrers/ — https://github.com/sigstore/sigstore-js/pull/1187",
        "P3": "google/go-containerregistry issue #1578 (2023-02-23) — https://github.com/google/go-containerregistry/issues/1578",
        "E1": "moby/buildkit issue #699 (2018-10-25) — https://github.com/moby/buildkit/issues/699",
        "E2": "aws/containers-roadmap #505 (2020-05-25, AWS comment 2020-07-22) — https://github.com/aws/containers-roadmap/issues/505",
        "E3": "aws/containers-roadmap #876 (2020-05-05 … 2023-09-28) — https://github.com/aws/containers-roadmap/issues/876",
        "E4": "AWS blog: remote cache support in Amazon ECR for BuildKit clients (2023) — https://aws.amazon.com/blogs/containers/announcing-remote-cache-support-in-amazon-ecr-for-buildkit-clients/",
        "E5": "docker/build-push-action #858 (ECR comment 2023-07-02) — https://github.com/docker/build-push-action/issues/858",
        "E6": "overhangio/tutor #1118 (2024-09-03) — https://github.com/overhangio/tutor/issues/1118",
        "E7": "antiwork/gumroad PR #5828 (2026-07-12) — https://github.com/antiwork/gumroad/pull/5828",
        "E8": "aws/containers-roadmap #1229 (Shipped); DIAGNijmegen/rse-grand-challenge #2848 (2023-05-15) — https://github.com/aws/containers-roadmap/issues/1229",
        "E9": "AWS docs: deleting signatures and other artifacts from an ECR private repository — https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-artifact-delete.html",
        "E10": "AWS API reference BatchDeleteImage — https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchDeleteImage.html",
        "E11": "AWS Amazon ECR service quotas — https://docs.aws.amazon.com/AmazonECR/latest/userguide/service-quotas.html",
        "E12": "AWS What's New: ECR supports OCI 1.1 (2024-06-27) — https://aws.amazon.com/about-aws/whats-new/2024/06/amazon-ecr-oci-image-distribution-version-1-1",
        "E14": "plexsystems/sinker #55 (2022-01-13); regclient/regclient #869 (2024-12-05) — https://github.com/plexsystems/sinker/issues/55",
        "E15": "AWS What's New: creating repositories on push (2025-12-19); cross-repo mount 2026-01-20 (third-party) — https://dev.classmethod.jp/articles/amazon-ecr-create-repository-on-push-cli",
        "E16": "AWS: private registry authentication in Amazon ECR (12 h tokens) — https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html",
        "E17": "meziantou/Meziantou.Framework PR #2190 (2026-08-27, third-party claim) — https://github.com/meziantou/Meziantou.Framework/pull/2190",
        "G1": "moby/buildkit #1865 (2020-12-02; fix 2020-12-11) — https://github.com/moby/buildkit/issues/1865",
        "G2": "oras-project/oras PR #241 (2021-03-15) — https://github.com/oras-project/oras/pull/241",
        "G3": "containers/skopeo #1880 (2023); fluxcd/pkg PR #328 (2022-08-25); okxlin/docker-mirror-monitor PR #13 (2026-08-18) — https://github.com/containers/skopeo/issues/1880",
        "G4": "GitHub REST Packages; deleting and restoring a package — https://docs.github.com/rest/packages",
        "G5": "werf/werf PR #3654, #3671 (2021-08) — https://github.com/werf/werf/pull/3671",
        "G6": "microsoft/vscode-docker #1525 (2020-01-07); oras-project/oras-go #621 (2023-10-19) — https://github.com/oras-project/oras-go/issues/621",
        "G7": "sigstore/cosign #3434 (2023-12-13) — https://github.com/sigstore/cosign/issues/3434",
        "G8": "actions/attest-build-provenance #71 (2024-05-13); rtvkiz/minimal #7 (2026-02-01) — https://github.com/actions/attest-build-provenance/issues/71",
        "G9": "GitHub docs: working with the Container registry — https://docs.github.com/packages/working-with-a-github-packages-registry/working-with-the-container-registry",
        "G10": "cocoindex-io/cocoindex-code PR #140 (2026-04-15) — https://github.com/cocoindex-io/cocoindex-code/pull/140",
        "C1": "moby/buildkit #1143 (2019-08-19; 2020-11-26; 2021-04-07) — https://github.com/moby/buildkit/issues/1143",
        "C2": "genuinetools/reg #136 (2018-09-09) — https://github.com/genuinetools/reg/issues/136",
        "C3": "Google: gcr.io repositories / Container Registry shut down 2025-03-18 — https://cloud.google.com/artifact-registry/docs/transition/setup-gcr-repo",
        "C4": "enix/kube-image-keeper #636 (2026-08-19) — https://github.com/enix/kube-image-keeper/issues/636",
        "C5": "oras-project/oras PR #184 (2020-10-01) — https://github.com/oras-project/oras/pull/184",
        "C6": "Artifact Registry quotas and limits — https://cloud.google.com/artifact-registry/quotas",
        "C7": "Artifact Registry cleanup policy overview — https://cloud.google.com/artifact-registry/docs/repositories/cleanup-policy-overview",
        "C8": "neuro-inc/apolo-cli #2913 (2023-02-17) — https://github.com/neuro-inc/apolo-cli/issues/2913",
        "C10": "buildpacks/lifecycle #830 (2022-03-16) — https://github.com/buildpacks/lifecycle/issues/830",
        "C11": "Artifact Registry: manage container metadata (attachments) — https://cloud.google.com/artifact-registry/docs/docker/manage-metadata",
        "C13": "actions/attest-build-provenance #73 (GAR login with oauth2accesstoken) — https://github.com/actions/attest-build-provenance/issues/73",
        "D1": "Docker docs: supported registry API for Docker Hub (deletion; edited 2026-02-04) — https://docs.docker.com/reference/api/registry/latest/",
        "D2": "docker/hub-feedback #1759 (2019-03-06) — https://github.com/docker/hub-feedback/issues/1759",
        "D4": "Docker docs: Docker Hub usage and pulls — https://docs.docker.com/docker-hub/usage/",
        "D5": "docker/roadmap #724 (2024-09-30) — https://github.com/docker/roadmap/issues/724",
        "D6": "docker/hub-feedback #2322 (2023-04-17) — https://github.com/docker/hub-feedback/issues/2322",
        "D7": "Docker Hub OCI artifacts support (2022-11) — https://docs.docker.com/docker-hub/repos/manage/hub-images/oci-artifacts/",
        "D8": "gadievron/raptor PR #495 (2026-05-15) — https://github.com/gadievron/raptor/pull/495",
        "D9": "Docker docs: registry authentication — https://docs.docker.com/reference/api/registry/auth/",
        "D10": "docker/docs PR #22052 (Hub release notes 2025-02-18) — https://github.com/docker/docs/pull/22052",
        "Q1": "quay/quay @ffba0c7 (2026-08-21): image/docker/schema2/list.py, image/oci/index.py, endpoints/v2/… — https://github.com/quay/quay",
        "Q2": "quay/quay commits 23b3972 (3.9), e91b9e4 (3.11), 4546163 (3.12), 475cba8 (3.13), 23978b2 (sparse index)",
        "Q3": "moby/buildkit #1550 (2020-07-01), #1440, #3222 (2022-11-03) — https://github.com/moby/buildkit/issues/1550",
        "Q4": "oras-project/oras #738 (2023-01-09) — https://github.com/oras-project/oras/issues/738",
        "Q5": "TritonDataCenter/node-docker-registry-client #12 (2016); deitch/docker_registry2 #56 (2021)",
        "A1": "Azure Container Registry service tiers (limits) — https://learn.microsoft.com/azure/container-registry/container-registry-skus",
        "A2": "Delete container images in Azure Container Registry — https://learn.microsoft.com/azure/container-registry/container-registry-delete",
        "A3": "Announcing support of OCI v1.1 in Azure Container Registry (2024-06-27)",
        "A4": "fluxcd/pkg PR #328 (2022-08-25) — https://github.com/fluxcd/pkg/pull/328",
        "A5": "Azure/acr #428 (2020-07-28; closed 2022-11-17) — https://github.com/Azure/acr/issues/428",
        "A6": "Azure/acr PR #389 (2020-04-21) — https://github.com/Azure/acr/pull/389",
        "A8": "docker/buildx #271 (2020-08-20, 2020-11-05) — https://github.com/docker/buildx/issues/271",
        "A9": "Az PowerShell Remove-AzContainerRegistryTag / Remove-AzContainerRegistryManifest — https://learn.microsoft.com/powershell/module/az.containerregistry/remove-azcontainerregistrytag",
        "L1": "GitLab container registry source (tigrisdata/container-registry @19ab6ea, 2025-12-09): manifestlist compat, dbPutBuildkitIndex — https://gitlab.com/gitlab-org/container-registry",
        "L2": "GitLab container registry docs/spec: DELETE /v2/<name>/tags/reference/<tag>, tags list API",
        "L3": "GitLab docs: authenticate with the container registry — https://docs.gitlab.com/user/packages/container_registry/authenticate_with_container_registry/",
        "L4": "gitlab-org/container-registry MR !818 / v3.20.0 (2021-12-30) — https://gitlab.com/gitlab-org/container-registry/-/merge_requests/818",
        "L5": "Joxit/docker-registry-ui #443 (2026-03-12) — https://github.com/Joxit/docker-registry-ui/issues/443",
        "H1": "goharbor/harbor @c50c7dd (2026-08-21): controller/artifact/manifest/index.go, server/registry/… — https://github.com/goharbor/harbor",
        "H2": "goharbor/harbor #14774 (open; 2023-12-20 on v2.9.1); PR #18105 (unmerged) — https://github.com/goharbor/harbor/issues/14774",
        "H3": "moby/buildkit #2479 (demo.goharbor.io, 2023-02-02) — https://github.com/moby/buildkit/issues/2479",
        "H4": 'goharbor/harbor commit 9b61d34 "add referrers api (#18324)" (2023-03-12)',
        "J1": "moby/buildkit #2220 (2021-07-02) — https://github.com/moby/buildkit/issues/2220",
        "J2": "JFrog KB 000006439 (2025-05-13): buildx --cache-to/--cache-from with Artifactory",
        "J3": "JFrog blog: full conformance to OCI v1.1 (Artifactory 7.90.1) — https://jfrog.com/blog/full-conformance-to-oci-v1-1/",
        "J4": "containers/image #1009 (2019-11-18) — https://github.com/containers/image/issues/1009",
        "J5": "JFrog REST: list Docker repositories — https://jfrog.com/help/r/jfrog-rest-apis/list-docker-repositories",
        "J6": "camallo/dkregistry-rs PR #236 (2022-08-01) — https://github.com/camallo/dkregistry-rs/pull/236",
        "J7": "JFrog: Docker cleanup method — https://jfrog.com/help/r/jfrog-platform-administration-documentation/docker-cleanup-method",
        "R1": "distribution/distribution @v2.8.3: registry/storage/*.go, registry/handlers/manifests.go — https://github.com/distribution/distribution/tree/v2.8.3",
        "R2": "distribution/distribution @v3.1.1 and v3.0.0: storage, handlers, validation.manifests.indexes — https://github.com/distribution/distribution/tree/v3.1.1",
        "R3": "distribution commit b2b3f86 (PR #3365, 2022-10-19); issue #3452 (2021-07-06) — https://github.com/distribution/distribution/issues/3452",
        "R4": 'distribution commit 8baf3e0 "prevent tag deletion when storage.delete.enabled is false" (2026-04-25, v3.1.1)',
        "R5": 'distribution commit 4da2712 "added pagination to v2/<name>/tags/list" (2021-04-23; not in 2.8.x)',
        "R6": "distribution/distribution PR #4828 referrers API (open, 2026-03-26) — https://github.com/distribution/distribution/pull/4828",
        "R7": "live test: Debian docker-registry 2.8.2 on loopback, delete on/off, htpasswd (2026-11-27)",
        "Z1": "project-zot/zot @6d19b44 (2026-08-21): pkg/storage/common/common.go, pkg/api/routes.go — https://github.com/project-zot/zot",
        "Z2": 'zot commit cb2af94 "feat: add support for docker images (#2714)" (v2.1.2, 2025-01-17)',
        "Z3": "project-zot/zot #2728 (2024-10-15), #3000 (2025-03-03) — https://github.com/project-zot/zot/issues/2728",
        "Z4": "project-zot/zot #3005 (2025-03-10); PR #3022 (v2.1.3, 2025-05-22) — https://github.com/project-zot/zot/issues/3005",
    }
)
