"""`gc --apply --time-budget`: stop starting deletions when the budget is spent, exit 7, and a rerun finishes.

The real CLI in subprocesses against the real registry (distribution 2.8), through a proxy that holds
every DELETE for ``DELETE_LATENCY`` seconds, so that deleting the backlog takes several times the
budget whatever the machine's load: the budget bites in the first repository, and the second
repository of the policy is then never begun. The expected deletions are derived by hand from the
seeded scenario (branches file, templates, protection), not from the tool's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry
from tests.integration.test_gc import Proxy, Seeder, cli

SCHEMA = schema("gc-plan")
DELETE_LATENCY = 0.5  # seconds each DELETE is held by the proxy
STALE_A = 14  # caches of gone branches in the first repository, each alone on its manifest
STALE_B = 3  # in the second one
BUDGET = "2s"  # 14 DELETEs x 0.5 s at -j 2 is at least 3.5 s of deleting: the budget always bites


class SlowDeletes(Proxy):
    """The test proxy, holding each DELETE before forwarding it (latency of a distant registry)."""

    def hold(self, method: str, path: str) -> bool:
        if method == "DELETE":
            time.sleep(DELETE_LATENCY)
        return False


@pytest.fixture
def slow(registry: LocalRegistry) -> Iterator[SlowDeletes]:
    proxy = SlowDeletes(registry.url)
    yield proxy
    proxy.close()


def seed(host: str, repository: str, stale: int) -> tuple[Seeder, dict[str, str], set[str]]:
    """Kept: main-buildcache (protected), live-buildcache (live branch), keep-buildcache and
    shared-stale-buildcache on one manifest (a live tag and a stale one: the stale one is removed by a
    placeholder, the manifest stays); stale: s0..sN-buildcache, each alone on its manifest.
    Returns the seeder, the digest of every tag, and the tags a full run deletes."""
    seeder = Seeder(host, repository)
    day = timedelta(days=1)
    digests = {
        "main-buildcache": seeder.cache("main-buildcache", layers=[b"main " + repository.encode()], age=day),
        "live-buildcache": seeder.cache("live-buildcache", layers=[b"live " + repository.encode()], age=day),
    }
    shared = seeder.cache(
        "keep-buildcache", "shared-stale-buildcache", layers=[b"shared " + repository.encode()], age=day
    )
    digests["keep-buildcache"] = digests["shared-stale-buildcache"] = shared
    for i in range(stale):
        tag = f"s{i}-buildcache"
        digests[tag] = seeder.cache(tag, layers=[f"{repository} stale {i}".encode()], age=day)
    deleted = {f"s{i}-buildcache" for i in range(stale)} | {"shared-stale-buildcache"}
    return seeder, digests, deleted


def run_json(*args: str) -> tuple[int, dict[str, Any], str]:
    done = cli("gc", *args, "--json", "-j", "2")
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    return done.returncode, document, done.stderr


def outcomes(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Repository -> tag -> status in a report (empty when the repository has no report)."""
    return {
        r["repository"]: {t["tag"]: t["status"] for t in (r["report"] or {}).get("tags", [])}
        for r in document["repositories"]
    }


