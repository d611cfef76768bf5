"""GhcrClient against a GitHub REST emulator backed by the real test registry, plus protocol unit tests.

Operations exercised (github/rest-api-description, api.github.com.2022-11-28):
packages/get-all-package-versions-for-package-owned-by-org, -owned-by-user, -owned-by-authenticated-user;
packages/get-package-version-for-organization (and -for-user, -for-authenticated-user);
packages/delete-package-version-for-org (and -for-user, -for-authenticated-user); users/get-authenticated.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from inspector.errors import (
    Denied,
    ExitCode,
    InvalidContent,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    UsageError,
)
from inspector.gc.untagged import select_untagged_caches
from inspector.oci import mediatypes
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import ManifestDocument, parse_manifest
from inspector.oci.reference import Repository
from inspector.registry.client import ClientOptions, RegistryClient
from inspector.registry.github_packages import (
    TOKEN_HINT,
    GhcrClient,
    GhcrOptions,
    LastVersionRefused,
    Pace,
    Package,
    PackageVersion,
    backlog_seconds,
    format_seconds,
    ghcr_package_name,
)
from tests.harness.ghcr_server import (
    DENY_MESSAGE,
    LAST_VERSION_MESSAGE,
    PACKAGE_VERSION_SCHEMA,
    ContentLimits,
    DeletedGet,
    FakeClock,
    FaultKind,
    GitHubEmulator,
    PrimaryLimit,
    TokenInfo,
    push_blob,
)
from tests.harness.paths import TESTDATA
from tests.harness.registry import LocalRegistry, load_samples, seed_sample
from tests.harness.support import validate_json

ADMIN = "ghp_admin0000000000000000000000000000000"
READER = "ghp_reader000000000000000000000000000000"
APP = "ghs_app00000000000000000000000000000000000"
NOW = 1_750_000_000.0
ATTESTATION = "attestation-manifest"


# -- fixtures and builders ----------------------------------------------------------------------------


@pytest.fixture
def github(registry: LocalRegistry) -> Iterator[GitHubEmulator]:
    """The emulator on a ``FakeClock`` at NOW that only the client's sleeps move (``make_client``)."""
    fake = FakeClock(NOW)
    emulator = GitHubEmulator(
        registry.host,
        owners={"acme": "org", "alice": "user", "bob": "user"},
        tokens={
            ADMIN: TokenInfo("alice"),
            READER: TokenInfo("alice", can_delete=False),
            APP: TokenInfo(None),
        },
        clock=fake.time,
    )
    emulator.fake_clock = fake
    with emulator:
        yield emulator
    assert emulator.errors == []


def make_client(
    github: GitHubEmulator, *, token: str | None = ADMIN, sleeps: list[float] | None = None, **options: Any
) -> GhcrClient:
    recorded = sleeps if sleeps is not None else []
    fake = github.fake_clock
    assert fake is not None

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        fake.sleep(seconds)

    return GhcrClient(
        GhcrOptions(base_url=github.url, **options), token=token, env={}, sleep=sleep, clock=fake.time
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def oci_manifest(config: dict[str, Any], layers: list[dict[str, Any]], **annotations: str) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc).encode()


def oci_index(manifests: list[dict[str, Any]], **annotations: str) -> bytes:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": manifests}
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc).encode()


class Images:
    """Small real images in one repository of the backing registry."""

    def __init__(self, github: GitHubEmulator, owner: str, name: str) -> None:
        self.github, self.owner, self.name = github, owner, name
        self.repo = f"{owner}/{name}"

    def blob(self, media_type: str, data: bytes) -> dict[str, Any]:
        push_blob(self.github.registry_host, self.repo, data)
        return descriptor(media_type, data)

    def image(self, salt: str, *, arch: str = "amd64", tag: str | None = None) -> tuple[str, bytes]:
        config = self.blob(
            mediatypes.OCI_IMAGE_CONFIG,
            json.dumps(
                {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
            ).encode(),
        )
        layer = self.blob("application/vnd.oci.image.layer.v1.tar+gzip", f"layer {salt}".encode())
        raw = oci_manifest(config, [layer], **{"org.example.salt": salt})
        return self.github.push_manifest(self.owner, self.name, raw, mediatypes.OCI_MANIFEST, tag=tag), raw


def head(registry: LocalRegistry, repo: str, reference: str) -> int:
    accept = ", ".join(sorted(mediatypes.MANIFEST_TYPES | mediatypes.INDEX_TYPES))
    return httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
    ).status_code


# -- paging, owner resolution, names ------------------------------------------------------------------
def test_versions_page_across_several_pages_with_link_next(github: GitHubEmulator) -> None:
    """get-all-package-versions-for-package-owned-by-org: per_page=100 asked, 3 served, Link followed."""
    name = unique("paging")
    images = Images(github, "acme", name)
    pushed = {images.image(f"v{i}")[0] for i in range(7)}
    tagged, _ = images.image("tagged", tag="main")
    github.page_size_cap = 3
    with make_client(github) as client:
        package = client.package("acme", name)
        versions = client.versions(package)
    assert package == Package("acme", name, "org")
    assert {v.digest for v in versions} == pushed | {tagged}
    assert len(versions) == len({v.id for v in versions}) == 8
    assert [v.tags for v in versions if v.tagged] == [("main",)]
    lists = [
        r for r in github.requests if r.raw_path.endswith("/versions") and r.query.get("per_page") != ["1"]
    ]
    assert [r.query.get("page", ["1"]) for r in lists] == [["1"], ["2"], ["3"]]
    assert all(r.query["per_page"] == ["100"] for r in lists)
    for request in github.requests:
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        assert request.auth == "Bearer"


