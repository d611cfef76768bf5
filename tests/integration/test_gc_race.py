"""`gc --apply` / `--apply-plan` while a second process writes to the repository (issue 10, points 1, 2, 5).

A real second process (``WRITER``: plain httpx, straight to the registry) PUTs manifests at chosen
moments of a gc run that goes through ``RaceProxy``. The proxy holds gc's request while the writer
runs, so the writer's change lands before gc's request reaches the registry. The moments are every
point at which gc starts a check (its K-th tag list after its first DELETE) and the moment the first
placeholder appears (after the registry stored it, before gc hears back). Those are the moments
outside the window gc documents as open: between a check's HEAD of a tag and the DELETE it covers
(the distribution API has no conditional delete), and between a stale tag's HEAD and its
placeholder PUT (one request). Inside that window no client can see a change, so no test pins it.

What the writer does (each the way CI or a person does it):

* ``repoint-kept``: ``main-buildcache`` (kept: main is protected) is PUT with the bytes of the
  doomed ``gone-buildcache`` manifest (CI re-pushing byte-identical content, or
  ``imagetools create -t …:main-buildcache …:gone-buildcache``);
* ``repush-stale``: the branches of ``twin-a`` and ``twin-b`` are re-created and push new caches
  to those tags; the two are stale and share their manifest with the kept ``twin-live-buildcache``;
* ``new-tag``: a new tag ``adopted`` (no template) is put on the doomed ``gone2-buildcache``
  manifest (index form).

After every run: each tag that should live is there, on the digest expected (the writer's for what
it wrote), and after the registry's own ``garbage-collect`` a new server on the same storage serves
every such manifest and every blob it lists.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest

from tests.harness.registry import LocalRegistry, start_registry
from tests.integration.test_gc import (
    BRANCHES,
    KEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    RULES,
    Proxy,
    Seeder,
    gc_json,
    seed_scenario,
    sha,
)
from tests.integration.test_gc_kill import blobs_of

Action = Literal["repoint-kept", "repush-stale", "new-tag"]
Mode = Literal["apply", "apply-plan"]
ACTIONS: tuple[Action, ...] = ("repoint-kept", "repush-stale", "new-tag")
MODES: tuple[Mode, ...] = ("apply", "apply-plan")
# Every check of a run on this scenario (5 manifests deleted whole, 18 tags, -j 8: a check covers
# ceil(tags / 8) deletions, so 2 checks), and the first placeholder.
MOMENTS = ("check-1", "check-2", "first-placeholder")
TWINS = ("twin-a-buildcache", "twin-b-buildcache")
LIVE = KEPT | {"twin-live-buildcache"}

# The second process: PUT each (tag, media type, file) to the registry, in order.
WRITER = """
import sys, httpx
base = sys.argv[1]
with httpx.Client(timeout=10) as http:
    for tag, media_type, path in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
        body = open(path, "rb").read()
        answer = http.put(f"{base}/manifests/{tag}", content=body, headers={"Content-Type": media_type})
        assert answer.status_code == 201, answer.text
"""


@dataclass
class Case:
    action: Action
    mode: Mode
    moment: str
    name: str
    before: dict[str, str] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)  # tag -> digest after the run
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # digest -> document
    writes: list[tuple[str, str, Path]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.action} at {self.moment}, gc {self.mode}"


class RaceProxy(Proxy):
    """Runs the writer at the armed moment of a gc run, holding gc's request meanwhile."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.arm(None, lambda: None)

    def arm(self, moment: str | None, write: Any) -> None:
        with self.lock:
            self.moment, self.write = moment, write
            self.deleting = False
            self.checks = 0
            self.fired: str | None = None

    def _fire(self, what: str) -> None:
        self.fired = what
        self.write()

    def hold(self, method: str, path: str) -> bool:
        with self.lock:
            if method == "DELETE":
                self.deleting = True  # the first DELETE is a capability probe: applying has begun
            if self.deleting and method == "GET" and urlsplit(path).path.endswith("/tags/list"):
                self.checks += 1
                if self.fired is None and self.moment == f"check-{self.checks}":
                    self._fire(self.moment)
        return False

    def carried_out(self, method: str, path: str, answer: httpx.Response) -> bool:
        reference = urlsplit(path).path.rsplit("/", 1)[-1]
        placeholder = method == "PUT" and "/manifests/" in path and not reference.startswith("sha256:")
        with self.lock:
            if placeholder and self.fired is None and self.moment == "first-placeholder":
                self._fire(self.moment)
        return False


