"""`cacheinspect gc` with the GHCR backend: the GitHub REST emulator in front of a real docker-registry.

The OCI side (tag list, HEAD, GET, placeholder pushes) is the real registry; the REST side is
``tests.harness.ghcr_server.GitHubEmulator``, whose package versions are that registry's manifests and whose
version deletes are registry deletes by digest. gc runs in-process through ``inspector.cli.run`` with
``--backend ghcr --package acme/NAME --github-api-url <emulator>``, as it would against ghcr.io.

The package holds tagged caches of live, gone and protected branches, two tags on one manifest (one
stale, one kept), an overwritten cache (its old manifest now untagged), an untagged cache pushed by
digest, a tagged multi-arch image index (two images, a cache-shaped child, an attestation manifest:
untagged children that must survive), a non-cache tag and an untagged plain image.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from inspector.cli import run
from inspector.errors import CacheInspectError, InvalidContent
from inspector.gc.backends.base import ManifestKept
from inspector.gc.backends.ghcr import GhcrBackend
from inspector.gc.branches import LiveRefs
from inspector.gc.inventory import Inventory, TagInfo, add_untagged
from inspector.gc.plan import PlanRefused, check_max_deletes, plan_repository
from inspector.gc.planfile import plan_from_json, plan_to_json
from inspector.gc.policy import Rules, parse_template
from inspector.oci.digest import Digest, sha256_digest
from inspector.oci.models import ManifestDocument, parse_manifest
from inspector.oci.reference import Repository, parse_repository
from inspector.registry.client import ClientOptions, RegistryClient
from inspector.registry.github_packages import TOKEN_HINT, GhcrClient, GhcrOptions, Package
from tests.harness.ghcr_server import DENY_MESSAGE, GitHubEmulator, TokenInfo
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry, start_registry
from tests.harness.support import validate_json

SCHEMA = schema("gc-plan")
ADMIN = "ghp_gcadmin000000000000000000000000000000"
READER = "ghp_gcreader00000000000000000000000000000"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"
BRANCHES = "main\nfeature/a\nshared-live\n"
RULES = ["-t", "{branch}-buildcache", "--protect", "main", "--protect", "release/*"]
KEPT_TAGS = {
    "main-buildcache",  # protected (and live)
    "feature-a-buildcache",  # live; its previous manifest is an untagged cache now
    "release-1.0-buildcache",  # branch gone, protected by release/*
    "shared-live-buildcache",  # shares its manifest with shared-stale-buildcache
    "v1",  # multi-arch image index: matches no template
    "app",  # not a cache: matches no template
}
DELETED_TAGS = {"gone-buildcache": "branch-gone", "shared-stale-buildcache": "branch-gone"}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Scenario:
    """What was pushed: name -> digest, and name -> raw manifest."""

    owner: str
    name: str
    digests: dict[str, str]
    raws: dict[str, bytes]
    layers: dict[str, list[str]]  # name -> blob digests it alone adds (layers and config)

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.name}"


class Pusher:
    """Pushes into the emulator's registry with plain httpx; the emulator is told of every manifest."""

    def __init__(self, github: GitHubEmulator, owner: str, name: str, http: httpx.Client) -> None:
        self.github, self.owner, self.name, self.http = github, owner, name, http
        self.base = f"http://{github.registry_host}/v2/{owner}/{name}"

    def blob(self, data: bytes, media_type: str = LAYER, **extra: Any) -> dict[str, Any]:
        digest = sha(data)
        if self.http.head(f"{self.base}/blobs/{digest}").status_code != 200:
            started = self.http.post(f"{self.base}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest})
            done = self.http.put(location, content=data, headers={"Content-Type": "application/octet-stream"})
            assert done.status_code == 201, done.text
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def put(self, raw: bytes, media_type: str, tag: str | None = None) -> str:
        answer = self.http.put(
            f"{self.base}/manifests/{tag or sha(raw)}", content=raw, headers={"Content-Type": media_type}
        )
        assert answer.status_code == 201, answer.text
        assert answer.headers["Docker-Content-Digest"] == sha(raw)
        self.github.track(self.owner, self.name, sha(raw))  # GitHub sees every pushed manifest
        return sha(raw)

    def cache(self, tag: str | None, layers: list[bytes], *, age: timedelta) -> tuple[str, bytes, list[str]]:
        when = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        descriptors = [
            self.blob(data, annotations={"buildkit/createdat": when, "containerd.io/uncompressed": sha(data)})
            for data in layers
        ]
        config = json.dumps(
            {
                "layers": [{"blob": d["digest"], "parent": i - 1} for i, d in enumerate(descriptors)],
                "records": [{"digest": sha(repr(layers).encode()), "layers": [{"layer": len(layers) - 1}]}],
            },
            separators=(",", ":"),
        ).encode()
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(config, CACHE_CONFIG),
            "layers": descriptors,
        }
        raw = json.dumps(document, separators=(",", ":")).encode()
        return self.put(raw, OCI_MANIFEST, tag), raw, [sha(config)]

    def image(self, tag: str | None, layers: list[bytes], arch: str = "amd64") -> tuple[str, bytes]:
        config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}).encode()
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(config, IMAGE_CONFIG),
            "layers": [self.blob(data) for data in layers],
        }
        raw = json.dumps(document).encode()
        return self.put(raw, OCI_MANIFEST, tag), raw