def test_emulator_pages_match_githubs_package_version_schema(github: GitHubEmulator) -> None:
    name = unique("schema")
    images = Images(github, "acme", name)
    images.image("a", tag="v1")
    images.image("b")
    github.page_size_cap = 1
    response = httpx.get(
        f"{github.url}/orgs/acme/packages/container/{name}/versions",
        params={"per_page": "100"},
        headers={"Authorization": f"Bearer {ADMIN}", "Accept": "application/vnd.github+json"},
    )
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    for item in body:
        validate_json(item, PACKAGE_VERSION_SCHEMA)
        assert item["metadata"]["package_type"] == "container"
    assert 'rel="next"' in response.headers["Link"] and 'rel="last"' in response.headers["Link"]


def test_org_404_falls_back_to_users_endpoint_once_per_client(github: GitHubEmulator) -> None:
    """Org first (404), then GET /user (users/get-authenticated): bob is not the token's user -> /users/bob."""
    name = unique("userpkg")
    digest, _ = Images(github, "bob", name).image("x", tag="latest")
    with make_client(github) as client:
        package = client.package("bob", name)
        assert client.package("bob", name) is package
        versions = client.versions(package)
    assert package.scope == "user"
    assert [v.digest for v in versions] == [digest]
    assert github.paths("GET")[:3] == [
        f"/orgs/bob/packages/container/{name}/versions",
        "/user",
        f"/users/bob/packages/container/{name}/versions",
    ]
    assert sum(p.startswith("/orgs/") for p in github.paths()) == 1


def test_token_owner_gets_the_authenticated_user_endpoint(github: GitHubEmulator) -> None:
    """alice's private package is not served by /users/alice; /user/packages/… (authenticated user) is."""
    name = unique("private")
    images = Images(github, "alice", name)
    digest, _ = images.image("x", tag="latest")
    kept, _ = images.image("y", tag="kept")  # the last version could not be deleted (registries.md [G11])
    github.private.add(("alice", name))
    with make_client(github) as client:
        package = client.package("alice", name)
        versions = {v.digest: v for v in client.versions(package)}
        assert client.delete_version(package, versions[Digest(digest)].id) == "deleted"
    assert package == Package("alice", name, "authenticated-user")
    assert package.path == f"/user/packages/container/{name}"
    assert set(versions) == {digest, kept}
    version_id = versions[Digest(digest)].id
    assert github.paths("DELETE") == [f"/user/packages/container/{name}/versions/{version_id}"]


def test_app_token_without_a_user_uses_the_public_user_endpoint(github: GitHubEmulator) -> None:
    name = unique("apptoken")
    Images(github, "bob", name).image("x", tag="latest")
    with make_client(github, token=APP) as client:
        assert client.package("bob", name).scope == "user"
    assert [r.status for r in github.requests if r.raw_path == "/user"] == [403]


def test_unknown_package_is_not_found(github: GitHubEmulator) -> None:
    with make_client(github) as client, pytest.raises(NotFound) as caught:
        client.package("acme", unique("missing"))
    assert caught.value.exit_code == ExitCode.NOT_FOUND


def test_name_with_a_slash_is_one_encoded_path_segment(
    github: GitHubEmulator, registry: LocalRegistry
) -> None:
    name = f"{unique('app')}/cache"
    images = Images(github, "acme", name)
    digest, _ = images.image("x", tag="buildcache")
    images.image("y", tag="kept")  # not the package's last version
    with make_client(github) as client:
        package = client.package(*ghcr_package_name(f"ghcr.io/acme/{name}"))
        version = next(v for v in client.versions(package) if v.tags == ("buildcache",))
        assert client.delete_version(package, version.id) == "deleted"
    encoded = name.replace("/", "%2F")
    assert version.digest == digest and version.tags == ("buildcache",)
    assert all(encoded in path for path in github.paths() if path != "/user")
    assert github.paths("DELETE") == [f"/orgs/acme/packages/container/{encoded}/versions/{version.id}"]
    assert head(registry, f"acme/{name}", "buildcache") == 404


# -- permissions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [403, 404])
def test_delete_refused_explains_the_token(
    github: GitHubEmulator, registry: LocalRegistry, status: int
) -> None:
    """403 with GitHub's message, or GitHub's 404 for a token that may not manage the package: both Denied (4)."""
    github.deny_delete_status = status
    name = unique("denied")
    digest, _ = Images(github, "acme", name).image("x", tag="keep")
    sleeps: list[float] = []
    with make_client(github, token=READER, sleeps=sleeps) as client:
        package = client.package("acme", name)
        (version,) = client.versions(package)
        with pytest.raises(Denied) as caught:
            client.delete_version(package, version.id)
    error = caught.value
    assert error.exit_code == ExitCode.AUTH
    assert int(error.exit_code) == 4
    assert error.hint == TOKEN_HINT
    assert f"answered {status}" in str(error)
    if status == 403:
        assert DENY_MESSAGE in str(error)
    assert sleeps == []
    assert head(registry, f"acme/{name}", digest) == 200