def test_a_budget_stops_partway_with_exit_7_and_a_rerun_finishes_exactly_the_plan(
    registry: LocalRegistry, slow: SlowDeletes, tmp_path: Path
) -> None:
    repo_a, repo_b = f"{slow.host}/budget/first", f"{slow.host}/budget/second"
    a, digests_a, deleted_a = seed(registry.host, "budget/first", STALE_A)
    b, digests_b, deleted_b = seed(registry.host, "budget/second", STALE_B)
    (tmp_path / "branches.txt").write_text("main\nlive\nkeep\n")
    policy = tmp_path / "gc.toml"
    policy.write_text(
        f"""
[defaults]
tag-templates = ["{{branch}}-buildcache"]
protect = ["main"]
branches-file = "branches.txt"

[[repository]]
name = "{repo_a}"

[[repository]]
name = "{repo_b}"
"""
    )
    expected = {repo_a: deleted_a, repo_b: deleted_b}

    # The plan of a single unbounded run (a dry run): exactly the hand-derived deletions.
    code, planned, _ = run_json("--policy", str(policy))
    assert code == 0
    assert {
        r["repository"]: {t["tag"] for t in r["tags"] if t["action"] == "delete"}
        for r in planned["repositories"]
    } == expected

    # 1. A budget the deletions cannot fit in: stopped partway, exit 7, "rerun to continue".
    code, first, stderr = run_json("--policy", str(policy), "--apply", "--time-budget", BUDGET)
    assert code == 7, stderr
    assert "time budget of 2s reached" in stderr and "rerun to continue" in stderr
    budget = first["budget"]
    assert budget["limit"] == "2s" and budget["reached"] is True and budget["hint"] == "rerun to continue"
    report_a, report_b = (r["report"] for r in first["repositories"])
    assert report_a["stoppedBy"] == "time-budget" and report_a["stopped"] == "time budget of 2s reached"
    statuses_a = outcomes(first)[repo_a]
    assert set(statuses_a) == deleted_a and set(statuses_a.values()) <= {"deleted", "not-attempted"}
    left_a = {t for t, s in statuses_a.items() if s == "not-attempted"}
    assert left_a  # the budget bit in the first repository
    # The second repository was never begun: every deletion not attempted, no capabilities detected.
    assert report_b["capabilities"] is None and report_b["stoppedBy"] == "time-budget"
    assert outcomes(first)[repo_b] == dict.fromkeys(deleted_b, "not-attempted")
    assert b.state() == digests_b  # untouched
    # What is left is counted in deletions: one per manifest deleted whole, one per tag removed alone.
    assert budget["deletionsLeft"] == len(left_a) + len(deleted_b)
    assert budget["deletions"] == report_a["summary"]["deletions"] == len(deleted_a) - len(left_a)
    # The registry: exactly the deleted tags gone, everything else where it was.
    done_a = deleted_a - left_a
    assert a.state() == {t: d for t, d in digests_a.items() if t not in done_a}

    # 2. The rerun plans again (what was deleted is no longer planned) and finishes: exit 0.
    code, second, stderr = run_json("--policy", str(policy), "--apply", "--time-budget", "10m")
    assert code == 0, stderr
    assert second["budget"]["reached"] is False and second["budget"]["deletionsLeft"] == 0
    assert "rerun to continue" not in stderr
    statuses = outcomes(second)
    assert set(statuses[repo_a]) == left_a and set(statuses[repo_a].values()) == {"deleted"}
    assert set(statuses[repo_b]) == deleted_b and set(statuses[repo_b].values()) == {"deleted"}

    # The union of the two runs' deletions is the single run's plan; nothing kept is gone.
    assert done_a | set(statuses[repo_a]) == deleted_a
    for seeder, digests, deleted in ((a, digests_a, deleted_a), (b, digests_b, deleted_b)):
        assert seeder.state() == {t: d for t, d in digests.items() if t not in deleted}
        for tag in deleted - {"shared-stale-buildcache"}:  # deleted whole: the manifest is gone
            assert seeder.manifest(digests[tag]).status_code == 404
        seeder.http.close()


ORG_SIZE = 12  # repositories of the organisation below; each holds ORG_STALE caches of gone branches
ORG_STALE = 4


