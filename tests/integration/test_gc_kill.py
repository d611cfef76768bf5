"""`gc --apply` SIGKILLed at seeded random points: the next run finishes exactly the plan, and the
registry's own ``garbage-collect`` afterwards still serves every blob of every kept cache.

A full run through ``KillProxy`` is recorded first: every request the registry carried out, each
named by its kind (a read while planning or applying, the two capability probes, a manifest
deleted by digest, the empty-config blob upload for the placeholders, a placeholder PUT, a
placeholder DELETE). Kill points are drawn from that run with a fixed seed, covering every kind of
changing request both *before* the registry carries it out (the proxy holds it, kills gc, drops
it) and *after* (the registry did it, gc never hears back), plus points right after the K-th read
of planning and of applying. distribution 2.8 has no OCI tag deletion, so gc removes tags there by
placeholder: a tag DELETE is never made (only its probe is).

Each point gets its own repository on one private registry, seeded with the scenario of
``test_integration_gc`` (with content of its own). The victim is a ``gc --apply --plan-out``
subprocess; the rerun, in-process, is ``gc --apply`` or ``gc --apply-plan`` of the plan the victim
wrote. Then: exactly the planned tags on exactly their digests (non-cache tags included), no other
manifest left in the registry's storage, and a dry run that deletes nothing. At the end the
registry's ``garbage-collect`` runs over all repositories: every blob that only deleted caches used
is freed, every manifest and blob of every kept tag is still served (right bytes), and
``--delete-untagged`` finds nothing more to free.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest

from tests.harness.registry import LocalRegistry, start_registry
from tests.integration.test_gc import (
    BRANCHES,
    DELETED,
    KEPT,
    RULES,
    Proxy,
    Seeder,
    blob_bytes,
    gc_json,
    seed_scenario,
    sha,
)

SEED = 20261127
POINTS = 24  # at least one before and one after each kind of changing request, reads, then random ones
PLAN_READS, APPLY_READS = 4, 2
READS = ("plan-read", "apply-read")
CHANGES = {  # every kind of changing request gc makes on distribution 2.8 (the scenario must show each)
    "probe-digest-delete",
    "probe-tag-delete",
    "manifest-delete",
    "blob-upload-start",
    "blob-upload-finish",
    "placeholder-put",
    "placeholder-delete",
}
SHARED = {"shared-stale-buildcache", "stale2-buildcache"}  # their manifests stay (a kept tag is on them)

Mode = Literal["read", "before", "after"]
Rerun = Literal["apply", "apply-plan"]
RERUNS: tuple[Rerun, ...] = ("apply", "apply-plan")


@dataclass(frozen=True, slots=True)
class Point:
    """Kill at the ``n``-th read (GET/HEAD) or ``n``-th changing request of the run, of this kind;
    then rerun ``gc --apply``, or ``gc --apply-plan`` with the plan the killed run wrote."""

    mode: Mode
    n: int
    kind: str
    rerun: Rerun = "apply"

    def __str__(self) -> str:
        return f"{self.mode} {self.kind} (#{self.n}), rerun {self.rerun}"


class KillProxy(Proxy):
    """Names each request by its kind, and SIGKILLs the armed victim at its point."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.arm(())

    def arm(
        self,
        manifests: Iterable[str],
        point: Point | None = None,
        victim: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """Reset for a run on a repository whose tags resolve to ``manifests``: kill ``victim`` at ``point``."""
        with self.lock:
            self.manifests = frozenset(manifests)
            self.point = point
            self.victim = victim
            self.trace: list[tuple[str, str]] = []  # (kind, "METHOD path") of what the registry carried out
            self.placeholders: set[str] = set()
            self.killed: str | None = None  # the kind of request the victim died at
            self.reads = self.changes = 0

    def _kind(self, method: str, path: str) -> str:
        if method in ("GET", "HEAD"):
            return READS[self.changes > 0]
        tail = urlsplit(path).path
        reference = tail.rsplit("/", 1)[-1]
        if "/blobs/uploads/" in tail:
            return {"POST": "blob-upload-start", "PUT": "blob-upload-finish"}.get(
                method, f"blob-upload-{method}"
            )
        if "/manifests/" in tail and method == "PUT":
            return "placeholder-put" if not reference.startswith("sha256:") else "manifest-put"
        if "/manifests/" in tail and method == "DELETE":
            if reference.startswith("cacheinspect-gc-probe-"):
                return "probe-tag-delete"
            if not reference.startswith("sha256:"):
                return "tag-delete"
            if reference in self.placeholders:
                return "placeholder-delete"
            return "manifest-delete" if reference in self.manifests else "probe-digest-delete"
        return f"{method} {tail}"

    def _kill(self, kind: str) -> None:
        assert self.victim is not None
        self.victim.send_signal(signal.SIGKILL)
        self.victim.wait()
        self.killed = kind

    def hold(self, method: str, path: str) -> bool:
        with self.lock:
            if self.killed is not None:
                return True  # nothing of a dead run reaches the registry
            if method in ("GET", "HEAD"):
                return False
            self.changes += 1
            if self.point is not None and self.point.mode == "before" and self.point.n == self.changes:
                self._kill(self._kind(method, path))
                return True
            return False

    def carried_out(self, method: str, path: str, answer: httpx.Response) -> bool:
        with self.lock:
            kind = self._kind(method, path)
            self.trace.append((kind, f"{method} {path}"))
            if kind == "placeholder-put" and answer.status_code == 201:
                self.placeholders.add(answer.headers["Docker-Content-Digest"])
            if method in ("GET", "HEAD"):
                self.reads += 1
                hit = self.point is not None and self.point.mode == "read" and self.point.n == self.reads
            else:
                hit = self.point is not None and self.point.mode == "after" and self.point.n == self.changes
            if hit and self.killed is None:
                self._kill(kind)
                return True
            return False


def draw_points(trace: list[tuple[str, str]]) -> list[Point]:
    """Seeded: each kind of changing request before (rerun ``--apply``) and after (rerun
    ``--apply-plan``), reads of both phases, then any; a kill during planning leaves no plan file."""
    rng = random.Random(SEED)
    reads = [(n, kind) for n, kind in enumerate((k for k, _ in trace if k in READS), 1)]
    changes = [(n, kind) for n, kind in enumerate((k for k, _ in trace if k not in READS), 1)]
    by_kind: dict[str, list[int]] = {}
    for n, kind in changes:
        by_kind.setdefault(kind, []).append(n)
    points = [Point("before", rng.choice(by_kind[kind]), kind) for kind in sorted(by_kind)]
    points += [Point("after", rng.choice(by_kind[kind]), kind, "apply-plan") for kind in sorted(by_kind)]
    for phase, count in (("plan-read", PLAN_READS), ("apply-read", APPLY_READS)):
        for n in sorted(rng.sample([n for n, k in reads if k == phase], count)):
            points.append(Point("read", n, phase, "apply" if phase == "plan-read" else rng.choice(RERUNS)))
    modes: tuple[Mode, ...] = ("before", "after")
    taken = {(p.mode, p.n) for p in points}
    rest = [(mode, n, kind) for n, kind in changes for mode in modes if (mode, n) not in taken]
    points += [Point(*r, rng.choice(RERUNS)) for r in rng.sample(rest, POINTS - len(points))]
    return points


@dataclass
class Case:
    """One repository: what it held before gc, and every manifest document by tag."""

    name: str
    point: Point | None
    before: dict[str, str]
    documents: dict[str, dict[str, Any]]

    @property
    def kept(self) -> dict[str, str]:
        return {tag: self.before[tag] for tag in KEPT}


def blobs_of(document: dict[str, Any]) -> set[str]:
    """Config, layers, and the children of an index-form cache."""
    descriptors = [*document.get("layers", []), *document.get("manifests", [])]
    descriptors += [document["config"]] if "config" in document else []
    return {d["digest"] for d in descriptors}


def revisions(registry: LocalRegistry, repository: str) -> set[str]:
    """The manifests the registry's storage still holds for ``repository`` (tagged or not)."""
    folder = (
        registry.root / "data/docker/registry/v2/repositories" / repository / "_manifests/revisions/sha256"
    )
    return {f"sha256:{p.parent.name}" for p in folder.glob("*/link")}


@pytest.fixture
def private(tmp_path: Path) -> Iterator[LocalRegistry]:
    instance = start_registry(tmp_path / "private")
    yield instance
    instance.stop()


# A victim imports everything first, then waits for a line on stdin: the next one's 0.3 s of imports
# overlap the current one's run.
VICTIM = (
    "import sys; import inspector.cli.entry, inspector.cli.commands, inspector.gc.execute, inspector.gc.backends.base; "
    "sys.stdin.readline(); inspector.cli.main()"
)


def test_gc_killed_at_seeded_random_points_is_finished_by_the_next_run_and_registry_gc_keeps_kept_caches(
    private: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    branches = tmp_path / "branches.txt"
    branches.write_text(BRANCHES)
    proxy = KillProxy(private.url)
    pool = ThreadPoolExecutor(2)
    seeders: list[Seeder] = []
    victims: list[subprocess.Popen[bytes]] = []

    def seeded(name: str, point: Point | None) -> Case:
        seeder = seed_scenario(Seeder(private.host, name))
        seeders.append(seeder)
        before = seeder.state()
        return Case(name, point, before, {t: seeder.manifest(d).json() for t, d in before.items()})

    def gc(name: str, *extra: str) -> tuple[int, dict[str, Any]]:
        return gc_json(capsys, f"{private.host}/{name}", *RULES, "--branches-file", str(branches), *extra)

    def finished(case: Case) -> None:
        """Exactly the planned state, and a dry run finds nothing more to delete."""
        seeder = Seeder(private.host, case.name)
        seeders.append(seeder)
        assert seeder.state() == case.kept, f"killed at {case.point}"  # non-cache tags included
        for tag in set(DELETED) - SHARED:
            gone = seeder.manifest(case.before[tag]).status_code == 404
            assert gone, f"killed at {case.point}: {tag}'s manifest is left"
        # Nothing else either: no placeholder, no manifest gc untagged, is left in the registry's storage.
        assert revisions(private, case.name) == set(case.kept.values()), f"killed at {case.point}"
        code, again = gc(case.name)
        assert code == 0
        assert not [t for t in again["repositories"][0]["tags"] if t["action"] == "delete"], case.point
        assert not again["repositories"][0]["manifests"], f"killed at {case.point}"

    def plan_file(name: str) -> Path:
        return tmp_path / f"{name.replace('/', '-')}.plan.json"

    def victim(name: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", VICTIM, "gc", f"{proxy.host}/{name}", *RULES]
        process = subprocess.Popen(
            [*command, "--branches-file", str(branches), "--apply", "--plan-out", str(plan_file(name))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )
        victims.append(process)
        return process

    try:
        # A full run, recorded: the kinds of request gc makes, in order.
        record = seeded("kill/record", None)
        proxy.arm(record.before.values())
        code, applied = gc_json(
            capsys, f"{proxy.host}/kill/record", *RULES, "--branches-file", str(branches), "--apply"
        )
        plan = applied["repositories"][0]
        assert code == 0 and plan["report"]["ok"]
        assert {t["tag"] for t in plan["tags"] if t["action"] == "delete"} == set(DELETED)
        assert {t["tag"] for t in plan["tags"] if t["action"] != "delete"} == KEPT
        finished(record)
        trace = list(proxy.trace)
        assert {kind for kind, _ in trace} - set(READS) == CHANGES, trace
        points = draw_points(trace)
        assert len(set(points)) == len(points) >= 20
        assert {p.kind for p in points if p.mode == "before"} == CHANGES
        assert {p.kind for p in points if p.mode == "after"} == CHANGES
        assert {p.kind for p in points if p.mode == "read"} == set(READS)

        # Repositories are seeded in the background, in order, while the points before them run.
        names = [f"kill/{i:02d}-{p.mode}-{p.n}" for i, p in enumerate(points, 1)]
        seeding = [pool.submit(seeded, name, point) for name, point in zip(names, points, strict=True)]
        cases: list[Case] = []
        waiting = victim(names[0])
        for i, future in enumerate(seeding):
            case = future.result()
            cases.append(case)
            point = case.point
            current = waiting
            assert current.stdin is not None
            proxy.arm(case.before.values(), point, current)
            current.stdin.write(b"go\n")
            current.stdin.close()
            if i + 1 < len(names):
                waiting = victim(names[i + 1])
            assert current.wait(timeout=60) == -signal.SIGKILL, f"gc was not killed at {point}"
            assert point is not None and proxy.killed == point.kind, f"killed at {proxy.killed}, not {point}"

            if point.rerun == "apply-plan":  # the plan as the killed run wrote it, through the proxy
                proxy.arm(case.before.values())
                code, applied = gc_json(
                    capsys, "--apply-plan", str(plan_file(case.name)), f"{proxy.host}/{case.name}", *RULES
                )
            else:
                code, applied = gc(case.name, "--apply")
            rerun = applied["repositories"][0]
            assert code == 0, f"the rerun after a kill at {point} failed: {rerun['report']}"
            if rerun["manifests"]:
                report = rerun["report"]
                assert report["ok"], f"the rerun after a kill at {point}: {report}"
                assert {t["status"] for t in report["tags"]} <= {"deleted", "already-gone"}, point
            else:  # the killed run had done everything: nothing left to do, nothing done
                assert rerun["report"] is None, point
            finished(case)
        cases.append(record)
    finally:
        pool.shutdown(cancel_futures=True)
        proxy.close()
        for seeder in seeders:
            seeder.http.close()
        for process in victims:
            if process.stdin is not None:
                process.stdin.close()
            if process.poll() is None:
                process.kill()
                process.wait()

    # The registry's own garbage collection (server stopped), then a new server on the same storage.
    private.stop()
    private.garbage_collect()
    kept_blobs = {d for c in cases for t in KEPT for d in blobs_of(c.documents[t])}
    freed = {d for c in cases for t in DELETED for d in blobs_of(c.documents[t])} - kept_blobs
    freed |= {c.before[t] for c in cases for t in set(DELETED) - SHARED}
    freed.add(sha(b"{}"))  # the placeholders' empty config: every placeholder is gone
    left = freed & set(blob_bytes(private.root))
    assert not left, f"registry gc left blobs of deleted caches: {sorted(left)}"
    revived = start_registry(
        tmp_path / "revived",
        storage=private.root / "data",
    )
    try:
        with ThreadPoolExecutor(4) as checks:
            for _ in checks.map(lambda case: served(revived, case), cases):
                pass
    finally:
        revived.stop()

    # No manifest was left untagged either: deleting untagged manifests frees nothing more.
    on_disk = blob_bytes(private.root)
    private.garbage_collect(delete_untagged=True)
    after = blob_bytes(private.root)
    assert after == on_disk, f"--delete-untagged freed {set(on_disk) - set(after)}"


def served(registry: LocalRegistry, case: Case) -> None:
    """The registry serves exactly the kept tags of ``case``, every kept manifest, and all their blobs."""
    check = Seeder(registry.host, case.name)
    try:
        assert check.state() == case.kept, case.point
        for tag, digest in case.kept.items():
            manifest = check.manifest(digest)
            assert manifest.status_code == 200 and sha(manifest.content) == digest, f"{case.point}: {tag}"
            for blob in blobs_of(case.documents[tag]):
                answer = check.http.get(f"{check.base}/blobs/{blob}")
                assert answer.status_code == 200, f"{case.point}: {tag}'s blob {blob} is gone"
                assert sha(answer.content) == blob == answer.headers["Docker-Content-Digest"]
    finally:
        check.http.close()