def test_missing_token_is_unauthorized_with_a_hint(github: GitHubEmulator) -> None:
    with make_client(github, token=None) as client, pytest.raises(Unauthorized) as caught:
        client.package("acme", unique("x"))
    assert caught.value.exit_code == ExitCode.AUTH
    # the emulator's URL is not github.com's: gh's variables for an Enterprise Server are named
    assert caught.value.hint is not None and "GH_ENTERPRISE_TOKEN" in caught.value.hint


def test_public_version_over_5000_downloads_surfaces_githubs_message(github: GitHubEmulator) -> None:
    name = unique("popular")
    digest, _ = Images(github, "acme", name).image("x", tag="latest")
    github.undeletable.add(digest)
    with make_client(github) as client:
        package = client.package("acme", name)
        (version,) = client.versions(package)
        with pytest.raises(InvalidRequest) as caught:
            client.delete_version(package, version.id)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert "5000 downloads" in str(caught.value)
    assert caught.value.hint is not None and "5,000" in caught.value.hint


# -- rate limits and transient failures ---------------------------------------------------------------
def test_429_retry_after_is_honoured(github: GitHubEmulator) -> None:
    name = unique("r429")
    images = Images(github, "acme", name)
    images.image("x", tag="latest")
    images.image("y", tag="other")  # GitHub never deletes a package's last version
    github.add_fault("429", method="GET", path_contains="/versions", seconds=7)
    github.add_fault("429", method="DELETE", seconds=2)
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps) as client:
        package = client.package("acme", name)
        version = next(v for v in client.versions(package) if v.tags == ("latest",))
        assert client.delete_version(package, version.id) == "deleted"
    assert sleeps == [7.0, 2.0]
    assert [r.status for r in github.requests if r.method == "DELETE"] == [429, 204]


def test_long_retry_after_raises_rate_limited_with_when(github: GitHubEmulator) -> None:
    name = unique("rlong")
    Images(github, "acme", name).image("x", tag="latest")
    github.add_fault("429", path_contains="/versions", seconds=600)
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps) as client, pytest.raises(RateLimited) as caught:
        client.package("acme", name)
    assert sleeps == []
    assert caught.value.retry_after == 600.0
    assert caught.value.exit_code == ExitCode.NETWORK
    assert "retry after 2025-06-15 15:16:40 UTC" in str(caught.value)  # NOW + 600 s


@pytest.mark.parametrize(
    ("kind", "seconds", "waited"),
    [("secondary", 3, 3.0), ("secondary-bare", 0, 60.0), ("primary", 5, 6.0)],
)
def test_secondary_and_primary_limits_are_waited_out(
    github: GitHubEmulator, kind: FaultKind, seconds: int, waited: float
) -> None:
    """403 + retry-after; 403 with only the secondary-limit message (>= 1 min); remaining 0 until reset (+1 s)."""
    name = unique("r403")
    Images(github, "acme", name).image("x", tag="latest")
    github.add_fault(kind, method="GET", path_contains="/versions", seconds=seconds)
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps) as client:
        package = client.package("acme", name)
        assert len(client.versions(package)) == 1
    assert sleeps == [waited]


def test_bare_secondary_limit_over_the_cap_raises(github: GitHubEmulator) -> None:
    name = unique("rcap")
    Images(github, "acme", name).image("x", tag="latest")
    github.add_fault("secondary-bare", path_contains="/versions")
    with make_client(github, max_wait=30) as client, pytest.raises(RateLimited) as caught:
        client.package("acme", name)
    assert caught.value.retry_after == 60.0
    assert "secondary rate limit" in str(caught.value)


def test_flaky_502_and_dropped_connection_are_retried_for_gets(github: GitHubEmulator) -> None:
    name = unique("flaky")
    Images(github, "acme", name).image("x", tag="latest")
    github.add_fault("502", method="GET", path_contains="/versions", times=2)
    github.add_fault("drop", method="GET", path_contains="/versions")
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps, backoff_base=0.5, backoff_cap=16) as client:
        package = client.package("acme", name)
        assert len(client.versions(package)) == 1
    assert len(sleeps) == 3
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0 and 1.0 <= sleeps[2] <= 2.0


def test_persistent_502_becomes_server_error_after_bounded_retries(github: GitHubEmulator) -> None:
    name = unique("down")
    Images(github, "acme", name).image("x", tag="latest")
    github.add_fault("502", path_contains="/versions", times=10)
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps, retries=2) as client, pytest.raises(ServerError) as caught:
        client.package("acme", name)
    assert len(sleeps) == 2
    assert caught.value.exit_code == ExitCode.NETWORK


def test_pagination_loop_is_detected(github: GitHubEmulator) -> None:
    name = unique("loop")
    Images(github, "acme", name).image("x", tag="latest")
    github.loop_links = True
    with make_client(github) as client, pytest.raises(InvalidContent, match="loops"):
        client.versions(client.package("acme", name))