def test_an_organisation_sharded_four_ways_is_cleaned_within_a_budget_and_a_second_round_finishes(
    registry: LocalRegistry, slow: SlowDeletes, tmp_path: Path
) -> None:
    """Issue 16's "done when", end to end: discovery through ``_catalog``, four shards applied at the same
    time (four real processes), each within ``--time-budget 1s``; a second round finishes the backlog.

    Expected by hand: each repository ``NAME`` holds ``main-buildcache`` (protected), an image ``app`` (no
    template) and ``gone-0`` … ``gone-3-buildcache`` (branches not in the branches file, each alone on its
    manifest): the plan deletes exactly the four ``gone-*`` tags of each repository, 48 in all. One
    repository's four deletions take at least 1.5 s through the proxy (the first alone, then three at
    ``-j 2``: three waves of 0.5 s), longer than the 1 s budget, so every shard that holds a repository is
    stopped (exit 7) and begins no repository after the one the budget ran out in.
    """
    prefix = f"org-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/svc-{n:02d}-cache" for n in range(ORG_SIZE)]
    stale = {f"gone-{i}-buildcache" for i in range(ORG_STALE)}
    for name in names:
        seeder = Seeder(registry.host, name)
        day = timedelta(days=1)
        seeder.cache("main-buildcache", layers=[f"{name} main".encode()], age=day)
        for tag in sorted(stale):
            seeder.cache(tag, layers=[f"{name} {tag}".encode()], age=day)
        seeder.image("app", [f"{name} app".encode()])
        seeder.http.close()
    (tmp_path / "branches.txt").write_text("main\n")
    base = [
        "gc", "--discover", f"{slow.host}/{prefix}", "--match", "*-cache", "-t", "{branch}-buildcache",
        "--protect", "main", "--branches-file", str(tmp_path / "branches.txt"), "--json", "-j", "2",
    ]  # fmt: skip
    expected = {f"{slow.host}/{name}": stale for name in names}

    code, plan, _ = run_json(*base[1:-3])  # the unsharded dry run: exactly the hand-derived plan
    assert code == 0
    assert {
        r["repository"]: {t["tag"] for t in r["tags"] if t["action"] == "delete"}
        for r in plan["repositories"]
    } == expected

    def round_of_shards(budget: str) -> list[tuple[int, dict[str, Any], str]]:
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "inspector", *base, "--apply", "--shard", f"{k}/4", "--time-budget", budget],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                env={**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": "/nonexistent-docker-config"},
            )
            for k in range(4)
        ]  # fmt: skip
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=180)
            document = json.loads(out)
            jsonschema.validate(document, SCHEMA)
            results.append((worker.returncode, document, err))
        return results

    def deleted_in(document: dict[str, Any]) -> dict[str, set[str]]:
        return {
            repository: {t for t, s in tags.items() if s == "deleted"}
            for repository, tags in outcomes(document).items()
        }

    first = round_of_shards("1s")
    deleted: dict[str, set[str]] = {}
    for code, document, stderr in first:
        begun = [r["repository"] for r in document["repositories"]]
        not_begun = [
            s["repository"] for s in document["discovery"]["skipped"] if s["reason"] == "time-budget"
        ]
        if begun or not_begun:  # this shard holds repositories: the budget bites in the first one
            assert code == 7, stderr
            assert "time budget of 1s reached" in stderr and "rerun to continue" in stderr
            assert document["budget"]["reached"] is True and document["budget"]["hint"] == "rerun to continue"
            # Those not begun are counted apart (never read, their deletions are unknown) and named on stderr.
            assert document["budget"]["repositoriesNotBegun"] == len(not_begun)
            if not_begun:
                assert f"{len(not_begun)} repositor" in stderr and "not begun" in stderr
            # Nothing after the repository the budget ran out in was begun (under heavy load the budget may
            # run out while the first one is still being read: then none was begun).
            stopped = [r["report"]["stoppedBy"] for r in document["repositories"] if r["report"]]
            assert not begun or stopped[-1] == "time-budget"
        for repository, tags in deleted_in(document).items():
            assert tags <= expected[repository]
            deleted.setdefault(repository, set()).update(tags)
    assert any(code == 7 for code, _, _ in first)
    for name in names:  # nothing kept is gone after the stopped round
        assert {"main-buildcache", "app"} <= tags_of(registry, name)

    second = round_of_shards("10m")
    for code, document, stderr in second:
        assert code == 0, stderr
        for repository, tags in deleted_in(document).items():
            assert not tags & deleted.get(repository, set())  # nothing deleted twice
            deleted.setdefault(repository, set()).update(tags)
    assert deleted == expected  # the two rounds together: exactly the plan
    for name in names:
        assert tags_of(registry, name) == {"main-buildcache", "app"}


def tags_of(registry: LocalRegistry, name: str) -> set[str]:
    answer = httpx.get(f"{registry.url}/v2/{name}/tags/list", timeout=10)
    return set(answer.json().get("tags") or []) if answer.status_code == 200 else set()