def seed(github: GitHubEmulator, name: str) -> Scenario:
    with httpx.Client(timeout=10) as http:
        return _seed(Pusher(github, "acme", name, http), name)


def _seed(push: Pusher, name: str) -> Scenario:
    digests: dict[str, str] = {}
    raws: dict[str, bytes] = {}
    alone: dict[str, list[str]] = {}
    base = b"base layer " + name.encode() * 200
    day = timedelta(days=1)

    def cache(key: str, tag: str | None, unique: bytes, age: timedelta) -> None:
        digests[key], raws[key], configs = push.cache(tag, [base, unique], age=age)
        alone[key] = [sha(unique), *configs]

    cache("main", "main-buildcache", b"main " + name.encode(), day)
    cache("feature-a-old", "feature-a-buildcache", b"feature a, before " + name.encode(), 5 * day)
    cache("feature-a", "feature-a-buildcache", b"feature a " + name.encode(), 2 * day)  # overwrites
    cache("gone", "gone-buildcache", b"gone " + name.encode(), 3 * day)
    cache("release", "release-1.0-buildcache", b"release " + name.encode(), 60 * day)
    cache("shared", "shared-stale-buildcache", b"shared " + name.encode(), day)
    digests["shared"] = push.put(raws["shared"], OCI_MANIFEST, "shared-live-buildcache")
    cache("orphan", None, b"orphan " + name.encode(), 4 * day)  # pushed by digest: untagged

    # A tagged multi-arch image: two platform images, a cache-shaped child, an attestation manifest.
    digests["amd64"], amd64 = push.image(None, [b"amd64 " + name.encode()])
    digests["arm64"], arm64 = push.image(None, [b"arm64 " + name.encode()], arch="arm64")
    digests["child-cache"], child, _ = push.cache(None, [b"child " + name.encode()], age=day)
    statement = push.blob(b'{"_type":"https://in-toto.io/Statement/v0.1"}', "application/vnd.in-toto+json")
    attestation = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": push.blob(b'{"architecture":"unknown","os":"unknown"}', IMAGE_CONFIG),
            "layers": [statement],
        }
    ).encode()
    digests["attestation"] = push.put(attestation, OCI_MANIFEST)

    def entry(raw: bytes, **extra: Any) -> dict[str, Any]:
        return {"mediaType": OCI_MANIFEST, "digest": sha(raw), "size": len(raw), **extra}

    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                entry(amd64, platform={"os": "linux", "architecture": "amd64"}),
                entry(arm64, platform={"os": "linux", "architecture": "arm64"}),
                entry(child),
                entry(
                    attestation,
                    platform={"os": "unknown", "architecture": "unknown"},
                    annotations={
                        "vnd.docker.reference.digest": digests["amd64"],
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                ),
            ],
        }
    ).encode()
    digests["index"] = push.put(index, OCI_INDEX, "v1")
    digests["app"], _ = push.image("app", [base])
    digests["plain"], _ = push.image(None, [b"plain " + name.encode()])  # untagged, not a cache
    return Scenario(push.owner, name, digests, raws, alone)


SURVIVORS = {"main", "feature-a", "release", "shared", "amd64", "arm64", "child-cache", "attestation"}
SURVIVORS |= {"index", "app", "plain"}
UNTAGGED_DELETED = {"feature-a-old", "orphan"}


# -- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    instance = start_registry(tmp_path / "own")
    yield instance
    instance.stop()


Emulate = Callable[[LocalRegistry], GitHubEmulator]


@pytest.fixture
def emulate() -> Iterator[Emulate]:
    """``emulate(registry)``: a started GitHub emulator (2 versions per page) in front of ``registry``."""
    started: list[GitHubEmulator] = []

    def make(registry: LocalRegistry) -> GitHubEmulator:
        emulator = GitHubEmulator(
            registry.host,
            owners={"acme": "org"},
            tokens={ADMIN: TokenInfo("gc-bot"), READER: TokenInfo("gc-bot", can_delete=False)},
            page_size_cap=2,
        )
        started.append(emulator.__enter__())
        return emulator

    yield make
    for emulator in started:
        emulator.__exit__(None, None, None)
        assert emulator.errors == []


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The emulator's URL is not github.com's, so, as gh does, gc reads the Enterprise Server variables
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_ENTERPRISE_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GH_ENTERPRISE_TOKEN", ADMIN)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    path = tmp_path / "branches.txt"
    path.write_text(BRANCHES)
    return path


def gc_args(registry: LocalRegistry, github: GitHubEmulator, s: Scenario, branches: Path) -> list[str]:
    return [
        "gc",
        f"{registry.host}/{s.repo}",
        *RULES,
        "--branches-file",
        str(branches),
        "--backend",
        "ghcr",
        "--package",
        s.repo,
        "--github-api-url",
        github.url,
    ]


