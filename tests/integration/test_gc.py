"""`cacheinspect gc` end to end against a real docker-registry (CNCF distribution 2.8).

The repository holds caches of live, gone, protected, old and recent branches, PR caches, a non-cache
image, and two pairs of tags sharing one manifest (one stale, one kept). Content is pushed with plain
httpx, and expectations are written out by hand or read from the registry's own storage directory.

A small HTTP proxy between gc and the registry counts requests and fails chosen ones; its two hooks
(hold a request back, cut an answer off) let ``test_gc_kill`` SIGKILL gc runs at chosen requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from inspector.cli import run
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry, start_registry

SCHEMA = schema("gc-plan")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"
BRANCHES = "main\nfeature/a\nfeature/b\nfeature/c\nold\nshared-live\nrefs/pull/7/head\n"
RULES = [
    "-t",
    "{branch}-buildcache",
    "-t",
    "pr-{number}-buildcache",
    "--protect",
    "main",
    "--protect",
    "release/*",
    "--max-age",
    "14d",
    "--keep-last",
    "3",
]
KEPT = {
    "main-buildcache",  # protected (main)
    "release-1.0-buildcache",  # branch gone, 60 days old: protected by release/*
    "feature-a-buildcache",
    "feature-b-buildcache",
    "shared-live-buildcache",  # shares its manifest with shared-stale-buildcache
    "pr-7-buildcache",  # open pull request
    "app",  # not a cache, matches no template
    "nightly",  # matches no template; shares its manifest with stale2-buildcache
}
DELETED = {
    "gone-buildcache": "branch-gone",
    "gone2-buildcache": "branch-gone",
    "old-buildcache": "max-age",  # branch alive, 30 days old (age from its cache config)
    "feature-c-buildcache": "keep-last",  # 4th newest of {branch}-buildcache
    "pr-3-buildcache": "branch-gone",
    "shared-stale-buildcache": "branch-gone",
    "stale2-buildcache": "branch-gone",
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Seeder:
    """Pushes caches and images with plain httpx (not cacheinspect's client)."""

    def __init__(self, host: str, repository: str) -> None:
        self.base = f"http://{host}/v2/{repository}"
        self.http = httpx.Client(timeout=10)

    def blob(self, data: bytes) -> str:
        digest = sha(data)
        if self.http.head(f"{self.base}/blobs/{digest}").status_code == 200:
            return digest
        started = self.http.post(f"{self.base}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest})
        done = self.http.put(location, content=data, headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        return digest

    def put(self, tag: str, raw: bytes, media_type: str) -> str:
        answer = self.http.put(
            f"{self.base}/manifests/{tag}", content=raw, headers={"Content-Type": media_type}
        )
        assert answer.status_code == 201, answer.text
        return sha(raw)

    def cache(
        self, *tags: str, layers: list[bytes], age: timedelta, form: str = OCI_MANIFEST, annotate: bool = True
    ) -> str:
        when = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        descriptors = []
        for data in layers:
            annotations = {"containerd.io/uncompressed": sha(data + b"!")}
            if annotate:
                annotations["buildkit/createdat"] = when
            descriptors.append(
                {"mediaType": LAYER, "digest": self.blob(data), "size": len(data), "annotations": annotations}
            )
        config = json.dumps(
            {
                "layers": [{"blob": d["digest"], "parent": i - 1} for i, d in enumerate(descriptors)],
                "records": [
                    {
                        "digest": sha(tags[0].encode()),
                        "layers": [{"layer": len(layers) - 1, "createdAt": when}],
                    }
                ],
            },
            separators=(",", ":"),
        ).encode()
        config_descriptor = {"mediaType": CACHE_CONFIG, "digest": self.blob(config), "size": len(config)}
        if form == OCI_INDEX:
            document: dict[str, Any] = {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [*descriptors, config_descriptor],
            }
        else:
            document = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_descriptor,
                "layers": descriptors,
            }
        raw = json.dumps(document, separators=(",", ":")).encode()
        for tag in tags:
            digest = self.put(tag, raw, form)
        return digest

    def image(self, tag: str, layers: list[bytes]) -> str:
        config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.blob(config),
                "size": len(config),
            },
            "layers": [{"mediaType": LAYER, "digest": self.blob(x), "size": len(x)} for x in layers],
        }
        return self.put(tag, json.dumps(document).encode(), OCI_MANIFEST)

    def state(self) -> dict[str, str]:
        """Tag -> digest, as the registry serves them now."""
        tags = self.http.get(f"{self.base}/tags/list").json()["tags"] or []
        return {
            t: self.http.head(f"{self.base}/manifests/{t}", headers={"Accept": ACCEPT}).headers[
                "Docker-Content-Digest"
            ]
            for t in tags
        }

    def manifest(self, reference: str) -> httpx.Response:
        return self.http.get(f"{self.base}/manifests/{reference}", headers={"Accept": ACCEPT})


