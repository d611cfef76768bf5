"""`cacheinspect gc --backend ecr`: moto's ECR API (server mode, real boto3) beside a real docker-registry.

Every manifest is pushed to the registry and PutImage'd to moto with the registry's digest
(``tests.harness.ecr_server``). gc runs in-process through ``inspector.cli.run`` with ``--backend ecr
--ecr-registry-id`` and ``AWS_ENDPOINT_URL_ECR`` pointing at moto, as it would against
``<account>.dkr.ecr.<region>.amazonaws.com``. The expected plan below is derived by hand from the
rules in README (gc) and from which time ECR's DescribeImages gives (``imagePushedAt``), not from a run.
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
from tests.harness.ecr_server import ACCOUNT, REGION, EcrMirror, EcrServer, ecr_server
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry, start_registry
from tests.harness.support import require_registry_binary, run_cli, validate_json

SCHEMA = schema("gc-plan")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
DAY = timedelta(days=1)
NOW = datetime.now(UTC)  # for buildkit/createdat only: whole days matter there


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Pushes to the registry with httpx and mirrors every manifest into moto's ECR repository."""

    def __init__(self, registry: LocalRegistry, ecr: EcrMirror, http: httpx.Client) -> None:
        self.ecr, self.http = ecr, http
        self.base = f"{registry.url}/v2/{ecr.name}"

    def blob(self, data: bytes, media_type: str = LAYER, **extra: Any) -> dict[str, Any]:
        digest = sha(data)
        if self.http.head(f"{self.base}/blobs/{digest}").status_code != 200:
            started = self.http.post(f"{self.base}/blobs/uploads/")
            location = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest})
            assert self.http.put(location, content=data).status_code == 201
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def put(self, raw: bytes, media_type: str, tag: str | None = None, *, ecr: bool = True) -> str:
        answer = self.http.put(
            f"{self.base}/manifests/{tag or sha(raw)}", content=raw, headers={"Content-Type": media_type}
        )
        assert answer.status_code == 201, answer.text
        if ecr:
            self.ecr.put(raw, media_type, tag)
        return sha(raw)

    def cache(self, tag: str | None, unique: bytes, *, created: datetime, ecr_tag: bool = True) -> str:
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
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": self.blob(config, CACHE_CONFIG),
                "layers": layers,
            },
            separators=(",", ":"),
        ).encode()
        digest = self.put(raw, OCI_MANIFEST, tag, ecr=False)
        self.ecr.put(raw, OCI_MANIFEST, tag if ecr_tag else None)
        return digest

    def image(self, tag: str | None, data: bytes, arch: str = "amd64") -> tuple[str, bytes]:
        config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}).encode()
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": self.blob(config, IMAGE_CONFIG),
                "layers": [self.blob(data)],
            }
        ).encode()
        return self.put(raw, OCI_MANIFEST, tag), raw


@dataclass
class Scenario:
    registry: LocalRegistry
    ecr: EcrMirror
    digests: dict[str, str]

    @property
    def repo(self) -> str:
        return f"{self.registry.host}/{self.ecr.name}"


def seed(registry: LocalRegistry, server: EcrServer, name: str) -> Scenario:
    mirror = EcrMirror(server, name)
    d: dict[str, str] = {}
    with httpx.Client(timeout=10) as http:
        push = Pusher(registry, mirror, http)
        d["main"] = push.cache("main-buildcache", b"main", created=NOW - DAY)
        # feature-a's cache was overwritten: ECR keeps the old image untagged (moto's PutImage would
        # delete it instead, so the old one is put untagged and the new one takes the tag).
        d["feature-a-old"] = push.cache(None, b"feature a, before", created=NOW - 5 * DAY)
        d["feature-a"] = push.cache("feature-a-buildcache", b"feature a", created=NOW - 2 * DAY)
        d["gone"] = push.cache("gone-buildcache", b"gone", created=NOW - 3 * DAY)
        # Live branches whose two clocks disagree: ECR's push time decides, not buildkit/createdat.
        d["old"] = push.cache("old-buildcache", b"old", created=NOW - DAY)  # pushed 40 days ago
        d["young"] = push.cache("young-buildcache", b"young", created=NOW - 60 * DAY)  # pushed yesterday
        d["shared"] = push.cache("shared-stale-buildcache", b"shared", created=NOW - DAY)
        raw = push.http.get(
            f"{push.base}/manifests/shared-stale-buildcache", headers={"Accept": OCI_MANIFEST}
        ).content
        push.put(raw, OCI_MANIFEST, "shared-live-buildcache")
        d["orphan"] = push.cache(None, b"orphan", created=NOW - 4 * DAY)
        # A tagged multi-arch image index: a platform image, a cache-shaped child, an attestation.
        d["amd64"], amd64 = push.image(None, b"amd64")
        d["child-cache"] = push.cache(None, b"child", created=NOW - 9 * DAY)
        child = push.http.get(
            f"{push.base}/manifests/{d['child-cache']}", headers={"Accept": OCI_MANIFEST}
        ).content
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
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
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
                ],
            }
        ).encode()
        d["index"] = push.put(index, OCI_INDEX, "v1")
        d["plain"], _ = push.image(None, b"plain")  # untagged, not a cache
    now = datetime.now(UTC)  # push times relative to the moment gc runs, not to the module's import
    for key, digest in d.items():
        mirror.set_times(digest, pushed=now - (40 * DAY if key == "old" else DAY))
    return Scenario(registry, mirror, d)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    require_registry_binary()
    instance = start_registry(tmp_path_factory.mktemp("ecr-registry"))
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[EcrServer]:
    with ecr_server() as started:
        yield started