def prepare(seeder: Seeder, case: Case, tmp: Path) -> None:
    """Seed the scenario, the twins, and the bytes the writer will PUT; write down what must live."""
    seed_scenario(seeder)
    seeder.cache(*TWINS, "twin-live-buildcache", layers=[b"twin base", case.name.encode()], age=timedelta(1))
    case.before = seeder.state()
    for digest in set(case.before.values()):
        case.documents[digest] = seeder.manifest(digest).json()
    case.expected = {tag: case.before[tag] for tag in LIVE}

    def stage(tag: str, raw: bytes, media_type: str) -> str:
        path = tmp / f"{case.name.replace('/', '-')}-{tag}.json"
        path.write_bytes(raw)
        case.writes.append((tag, media_type, path))
        case.expected[tag] = sha(raw)
        case.documents.setdefault(sha(raw), json.loads(raw))
        return sha(raw)

    if case.action == "repoint-kept":
        raw = seeder.manifest(case.before["gone-buildcache"]).content
        stage("main-buildcache", raw, OCI_MANIFEST)
    elif case.action == "new-tag":
        raw = seeder.manifest(case.before["gone2-buildcache"]).content
        stage("adopted", raw, OCI_INDEX)
    else:
        for tag in TWINS:  # new caches: their blobs are pushed now, their manifests by the writer
            layer = f"{tag} re-created on {case.name}".encode()
            config = json.dumps({"layers": [{"blob": seeder.blob(layer)}], "records": []}).encode()
            document = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.buildkit.cacheconfig.v0",
                    "digest": seeder.blob(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha(layer),
                        "size": len(layer),
                    }
                ],
            }
            stage(tag, json.dumps(document).encode(), OCI_MANIFEST)