# -- deletion -------------------------------------------------------------------------------------------
def test_delete_removes_the_manifest_with_all_its_tags_and_is_idempotent(
    github: GitHubEmulator, registry: LocalRegistry
) -> None:
    name = unique("delete")
    images = Images(github, "acme", name)
    digest, raw = images.image("x", tag="one")
    github.push_manifest("acme", name, raw, mediatypes.OCI_MANIFEST, tag="two")
    keep, _ = images.image("y", tag="keep")
    repo = f"acme/{name}"
    with make_client(github) as client:
        package = client.package("acme", name)
        by_digest = {v.digest: v for v in client.versions(package)}
        version = by_digest[Digest(digest)]
        assert version.tags == ("one", "two")
        assert client.delete_version(package, version.id) == "deleted"
        assert client.delete_version(package, version.id) == "already-deleted"
        assert client.get_version(package, version.id) is None
        remaining = client.versions(package)
    assert [v.digest for v in remaining] == [keep]
    assert (head(registry, repo, "one"), head(registry, repo, "two"), head(registry, repo, digest)) == (
        404,
        404,
        404,
    )
    assert head(registry, repo, "keep") == 200


@pytest.mark.parametrize(("fault", "statuses"), [("502-after", [502, 404]), ("drop", [0, 204])])
def test_delete_retried_after_a_lost_answer_or_connection_counts_as_deleted(
    github: GitHubEmulator, registry: LocalRegistry, fault: FaultKind, statuses: list[int]
) -> None:
    """502-after: GitHub deleted, the answer was lost; the retry's 404 is checked with a GET (gone = done).
    drop: the connection died before GitHub acted; the retry deletes."""
    name = unique("lost")
    images = Images(github, "acme", name)
    digest, _ = images.image("x", tag="latest")
    images.image("y", tag="other")
    github.add_fault(fault, method="DELETE")
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps) as client:
        package = client.package("acme", name)
        version = next(v for v in client.versions(package) if v.tags == ("latest",))
        assert client.delete_version(package, version.id) == "deleted"
    deletes = [r for r in github.requests if r.method == "DELETE"]
    assert [r.status for r in deletes] == statuses
    # one backoff (0.25-0.5 s), then the pacer tops the gap up to GitHub's one second between DELETEs
    assert 0.25 <= sleeps[0] <= 0.5 and len(sleeps) == 2 and sum(sleeps) == pytest.approx(1.0)
    assert deletes[1].at - deletes[0].at == pytest.approx(1.0)
    assert head(registry, f"acme/{name}", digest) == 404


# -- untagged cache selection against real manifests ---------------------------------------------------


def _sample(name: str) -> dict[str, Any]:
    return next(s for s in load_samples() if s["name"] == name)


def _layout_document(sample: dict[str, Any], tag: str) -> tuple[bytes, str]:
    layout = TESTDATA / sample["layout"]
    index = json.loads((layout / "index.json").read_bytes())
    entry = next(
        e for e in index["manifests"] if e["annotations"]["org.opencontainers.image.ref.name"] == tag
    )
    raw = (layout / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]).read_bytes()
    return raw, entry["mediaType"]


def _resalted(raw: bytes, salt: str) -> bytes:
    """The same document with one more annotation: a new digest, the same config and layers."""
    doc = json.loads(raw)
    doc["annotations"] = {**doc.get("annotations", {}), "org.example.salt": salt}
    return json.dumps(doc).encode()


def test_selection_keeps_index_children_attestations_tags_and_non_caches(
    github: GitHubEmulator, registry: LocalRegistry
) -> None:
    name = unique("select")
    repo = f"acme/{name}"
    images = Images(github, "acme", name)
    sample = _sample("multistage-max")
    tagged_caches = seed_sample(
        registry.host, repo, sample
    )  # image-manifest, oci-index, docker-manifest-list
    for digest in tagged_caches.values():
        github.track("acme", name, digest)

    cache_raw, cache_type = _layout_document(sample, "image-manifest")
    index_raw, index_type = _layout_document(sample, "oci-index")
    orphan_cache = github.push_manifest("acme", name, _resalted(cache_raw, "orphan"), cache_type)
    orphan_legacy = github.push_manifest("acme", name, _resalted(index_raw, "orphan"), index_type)

    # A tagged multi-arch image: two platform images, a cache-shaped child, an attestation manifest.
    amd64, amd64_raw = images.image("amd64")
    arm64, arm64_raw = images.image("arm64", arch="arm64")
    child_cache_raw = _resalted(cache_raw, "child")
    child_cache = github.push_manifest("acme", name, child_cache_raw, cache_type)
    statement = images.blob("application/vnd.in-toto+json", b'{"_type": "https://in-toto.io/Statement/v0.1"}')
    attestation_config = images.blob(
        mediatypes.OCI_IMAGE_CONFIG, b'{"architecture":"unknown","os":"unknown"}'
    )
    attestation_raw = oci_manifest(attestation_config, [statement])
    attestation = github.push_manifest("acme", name, attestation_raw, mediatypes.OCI_MANIFEST)
    index_raw_image = oci_index(
        [
            descriptor(mediatypes.OCI_MANIFEST, amd64_raw, platform={"os": "linux", "architecture": "amd64"}),
            descriptor(mediatypes.OCI_MANIFEST, arm64_raw, platform={"os": "linux", "architecture": "arm64"}),
            descriptor(mediatypes.OCI_MANIFEST, child_cache_raw),
            descriptor(
                mediatypes.OCI_MANIFEST,
                attestation_raw,
                platform={"os": "unknown", "architecture": "unknown"},
                annotations={"vnd.docker.reference.digest": amd64, "vnd.docker.reference.type": ATTESTATION},
            ),
        ]
    )
    image_index = github.push_manifest("acme", name, index_raw_image, mediatypes.OCI_INDEX, tag="v1")
    plain, _ = images.image("lonely")  # untagged, not a cache

    rc = RegistryClient(ClientOptions(concurrency=4))
    repository = Repository(registry.host, repo)

    def fetch(digest: Digest) -> ManifestDocument:
        return rc.get_manifest(repository.at(digest))

    with rc, make_client(github) as client:
        package = client.package("acme", name)
        versions = client.versions(package)
        selection = select_untagged_caches(versions, fetch, map_bounded=rc.map_bounded)
        deleted = [client.delete_version(package, v.id) for v in selection.selected]
        after = {v.digest for v in client.versions(package)}

    assert {v.digest for v in selection.selected} == {orphan_cache, orphan_legacy}
    assert deleted == ["deleted", "deleted"]
    reasons: dict[str, str] = {e.version.digest: e.reason for e in selection.excluded}
    assert set(reasons) == {
        *tagged_caches.values(),
        amd64,
        arm64,
        child_cache,
        attestation,
        image_index,
        plain,
    }
    assert reasons[child_cache].startswith("listed by image index")
    assert reasons[attestation].startswith("attestation manifest in image index")
    assert reasons[amd64].startswith("listed by image index") and "(v1)" in reasons[amd64]
    assert reasons[plain].startswith("not a BuildKit cache")
    assert reasons[image_index] == "tagged (v1)"
    assert all(reasons[d].startswith("tagged") for d in tagged_caches.values())
    # Everything the tagged image needs is still there; the orphans are gone.
    assert after == set(reasons)
    for digest in (image_index, amd64, arm64, child_cache, attestation):
        assert head(registry, repo, digest) == 200
    assert head(registry, repo, orphan_cache) == head(registry, repo, orphan_legacy) == 404