def gc_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict[str, Any], str]:
    code = run([*args, "--json"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    document = json.loads("\n".join(lines[: next(i for i, x in enumerate(lines) if x == "}") + 1]))
    validate_json(document, SCHEMA)
    return code, document, captured.out + captured.err


def registry_tags(registry: LocalRegistry, repo: str) -> dict[str, str]:
    """Tag -> digest as the registry serves them."""
    with httpx.Client(base_url=f"{registry.url}/v2/{repo}", headers={"Accept": ACCEPT}) as http:
        tags = http.get("/tags/list").json()["tags"] or []
        return {t: http.head(f"/manifests/{t}").headers["Docker-Content-Digest"] for t in tags}


def present(registry: LocalRegistry, repo: str, digest: str) -> bool:
    status = httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{digest}", headers={"Accept": ACCEPT}
    ).status_code
    assert status in (200, 404)
    return status == 200


def versions(github: GitHubEmulator, s: Scenario) -> dict[str, tuple[str, ...]]:
    """Digest -> tags of every package version, as GitHub's REST API lists them."""
    with GhcrClient(GhcrOptions(base_url=github.url), token=ADMIN, env={}) as client:
        return {v.digest: tuple(sorted(v.tags)) for v in client.versions(Package(s.owner, s.name, "org"))}


def expected_versions(s: Scenario) -> dict[str, tuple[str, ...]]:
    tags = {
        "main": ("main-buildcache",),
        "feature-a": ("feature-a-buildcache",),
        "release": ("release-1.0-buildcache",),
        "shared": ("shared-live-buildcache",),
        "index": ("v1",),
        "app": ("app",),
    }
    return {s.digests[k]: tags.get(k, ()) for k in SURVIVORS}


def untagged_plans(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["digest"]: m for m in plan["manifests"] if m["rule"] == "untagged-cache"}


# -- the nightly job ---------------------------------------------------------------------------------------
def test_apply_with_untagged_leaves_exactly_the_planned_versions_and_kept_caches_import_fully(
    own_registry: LocalRegistry,
    emulate: Emulate,
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    github = emulate(own_registry)
    s = seed(github, unique("app-cache"))
    before_versions = versions(github, s)
    assert len(before_versions) == len(SURVIVORS | UNTAGGED_DELETED) + 1  # + gone
    kept_documents = {
        k: httpx.get(f"{own_registry.url}/v2/{s.repo}/manifests/{s.digests[k]}", headers={"Accept": ACCEPT})
        for k in SURVIVORS
    }
    args = [*gc_args(own_registry, github, s, branches), "--untagged"]

    # The plan: two tags, and the two untagged caches (never the index's children or the plain image).
    code, planned, _ = gc_json(capsys, args)
    assert code == 0
    (plan,) = planned["repositories"]
    assert {t["tag"]: t["rule"] for t in plan["tags"] if t["action"] == "delete"} == DELETED_TAGS
    assert {t["tag"] for t in plan["tags"] if t["action"] != "delete"} == KEPT_TAGS
    assert set(untagged_plans(plan)) == {s.digests[k] for k in UNTAGGED_DELETED}
    assert all(m["deleteManifest"] and not m["deleteTags"] for m in untagged_plans(plan).values())
    assert all("package version" in m["reason"] for m in untagged_plans(plan).values())
    assert plan["summary"]["untaggedCaches"] == 2
    # Reclaimable: exactly the blobs only deleted caches hold (the untagged ones count like tags).
    assert {b["digest"] for b in plan["reclaimable"]["blobs"]} == {
        blob for k in ("gone", *UNTAGGED_DELETED) for blob in s.layers[k]
    }
    assert plan["reclaimable"]["manifestBytes"] == sum(len(s.raws[k]) for k in ("gone", *UNTAGGED_DELETED))
    assert any("untagged versions kept: 4 listed by an image index" in n for n in plan["notes"])
    assert any("1 not BuildKit caches" in n for n in plan["notes"])
    assert versions(github, s) == before_versions and github.paths("DELETE") == []  # a dry run
    # Versions are listed 2 per page: every page was followed.
    pages = {r.query.get("page", ["1"])[0] for r in github.requests if r.raw_path.endswith("/versions")}
    assert pages >= {"1", "2", "3", "4", "5", "6", "7"}

    # Apply.
    code, applied, output = gc_json(capsys, [*args, "--apply"])
    assert code == 0, output
    (repository,) = applied["repositories"]
    report = repository["report"]
    assert report["ok"] and report["capabilities"]["backend"] == "ghcr"
    assert {t["tag"]: (t["status"], t["method"]) for t in report["tags"]} == {
        "gone-buildcache": ("deleted", "manifest-delete"),
        "shared-stale-buildcache": ("deleted", "placeholder"),
    }
    assert report["summary"]["untaggedDeleted"] == 2
    assert {m["digest"]: (m["status"], m["rule"]) for m in report["manifests"]} == {
        s.digests["gone"]: ("deleted", "tags"),
        s.digests["shared"]: ("kept", "tags"),
        s.digests["feature-a-old"]: ("deleted", "untagged-cache"),
        s.digests["orphan"]: ("deleted", "untagged-cache"),
    }
    (placeholder,) = report["placeholders"]
    assert placeholder["tag"] == "shared-stale-buildcache" and placeholder["replaces"] == s.digests["shared"]
    assert ADMIN not in output

    # Exactly the planned versions and tags are left, on GitHub's side and in the registry.
    assert versions(github, s) == expected_versions(s)
    assert registry_tags(own_registry, s.repo) == {
        "main-buildcache": s.digests["main"],
        "feature-a-buildcache": s.digests["feature-a"],
        "release-1.0-buildcache": s.digests["release"],
        "shared-live-buildcache": s.digests["shared"],
        "v1": s.digests["index"],
        "app": s.digests["app"],
    }
    for key, digest in s.digests.items():
        assert present(own_registry, s.repo, digest) == (key in SURVIVORS), key
    assert not present(own_registry, s.repo, placeholder["digest"])
    # Deleted by version id, each once: gone, the two untagged caches, the placeholder.
    deletes = [r for r in github.requests if r.method == "DELETE"]
    assert len(deletes) == 4 and all(r.status == 204 for r in deletes)
    # Paced in real time: GitHub asks for at least one second between mutating requests ([G14]), and
    # the emulator (real clock here) would have answered 403 to a closer one.
    gaps = [b.at - a.at for a, b in itertools.pairwise(deletes)]
    assert min(gaps) >= 1.0, gaps
    # The plan said so beforehand: 4 REST deletions (gone, the placeholder for shared-stale, two
    # untagged caches), at 1 s apart the last starts 3 s after the first.
    pacing = "GitHub pacing: 4 package-version deletions take at least 3 s at GitHub's documented limits"
    assert any(note.startswith(pacing) for note in repository["notes"]), repository["notes"]
    assert f"cacheinspect: {own_registry.host}/{s.repo}: {pacing}" in output

    # A rerun finds nothing to do.
    calls = len(github.requests)
    code, again, _ = gc_json(capsys, [*args, "--apply"])
    assert code == 0
    (rerun,) = again["repositories"]
    assert rerun["summary"]["delete"] == 0 and rerun["summary"]["untaggedCaches"] == 0
    assert rerun["report"] is None
    assert [r for r in github.requests[calls:] if r.method == "DELETE"] == []
    assert versions(github, s) == expected_versions(s)

    # The registry's own garbage collection frees exactly what gc reported; every kept manifest
    # (caches, the index and its children) still has every blob it names.
    own_registry.stop()
    on_disk = blob_bytes(own_registry.root)
    own_registry.garbage_collect()
    freed = sum(on_disk.values()) - sum(blob_bytes(own_registry.root).values())
    reclaimable = repository["reclaimable"]
    assert freed == (
        reclaimable["bytes"]
        + reclaimable["manifestBytes"]
        + placeholder["size"]
        + sum(b["size"] for b in report["pushedBlobs"])
    )
    revived = start_registry(
        tmp_path / "revived",
        storage=own_registry.root / "data",
    )
    try:
        for key, answer in kept_documents.items():
            assert answer.status_code == 200, key
            again_answer = httpx.get(
                f"{revived.url}/v2/{s.repo}/manifests/{s.digests[key]}", headers={"Accept": ACCEPT}
            )
            assert again_answer.content == answer.content, key
            document = answer.json()
            named = [*document.get("layers", []), *document.get("manifests", [])]
            named += [document["config"]] if "config" in document else []
            for descriptor in named:
                kind = "manifests" if descriptor["mediaType"] in (OCI_MANIFEST, OCI_INDEX) else "blobs"
                url = f"{revived.url}/v2/{s.repo}/{kind}/{descriptor['digest']}"
                assert httpx.head(url, headers={"Accept": ACCEPT}).status_code == 200, (key, descriptor)
    finally:
        revived.stop()


def blob_bytes(root: Path) -> dict[str, int]:
    blobs = root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return {f"sha256:{p.parent.name}": p.stat().st_size for p in blobs.glob("*/*/data")}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- permissions and rate limits ------------------------------------------------------------------------
def test_a_token_that_cannot_delete_exits_4_with_the_reason_and_deletes_nothing(
    registry: LocalRegistry, emulate: Emulate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The branch of gone-buildcache is alive here, so the plan's first entry by digest order is the
    shared manifest (untag by placeholder), then the untagged caches: the executor must try a whole
    deletion first, so the refusal comes before any tag was re-pointed."""
    github = emulate(registry)
    s = seed(github, unique("denied"))
    before = versions(github, s), registry_tags(registry, s.repo)
    live = tmp_path / "live.txt"
    live.write_text(BRANCHES + "gone\n")
    args = [*gc_args(registry, github, s, live), "--untagged", "--apply", "--github-token", READER]
    code = run(args)
    captured = capsys.readouterr()
    assert code == 4
    assert "may not delete versions of" in captured.err and DENY_MESSAGE in captured.err
    assert "nothing was deleted" in captured.err
    assert f"hint: {TOKEN_HINT}" in captured.err
    assert READER not in captured.out + captured.err and ADMIN not in captured.out + captured.err
    assert [r.status for r in github.requests if r.method == "DELETE"] == [403]  # classified once
    assert (versions(github, s), registry_tags(registry, s.repo)) == before

    # The same refusal in --json: the repository's report is the error.
    code, document, _ = gc_json(capsys, args)
    assert code == 4
    (repository,) = document["repositories"]
    error = repository["report"]["error"]
    assert (error["code"], error["exitCode"], error["hint"]) == ("DeleteDenied", 4, TOKEN_HINT)
    assert [(m["rule"], m["deleteManifest"]) for m in repository["manifests"]] == [
        ("tags", False),
        ("untagged-cache", True),
        ("untagged-cache", True),
    ]


def test_a_429_with_retry_after_during_deletes_is_waited_out_and_the_run_completes(
    registry: LocalRegistry, emulate: Emulate, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --untagged: planning makes no REST call, the versions are listed when deleting starts."""
    github = emulate(registry)
    s = seed(github, unique("throttled"))
    args = gc_args(registry, github, s, branches)
    code, planned, _ = gc_json(capsys, args)
    assert code == 0 and github.requests == []  # a dry run without --untagged never asks GitHub
    assert any(
        "`gc --untagged` deletes those that are BuildKit caches" in n
        for n in planned["repositories"][0]["notes"]
    )

    github.add_fault("429", method="DELETE", seconds=1)
    started = time.monotonic()
    code, document, _ = gc_json(capsys, [*args, "--apply"])
    assert code == 0
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    deletes = [(r.raw_path, r.status) for r in github.requests if r.method == "DELETE"]
    assert deletes[0][1] == 429 and deletes[1] == (deletes[0][0], 204)  # the same version, retried
    assert [status for _, status in deletes[1:]] == [204, 204]  # gone-buildcache, the placeholder
    assert document["repositories"][0]["report"]["ok"]
    untagged_left = {s.digests[k]: () for k in UNTAGGED_DELETED}
    assert versions(github, s) == {**expected_versions(s), **untagged_left}

    code, again, _ = gc_json(capsys, [*args, "--untagged", "--apply"])  # the untagged caches next
    assert code == 0 and again["repositories"][0]["report"]["summary"]["untaggedDeleted"] == 2
    assert versions(github, s) == expected_versions(s)


def test_a_long_rate_limit_stops_the_run_with_exit_7_and_a_rerun_finishes(
    registry: LocalRegistry, emulate: Emulate, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github = emulate(registry)
    s = seed(github, unique("limited"))
    before = versions(github, s)
    github.add_fault("429", method="DELETE", seconds=3600)
    args = [*gc_args(registry, github, s, branches), "--untagged", "--apply"]
    code, document, _ = gc_json(capsys, args)
    assert code == 7
    report = document["repositories"][0]["report"]
    assert report["stopped"] is not None and "rate limit" in report["stopped"]
    assert "retry after" in report["stopped"]
    assert {t["status"] for t in report["tags"]} == {"not-attempted"}
    assert {m["status"] for m in report["manifests"]} == {"not-attempted"}
    assert report["summary"]["notAttempted"] == 2
    assert versions(github, s) == before  # nothing was deleted

    code = run(args)
    capsys.readouterr()
    assert code == 0
    assert versions(github, s) == expected_versions(s)


def test_with_a_time_budget_github_waits_are_bounded_by_what_is_left_of_it(
    registry: LocalRegistry,
    emulate: Emulate,
    branches: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--time-budget 10m`` hands the GitHub client the budget's remaining time as its wait allowance
    (what the allowance does to a long Retry-After: tests/integration/test_ghcr.py); the run finishes
    within it: exit 0, and the JSON says the budget was not reached."""
    from inspector.registry.github_packages import GhcrClient

    github = emulate(registry)
    s = seed(github, unique("budgeted"))
    allowances: list[float] = []
    original = GhcrClient.limit_waits

    def record(self: GhcrClient, allowance: Callable[[], float]) -> None:
        allowances.append(allowance())
        original(self, allowance)

    monkeypatch.setattr(GhcrClient, "limit_waits", record)
    args = [*gc_args(registry, github, s, branches), "--untagged", "--apply", "--time-budget", "10m"]
    code, document, _ = gc_json(capsys, args)
    assert code == 0
    assert len(allowances) == 1 and 0 < allowances[0] <= 600
    assert document["budget"]["reached"] is False and document["budget"]["deletionsLeft"] == 0
    assert versions(github, s) == expected_versions(s)


def test_a_version_over_5000_downloads_fails_alone_and_gc_exits_7(
    registry: LocalRegistry, emulate: Emulate, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/gc.md (exit codes) states this once: that version fails, the rest goes on, exit 7 (not 5).

    Derived from the code path: GitHub answers the DELETE with its downloads message ([G4]); ghcr.py maps it
    to InvalidRequest, a CacheInspectError, which the executor records for that manifest's group only
    (status ``failed``), and a report that is not ok makes gc exit PARTIAL (7).
    """
    github = emulate(registry)
    s = seed(github, unique("popular"))
    github.undeletable.add(s.digests["gone"])  # gone-buildcache: its manifest is deleted whole
    code, document, _ = gc_json(capsys, [*gc_args(registry, github, s, branches), "--apply"])
    assert code == 7
    report = document["repositories"][0]["report"]
    statuses = {t["tag"]: t["status"] for t in report["tags"]}
    assert statuses["gone-buildcache"] == "failed"
    assert statuses["shared-stale-buildcache"] == "deleted"  # the other deletion went on
    failed = next(t for t in report["tags"] if t["tag"] == "gone-buildcache")
    assert "5000 downloads" in json.dumps(failed)
    assert s.digests["gone"] in versions(github, s)  # still there


# -- policy file, reviewed plans, and where --untagged is refused ------------------------------------------
def test_a_policy_file_and_a_reviewed_plan_that_was_edited(
    registry: LocalRegistry,
    emulate: Emulate,
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    github = emulate(registry)
    s = seed(github, unique("policy"))
    policy = tmp_path / "gc.toml"
    policy.write_text(
        f"""
version = 1
[defaults]
tag-templates = ["{{branch}}-buildcache"]
protect = ["main", "release/*"]
branches-file = "{branches.name}"

[[repository]]
name = "{registry.host}/{s.repo}"
backend = "ghcr"
package = "{s.repo}"
github-api-url = "{github.url}"
untagged = true
"""
    )
    plan_file = tmp_path / "plan.json"
    code, planned, _ = gc_json(capsys, ["gc", "--policy", str(policy), "--plan-out", str(plan_file)])
    assert code == 0
    (plan,) = planned["repositories"]
    assert set(untagged_plans(plan)) == {s.digests[k] for k in UNTAGGED_DELETED}

    # Someone adds an index child to the reviewed plan as if it were an untagged cache.
    document = json.loads(plan_file.read_text())
    document["repositories"][0]["manifests"].append(
        {
            "digest": s.digests["child-cache"],
            "deleteTags": [],
            "keptTags": [],
            "deleteManifest": True,
            "manifestSize": 1,
            "reason": "edited in",
            "rule": "untagged-cache",
        }
    )
    plan_file.write_text(json.dumps(document))
    apply = ["gc", "--apply-plan", str(plan_file), "--policy", str(policy)]
    code, applied, _ = gc_json(capsys, apply)
    assert code == 0
    (repository,) = applied["repositories"]
    assert applied["mode"] == "apply-plan"
    assert any(
        n.startswith(f"{s.digests['child-cache'][:19]}: no longer an untagged cache (listed by image index")
        for n in repository["notes"]
    )
    assert s.digests["child-cache"] not in {m["digest"] for m in repository["report"]["manifests"]}
    assert versions(github, s) == expected_versions(s)
    assert present(registry, s.repo, s.digests["child-cache"])


@pytest.mark.parametrize("host_kind", ["distribution", "ghcr-with-oci"])
def test_untagged_is_refused_where_the_api_cannot_list_untagged_manifests(
    registry: LocalRegistry,
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    host_kind: str,
) -> None:
    repository = f"{registry.host}/acme/plain" if host_kind == "distribution" else "ghcr.io/acme/app"
    extra = ["--backend", "oci"] if host_kind == "ghcr-with-oci" else []
    code = run(["gc", repository, *RULES, "--branches-file", str(branches), "--untagged", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert "--untagged needs an API that lists untagged manifests" in err
    if host_kind == "distribution":
        assert "registry garbage-collect --delete-untagged" in err
    else:
        assert "--backend auto or ghcr" in err

    policy = tmp_path / "gc.toml"
    policy.write_text(
        f'[defaults]\ntag-templates = ["{{branch}}-buildcache"]\nuntagged = true\n'
        f'[[repository]]\nname = "{registry.host}/acme/plain"\n'
    )
    assert run(["gc", "--policy", str(policy)]) == 2
    assert "registry garbage-collect --delete-untagged" in capsys.readouterr().err


# -- the backend on its own ----------------------------------------------------------------------------------
def test_backend_counts_a_version_deleted_meanwhile_as_gone_and_waits_for_a_placeholder_listing(
    registry: LocalRegistry, emulate: Emulate
) -> None:
    github = emulate(registry)
    s = seed(github, unique("backend"))
    sleeps: list[float] = []
    repository = Repository(registry.host, s.repo)
    with (
        RegistryClient(ClientOptions()) as client,
        GhcrClient(GhcrOptions(base_url=github.url), token=ADMIN, env={}) as rest,
    ):
        backend = GhcrBackend(client, repository, rest, sleep=sleeps.append)
        capabilities = backend.capabilities()
        assert (capabilities.backend, capabilities.can_delete, capabilities.tag_delete) == (
            "ghcr",
            True,
            "placeholder",
        )
        assert f"org package acme/{s.name}, 14 versions" in capabilities.detail
        listings = len([r for r in github.requests if r.raw_path.endswith("/versions")])

        # Deleted by someone else after the listing: GitHub's 404, checked with a GET, is "already gone".
        orphan = next(v for v in backend.versions() if v.digest == s.digests["orphan"])
        assert rest.delete_version(backend.package(), orphan.id) == "deleted"
        assert backend.delete_manifest(Digest(s.digests["orphan"])) is False
        # A digest the listing never had is looked up once more, then is gone.
        assert backend.delete_manifest(sha256_digest(b"never pushed")) is False
        relisted = len([r for r in github.requests if r.raw_path.endswith("/versions")]) - listings
        assert relisted == 7  # one full listing, 2 versions a page
        assert backend.delete_manifest(Digest(s.digests["gone"])) is True

        # A placeholder GitHub does not list yet: waited for (1 + 2 + 4 s), then reported, not guessed.
        with pytest.raises(CacheInspectError, match="lists no package version for placeholder"):
            backend._delete_placeholder(sha256_digest(b"not listed yet"))
        assert sleeps == [1.0, 2.0, 4.0]
    assert not present(registry, s.repo, s.digests["gone"])
    assert versions(github, s) == {
        **expected_versions(s),
        s.digests["feature-a-old"]: (),
        s.digests["shared"]: ("shared-live-buildcache", "shared-stale-buildcache"),
    }


def lone_cache(github: GitHubEmulator, name: str) -> Scenario:
    """A package whose only version is the cache of a branch that is gone."""
    with httpx.Client(timeout=10) as http:
        digest, raw, _ = Pusher(github, "acme", name, http).cache(
            "gone-buildcache", [b"base " + name.encode(), b"gone " + name.encode()], age=timedelta(days=3)
        )
    return Scenario("acme", name, {"gone": digest}, {"gone": raw}, {})


def test_a_package_whose_every_version_would_go_keeps_its_last_version(
    registry: LocalRegistry, emulate: Emulate, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10 point 8. GitHub refuses to delete a package's last version (400, registries.md [G11]).

    By hand: `gone-buildcache` is the only tag and `gone` is not a live branch, so the plan deletes its
    manifest D, the package's only version. gc keeps D (kept: "last version of the package"), and the
    stale tag still goes: re-pointed to a placeholder P (now two versions), P's version deleted. Exit 0,
    and GitHub was never asked to delete D (no 400)."""
    github = emulate(registry)
    s = lone_cache(github, unique("lone"))
    code, applied, output = gc_json(capsys, [*gc_args(registry, github, s, branches), "--apply"])
    assert code == 0, output
    report = applied["repositories"][0]["report"]
    assert report["ok"]
    (manifest,) = report["manifests"]
    assert (manifest["digest"], manifest["status"]) == (s.digests["gone"], "kept")
    assert manifest["detail"].startswith("last version of the package")
    assert {t["tag"]: (t["status"], t["method"]) for t in report["tags"]} == {
        "gone-buildcache": ("deleted", "placeholder")
    }
    assert [r.status for r in github.requests if r.method == "DELETE"] == [204]  # the placeholder's
    assert versions(github, s) == {s.digests["gone"]: ()}
    assert present(registry, s.repo, s.digests["gone"]) and registry_tags(registry, s.repo) == {}

    # A rerun has nothing left to do (the tag is gone, the version stays): exit 0 again, no DELETE.
    calls = len(github.requests)
    assert gc_json(capsys, [*gc_args(registry, github, s, branches), "--apply"])[0] == 0
    assert [r for r in github.requests[calls:] if r.method == "DELETE"] == []


def test_delete_empty_packages_deletes_the_package_instead_of_its_last_version(
    registry: LocalRegistry, emulate: Emulate, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """By hand: as above, but the flag lets gc take D with its package: one DELETE of the package
    (delete-package-for-org), the manifest and its stale tag `deleted`; the registry has neither."""
    github = emulate(registry)
    s = lone_cache(github, unique("empty"))
    args = [*gc_args(registry, github, s, branches), "--apply", "--delete-empty-packages"]
    code, applied, output = gc_json(capsys, args)
    assert code == 0, output
    report = applied["repositories"][0]["report"]
    assert [(m["digest"], m["status"]) for m in report["manifests"]] == [(s.digests["gone"], "deleted")]
    assert {t["tag"]: t["status"] for t in report["tags"]} == {"gone-buildcache": "deleted"}
    assert [(r.raw_path, r.status) for r in github.requests if r.method == "DELETE"] == [
        (f"/orgs/acme/packages/container/{s.name}", 204)
    ]
    assert not present(registry, s.repo, s.digests["gone"])


def test_the_last_look_leaves_a_version_that_gained_a_tag_the_plan_does_not_delete(
    registry: LocalRegistry,
    emulate: Emulate,
    branches: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The window before a version DELETE: planned with `gone-buildcache` only; then someone tags the
    same manifest `hotfix` (before the run lists, and after it lists). The backend's GET right before
    the DELETE shows `hotfix`, which the plan does not delete: ManifestKept, nothing deleted."""
    github = emulate(registry)
    s = seed(github, unique("late-tag"))
    plan_file = tmp_path / "plan.json"
    assert run([*gc_args(registry, github, s, branches), "--plan-out", str(plan_file)]) == 0
    capsys.readouterr()
    (plan,) = plan_from_json(plan_file.read_bytes(), str(plan_file))
    gone = Digest(s.digests["gone"])
    repository = Repository(registry.host, s.repo)
    with (
        httpx.Client(timeout=10) as http,
        RegistryClient(ClientOptions()) as client,
        GhcrClient(GhcrOptions(base_url=github.url), token=ADMIN, env={}) as rest,
    ):
        pusher = Pusher(github, "acme", s.name, http)
        # tagged after planning, before the run lists: only the plan's tags may be on it
        pusher.put(s.raws["gone"], OCI_MANIFEST, "hotfix")
        backend = GhcrBackend(client, repository, rest)
        backend.expect(plan)
        backend.capabilities()
        with pytest.raises(ManifestKept, match="hotfix"):
            backend.delete_manifest(gone)
        # tagged after the run listed it: the tags it had when listed are all it may have
        other = GhcrBackend(client, repository, rest)
        other.capabilities()
        pusher.put(s.raws["shared"], OCI_MANIFEST, "late")
        with pytest.raises(ManifestKept, match="late"):
            other.delete_manifest(Digest(s.digests["shared"]))
    assert [r for r in github.requests if r.method == "DELETE"] == []
    assert present(registry, s.repo, s.digests["gone"]) and present(registry, s.repo, s.digests["shared"])


# -- planning untagged caches (pure, no registry) ---------------------------------------------------------


def _cache_document(salt: str, shared: bytes = b"shared layer") -> ManifestDocument:
    layers = [
        {"mediaType": LAYER, "digest": sha(data), "size": len(data)} for data in (shared, salt.encode())
    ]
    config = {"mediaType": CACHE_CONFIG, "digest": sha(f"config {salt}".encode()), "size": 9}
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers})
    return parse_manifest(raw.encode())


def test_untagged_caches_are_planned_once_never_over_a_tag_and_count_against_max_deletes() -> None:
    kept, stale, orphan = _cache_document("kept"), _cache_document("stale"), _cache_document("orphan")
    image = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": IMAGE_CONFIG, "digest": sha(b"image"), "size": 5},
                "layers": [],
            }
        ).encode()
    )
    inventory = Inventory(
        parse_repository("r.test/acme/app"),
        (
            TagInfo("live-buildcache", kept.digest, "cache"),
            TagInfo("gone-buildcache", stale.digest, "cache"),
        ),
        MappingProxyType({}),
    )
    found = [(d, f"version of {name}") for name, d in (("kept", kept), ("stale", stale), ("orphan", orphan))]
    inventory = add_untagged(inventory, [*found, (image, "not a cache"), (orphan, "twice")], ["a note"])
    assert [u.digest for u in inventory.untagged] == [kept.digest, stale.digest, orphan.digest]
    rules = Rules(templates=(parse_template("{branch}-buildcache"),))
    live = LiveRefs("test", frozenset({"live"}), None)
    plan = plan_repository(inventory, rules, live, datetime.now(UTC), max_deletes=1)

    assert [(m.digest, m.rule, m.delete_tags, m.delete_manifest) for m in plan.manifests] == [
        (stale.digest, "tags", ("gone-buildcache",), True),  # the tag deletion covers it
        (orphan.digest, "untagged-cache", (), True),
    ]
    assert plan.untagged_deletions[0].reason == "untagged BuildKit cache: version of orphan"
    assert f"{kept.digest.short}: listed as untagged, but live-buildcache resolves to it: kept" in plan.notes
    assert "a note" in plan.notes
    assert set(plan.reclaimable) == {
        sha(b"stale"),
        sha(b"config stale"),
        sha(b"orphan"),
        sha(b"config orphan"),
    }
    with pytest.raises(PlanRefused, match="1 tags and 1 untagged caches, more than --max-deletes 1"):
        check_max_deletes(plan, 1)

    document = plan_to_json([plan], created_at=datetime.now(UTC), mode="dry-run")
    validate_json(document, SCHEMA)
    (back,) = plan_from_json(json.dumps(document).encode(), "plan.json")
    assert back.manifests == plan.manifests
    document["repositories"][0]["manifests"][1]["keptTags"] = ["live-buildcache"]
    with pytest.raises(InvalidContent, match="an untagged-cache entry names tags"):
        plan_from_json(json.dumps(document).encode(), "plan.json")