def write(registry: LocalRegistry, case: Case) -> None:
    """The second process; it must succeed (a failed write would make the test vacuous)."""
    args = [str(a) for w in case.writes for a in w]
    done = subprocess.run(
        [sys.executable, "-c", WRITER, f"{registry.url}/v2/{case.name}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def private(tmp_path: Path) -> Iterator[LocalRegistry]:
    instance = start_registry(tmp_path / "private")
    yield instance
    instance.stop()


def test_a_second_writer_at_every_check_and_at_the_first_placeholder_loses_nothing(
    private: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    branches = tmp_path / "branches.txt"
    branches.write_text(BRANCHES + "twin-live\n")
    proxy = RaceProxy(private.url)
    cases = [
        Case(action, mode, moment, f"race/{i:02d}-{action}-{mode}-{moment}")
        for i, (action, mode, moment) in enumerate((a, m, t) for a in ACTIONS for m in MODES for t in MOMENTS)
    ]
    seeders: list[Seeder] = []
    lock = threading.Lock()

    def seeded(case: Case) -> Case:
        seeder = Seeder(private.host, case.name)
        with lock:
            seeders.append(seeder)
        prepare(seeder, case, tmp_path)
        return case

    try:
        with ThreadPoolExecutor(2) as pool:
            for case in pool.map(seeded, cases):
                repo = f"{proxy.host}/{case.name}"
                # twin-live is protected so that keep-last ranks the scenario's caches as without it
                policy = [repo, *RULES, "--protect", "twin-live", "--branches-file", str(branches)]
                plan_file = tmp_path / f"{case.name.replace('/', '-')}.plan.json"
                if case.mode == "apply-plan":
                    assert gc_json(capsys, *policy, "--plan-out", str(plan_file))[0] == 0
                proxy.arm(case.moment, lambda case=case: write(private, case))
                if case.mode == "apply":
                    code, applied = gc_json(capsys, *policy, "--apply")
                else:
                    code, applied = gc_json(capsys, "--apply-plan", str(plan_file), *policy)
                assert proxy.fired == case.moment, f"{case}: the moment never came ({proxy.checks} checks)"
                report = applied["repositories"][0]["report"]
                assert code == 0, f"{case}: {report}"
                live = Seeder(private.host, case.name)
                seeders.append(live)
                state = live.state()
                assert {t: state.get(t) for t in case.expected} == case.expected, str(case)
                outcome = {t["tag"]: t["status"] for t in report["tags"]}
                manifests = {m["digest"]: m for m in report["manifests"]}
                if case.action == "repush-stale":
                    twins = [outcome[t] for t in TWINS]
                    if case.moment.startswith("check-"):  # twins are untagged after every whole deletion
                        assert twins == ["moved", "moved"], str(case)
                    else:  # the first placeholder may be a twin's: gc had removed its old cache already
                        assert "moved" in twins and set(twins) <= {"moved", "deleted"}, str(case)
                elif case.moment == "check-1":  # before any deletion: the doomed manifest is now needed
                    doomed = manifests[case.expected[case.writes[0][0]]]
                    assert doomed["status"] == "kept", f"{case}: {doomed}"
                    assert case.writes[0][0] in doomed["detail"], f"{case}: {doomed}"
    finally:
        proxy.close()
        for seeder in seeders:
            seeder.http.close()

    # The registry's own garbage collection (server stopped), then a new server on the same storage.
    private.stop()
    private.garbage_collect()
    revived = start_registry(tmp_path / "revived", storage=private.root / "data")
    try:
        for case in cases:
            check = Seeder(revived.host, case.name)
            try:
                for tag, digest in case.expected.items():
                    manifest = check.manifest(tag)
                    assert manifest.status_code == 200 and sha(manifest.content) == digest, f"{case}: {tag}"
                    for blob in blobs_of(case.documents[digest]):
                        answer = check.http.get(f"{check.base}/blobs/{blob}")
                        assert answer.status_code == 200, f"{case}: {tag}'s blob {blob} is gone"
            finally:
                check.http.close()
    finally:
        revived.stop()


# A second process that deletes a manifest by digest straight at the registry (another gc run, a person).
DELETER = """
import sys, httpx
answer = httpx.delete(sys.argv[1], timeout=10)
print(answer.status_code)
"""


def test_a_manifest_deleted_by_another_process_just_before_gcs_delete_is_already_gone(
    private: LocalRegistry, tmp_path: Path
) -> None:
    # The evil proxy holds each of gc's manifest DELETEs while a second process deletes that digest at the
    # registry, then forwards gc's DELETE: distribution answers 404 (MANIFEST_UNKNOWN). README: "a DELETE
    # answered 404 is `already-gone` (another run ... did it), never `deleted`".
    from tests.harness.evilserver import EvilServer, Request
    from tests.harness.support import run_cli

    name = "race/deleted-meanwhile"
    seed_scenario(Seeder(private.host, name)).http.close()
    branches = tmp_path / "branches.txt"
    branches.write_text(BRANCHES)
    preempted: list[str] = []

    def script(request: Request) -> None:
        reference = request.path.rsplit("/", 1)[-1]
        if request.method == "DELETE" and "/manifests/" in request.path and reference.startswith("sha256:"):
            done = subprocess.run(
                [sys.executable, "-c", DELETER, f"{private.url}{request.path}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            if done.stdout.strip() == "202":
                preempted.append(reference)
        return None  # forwarded to the registry, which no longer has the manifest

    with EvilServer(script, upstream=private.url) as evil:
        result = run_cli(
            "gc", f"{evil.host}/{name}", *RULES, "--branches-file", str(branches), "--apply", "--json"
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["repositories"][0]["report"]
    # By hand from the scenario (tests/integration/test_gc.py DELETED): gone, gone2, old, feature-c and pr-3
    # are alone on their manifests, deleted whole: 5 DELETEs. shared-stale and stale2 share theirs with the
    # kept shared-live and nightly: each is re-pointed to a placeholder whose DELETE is the 6th and 7th.
    # The capability probe's DELETE names a digest nobody has: the second process gets 404 there too.
    assert len(preempted) == 7, preempted
    statuses = {t["tag"]: t["status"] for t in report["tags"]}
    assert statuses == dict.fromkeys(
        [
            "gone-buildcache",
            "gone2-buildcache",
            "old-buildcache",
            "feature-c-buildcache",
            "pr-3-buildcache",
            "shared-stale-buildcache",
            "stale2-buildcache",
        ],
        "already-gone",
    ), statuses
    whole = [m for m in report["manifests"] if m["rule"] != "untagged-cache" and m["status"] != "kept"]
    assert [m["status"] for m in whole] == ["already-gone"] * 5, report["manifests"]
    assert report["summary"]["deleted"] == 0 and report["summary"]["manifestsDeleted"] == 0
    assert report["summary"]["alreadyGone"] == 7