# -- unit tests (no registry) --------------------------------------------------------------------------


WHEN = datetime(2025, 1, 1, tzinfo=UTC)


def _version(digest_seed: str, *tags: str) -> PackageVersion:
    return PackageVersion(1, sha256_digest(digest_seed), tags, WHEN, WHEN)


def test_selection_excludes_missing_manifests_and_propagates_other_failures() -> None:
    gone, broken = _version("gone"), _version("broken")

    def fetch(digest: Digest) -> ManifestDocument:
        if digest == gone.digest:
            raise NotFound("gone", status=404, method="GET", url="x")
        raise TransportError("network down")

    with pytest.raises(TransportError):
        select_untagged_caches([gone, broken], fetch)
    selection = select_untagged_caches([gone], fetch)
    assert selection.selected == ()
    assert [e.reason for e in selection.excluded] == ["manifest not found in the registry"]


def test_selection_of_a_plain_untagged_cache_manifest() -> None:
    config = descriptor(mediatypes.BUILDKIT_CACHE_CONFIG, b"{}")
    raw = oci_manifest(config, [])
    version = PackageVersion(7, sha256_digest(raw), (), WHEN, WHEN)
    selection = select_untagged_caches([version], lambda d: parse_manifest(raw))
    assert selection.selected == (version,)


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    base_url: str = "https://api.github.com",
) -> GhcrClient:
    return GhcrClient(
        GhcrOptions(base_url=base_url),
        token=token,
        env=env or {},
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )


def _page(items: list[dict[str, Any]], link: str | None = None) -> httpx.Response:
    return httpx.Response(200, json=items, headers={"Link": link} if link else {})


def _item(version_id: int, name: str, tags: list[str]) -> dict[str, Any]:
    return {
        "id": version_id,
        "name": name,
        "url": "u",
        "package_html_url": "p",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-02T00:00:00Z",
        "metadata": {"package_type": "container", "container": {"tags": tags}},
    }


@pytest.mark.parametrize(
    ("token", "env", "sent"),
    [
        ("explicit", {"GH_TOKEN": "gh", "GITHUB_TOKEN": "gha"}, "explicit"),
        (None, {"GH_TOKEN": "gh", "GITHUB_TOKEN": "gha"}, "gh"),
        (None, {"GITHUB_TOKEN": "gha"}, "gha"),
        (None, {"GH_TOKEN": "  "}, None),
    ],
)
def test_token_comes_from_argument_then_gh_token_then_github_token(
    token: str | None, env: dict[str, str], sent: str | None
) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return _page([])

    with mock_client(handler, token=token, env=env) as client:
        client.versions(Package("acme", "app", "org"))
    assert seen == [f"Bearer {sent}" if sent else None]


def test_token_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "ghp_" + "s3cr3t" * 6

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "Resource not accessible by personal access token"})

    caplog.set_level(logging.DEBUG)
    with mock_client(handler, token=secret) as client, pytest.raises(Denied) as caught:
        client.delete_version(Package("acme", "app", "org"), 5)
    text = " ".join(
        [str(caught.value), caught.value.hint or "", caught.value.body, caught.value.url, caplog.text]
    )
    assert secret not in text
    assert caught.value.hint == TOKEN_HINT


def test_link_to_another_host_is_refused_and_gets_no_token() -> None:
    digest = sha256_digest("a")
    hosts: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append((request.url.host, request.headers.get("Authorization")))
        return _page([_item(1, digest, [])], '<https://evil.test/next?page=2>; rel="next"')

    with mock_client(handler, token="t0ken") as client, pytest.raises(InvalidContent, match="another host"):
        client.versions(Package("acme", "app", "org"))
    assert hosts == [("api.github.com", "Bearer t0ken")]


