"""`cacheinspect gc --backend google` against Artifact Registry's contract in front of a real docker-registry.

``tests.harness.gar_server`` adds what Artifact Registry answers beyond distribution: the ``tags/list``
``manifest`` map (every manifest, tagged or not, with ``timeUploadedMs``) and the refusal to delete a
digest a tag still points at (``GOOGLE_MANIFEST_DANGLING_TAG``). Everything is pushed through it, so it
knows every manifest; upload times are set afterwards, as only the service sets them. The expected
plans below are derived by hand from the rules in docs/gc.md and from which time the map gives.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cli import run
from tests.harness.gar_server import ArtifactRegistryContract, artifact_registry
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry, start_registry
from tests.harness.support import require_registry_binary, run_cli, validate_json
from tests.harness.vendor_proxy import VendorProxy

SCHEMA = schema("gc-plan")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
DAY = timedelta(days=1)
NOW = datetime.now(UTC)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Pushes blobs and manifests through the contract server with httpx."""

    def __init__(self, proxy: VendorProxy, name: str, http: httpx.Client) -> None:
        self.http = http
        self.base = f"http://{proxy.host}/v2/{name}"

    def blob(self, data: bytes, media_type: str = LAYER, **extra: Any) -> dict[str, Any]:
        digest = sha(data)
        if self.http.head(f"{self.base}/blobs/{digest}").status_code != 200:
            started = self.http.post(f"{self.base}/blobs/uploads/")
            location = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest})
            assert self.http.put(location, content=data).status_code == 201
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def put(self, raw: bytes, media_type: str, tag: str | None = None) -> str:
        answer = self.http.put(
            f"{self.base}/manifests/{tag or sha(raw)}", content=raw, headers={"Content-Type": media_type}
        )
        assert answer.status_code == 201, answer.text
        return sha(raw)

    def cache_manifest(self, unique: bytes, created: datetime) -> bytes:
        stamp = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        layers = [
            self.blob(
                data, annotations={"buildkit/createdat": stamp, "containerd.io/uncompressed": sha(data)}
            )
            for data in (b"base layer " * 50, unique)
        ]
        config = json.dumps(
            {
                "layers": [{"blob": d["digest"], "parent": i - 1} for i, d in enumerate(layers)],
                "records": [{"digest": sha(unique), "layers": [{"layer": 1}]}],
            },
            separators=(",", ":"),
        ).encode()
        document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": self.blob(config, CACHE_CONFIG)}
        return json.dumps({**document, "layers": layers}, separators=(",", ":")).encode()

    def cache(self, tag: str | None, unique: bytes, *, created: datetime) -> str:
        return self.put(self.cache_manifest(unique, created), OCI_MANIFEST, tag)

    def image(self, data: bytes, arch: str = "amd64") -> bytes:
        config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}).encode()
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": self.blob(config, IMAGE_CONFIG),
                "layers": [self.blob(data)],
            }
        ).encode()
        self.put(raw, OCI_MANIFEST)
        return raw


@dataclass
class Scenario:
    proxy: VendorProxy
    contract: ArtifactRegistryContract
    name: str
    digests: dict[str, str]

    @property
    def repo(self) -> str:
        return f"{self.proxy.host}/{self.name}"

    def listing(self) -> dict[str, list[str]]:
        """What the contract server's manifest map lists now: digest -> tags."""
        answer = httpx.get(f"http://{self.proxy.host}/v2/{self.name}/tags/list")
        return {d: m["tag"] for d, m in answer.json()["manifest"].items()}


