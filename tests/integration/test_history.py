"""`cacheinspect history`: two single-platform CI jobs clobbering one cache tag, seen through GHCR's REST API.

The scenario, pushed to the real registry behind the GitHub REST emulator (tests/harness/ghcr_server.py: a
package version per manifest the registry holds, tagged or not, ``created_at`` = when it was pushed):

    t1  amd64 job exports DOCKERFILES["multi-platform"] for linux/amd64 only   -> main-cache   (version v1)
    t2  an untagged plain image (no cache: an image's platform child, say)     -> by digest
    t3  arm64 job exports the same Dockerfile for linux/arm64 only             -> main-cache   (v2; v1 untagged)
    t4  amd64 job again (a later build: other createdAt, so another digest)    -> main-cache   (v3)
    t5  arm64 job again                                                        -> main-cache   (v4)
    t6  another branch's cache                                                 -> other-cache  (tagged: not ours)
    t7  an untagged cache pushed after main-cache moved last                   -> by digest    (cannot have held it)

Derived by hand: the history of main-cache is v4, v3, v2, v1 (newest first; t6 is tagged with another tag,
t7 is newer than the tagged version, t2 is no cache: skipped and counted). With ``--base`` for both FROM
images (two-platform indexes in the registry), each version's root records match exactly one platform's
manifest key (index digest + platform: pull.go mainManifestKey), so the platforms read arm64, amd64, arm64,
amd64: arm64 wrote again after amd64 did, so two writers alternate. Adjacent versions are built for different
platforms, so their first stage already differs at its first step (#2, FROM being #1): every LLB op carries
its platform in its definition (pb.Op.platform; fixturegen puts it into the op digests), so that step's record
digest differs, besides its base's per-platform root keys.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.harness.dockerfilegen import from_dockerfile
from tests.harness.ecr_server import ACCOUNT, REGION, EcrMirror, ecr_server
from tests.harness.fixturegen import Platform
from tests.harness.gar_server import artifact_registry
from tests.harness.ghcr_server import GitHubEmulator, TokenInfo, push_blob, push_manifest
from tests.harness.make_testdata import DOCKERFILE_BASES, DOCKERFILES
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import run_cli, validate_json

TOKEN = "ghp_history0000000000000000000000000000000"
AMD64, ARM64 = Platform(), Platform("linux", "arm64")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SCHEMA = schema("history")


@dataclass
class Pushed:
    repo: str
    digests: dict[str, str]


class StepClock:
    """The emulator's clock: every reading one minute later, so each push has its own ``created_at``."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        self.now += 60
        return self.now


def cache_manifest(host: str, repo: str, platform: Platform, started: str) -> bytes:
    """Export DOCKERFILES["multi-platform"] for one platform (one CI job), push its blobs: the manifest's bytes."""
    build = from_dockerfile(
        DOCKERFILES["multi-platform"], bases=DOCKERFILE_BASES, platforms=(platform,), started_at=started
    )
    cache = build.export().cache
    for data in (cache.config_bytes, *cache.blobs.values()):
        push_blob(host, repo, data)
    return cache.oci_manifest_bytes


def push_cache(
    host: str, github: GitHubEmulator, repo: str, platform: Platform, started: str, tag: str | None
) -> str:
    owner, _, name = repo.partition("/")
    raw = cache_manifest(host, repo, platform, started)
    return github.push_manifest(owner, name, raw, OCI_MANIFEST, tag=tag)