def test_version_fields_and_duplicates_across_pages() -> None:
    a, b = sha256_digest("a"), sha256_digest("b")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return _page([_item(2, b, []), _item(1, a, ["main"])])
        return _page([_item(1, a, ["main"])], f'<{request.url.copy_merge_params({"page": "2"})}>; rel="next"')

    with mock_client(handler) as client:
        versions = client.versions(Package("acme", "app", "org"))
    assert [(v.id, v.digest, v.tags) for v in versions] == [(1, a, ("main",)), (2, b, ())]
    assert versions[0].created_at.isoformat() == "2025-01-01T00:00:00+00:00"
    assert versions[0].updated_at.day == 2


def test_a_version_not_named_by_a_digest_is_invalid_content() -> None:
    with (
        mock_client(lambda r: _page([_item(1, "1.0.0", [])])) as client,
        pytest.raises(InvalidContent, match=r"1\.0\.0"),
    ):
        client.versions(Package("acme", "app", "org"))


def test_ghcr_names_and_base_url_rules() -> None:
    assert ghcr_package_name("ghcr.io/acme/app/cache") == ("acme", "app/cache")
    assert Package("acme", "app/cache", "org").path == "/orgs/acme/packages/container/app%2Fcache"
    assert Package("me", "x", "authenticated-user").path == "/user/packages/container/x"
    for bad in ("docker.io/acme/app", "ghcr.io/acme"):
        with pytest.raises(UsageError):
            ghcr_package_name(bad)
    with pytest.raises(UsageError):
        GhcrClient(GhcrOptions(base_url="http://api.github.com"), env={})
    with pytest.raises(UsageError):
        GhcrClient(GhcrOptions(page_size=101), env={})


# -- what github.com does beyond the OpenAPI document (issue 10, points 8-11) ----------------------------
def test_the_last_version_is_refused_and_deleting_the_package_takes_it(
    github: GitHubEmulator, registry: LocalRegistry
) -> None:
    """GitHub: 400 "You cannot delete the last version of a package. You must delete the package
    instead." (registries.md [G11][G12]); delete-package-for-org then removes it (and every tag)."""
    name = unique("last")
    digest, _ = Images(github, "acme", name).image("x", tag="only")
    with make_client(github) as client:
        package = client.package("acme", name)
        (version,) = client.versions(package)
        with pytest.raises(LastVersionRefused) as caught:
            client.delete_version(package, version.id)
        assert LAST_VERSION_MESSAGE in str(caught.value)
        assert head(registry, f"acme/{name}", digest) == 200  # refused: nothing happened
        assert client.delete_package(package) == "deleted"
        assert client.delete_package(package) == "already-deleted"
    assert head(registry, f"acme/{name}", "only") == 404
    assert head(registry, f"acme/{name}", digest) == 404


def test_deletes_are_paced_one_second_apart_so_the_emulated_secondary_limit_is_never_met(
    github: GitHubEmulator,
) -> None:
    """Three DELETEs at once: the client sleeps 1 s before the 2nd and the 3rd (GitHub: wait at least one
    second between mutating requests, [G14]); without pacing the emulator answers the 2nd with 403."""
    name = unique("paced")
    images = Images(github, "acme", name)
    for salt in "abcd":
        images.image(salt, tag=salt)
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps) as client:
        package = client.package("acme", name)
        doomed = [v for v in client.versions(package) if v.tags != ("a",)]
        assert [client.delete_version(package, v.id) for v in doomed] == ["deleted"] * 3
    deletes = [r for r in github.requests if r.method == "DELETE"]
    assert [r.status for r in deletes] == [204, 204, 204]
    assert sleeps == [1.0, 1.0]
    assert [b.at - a.at for a, b in itertools.pairwise(deletes)] == [1.0, 1.0]


def primary_limited(github: GitHubEmulator, name: str, tags: str) -> None:
    """One image per letter of ``tags`` (tagged with it) and a primary limit of 6 requests per 100 s."""
    images = Images(github, "acme", name)
    for salt in tags:
        images.image(salt, tag=salt)
    github.primary = PrimaryLimit(limit=6, window=100.0)


def test_deletes_are_spread_over_the_window_when_the_primary_limit_runs_low(github: GitHubEmulator) -> None:
    """GitHub states the primary limit on every answer (x-ratelimit-remaining/-reset, "Rate limits for the
    REST API") and answers 403 once it is spent. At most 20 left counts as low: the deletions are spread
    over what is left of the window, two requests each (the last look, the DELETE), rather than meeting
    the 403. Derived by hand (6 requests per 100 s, from t = 0):

    t = 0     GET package (5 left), GET versions (4 left, reset at 100), DELETE 1 (3 left: one deletion
              fits in the 100 s left -> the next one 100 s after this)
    t = 100   a new window: DELETE 2 (5 left, 2 deletions in 100 s -> 50 s apart)
    t = 150   DELETE 3 (4 left, 2 deletions in 50 s -> 25 s apart)
    t = 175   DELETE 4
    """
    name = unique("spread")
    primary_limited(github, name, "abcde")
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps) as client:
        package = client.package("acme", name)
        doomed = [v for v in client.versions(package) if v.tags != ("a",)]
        assert [client.delete_version(package, v.id) for v in doomed] == ["deleted"] * 4
    assert [r.status for r in github.requests] == [200, 200, 204, 204, 204, 204]  # never the 403
    assert [r.at - NOW for r in github.requests if r.method == "DELETE"] == [0.0, 100.0, 150.0, 175.0]
    assert sleeps == [100.0, 50.0, 25.0]