@pytest.fixture
def aws_env(server: EcrServer, monkeypatch: pytest.MonkeyPatch) -> EcrServer:
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-docker-config")
    return server


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
        "ecr",
        "--ecr-registry-id",
        ACCOUNT,
        "--aws-region",
        REGION,
        *extra,
    ]


def gc_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict[str, Any], str]:
    code = run([*args, "--json"])
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    validate_json(document, SCHEMA)
    return code, document, captured.err


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    path = tmp_path / "branches.txt"
    path.write_text("main\nfeature/a\nold\nyoung\nshared-live\n")
    return path


def test_plan_ages_by_push_time_and_selects_untagged_caches(
    registry: LocalRegistry, aws_env: EcrServer, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = seed(registry, aws_env, "acme/plan-cache")
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--untagged"))
    assert code == 0, err
    plan = document["repositories"][0]
    actions = {t["tag"]: (t["action"], t["rule"]) for t in plan["tags"]}
    # By hand: gone has no live branch (rule 6); old's branch lives, but ECR says it was pushed 40
    # days ago > 30d (rule 7 on imagePushedAt) although its layers say 1 day; young's layers say 60
    # days but it was pushed yesterday: kept; shared-stale's branch is gone.
    assert actions["gone-buildcache"] == ("delete", "branch-gone")
    assert actions["old-buildcache"] == ("delete", "max-age")
    assert actions["young-buildcache"] == ("keep", "kept")
    assert actions["main-buildcache"] == ("keep", "protected")
    assert actions["shared-stale-buildcache"] == ("delete", "branch-gone")
    reason = next(t["reason"] for t in plan["tags"] if t["tag"] == "old-buildcache")
    assert reason.startswith("pushed 40 days ago"), reason
    untagged = {m["digest"] for m in plan["manifests"] if m["rule"] == "untagged-cache"}
    # Untagged in ECR: feature-a-old and orphan (caches), child-cache and attestation (listed by the
    # index v1), amd64 (listed) and plain (not a cache): only the first two are selected.
    d = scenario.digests
    assert untagged == {d["feature-a-old"], d["orphan"]}


def test_apply_deletes_with_batch_delete_image_and_keeps_what_kept_tags_need(
    registry: LocalRegistry, aws_env: EcrServer, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = seed(registry, aws_env, "acme/apply-cache")
    d = scenario.digests
    code, document, _ = gc_json(capsys, gc_args(scenario, branches, "--untagged", "--apply"))
    report = document["repositories"][0]["report"]
    assert code == 0, (report["tags"], report["manifests"])
    assert report["capabilities"]["backend"] == "ecr"
    left = scenario.ecr.tags()
    gone = {d["gone"], d["old"], d["feature-a-old"], d["orphan"]}
    assert not gone & set(left), left
    # shared lost only its stale tag (BatchDeleteImage by imageTag); the image stays for shared-live.
    assert left[d["shared"]] == ("shared-live-buildcache",)
    for key in ("main", "feature-a", "young", "index", "amd64", "child-cache", "attestation", "plain"):
        assert d[key] in left, key
    statuses = {t["tag"]: t["status"] for t in report["tags"]}
    assert statuses == {
        "gone-buildcache": "deleted",
        "old-buildcache": "deleted",
        "shared-stale-buildcache": "deleted",
    }


def test_a_tag_ecr_lists_since_planning_stops_the_delete(
    registry: LocalRegistry,
    aws_env: EcrServer,
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ECR is described again right before BatchDeleteImage: a tag added there since planning keeps the image."""
    scenario = seed(registry, aws_env, "acme/race-cache")
    d = scenario.digests
    plan_file = tmp_path / "plan.json"
    code, _, err = gc_json(capsys, gc_args(scenario, branches, "--plan-out", str(plan_file)))
    assert code == 0, err
    raw = httpx.get(
        f"{registry.url}/v2/{scenario.ecr.name}/manifests/gone-buildcache", headers={"Accept": OCI_MANIFEST}
    ).content
    scenario.ecr.put(raw, OCI_MANIFEST, "release-buildcache")  # a second tag, on ECR's side only
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--apply-plan", str(plan_file)))
    assert code == 7, err
    manifests = {m["digest"]: m for m in document["repositories"][0]["report"]["manifests"]}
    assert manifests[d["gone"]]["status"] == "failed"
    assert "release-buildcache" in manifests[d["gone"]]["detail"]
    assert scenario.ecr.tags()[d["gone"]] == ("gone-buildcache", "release-buildcache")
    assert d["old"] not in scenario.ecr.tags()  # the other deletion went ahead


def test_registry_credentials_come_from_get_authorization_token(
    registry: LocalRegistry, server: EcrServer, branches: Path, tmp_path: Path
) -> None:
    """No Docker credentials: the real CLI asks ECR for a registry token (user AWS) and says so, never showing it."""
    import bcrypt

    scenario = seed(registry, server, "acme/auth-cache")
    # moto's GetAuthorizationToken answers base64("AWS:<account>-auth-token"); the same data directory
    # is served again behind htpasswd with exactly that user and password.
    password = f"{ACCOUNT}-auth-token"
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(b"AWS:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)) + b"\n")
    guarded = start_registry(
        tmp_path,
        storage=registry.root / "data",
        extra_config={"auth": {"htpasswd": {"realm": "ecr-test", "path": str(htpasswd)}}},
    )
    try:
        args = gc_args(scenario, branches)
        args[1] = f"{guarded.host}/{scenario.ecr.name}"
        done = run_cli(*args, env=server.env())
        assert done.returncode == 0, done.stderr
        assert f"credentials for {guarded.host}: ECR GetAuthorizationToken" in done.stderr
        assert "gone-buildcache" in done.stdout
        assert password not in done.stdout + done.stderr
        # Without AWS credentials nothing else is tried: one line, exit 4.
        anonymous = dict.fromkeys(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "")
        refused = run_cli(
            *args,
            env={
                **server.env(),
                **anonymous,
                "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            },
        )
        assert refused.returncode == 4, refused.stderr
        assert refused.stderr.splitlines()[0] == (
            "cacheinspect: error: ECR GetAuthorizationToken: no AWS credentials found"
        )
    finally:
        guarded.stop()


def test_unpulled_for_deletes_caches_nobody_pulled(
    registry: LocalRegistry, aws_env: EcrServer, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = seed(registry, aws_env, "acme/pull-cache")
    d = scenario.digests
    now = datetime.now(UTC)
    scenario.ecr.set_times(d["feature-a"], pulled=now - 45 * DAY)
    scenario.ecr.set_times(d["main"], pulled=now - 45 * DAY)
    scenario.ecr.set_times(d["young"], pulled=now - 2 * DAY)
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--unpulled-for", "30d"))
    assert code == 0, err
    plan = document["repositories"][0]
    actions = {t["tag"]: (t["action"], t["rule"]) for t in plan["tags"]}
    # By hand: feature-a's branch lives and it was pushed yesterday, but ECR last recorded a pull 45
    # days ago (> 30d): deleted as unpulled. main was not pulled for as long, but is protected (rule 3
    # wins). young was pulled 2 days ago. shared-live was pushed yesterday and never pulled: its push
    # is the last use, 1 day < 30d. old goes by max-age first (pushed 40 days ago).
    assert actions["feature-a-buildcache"] == ("delete", "unpulled")
    assert actions["main-buildcache"] == ("keep", "protected")
    assert actions["young-buildcache"] == ("keep", "kept")
    assert actions["shared-live-buildcache"] == ("keep", "kept")
    assert actions["old-buildcache"] == ("delete", "max-age")
    reason = next(t["reason"] for t in plan["tags"] if t["tag"] == "feature-a-buildcache")
    assert reason == "last pulled 45 days ago, longer ago than 30 days"


def test_unpulled_for_is_refused_without_pull_times(registry: LocalRegistry) -> None:
    done = run_cli("gc", f"{registry.host}/acme/x", "-t", "{branch}-c", "--unpulled-for", "30d")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].endswith(
        "only the ECR backend has (DescribeImages lastRecordedPullTime)"
    )


def test_apply_plan_selects_untagged_caches_again(
    registry: LocalRegistry,
    aws_env: EcrServer,
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reviewed plan's untagged caches are selected again: one tagged since planning is left out, with a note."""
    scenario = seed(registry, aws_env, "acme/review-cache")
    d = scenario.digests
    plan_file = tmp_path / "plan.json"
    code, _, err = gc_json(capsys, gc_args(scenario, branches, "--untagged", "--plan-out", str(plan_file)))
    assert code == 0, err
    raw = httpx.get(
        f"{registry.url}/v2/{scenario.ecr.name}/manifests/{d['orphan']}", headers={"Accept": OCI_MANIFEST}
    ).content
    scenario.ecr.put(raw, OCI_MANIFEST, "adopted")  # the orphan is tagged now (on ECR's side)
    # --apply-plan runs under the policy the plan was reviewed under (the same repository and rules)
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--apply-plan", str(plan_file)))
    assert code == 0, err
    plan = document["repositories"][0]
    assert f"{d['orphan'][:19]}: no longer an untagged cache (tagged (adopted)): not deleted" in plan["notes"]
    left = scenario.ecr.tags()
    assert left[d["orphan"]] == ("adopted",)
    assert d["feature-a-old"] not in left  # the other untagged cache went


def test_whole_deletions_go_up_to_100_per_batch_delete_image_each_checked_alone(
    registry: LocalRegistry,
    aws_env: EcrServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seven caches of gone branches, each alone on its manifest: the plan deletes all seven whole. The
    first goes alone (a backend that may not delete finds out before anything else changes), the other
    six in one chunk: one listing (their last look), then one BatchDeleteImage. After planning, ECR
    lists a second tag on the last of them (ECR's side only): that one is left out of the call and
    reported failed, the five others are deleted by that one call."""
    mirror = EcrMirror(aws_env, "acme/batched-cache")
    with httpx.Client(timeout=10) as http:
        push = Pusher(registry, mirror, http)
        push.cache("main-buildcache", b"batched main", created=NOW - DAY)
        stale = {
            f"s{i}-buildcache": push.cache(f"s{i}-buildcache", f"s{i}".encode(), created=NOW - DAY)
            for i in range(7)
        }
    scenario = Scenario(registry, mirror, {})
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    plan_file = tmp_path / "plan.json"
    code, planned, err = gc_json(capsys, gc_args(scenario, branches, "--plan-out", str(plan_file)))
    assert code == 0, err
    manifests = planned["repositories"][0]["manifests"]
    assert {m["digest"] for m in manifests if m["deleteManifest"]} == set(stale.values())
    last = manifests[-1]["digest"]
    raw = httpx.get(
        f"{registry.url}/v2/{mirror.name}/manifests/{last}", headers={"Accept": OCI_MANIFEST}
    ).content
    mirror.put(raw, OCI_MANIFEST, "release-buildcache")

    from inspector.registry.ecr import EcrClient

    calls: list[int] = []
    original = EcrClient._call

    def record(self: EcrClient, operation: str, **request: Any) -> dict[str, Any]:
        if operation == "BatchDeleteImage":
            calls.append(len(request["imageIds"]))
        return original(self, operation, **request)

    monkeypatch.setattr(EcrClient, "_call", record)
    code, document, err = gc_json(capsys, gc_args(scenario, branches, "--apply-plan", str(plan_file)))
    assert code == 7, err
    assert calls == [1, 5]
    report = document["repositories"][0]["report"]
    statuses = {m["digest"]: m["status"] for m in report["manifests"]}
    assert statuses == {d: ("failed" if d == last else "deleted") for d in stale.values()}
    failed = next(m for m in report["manifests"] if m["digest"] == last)
    assert "release-buildcache" in failed["detail"]
    left = mirror.tags()
    assert set(left) == {last} | {d for d in left if d not in stale.values()}
    assert sorted(left[last]) == ["release-buildcache", *[t for t, d in stale.items() if d == last]]