def seed_scenario(seeder: Seeder) -> Seeder:
    rng = random.Random(seeder.base)

    def layer(size: int) -> bytes:
        return rng.randbytes(size)

    base, both, shared_with_image = layer(4000), layer(700), layer(300)
    day = timedelta(days=1)
    seeder.cache("main-buildcache", layers=[base, layer(500)], age=day)
    seeder.cache("feature-a-buildcache", layers=[base, layer(510)], age=2 * day)
    seeder.cache("feature-b-buildcache", layers=[base, layer(520)], age=5 * day)
    seeder.cache("feature-c-buildcache", layers=[base, layer(530)], age=6 * day)
    seeder.cache("gone-buildcache", layers=[base, layer(540), both], age=3 * day)
    seeder.cache("gone2-buildcache", layers=[base, layer(550), both], age=4 * day, form=OCI_INDEX)
    seeder.cache("old-buildcache", layers=[base, layer(560)], age=30 * day, annotate=False)
    seeder.cache("release-1.0-buildcache", layers=[base, layer(570)], age=60 * day, form=OCI_INDEX)
    seeder.cache("pr-7-buildcache", layers=[base, layer(580)], age=day)
    seeder.cache("pr-3-buildcache", layers=[base, layer(590), shared_with_image], age=day)
    seeder.image("app", [base, shared_with_image])
    seeder.cache("shared-stale-buildcache", "shared-live-buildcache", layers=[base, layer(600)], age=day)
    seeder.cache("stale2-buildcache", "nightly", layers=[base, layer(610)], age=day)
    return seeder


def gc_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = run(["gc", *args, "--json"])
    out = capsys.readouterr().out
    document = json.loads(out)
    jsonschema.validate(document, SCHEMA)
    return code, document


def storage_files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def blob_bytes(root: Path) -> dict[str, int]:
    """Blob digest -> size of every blob (layers, configs and manifests) in the registry's storage."""
    blobs = root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return {f"sha256:{p.parent.name}": p.stat().st_size for p in blobs.glob("*/*/data")}


Seed = Callable[..., Seeder]


@pytest.fixture
def seed() -> Iterator[Seed]:
    """``seed(host, repository, empty=False)``: a Seeder (the scenario pushed unless empty), closed afterwards."""
    made: list[Seeder] = []

    def make(host: str, repository: str, *, empty: bool = False) -> Seeder:
        seeder = Seeder(host, repository)
        made.append(seeder)
        return seeder if empty else seed_scenario(seeder)

    yield make
    for seeder in made:
        seeder.http.close()


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    path = tmp_path / "branches.txt"
    path.write_text(BRANCHES)
    return path


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    instance = start_registry(tmp_path / "own")
    yield instance
    instance.stop()