def test_a_wait_beyond_the_allowance_raises_before_the_request_is_sent(github: GitHubEmulator) -> None:
    """The same window, with waits limited to 30 s (what is left of a time budget): the second DELETE
    would wait 100 s, so it is not sent and ``RateLimited`` says when it could go."""
    name = unique("allowance")
    primary_limited(github, name, "abc")
    with make_client(github) as client:
        client.limit_waits(lambda: 30.0)
        package = client.package("acme", name)
        doomed = [v for v in client.versions(package) if v.tags != ("a",)]
        assert client.delete_version(package, doomed[0].id) == "deleted"
        with pytest.raises(RateLimited) as caught:
            client.delete_version(package, doomed[1].id)
    assert caught.value.retry_after == 100.0
    assert "in 100 s" in str(caught.value)
    assert [r.method for r in github.requests] == ["GET", "GET", "DELETE"]


@pytest.mark.parametrize(("allowance", "waited"), [(None, False), (600.0, True), (299.0, False)])
def test_a_retry_after_longer_than_max_wait_is_waited_out_within_the_allowance(
    github: GitHubEmulator, allowance: float | None, waited: bool
) -> None:
    """429 with Retry-After: 300 on a DELETE. Without an allowance the 60 s ``max_wait`` raises; with
    600 s left of a budget it is slept and the DELETE retried; with 299 s left it raises."""
    name = unique("retry-after")
    Images(github, "acme", name).image("a", tag="a")
    Images(github, "acme", name).image("b", tag="b")
    github.add_fault("429", method="DELETE", seconds=300)
    sleeps: list[float] = []
    with make_client(github, sleeps=sleeps) as client:
        if allowance is not None:
            client.limit_waits(lambda: allowance)
        package = client.package("acme", name)
        version = next(v for v in client.versions(package) if v.tags == ("b",))
        if waited:
            assert client.delete_version(package, version.id) == "deleted"
        else:
            with pytest.raises(RateLimited):
                client.delete_version(package, version.id)
    assert sleeps == ([300.0] if waited else [])
    assert [r.status for r in github.requests if r.method == "DELETE"] == ([429, 204] if waited else [429])


def test_without_pacing_the_emulator_answers_like_githubs_secondary_limit(github: GitHubEmulator) -> None:
    name = unique("unpaced")
    images = Images(github, "acme", name)
    for salt in "abc":
        images.image(salt, tag=salt)
    sleeps: list[float] = []
    unpaced = Pace(min_interval=0, per_minute=10**6, per_hour=10**6)
    with make_client(github, sleeps=sleeps, pace=unpaced) as client:
        package = client.package("acme", name)
        doomed = [v for v in client.versions(package) if v.tags != ("a",)]
        assert [client.delete_version(package, v.id) for v in doomed] == ["deleted"] * 2
    deletes = [r for r in github.requests if r.method == "DELETE"]
    assert [r.status for r in deletes] == [204, 403, 204]
    assert sleeps == [1.0]  # the emulator's retry-after: 1 s left until the DELETE is allowed


def test_emulated_content_limits_are_githubs_numbers() -> None:
    """[G14]: >= 1 s apart, <= 80 a minute, <= 500 an hour. Derived by hand: at 1 s spacing requests
    0..499 go at t = 0..499 s; the 501st (t = 500) must wait until t = 0 + 3600, so retry-after 3100."""
    limits = ContentLimits()
    assert [limits.admit("t", float(t)) for t in range(500)] == [None] * 500
    assert limits.admit("t", 500.0) == 3100
    assert limits.admit("other token", 500.0) is None  # per token
    assert limits.admit("t", 3600.0) is None
    # 80 a minute binds only without the one-second rule: 80 at t = 0..79 * 0.5; the 81st waits for t = 60
    burst = ContentLimits(min_interval=0)
    assert [burst.admit("t", i * 0.5) for i in range(80)] == [None] * 80
    assert burst.admit("t", 40.0) == 20
    assert burst.admit("t", 59.9) == 1  # 0.1 s until t = 60: never less than 1 s


def test_backlog_at_githubs_pace_derived_by_hand() -> None:
    """k-th deletion (0-based) at k s while k < 500; the 501st waits for the first to leave the hour."""
    assert backlog_seconds(0) == 0 and backlog_seconds(1) == 0
    assert backlog_seconds(3) == 2.0
    assert backlog_seconds(500) == 499.0
    assert backlog_seconds(501) == 3600.0
    assert backlog_seconds(1000) == 3600.0 + 499.0
    assert backlog_seconds(1001) == 7200.0
    # without the one-second rule, 80 a minute binds: 80 at t = 0, the 81st at t = 60
    assert backlog_seconds(81, Pace(min_interval=0)) == 60.0
    assert [format_seconds(x) for x in (2.0, 499.0, 3600.0, 4099.0)] == [
        "2 s",
        "8 min 19 s",
        "1 h",
        "1 h 8 min",
    ]


