"""gc deletes by digest in concurrent batches, one check per batch (issue 10, the cost of the checks).

A check lists the tags and HEADs every one of them; on the distribution API the deletions by digest
then go ``--concurrency`` at a time, so one check covers as many deletions as it had round trips times
``--concurrency`` (about one per tag) within its time bound (as long as it took, or 1 s). The first
deletion goes alone, the other whole deletions form the next batch, and each batch starts with a new
check. When a check's bound ends inside a batch, the next check starts only once every request the
last one covered has been answered: a change made when a check starts is seen by every later request.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.harness.registry import LocalRegistry
from tests.integration.test_gc import OCI_MANIFEST, Proxy, Seeder, gc_json
from tests.integration.test_gc_race import Case, RaceProxy, write

TEMPLATE = ["-t", "{branch}-buildcache"]


def seed_caches(seeder: Seeder, count: int) -> dict[str, str]:
    """``count`` caches ``bNN-buildcache``, each alone on its own manifest, bNN built NN hours ago."""
    return {
        f"b{i:02d}-buildcache": seeder.cache(
            f"b{i:02d}-buildcache", layers=[b"shared base", f"b{i:02d}".encode()], age=timedelta(hours=i + 1)
        )
        for i in range(count)
    }


def test_a_run_costs_one_check_per_batch_not_one_per_concurrency_deletions(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "batches/cost"
    seeder = Seeder(registry.host, name)
    try:
        seed_caches(seeder, 50)
    finally:
        seeder.http.close()
    branches = tmp_path / "branches.txt"
    branches.write_text("".join(f"b{i:02d}\n" for i in range(50)))  # every branch is alive
    proxy = Proxy(registry.url)
    try:
        repo = f"{proxy.host}/{name}"
        code, applied = gc_json(
            capsys,
            repo,
            *TEMPLATE,
            "--keep-last",
            "10",
            "--branches-file",
            str(branches),
            "--apply",
            "-j",
            "8",
        )
        counts = proxy.count()
    finally:
        proxy.close()
    report = applied["repositories"][0]["report"]
    assert code == 0, report
    # By hand: 50 caches, keep-last 10 keeps b00..b09 (the newest); b10..b49 go, each its manifest's only
    # tag, so all 40 are deleted whole by digest.
    assert report["summary"]["manifestsDeleted"] == 40 and report["summary"]["deleted"] == 40
    deletions = 40
    # Planning lists the tags once; every other tag list starts a check. Batch 1 is the first deletion alone
    # (a check over 50 tags), batch 2 the other 39 (a check over the 49 left, covering ceil(49 / 8) = 7
    # round trips x 8 in flight = 56 deletions, so all 39 when they go within its time bound of >= 1 s).
    # A machine too slow to send 39 DELETEs in a second starts one more check inside batch 2 (49 tags or
    # fewer). Before the batches, a check covered ceil(tags / 8) deletions sent one after another: 10 checks.
    checks = counts[("GET", "tags")] - 1
    assert 2 <= checks <= 3, counts
    # A HEAD per listed tag per check, plus one HEAD per stale tag when its manifest's turn comes.
    check_heads = counts[("HEAD", "manifest")] - deletions
    assert check_heads == 50 + 49 if checks == 2 else 50 + 49 < check_heads <= 50 + 49 + 49, counts
    # The designed bound: one HEAD per deletion on its turn, plus every tag once per batch, plus at most one
    # check for a bound that ended: (50 + 2 x 49) / 40 + 1 = 4.7 HEADs per deletion; it was 8.5 and more.
    assert counts[("HEAD", "manifest")] / deletions <= 4.7, counts
    assert counts[("DELETE", "manifest")] == 2 + deletions  # the two capability probes, then one per manifest


class SlowDeletes(RaceProxy):
    """A race proxy whose manifest DELETEs take a while to reach the registry: 0.2 s and 0.7 s in turn.

    Uneven, so that the two in flight at -j 2 do not finish together: when one worker starts a check,
    the other's DELETE is usually still on its way.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.sent = 0

    def hold(self, method: str, path: str) -> bool:
        if method == "DELETE" and "/manifests/sha256:" in path and self.deleting:
            self.sent += 1
            time.sleep(0.2 if self.sent % 2 else 0.7)  # then forwarded, after the writer if it runs meanwhile
        return super().hold(method, path)


def test_a_tag_put_on_a_doomed_manifest_when_a_check_starts_inside_a_batch_keeps_it(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 12 stale caches (their branches are gone) and main's: 11 deletions in batch 2, 2 at a time (-j 2), each
    # DELETE 0.2 or 0.7 s on its way: the batch takes about 2.5 s, past the 1 s bound of its check (13 HEADs at -j 2
    # take well under 1 s), so a check starts inside the batch (the 3rd tag list after the probes). At that
    # moment a second process tags every doomed manifest with a new tag adopted-NN (no template: gc never
    # deletes it; ``imagetools create -t …:adopted-NN …@digest``). Each one must survive: those deleted
    # already are pushed again by the writer, the others must be kept. Without the wait for the requests
    # in flight, a DELETE covered by the previous check reaches the registry after the writer and takes
    # adopted-NN with it.
    name = "batches/race"
    seeder = Seeder(registry.host, name)
    try:
        doomed = seed_caches(seeder, 12)
        main = seeder.cache("main-buildcache", layers=[b"shared base", b"main"], age=timedelta(hours=1))
        raws = {digest: seeder.manifest(digest).content for digest in doomed.values()}
    finally:
        seeder.http.close()
    case = Case("new-tag", "apply", "check-3", name)
    for i, (_, raw) in enumerate(sorted(raws.items())):
        path = tmp_path / f"adopted-{i:02d}.json"
        path.write_bytes(raw)
        case.writes.append((f"adopted-{i:02d}", OCI_MANIFEST, path))
    expected = {f"adopted-{i:02d}": digest for i, digest in enumerate(sorted(raws))}
    expected["main-buildcache"] = main  # main is a live branch: kept

    branches = tmp_path / "branches.txt"
    branches.write_text("main\n")
    proxy = SlowDeletes(registry.url)
    try:
        proxy.arm(case.moment, lambda: write(registry, case))
        repo = f"{proxy.host}/{name}"
        code, applied = gc_json(
            capsys, repo, *TEMPLATE, "--branches-file", str(branches), "--apply", "-j", "2"
        )
        fired = proxy.fired
    finally:
        proxy.close()
    report = applied["repositories"][0]["report"]
    assert fired == "check-3", f"no check started inside the batch: {report}"
    assert code == 0, report
    live = Seeder(registry.host, name)
    try:
        state = live.state()
    finally:
        live.http.close()
    assert {tag: state.get(tag) for tag in expected} == expected
    # Every doomed manifest is deleted (before the write; pushed again by it) or kept because of its new tag.
    outcomes = {m["digest"]: m for m in report["manifests"]}
    statuses = {outcomes[d]["status"] for d in doomed.values()}
    assert statuses <= {"deleted", "kept"}, report["manifests"]
    kept = [outcomes[d] for d in doomed.values() if outcomes[d]["status"] == "kept"]
    assert kept, "the write came after the last deletion: nothing was left to protect"
    for manifest in kept:
        assert "adopted-" in manifest["detail"], manifest
    assert report["summary"]["failed"] == 0