def push_plain_image(host: str, github: GitHubEmulator, repo: str) -> str:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    digest = push_blob(host, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    owner, _, name = repo.partition("/")
    return github.push_manifest(owner, name, manifest, OCI_MANIFEST)


@pytest.fixture
def github(registry: LocalRegistry, seeded: dict[str, dict[str, str]]) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(
        registry.host, owners={"acme": "org"}, tokens={TOKEN: TokenInfo("ci")}, clock=StepClock()
    ) as emulator:
        yield emulator
        assert emulator.errors == []


@pytest.fixture
def clobbered(registry: LocalRegistry, github: GitHubEmulator) -> Pushed:
    repo = f"acme/hist-{uuid.uuid4().hex[:8]}"
    host = registry.host
    digests = {
        "v1": push_cache(host, github, repo, AMD64, "2026-01-01T08:00:00Z", "main-cache"),
        "image": push_plain_image(host, github, repo),
        "v2": push_cache(host, github, repo, ARM64, "2026-01-01T08:01:00Z", "main-cache"),
        "v3": push_cache(host, github, repo, AMD64, "2026-01-01T09:00:00Z", "main-cache"),
        "v4": push_cache(host, github, repo, ARM64, "2026-01-01T09:01:00Z", "main-cache"),
        "other": push_cache(host, github, repo, AMD64, "2026-01-01T10:00:00Z", "other-cache"),
        "late": push_cache(host, github, repo, AMD64, "2026-01-01T11:00:00Z", None),
    }
    assert len(set(digests.values())) == len(digests)  # every push is its own version
    return Pushed(repo, digests)


def history_args(registry: LocalRegistry, github: GitHubEmulator, pushed: Pushed, *extra: str) -> list[str]:
    return [
        "history",
        f"{registry.host}/{pushed.repo}:main-cache",
        "--backend",
        "ghcr",
        "--github-api-url",
        github.url,
        "--base",
        f"{registry.host}/library/golang:1.23-alpine",
        "--base",
        f"{registry.host}/library/alpine:3.20",
        *extra,
    ]


ENV = {"GH_ENTERPRISE_TOKEN": TOKEN, "GH_TOKEN": "", "GITHUB_TOKEN": "", "GITHUB_API_URL": ""}


def test_ghcr_history_lists_the_tag_s_versions_and_detects_two_alternating_writers(
    registry: LocalRegistry, github: GitHubEmulator, clobbered: Pushed
) -> None:
    done = run_cli(*history_args(registry, github, clobbered, "--json"), env=ENV)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    validate_json(doc, SCHEMA)
    d = clobbered.digests
    assert [v["digest"] for v in doc["versions"]] == [d["v4"], d["v3"], d["v2"], d["v1"]]
    assert [v["tags"] for v in doc["versions"]] == [["main-cache"], [], [], []]
    assert [v["platforms"]["covered"] for v in doc["versions"]] == [
        ["linux/arm64"],
        ["linux/amd64"],
        ["linux/arm64"],
        ["linux/amd64"],
    ]
    assert all(v["platforms"]["state"] == "known" for v in doc["versions"])
    # Pushes were one emulator minute apart, newest first.
    times = [v["pushedAt"] for v in doc["versions"]]
    assert times == sorted(times, reverse=True) and len(set(times)) == 4
    assert doc["notCaches"] == 1 and doc["more"] is False
    assert doc["alternation"] == {
        "writers": ["linux/arm64", "linux/amd64"],
        "message": "two writers alternate on this tag: linux/arm64 and linux/amd64 — use separate cache refs "
        "per platform",
    }
    for newer in doc["versions"][:-1]:
        first = newer["firstDifference"]
        assert first["kind"] == "step" and first["change"] == "changed"
        assert first["stepA"] == first["stepB"] == 2  # FROM is step 1: the first op on the base
        assert first["recordA"] != first["recordB"]
    assert doc["versions"][-1]["firstDifference"] is None
    assert all(v["size"] > 0 for v in doc["versions"])

    text = run_cli(*history_args(registry, github, clobbered), env=ENV)
    assert text.returncode == 0, text.stderr
    assert (
        "two writers alternate on this tag: linux/arm64 and linux/amd64 — use separate cache refs per platform"
        in text.stdout
    )
    assert "1 version(s) skipped: no cache, or deleted since listed" in text.stdout
    assert text.stdout.count("linux/arm64") >= 2 and "(tagged)" in text.stdout
    assert "stage 1 #2: another op (instruction, arguments or platform)" in text.stdout


def test_limit_stops_early_and_says_so(
    registry: LocalRegistry, github: GitHubEmulator, clobbered: Pushed
) -> None:
    done = run_cli(*history_args(registry, github, clobbered, "--json", "--limit", "2"), env=ENV)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [v["digest"] for v in doc["versions"]] == [clobbered.digests["v4"], clobbered.digests["v3"]]
    assert doc["more"] is True
    assert doc["alternation"] is None  # arm64 then amd64 once: a change, not (yet) an alternation


def test_without_bases_platforms_are_unknown_and_no_alternation_is_claimed(
    registry: LocalRegistry, github: GitHubEmulator, clobbered: Pushed
) -> None:
    args = history_args(registry, github, clobbered)[:6]  # no --base
    missing_base = run_cli(*args, "--base", f"{registry.host}/library/nope:1", env=ENV)
    assert missing_base.returncode == 0, missing_base.stderr
    assert missing_base.stderr.startswith("cacheinspect: warning: could not resolve base ")
    done = run_cli(*args, env=ENV)
    assert done.returncode == 0, done.stderr
    assert "alternate" not in done.stdout
    assert "platforms unknown: give --base REF" in done.stdout
    # A tag no version carries is "not found" (exit 3), a digest is a usage error (history follows a tag).
    gone = run_cli(*[a.replace(":main-cache", ":nope") for a in args], env=ENV)
    assert gone.returncode == 3 and "no version carries the tag 'nope'" in gone.stderr
    pinned = run_cli(*[a.replace(":main-cache", "@" + clobbered.digests["v1"]) for a in args], env=ENV)
    assert pinned.returncode == 2 and "history follows a tag" in pinned.stderr


def test_plain_distribution_cannot_list_history_exit_5_in_one_line(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    done = run_cli("history", f"{registry.host}/samples/multistage-max:image-manifest")
    assert done.returncode == 5, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cacheinspect: error: ")
    assert "cannot list a tag's earlier manifests" in lines[0]
    assert done.stdout == ""


# -- ECR and Artifact Registry: amd64, arm64, amd64 on one tag (A, B, A: the first writer came back) --------------

SEQUENCE = ((AMD64, "2026-02-01T08:00:00Z"), (ARM64, "2026-02-01T08:05:00Z"), (AMD64, "2026-02-01T09:00:00Z"))
PUSHED = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


def base_args(host: str) -> list[str]:
    return ["--base", f"{host}/library/golang:1.23-alpine", "--base", f"{host}/library/alpine:3.20"]


def expect_three(doc: dict[str, Any], digests: list[str]) -> None:
    """Newest first: the third push (amd64, tagged), the second (arm64), the first (amd64)."""
    validate_json(doc, SCHEMA)
    assert [v["digest"] for v in doc["versions"]] == digests[::-1]
    assert [v["platforms"]["covered"] for v in doc["versions"]] == [
        ["linux/amd64"],
        ["linux/arm64"],
        ["linux/amd64"],
    ]
    assert [v["pushedAt"] for v in doc["versions"]] == [
        (PUSHED - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ") for m in (0, 10, 20)
    ]
    assert doc["alternation"]["writers"] == ["linux/amd64", "linux/arm64"]


def test_ecr_history_reads_describe_images(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    name = f"hist-ecr-{uuid.uuid4().hex[:8]}"
    with ecr_server() as server:
        mirror = EcrMirror(server, name)
        digests = []
        for n, (platform, started) in enumerate(SEQUENCE):
            raw = cache_manifest(registry.host, name, platform, started)
            last = n == len(SEQUENCE) - 1
            digests.append(push_manifest(registry.host, name, raw, OCI_MANIFEST, tag="main-cache"))
            # ECR keeps an image whose tag moved, untagged; moto's PutImage would drop it, so older ones go in
            # untagged. imagePushedAt is set on moto's model (no API sets it): ten minutes apart.
            mirror.put(raw, OCI_MANIFEST, "main-cache" if last else None)
            mirror.set_times(digests[-1], pushed=PUSHED - timedelta(minutes=10 * (len(SEQUENCE) - 1 - n)))
        env = {
            **server.env(),
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }
        done = run_cli(
            "history",
            f"{registry.host}/{name}:main-cache",
            "--backend",
            "ecr",
            "--ecr-registry-id",
            ACCOUNT,
            "--aws-region",
            REGION,
            *base_args(registry.host),
            "--json",
            env=env,
        )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["api"] == "ecr"
    expect_three(doc, digests)


def test_artifact_registry_history_reads_the_manifest_map(
    registry: LocalRegistry, seeded: dict[str, dict[str, str]]
) -> None:
    name = f"acme/hist-gar-{uuid.uuid4().hex[:8]}"
    with artifact_registry(registry.host) as (proxy, contract):
        digests = []
        for n, (platform, started) in enumerate(SEQUENCE):
            raw = cache_manifest(proxy.host, name, platform, started)
            digests.append(push_manifest(proxy.host, name, raw, OCI_MANIFEST, tag="main-cache"))
            contract.set_uploaded(name, digests[-1], PUSHED - timedelta(minutes=10 * (len(SEQUENCE) - 1 - n)))
        done = run_cli(
            "history",
            f"{proxy.host}/{name}:main-cache",
            "--backend",
            "google",
            *base_args(proxy.host),
            "--json",
        )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["api"] == "google"
    expect_three(doc, digests)