def test_apply_leaves_the_planned_tags_and_registry_gc_frees_exactly_the_reported_bytes(
    own_registry: LocalRegistry,
    seed: Seed,
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seeder = seed(own_registry.host, "team/app")
    before = seeder.state()
    repo = f"{own_registry.host}/team/app"
    kept_documents = {tag: seeder.manifest(before[tag]).json() for tag in KEPT}

    code, planned = gc_json(capsys, repo, *RULES, "--branches-file", str(branches))
    assert code == 0
    (plan,) = planned["repositories"]
    assert {t["tag"]: t["rule"] for t in plan["tags"] if t["action"] == "delete"} == DELETED
    assert {t["tag"] for t in plan["tags"] if t["action"] != "delete"} == KEPT
    assert plan["report"] is None

    code, applied = gc_json(capsys, repo, *RULES, "--branches-file", str(branches), "--apply")
    assert code == 0
    report = applied["repositories"][0]["report"]
    assert report["ok"] and report["summary"]["deleted"] == len(DELETED)
    assert set(seeder.state()) == KEPT  # exactly the planned tags are left
    assert {t: seeder.state()[t] for t in KEPT} == {t: before[t] for t in KEPT}  # each on its manifest
    methods = {t["tag"]: t["method"] for t in report["tags"]}
    assert methods["shared-stale-buildcache"] == methods["stale2-buildcache"] == "placeholder"
    assert methods["gone-buildcache"] == "manifest-delete"

    # The registry's own garbage collection, server stopped: freed bytes == what gc reported.
    own_registry.stop()
    on_disk = blob_bytes(own_registry.root)
    own_registry.garbage_collect()
    after = blob_bytes(own_registry.root)
    freed = sum(on_disk.values()) - sum(after.values())
    reclaimable = applied["repositories"][0]["reclaimable"]
    placeholders = sum(p["size"] for p in report["placeholders"])
    pushed = sum(b["size"] for b in report["pushedBlobs"])
    assert freed == reclaimable["bytes"] + reclaimable["manifestBytes"] + placeholders + pushed
    assert len(report["placeholders"]) == 2 and pushed == 2  # the 2-byte empty config, once
    assert not {b["digest"] for b in reclaimable["blobs"]} & set(after)
    shared_with_image = next(
        layer["digest"] for layer in kept_documents["app"]["layers"] if layer["size"] == 300
    )
    assert shared_with_image in after  # pr-3 is gone, but the image still needs this layer

    # A new server on the same storage still serves every blob of every kept manifest.
    revived = start_registry(
        tmp_path / "revived",
        storage=own_registry.root / "data",
    )
    try:
        check = seed(revived.host, "team/app", empty=True)
        assert check.state() == {t: before[t] for t in KEPT}
        for tag, document in kept_documents.items():
            descriptors = [*document.get("layers", []), *document.get("manifests", [])]
            descriptors += [document["config"]] if "config" in document else []
            for descriptor in descriptors:
                answer = check.http.head(f"{check.base}/blobs/{descriptor['digest']}")
                assert answer.status_code == 200, f"{tag}: blob {descriptor['digest']} is gone"
    finally:
        revived.stop()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that died mid-answer
            super().handle_error(request, client_address)


class Proxy:
    """Forwards to a registry; counts requests; can fail chosen ones.

    Subclasses may override ``hold`` (the request never reaches the registry and gets no answer) and
    ``carried_out`` (the registry did it, the client never hears back).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.http = httpx.Client(timeout=30)
        self.requests: list[tuple[str, str]] = []
        self.fail: Callable[[str, str], int | None] = lambda method, path: None
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = proxy.fail(self.command, self.path)
                with proxy.lock:
                    proxy.requests.append((self.command, self.path))
                if status is not None:
                    payload = json.dumps({"errors": [{"code": "DENIED", "message": "injected"}]}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if proxy.hold(self.command, self.path):
                    self.close_connection = True  # dropped: the registry never sees it
                    return
                skip = {"connection", "keep-alive", "transfer-encoding", "content-length", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                answer = proxy.http.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
                if proxy.carried_out(self.command, self.path, answer):
                    self.close_connection = True  # the registry did it; the client never hears back
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in skip | {"content-encoding"}:
                        self.send_header(key, value)
                size = (
                    answer.headers.get("Content-Length", "0")
                    if self.command == "HEAD"
                    else str(len(answer.content))
                )
                self.send_header("Content-Length", size)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold(self, method: str, path: str) -> bool:
        """Before forwarding: True drops the request (never forwarded, never answered)."""
        return False

    def carried_out(self, method: str, path: str, answer: httpx.Response) -> bool:
        """After the registry answered: True closes the connection without passing the answer on."""
        return False

    def count(self) -> Counter[tuple[str, str]]:
        def kind(path: str) -> str:
            if "/tags/list" in path:
                return "tags"
            return "manifest" if "/manifests/" in path else "blob"

        return Counter((method, kind(path)) for method, path in self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()


@pytest.fixture
def proxy(registry: LocalRegistry) -> Iterator[Proxy]:
    instance = Proxy(registry.url)
    yield instance
    instance.close()


def test_request_budget_of_planning_and_applying(
    registry: LocalRegistry, proxy: Proxy, seed: Seed, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(registry.host, "gc/budget")
    repo = f"{proxy.host}/gc/budget"
    assert gc_json(capsys, repo, *RULES, "--branches-file", str(branches))[0] == 0
    # 15 tags read by tag, 1 non-cache tag read again by tag, 1 cache config (old has no createdat).
    assert proxy.count() == {
        ("GET", "tags"): 1,
        ("GET", "manifest"): 15 + 1,
        ("GET", "blob"): 1,
    }
    proxy.requests.clear()
    assert gc_json(capsys, repo, *RULES, "--branches-file", str(branches), "--apply")[0] == 0
    applying = proxy.count() - Counter({("GET", "tags"): 1, ("GET", "manifest"): 15 + 1, ("GET", "blob"): 1})
    # 2 probes + 5 manifest deletions; 2 placeholders (PUT, DELETE each; the empty config checked and pushed once).
    # The 5 manifests deleted whole are read once by digest up front (their subjects), plus the one index
    # only a kept tag resolves to (release-1.0; gone2's index is among the 5): 6 GETs.
    # Each batch of gated deletions starts with a check (tag list + a HEAD per listed tag): the first whole
    # deletion alone (15 tags), then the other 4 together (14 tags: each of the 5 is its manifest's only tag),
    # which one check covers (ceil(14 / 8) round trips x 4 in flight = 8 deletions, well within 1 s here).
    # The placeholders' DELETEs are the backend's own, not gated: 2 lists, 15 + 14 HEADs. Then a HEAD per
    # stale tag when its group starts (7), and one more just before each placeholder PUT (2).
    assert applying == {
        ("DELETE", "manifest"): 2 + 5 + 2,
        ("PUT", "manifest"): 2,
        ("GET", "manifest"): 6,
        ("HEAD", "manifest"): 15 + 14 + 7 + 2,
        ("GET", "tags"): 2,
        ("HEAD", "blob"): 1,
        ("POST", "blob"): 1,
        ("PUT", "blob"): 1,
    }


def test_dry_run_changes_nothing(
    registry: LocalRegistry, seed: Seed, branches: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeder = seed(registry.host, "gc/dry")
    before, files = seeder.state(), storage_files(registry.root / "data")
    plan_file, summary = tmp_path / "plan.json", tmp_path / "summary.md"
    code = run(
        [
            "gc",
            f"{registry.host}/gc/dry",
            *RULES,
            "--branches-file",
            str(branches),
            "--plan-out",
            str(plan_file),
            "--summary",
            str(summary),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert seeder.state() == before
    assert storage_files(registry.root / "data") == files  # not one byte written
    assert "dry run: nothing was deleted" in out and "gone-buildcache" in out
    jsonschema.validate(json.loads(plan_file.read_text()), SCHEMA)
    markdown = summary.read_text()
    assert "## cacheinspect gc (dry-run)" in markdown and "| `old-buildcache` | max-age |" in markdown


def test_apply_plan_skips_a_tag_that_moved_after_planning(
    registry: LocalRegistry, seed: Seed, branches: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeder = seed(registry.host, "gc/reviewed")
    plan_file = tmp_path / "plan.json"
    repo = f"{registry.host}/gc/reviewed"
    assert run(["gc", repo, *RULES, "--branches-file", str(branches), "--plan-out", str(plan_file)]) == 0
    capsys.readouterr()
    moved = seeder.cache("gone-buildcache", layers=[b"pushed again after review"], age=timedelta(0))
    code, applied = gc_json(capsys, "--apply-plan", str(plan_file), repo, *RULES)
    assert code == 0
    report = applied["repositories"][0]["report"]
    outcome = {t["tag"]: t for t in report["tags"]}
    assert (
        outcome["gone-buildcache"]["status"] == "moved"
        and outcome["gone-buildcache"]["currentDigest"] == moved
    )
    assert set(seeder.state()) == KEPT | {"gone-buildcache"} and seeder.state()["gone-buildcache"] == moved
    assert applied["mode"] == "apply-plan"


def test_failed_deletions_exit_7_each_reported_and_a_rerun_finishes(
    registry: LocalRegistry, proxy: Proxy, seed: Seed, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeder = seed(registry.host, "gc/partial")
    gone = seeder.state()["gone-buildcache"]
    proxy.fail = lambda method, path: 403 if method == "DELETE" and path.endswith(gone) else None
    code, applied = gc_json(
        capsys, f"{proxy.host}/gc/partial", *RULES, "--branches-file", str(branches), "--apply"
    )
    assert code == 7
    report = applied["repositories"][0]["report"]
    failed = [t for t in report["tags"] if t["status"] == "failed"]
    assert [t["tag"] for t in failed] == ["gone-buildcache"] and "403" in failed[0]["detail"]
    assert set(seeder.state()) == KEPT | {"gone-buildcache"}
    proxy.fail = lambda method, path: None
    assert (
        run(["gc", f"{registry.host}/gc/partial", *RULES, "--branches-file", str(branches), "--apply"]) == 0
    )
    assert set(seeder.state()) == KEPT


def test_a_registry_without_deletes_exits_5_and_max_deletes_refuses(
    tmp_path: Path, seed: Seed, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readonly = start_registry(tmp_path / "readonly", delete=False)
    try:
        seeder = seed(readonly.host, "team/app")
        before = seeder.state()
        repo = f"{readonly.host}/team/app"
        assert run(["gc", repo, *RULES, "--branches-file", str(branches)]) == 0  # planning needs no delete
        assert run(["gc", repo, *RULES, "--branches-file", str(branches), "--apply"]) == 5
        err = capsys.readouterr().err
        assert "UNSUPPORTED" in err and "storage.delete.enabled" in err
        assert (
            run(["gc", repo, *RULES, "--branches-file", str(branches), "--apply", "--max-deletes", "3"]) == 2
        )
        assert "more than --max-deletes 3; nothing was done" in capsys.readouterr().err
        assert seeder.state() == before
    finally:
        readonly.stop()


def test_a_policy_file_covers_several_repositories(
    registry: LocalRegistry,
    seed: Seed,
    branches: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(registry.host, "gc/policy-a")
    seed(registry.host, "gc/policy-b", empty=True).cache(
        "buildcache-ancient", layers=[b"b"], age=timedelta(days=40)
    )
    policy = tmp_path / "gc.toml"
    policy.write_text(
        f"""
[defaults]
tag-templates = ["{{branch}}-buildcache", "pr-{{number}}-buildcache"]
protect = ["main", "release/*"]
max-age = "14d"
keep-last = 3
branches-file = "{branches.name}"

[[repository]]
name = "{registry.host}/gc/policy-a"

[[repository]]
name = "{registry.host}/gc/policy-b"
tag-templates = ["buildcache-{{branch}}"]
"""
    )
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, planned = gc_json(capsys, "--policy", str(policy))
    assert code == 0
    a, b = planned["repositories"]
    assert {t["tag"]: t["rule"] for t in a["tags"] if t["action"] == "delete"} == DELETED
    assert [(t["tag"], t["rule"]) for t in b["tags"]] == [("buildcache-ancient", "branch-gone")]
    text = summary.read_text()
    assert text.startswith("earlier step\n## cacheinspect gc (dry-run)")  # appended, as GitHub expects
    assert f"### `{registry.host}/gc/policy-b`" in text


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def test_an_edited_plan_is_refused_by_the_real_cli_and_nothing_is_deleted(
    registry: LocalRegistry, seed: Seed, branches: Path, tmp_path: Path
) -> None:
    """Issue 11.4: a plan is an artifact that travels between jobs; it binds to the policy it was made under."""
    app = seed(registry.host, "gc/bound-app")
    prod = seed(registry.host, "gc/bound-prod", empty=True)
    main = prod.cache("main", layers=[b"prod main"], age=timedelta(days=1))
    app_repo, prod_repo = f"{registry.host}/gc/bound-app", f"{registry.host}/gc/bound-prod"
    plan_file = tmp_path / "plan.json"
    planned = cli("gc", app_repo, *RULES, "--branches-file", str(branches), "--plan-out", str(plan_file))
    assert planned.returncode == 0, planned.stderr
    app_before, prod_before = app.state(), prod.state()

    # The edit of the issue: another repository, a template that covers `main`, no protection, and
    # `prod:main` as the only deletion.
    document = json.loads(plan_file.read_text())
    entry = document["repositories"][0]
    entry.update(repository=prod_repo, tags=[], manifests=[])
    entry["rules"].update(tagTemplates=["{branch}"], protect=[])
    entry["tags"].append(
        {
            "tag": "main",
            "digest": main,
            "action": "delete",
            "rule": "branch-gone",
            "reason": "edited in",
            "template": "{branch}",
            "captured": "main",
            "createdAt": None,
        }
    )
    entry["manifests"].append(
        {
            "digest": main,
            "deleteTags": ["main"],
            "keptTags": [],
            "deleteManifest": True,
            "manifestSize": 1,
            "reason": "edited in",
            "rule": "tags",
        }
    )
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    # The same edit with rulesDigest recomputed as the tool computes it (it is no secret).
    canonical = json.dumps(
        {"repository": prod_repo, "rules": entry["rules"]}, sort_keys=True, separators=(",", ":")
    )
    entry["rulesDigest"] = sha(canonical.encode())
    redigested = tmp_path / "redigested.json"
    redigested.write_text(json.dumps(document))
    # Rules left exactly as the prod job's policy says (its template and protect list, RULES' ages),
    # only the deletion edited in.
    entry["rules"].update(tagTemplates=["{branch}"], protect=["main"])
    entry["rulesDigest"] = sha(
        json.dumps(
            {"repository": prod_repo, "rules": entry["rules"]}, sort_keys=True, separators=(",", ":")
        ).encode()
    )
    protected = tmp_path / "protected.json"
    protected.write_text(json.dumps(document))

    cases = [
        # (plan, the policy the applying job runs with, exit code, message)
        (edited, [app_repo, *RULES], 8, "rulesDigest does not match the plan's repository and rules"),
        (
            redigested,
            [app_repo, *RULES],
            2,
            f"the plan is for {prod_repo}, which the policy given does not name",
        ),
        (
            redigested,
            [prod_repo, "-t", "{branch}", "--protect", "main"],
            2,
            # the plan kept RULES' max-age and keep-last: three rules differ, named in the policy's order
            "the plan's rules differ from the policy given (protect, maxAge, keepLast)",
        ),
        (
            protected,
            [prod_repo, "-t", "{branch}", "--protect", "main", "--max-age", "14d", "--keep-last", "3"],
            2,
            "the plan deletes 'main', which the policy protects ('main')",
        ),
        (edited, [], 2, "--apply-plan needs the policy the plan was made under"),
    ]
    for plan, policy, code, message in cases:
        done = cli("gc", "--apply-plan", str(plan), *policy)
        assert done.returncode == code, (plan.name, policy, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert lines[0].startswith("cacheinspect: error: ") and message in lines[0], done.stderr
        assert "Traceback" not in done.stderr
        assert "nothing was deleted" in done.stderr or code == 8 or not policy
        assert prod.state() == prod_before and app.state() == app_before  # nothing deleted anywhere

    # The plan as reviewed, under the policy it was made under, still applies.
    done = cli("gc", "--apply-plan", str(plan_file), app_repo, *RULES)
    assert done.returncode == 0, done.stderr
    assert set(app.state()) == KEPT and prod.state() == prod_before


def test_a_cache_manifest_listed_by_a_kept_image_index_is_never_deleted(
    own_registry: LocalRegistry, seed: Seed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10.5: an index tagged outside the templates lists a cache manifest (as its arm64 entry)."""
    seeder = seed(own_registry.host, "gc/children", empty=True)
    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    rules = ["-t", "{branch}-buildcache", "--branches-file", str(branches)]
    child = seeder.cache("orphan-buildcache", layers=[b"arm64 child"], age=timedelta(days=1))
    late = seeder.cache("late-buildcache", layers=[b"listed after planning"], age=timedelta(days=1))

    def index(tag: str, digest: str) -> str:
        size = len(seeder.manifest(digest).content)
        entry = {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}
        entry["platform"] = {"architecture": "arm64", "os": "linux"}
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
        return seeder.put(tag, json.dumps(document).encode(), OCI_INDEX)

    multiarch = index("multiarch", child)
    repo = f"{own_registry.host}/gc/children"
    plan_file = tmp_path / "plan.json"
    code, planned = gc_json(capsys, repo, *rules, "--plan-out", str(plan_file))
    assert code == 0
    entries = {m["digest"]: m for m in planned["repositories"][0]["manifests"]}
    # Both caches' branches are gone; the index (no template) is kept, so its child stays, losing only its tag.
    assert entries[child]["deleteManifest"] is False and entries[child]["deleteTags"] == ["orphan-buildcache"]
    assert entries[child]["reason"] == "kept: an image index or manifest list that gc keeps lists it"
    assert entries[late]["deleteManifest"] is True  # nothing listed it when the plan was made

    late_index = index("multiarch-late", late)  # after the review: the check before the DELETE sees it
    code, applied = gc_json(capsys, "--apply-plan", str(plan_file), repo, *rules)
    assert code == 0
    outcome = {m["digest"]: m for m in applied["repositories"][0]["report"]["manifests"]}
    assert (
        outcome[late]["status"] == "kept"
        and "multiarch-late (an index listing it)" in outcome[late]["detail"]
    )
    assert outcome[child]["status"] == "kept"
    assert seeder.state() == {"multiarch": multiarch, "multiarch-late": late_index}

    own_registry.stop()
    own_registry.garbage_collect()
    revived = start_registry(tmp_path / "revived", storage=own_registry.root / "data")
    try:
        check = seed(revived.host, "gc/children", empty=True)
        for parent, digest in (("multiarch", child), ("multiarch-late", late)):
            listed = check.manifest(parent).json()["manifests"]
            assert [m["digest"] for m in listed] == [digest]
            document = check.manifest(digest)
            assert document.status_code == 200 and sha(document.content) == digest, parent
            for blob in [
                document.json()["config"]["digest"],
                *(x["digest"] for x in document.json()["layers"]),
            ]:
                assert check.http.head(f"{check.base}/blobs/{blob}").status_code == 200, (parent, blob)
    finally:
        revived.stop()