def seed(proxy: VendorProxy, contract: ArtifactRegistryContract, name: str) -> Scenario:
    d: dict[str, str] = {}
    with httpx.Client(timeout=10) as http:
        push = Pusher(proxy, name, http)
        d["main"] = push.cache("main-buildcache", b"main", created=NOW - DAY)
        # feature-a's cache was exported twice: the first manifest stays, untagged (registries.md §1).
        d["feature-a-old"] = push.cache("feature-a-buildcache", b"feature a, before", created=NOW - 5 * DAY)
        d["feature-a"] = push.cache("feature-a-buildcache", b"feature a", created=NOW - 2 * DAY)
        d["gone"] = push.cache("gone-buildcache", b"gone", created=NOW - 3 * DAY)
        # Live branches whose two clocks disagree: the upload time decides, not buildkit/createdat.
        d["old"] = push.cache("old-buildcache", b"old", created=NOW - DAY)  # uploaded 40 days ago
        d["young"] = push.cache("young-buildcache", b"young", created=NOW - 60 * DAY)  # uploaded yesterday
        shared = push.cache_manifest(b"shared", NOW - DAY)
        d["shared"] = push.put(shared, OCI_MANIFEST, "shared-stale-buildcache")
        push.put(shared, OCI_MANIFEST, "shared-live-buildcache")
        d["orphan"] = push.cache(None, b"orphan", created=NOW - 4 * DAY)
        # A tagged multi-arch image index: a platform image, a cache-shaped child, an attestation.
        amd64 = push.image(b"amd64")
        d["amd64"] = sha(amd64)
        child = push.cache_manifest(b"child", NOW - 9 * DAY)
        d["child-cache"] = push.put(child, OCI_MANIFEST)
        statement = push.blob(
            b'{"_type":"https://in-toto.io/Statement/v0.1"}', "application/vnd.in-toto+json"
        )
        attestation = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": push.blob(b'{"architecture":"unknown","os":"unknown"}', IMAGE_CONFIG),
                "layers": [statement],
            }
        ).encode()
        d["attestation"] = push.put(attestation, OCI_MANIFEST)
        entries = [
            {"mediaType": OCI_MANIFEST, "digest": sha(amd64), "size": len(amd64)},
            {"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)},
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha(attestation),
                "size": len(attestation),
                "annotations": {
                    "vnd.docker.reference.digest": d["amd64"],
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            },
        ]
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        d["index"] = push.put(index, OCI_INDEX, "v1")
        d["plain"] = sha(push.image(b"plain"))  # untagged, not a cache
    now = datetime.now(UTC)
    for key, digest in d.items():
        contract.set_uploaded(name, digest, now - (40 * DAY if key == "old" else DAY))
    return Scenario(proxy, contract, name, d)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    require_registry_binary()
    instance = start_registry(tmp_path_factory.mktemp("gar-registry"))
    yield instance
    instance.stop()


@pytest.fixture
def gar(registry: LocalRegistry) -> Iterator[tuple[VendorProxy, ArtifactRegistryContract]]:
    with artifact_registry(registry.host) as started:
        yield started


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    path = tmp_path / "branches.txt"
    path.write_text("main\nfeature/a\nold\nyoung\nshared-live\n")
    return path


def gc_args(scenario: Scenario, branches: Path, *extra: str) -> list[str]:
    return [
        "gc",
        scenario.repo,
        "-t",
        "{branch}-buildcache",
        "--branches-file",
        str(branches),
        "--protect",
        "main",
        "--max-age",
        "30d",
        "--backend",
        "google",
        "--plain-http",
        *extra,
    ]


def gc_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict[str, Any], str]:
    code = run([*args, "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    validate_json(document, SCHEMA)
    return code, document, captured.err


def test_plan_ages_by_upload_time_and_selects_untagged_caches(
    gar: tuple[VendorProxy, ArtifactRegistryContract], branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = seed(*gar, "acme/plan-cache")
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--untagged"))
    assert code == 0, err
    plan = document["repositories"][0]
    actions = {t["tag"]: (t["action"], t["rule"]) for t in plan["tags"]}
    # By hand: gone has no live branch; old's branch lives, but the map says it was uploaded 40 days
    # ago > 30d (max-age on timeUploadedMs) although its layers say 1 day; young's layers say 60 days
    # but it was uploaded yesterday: kept; shared-stale's branch is gone, its twin's lives.
    assert actions["gone-buildcache"] == ("delete", "branch-gone")
    assert actions["old-buildcache"] == ("delete", "max-age")
    assert actions["young-buildcache"] == ("keep", "kept")
    assert actions["main-buildcache"] == ("keep", "protected")
    assert actions["shared-stale-buildcache"] == ("delete", "branch-gone")
    reason = next(t["reason"] for t in plan["tags"] if t["tag"] == "old-buildcache")
    assert reason.startswith("pushed 40 days ago"), reason
    assert any("timeUploadedMs" in note for note in plan["notes"]), plan["notes"]
    untagged = {m["digest"] for m in plan["manifests"] if m["rule"] == "untagged-cache"}
    # Untagged in the map: feature-a-old and orphan (caches), child-cache and attestation (listed by
    # the index v1), amd64 (listed) and plain (not a cache): only the first two are selected.
    d = scenario.digests
    assert untagged == {d["feature-a-old"], d["orphan"]}


def test_apply_untags_before_deleting_and_never_touches_an_image_or_child(
    gar: tuple[VendorProxy, ArtifactRegistryContract], branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = seed(*gar, "acme/apply-cache")
    d = scenario.digests
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--untagged", "--apply"))
    report = document["repositories"][0]["report"]
    assert code == 0, (err, report["tags"], report["manifests"])
    assert report["capabilities"]["backend"] == "google"
    left = scenario.listing()
    assert not {d["gone"], d["old"], d["feature-a-old"], d["orphan"]} & set(left), left
    assert left[d["shared"]] == ["shared-live-buildcache"]  # only its stale tag went
    for key in ("main", "feature-a", "young", "index", "amd64", "child-cache", "attestation", "plain"):
        assert d[key] in left, key
    deletes = [(e.path.rsplit("/", 1)[1], e.status) for e in scenario.proxy.requests("DELETE")]
    assert not [s for _, s in deletes if s == 400], deletes  # never a GOOGLE_MANIFEST_DANGLING_TAG
    order = [ref for ref, status in deletes if status == 202]
    # Google refuses a tagged digest: each tag the plan removes goes before its manifest's digest.
    assert order.index("gone-buildcache") < order.index(d["gone"])
    assert order.index("old-buildcache") < order.index(d["old"])
    assert d["shared"] not in order


def test_a_tag_added_since_planning_keeps_the_manifest(
    gar: tuple[VendorProxy, ArtifactRegistryContract],
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The registry's DANGLING_TAG refusal for a tag the plan does not know is reported kept, not failed."""
    scenario = seed(*gar, "acme/race-cache")
    d = scenario.digests
    plan_file = tmp_path / "plan.json"
    code, _, err = gc_json(capsys, gc_args(scenario, branches, "--plan-out", str(plan_file)))
    assert code == 0, err
    base = f"http://{scenario.proxy.host}/v2/{scenario.name}/manifests"
    raw = httpx.get(f"{base}/gone-buildcache", headers={"Accept": OCI_MANIFEST}).content
    assert (
        httpx.put(f"{base}/release", content=raw, headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    )
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--apply-plan", str(plan_file)))
    manifests = {m["digest"]: m for m in document["repositories"][0]["report"]["manifests"]}
    assert (manifests[d["gone"]]["status"], manifests[d["gone"]]["detail"]) == (
        "kept",
        "release resolves to it",
    )
    assert scenario.listing()[d["gone"]] == ["release"]
    assert d["old"] not in scenario.listing()  # the other deletion went ahead
    assert code == 0, err


def test_the_registrys_dangling_tag_refusal_is_a_kept_manifest(
    gar: tuple[VendorProxy, ArtifactRegistryContract],
) -> None:
    """A tag appearing between the executor's last look and the DELETE: Google refuses the digest
    (GOOGLE_MANIFEST_DANGLING_TAG, [C2][C4]); the backend reports that as kept, and the manifest stays."""
    from inspector.gc.backends.base import ManifestKept
    from inspector.gc.backends.google import GoogleBackend
    from inspector.oci.digest import Digest
    from inspector.oci.reference import parse_repository
    from inspector.registry.client import ClientOptions, RegistryClient

    proxy, _ = gar
    with httpx.Client(timeout=10) as http:
        digest = Pusher(proxy, "acme/dangling", http).cache("late-tag", b"dangling", created=NOW)
    with RegistryClient(ClientOptions()) as client:
        backend = GoogleBackend(client, parse_repository(f"{proxy.host}/acme/dangling"))
        with pytest.raises(ManifestKept, match="late-tag"):
            backend.delete_manifest(Digest(digest))
    refusals = [e for e in proxy.requests("DELETE") if e.status == 400]
    assert [e.source for e in refusals] == ["artifact-registry [C4]"]
    assert (
        httpx.head(
            f"http://{proxy.host}/v2/acme/dangling/manifests/late-tag", headers={"Accept": OCI_MANIFEST}
        ).status_code
        == 200
    )


def test_a_map_that_calls_a_tagged_cache_untagged_does_not_get_it_deleted(
    gar: tuple[VendorProxy, ArtifactRegistryContract],
    branches: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The map is not trusted over the tags: main-buildcache resolves to the digest it lists untagged."""
    scenario = seed(*gar, "acme/lying-cache")
    d = scenario.digests
    scenario.contract.lie_untagged.add(d["main"])
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--untagged", "--apply"))
    assert code == 0, err
    plan = document["repositories"][0]
    assert d["main"] not in {m["digest"] for m in plan["manifests"]}
    assert f"{d['main'][:19]}: listed as untagged, but main-buildcache resolves to it: kept" in plan["notes"]
    assert d["main"] in scenario.listing()


def test_apply_plan_selects_untagged_caches_again(
    gar: tuple[VendorProxy, ArtifactRegistryContract],
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reviewed plan's untagged caches are selected again from a fresh map: one tagged since is left out."""
    scenario = seed(*gar, "acme/review-cache")
    d = scenario.digests
    plan_file = tmp_path / "plan.json"
    code, _, err = gc_json(capsys, gc_args(scenario, branches, "--untagged", "--plan-out", str(plan_file)))
    assert code == 0, err
    base = f"http://{scenario.proxy.host}/v2/{scenario.name}/manifests"
    raw = httpx.get(f"{base}/{d['orphan']}", headers={"Accept": OCI_MANIFEST}).content
    assert (
        httpx.put(f"{base}/adopted", content=raw, headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    )
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--apply-plan", str(plan_file)))
    assert code == 0, err
    plan = document["repositories"][0]
    assert f"{d['orphan'][:19]}: no longer an untagged cache (tagged (adopted)): not deleted" in plan["notes"]
    left = scenario.listing()
    assert left[d["orphan"]] == ["adopted"]
    assert d["feature-a-old"] not in left  # the other untagged cache went


def test_untagged_is_refused_without_a_listing_backend(registry: LocalRegistry) -> None:
    """--backend oci cannot list untagged manifests; google can: the CLI says which, exit 2."""
    done = run_cli("gc", f"{registry.host}/acme/x", "-t", "{branch}-c", "--untagged", "--plain-http")
    assert done.returncode == 2
    assert "only the GHCR, ECR and Google backends can" in done.stderr.splitlines()[0]


def test_gcr_string_times_are_read_too(
    registry: LocalRegistry, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GCR sends timeUploadedMs as a string (go-containerregistry list.go): the same plan results."""
    with artifact_registry(registry.host, gcr=True) as (proxy, contract):
        scenario = seed(proxy, contract, "acme/gcr-cache")
        raw = httpx.get(f"http://{proxy.host}/v2/acme/gcr-cache/tags/list").json()
        assert isinstance(raw["manifest"][scenario.digests["old"]]["timeUploadedMs"], str)
        code, document, err = gc_json(capsys, gc_args(scenario, branches))
    assert code == 0, err
    actions = {t["tag"]: t["rule"] for t in document["repositories"][0]["tags"]}
    assert actions["old-buildcache"] == "max-age"  # uploaded 40 days ago, by the string time


def test_emit_gar_cleanup_policy_prints_json_and_what_it_cannot_say() -> None:
    """The real CLI, no request sent (gcr.io is unreachable here): JSON on stdout, one line per gap on stderr."""
    done = run_cli(
        "gc",
        "europe-docker.pkg.dev/acme/caches/app",
        "-t",
        "cache-{branch}",
        "--max-age",
        "14d",
        "--untagged",
        "--emit-gar-cleanup-policy",
    )
    assert done.returncode == 0, done.stderr
    policies = json.loads(done.stdout)
    assert [p["name"] for p in policies] == ["cacheinspect-untagged", "cacheinspect-max-age-1"]
    # the package is the image inside PROJECT/REPOSITORY: "app"
    assert policies[1]["condition"]["packageNamePrefixes"] == ["app"]
    lines = done.stderr.splitlines()
    assert lines and all(
        line.startswith("cacheinspect: not in the Artifact Registry policy: ") for line in lines
    )
    refused = run_cli("gc", "gcr.io/p/app", "-t", "c-{branch}", "--emit-gar-cleanup-policy", "--apply")
    assert refused.returncode == 2
    assert "--emit-gar-cleanup-policy only prints a policy" in refused.stderr