@pytest.mark.parametrize("deleted_get", ["404", "deleted_at", "plain"])
def test_a_retried_delete_that_had_succeeded_is_deleted_whatever_a_get_of_the_deleted_version_answers(
    github: GitHubEmulator, registry: LocalRegistry, deleted_get: DeletedGet
) -> None:
    """Issue 10 point 8: the first DELETE acted, its answer was lost (502), the retry gets 404. GitHub
    keeps the version restorable for 30 days and does not document its GET ([G13]): 404, 200 with
    ``deleted_at`` or 200 without must all read as deleted, never as "the token may not delete"."""
    github.deleted_get = deleted_get
    name = unique("soft")
    images = Images(github, "acme", name)
    digest, _ = images.image("x", tag="doomed")
    images.image("y", tag="kept")
    github.add_fault("502-after", method="DELETE")
    with make_client(github) as client:
        package = client.package("acme", name)
        version = next(v for v in client.versions(package) if v.tags == ("doomed",))
        assert client.delete_version(package, version.id) == "deleted"
        # the same for a version another run deleted before ours tried (no retry: already deleted)
        other = next(v for v in client.versions(package) if v.tags == ("kept",))
        images.image("z", tag="third")
        with make_client(github) as rival:
            assert rival.delete_version(package, other.id) == "deleted"
        assert client.delete_version(package, other.id) == "already-deleted"
    assert head(registry, f"acme/{name}", digest) == 404


def test_a_404_for_a_version_that_is_still_active_is_a_refusal_even_when_get_shows_it(
    github: GitHubEmulator,
) -> None:
    github.deny_delete_status = 404
    github.deleted_get = "plain"
    name = unique("deny404")
    images = Images(github, "acme", name)
    images.image("x", tag="one")
    images.image("y", tag="two")
    with make_client(github, token=READER) as client:
        package = client.package("acme", name)
        version = client.versions(package)[0]
        with pytest.raises(Denied) as caught:
            client.delete_version(package, version.id)
    assert caught.value.hint == TOKEN_HINT


def test_saml_sso_403_says_to_authorise_the_token_and_gives_githubs_url(github: GitHubEmulator) -> None:
    """[G16]: a PAT not authorised for an organisation's SAML SSO gets 403 + ``X-GitHub-SSO: required; url=``."""
    github.sso_orgs.add("acme")
    name = unique("sso")
    Images(github, "acme", name).image("x", tag="latest")
    with make_client(github) as client, pytest.raises(Denied) as caught:
        client.package("acme", name)
    assert caught.value.exit_code == ExitCode.AUTH
    hint = caught.value.hint or ""
    assert "SAML single sign-on" in hint
    assert "https://github.com/orgs/acme/sso?authorization_request=EMULATED0000" in hint
    assert "delete:packages" not in hint and "read:packages" not in hint  # not blamed on scopes


@pytest.mark.parametrize(
    ("base_url", "env", "sent"),
    [
        # github.com: gh's GH_TOKEN, then GITHUB_TOKEN; enterprise variables are not for it
        ("https://api.github.com", {"GH_ENTERPRISE_TOKEN": "ent", "GITHUB_TOKEN": "gha"}, "gha"),
        ("https://api.acme.ghe.com", {"GH_TOKEN": "gh", "GH_ENTERPRISE_TOKEN": "ent"}, "gh"),
        # Enterprise Server: GH_ENTERPRISE_TOKEN, then GITHUB_ENTERPRISE_TOKEN; a github.com token never
        ("https://ghe.acme.test/api/v3", {"GH_TOKEN": "gh", "GH_ENTERPRISE_TOKEN": "ent"}, "ent"),
        ("https://ghe.acme.test/api/v3", {"GITHUB_ENTERPRISE_TOKEN": "ent2", "GITHUB_TOKEN": "x"}, "ent2"),
        ("https://ghe.acme.test/api/v3", {"GH_TOKEN": "gh", "GITHUB_TOKEN": "gha"}, None),
        # ... except the workflow token of that same server (its Actions set GITHUB_API_URL)
        (
            "https://ghe.acme.test/api/v3",
            {"GITHUB_TOKEN": "w", "GITHUB_API_URL": "https://ghe.acme.test/api/v3"},
            "w",
        ),
        (
            "https://ghe.acme.test/api/v3",
            {"GITHUB_TOKEN": "w", "GITHUB_API_URL": "https://api.github.com"},
            None,
        ),
    ],
)
def test_enterprise_server_tokens_follow_gh(base_url: str, env: dict[str, str], sent: str | None) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return _page([])

    with mock_client(handler, env=env, base_url=base_url) as client:
        client.versions(Package("acme", "app", "org"))
    assert seen == [f"Bearer {sent}" if sent else None]


def test_enterprise_messages_name_the_enterprise_registry_and_its_token_variables() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "Requires authentication"})

    client = mock_client(handler, base_url="https://ghe.acme.test/api/v3")
    with client, pytest.raises(Unauthorized) as caught:
        client.package("acme", "app", host="containers.ghe.acme.test")
    assert "containers.ghe.acme.test/acme/app" in str(caught.value)
    assert "ghcr.io" not in str(caught.value)
    assert (
        caught.value.hint is not None
        and "GH_ENTERPRISE_TOKEN or GITHUB_ENTERPRISE_TOKEN" in caught.value.hint
    )
