"""Issue 16's "done when" on GHCR: an organisation of 100 container packages on the GitHub REST contract
server (``tests.harness.ghcr_server``, in front of the real registry) is discovered, sharded four ways
(four real CLI processes at the same time against the one server), applied within a time budget that
cannot fit, and a second round finishes the backlog.

What makes the budget bite whatever the machine's load: GitHub asks for at least one second between
mutating requests (registries.md addendum [G14]; GitHub "Best practices for using the REST API"), gc
paces its DELETEs to it (``inspector.registry.github_packages.Pace``) and the emulator answers a closer
one 403 with ``retry-after``. Each shard is given ``STALE_PER_SHARD`` stale packages (chosen by the
documented shard rule, below), one version each, so a shard's last deletion could start no sooner
than ``STALE_PER_SHARD - 1`` = 3 s after its first, which comes after the process has started, listed
the packages and planned one: past ``BUDGET`` (3 s from the start), so it is never begun.

Each shard runs with its own token, as each job of a GitHub Actions matrix gets its own
``GITHUB_TOKEN``; the emulator counts GitHub's content limits per token (its module docstring).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.ghcr_server import GitHubEmulator, TokenInfo
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry
from tests.harness.support import validate_json
from tests.integration.test_gc import Seeder

SCHEMA = schema("gc-plan")
SHARDS = 4
SERVICES = 90  # svc-NN-cache: main-buildcache (protected); the stale ones also gone-buildcache
TOOLS = 5  # tool-N-cache: only an image tagged latest (no tag matches the template)
WEB = 5  # web-N: the glob *-cache excludes them
STALE_PER_SHARD = 4  # packages with gone-buildcache in each shard: 3 s of paced DELETEs at least
BUDGET = "3s"
TOKENS = [f"ghp_shard{k}{'0' * 31}" for k in range(SHARDS)]
ENV_CLEARED = ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_ENTERPRISE_TOKEN", "GITHUB_API_URL", "GITHUB_STEP_SUMMARY")


def shard_of(repository: str) -> int:
    """docs/gc.md "Discovery and sharding": the sha256 of ``registry/path``, big-endian, mod N."""
    return int.from_bytes(hashlib.sha256(repository.encode()).digest(), "big") % SHARDS


@pytest.fixture
def org(registry: LocalRegistry) -> Iterator[tuple[GitHubEmulator, str, dict[str, set[str]]]]:
    """The organisation (a fresh name on the shared registry) and, per svc package, the tags the plan
    deletes: ``gone-buildcache`` in the first ``STALE_PER_SHARD`` svc packages of each shard (by name),
    nothing in the others (``main-buildcache`` is protected)."""
    owner = f"acme-{uuid.uuid4().hex[:8]}"
    services = [f"svc-{n:02d}-cache" for n in range(SERVICES)]
    stale: set[str] = set()
    for k in range(SHARDS):
        in_shard = [n for n in services if shard_of(f"{registry.host}/{owner}/{n}") == k]
        stale.update(in_shard[:STALE_PER_SHARD])

    def push(name: str) -> None:
        seeder = Seeder(registry.host, f"{owner}/{name}")
        if name.startswith("svc-"):
            day = timedelta(days=1)
            seeder.cache("main-buildcache", layers=[f"{owner}/{name} main".encode()], age=day)
            if name in stale:
                seeder.cache("gone-buildcache", layers=[f"{owner}/{name} gone".encode()], age=day)
        else:
            seeder.image("latest", [f"{owner}/{name}".encode()])
        seeder.http.close()

    others = [f"tool-{n}-cache" for n in range(TOOLS)] + [f"web-{n}" for n in range(WEB)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(push, services + others))
    expected = {
        f"{registry.host}/{owner}/{name}": ({"gone-buildcache"} if name in stale else set())
        for name in services
    }
    with GitHubEmulator(
        registry.host,
        owners={owner: "org"},
        tokens={t: TokenInfo(f"gc-bot-{i}") for i, t in enumerate(TOKENS)},
    ) as github:
        yield github, owner, expected
        assert github.errors == []


def run_shards(base: list[str], budget: list[str]) -> list[tuple[int, dict[str, Any], str]]:
    """Four real CLI processes at the same time, shard K with token K; their exit codes, JSON and stderr."""
    environment = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "inspector", *base, "--apply", "--shard", f"{k}/{SHARDS}", *budget],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            env={**environment, "NO_COLOR": "1", "GH_ENTERPRISE_TOKEN": TOKENS[k],
                 "DOCKER_CONFIG": "/nonexistent-docker-config"},
        )
        for k in range(SHARDS)
    ]  # fmt: skip
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        document = json.loads(out)
        validate_json(document, SCHEMA)
        results.append((worker.returncode, document, err))
    return results


def deleted_in(document: dict[str, Any]) -> dict[str, list[str]]:
    """Repository -> the tags its report says were deleted (a list: a tag deleted twice shows twice)."""
    return {
        r["repository"]: [t["tag"] for t in r["report"]["tags"] if t["status"] == "deleted"]
        for r in document["repositories"]
        if r["report"]
    }


def tags_of(registry: LocalRegistry, repository: str) -> set[str]:
    answer = httpx.get(f"{registry.url}/v2/{repository}/tags/list", timeout=10)
    return set(answer.json().get("tags") or []) if answer.status_code == 200 else set()


def test_an_organisation_of_100_ghcr_packages_sharded_four_ways_is_cleaned_within_a_budget_then_finished(
    org: tuple[GitHubEmulator, str, dict[str, set[str]]], registry: LocalRegistry, tmp_path: Path
) -> None:
    github, owner, expected = org
    (tmp_path / "branches.txt").write_text("main\n")
    base = [
        "gc", "--discover", f"{registry.host}/{owner}", "--match", "*-cache", "--backend", "ghcr",
        "--github-api-url", github.url, "-t", "{branch}-buildcache", "--protect", "main",
        "--branches-file", str(tmp_path / "branches.txt"), "--json",
    ]  # fmt: skip
    stale_total = SHARDS * STALE_PER_SHARD  # 16 deletions, one version each
    matching = [*expected, *(f"{registry.host}/{owner}/tool-{n}-cache" for n in range(TOOLS))]

    # The unsharded dry run: 100 packages looked at; the 90 svc packages planned (each holds
    # main-buildcache, which the template reads), 16 of them deleting gone-buildcache (branch gone);
    # tool-N-cache skipped no-matching-tag (only `latest`), web-N excluded-by-glob.
    done = subprocess.run(
        [sys.executable, "-m", "inspector", *base],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**{k: v for k, v in os.environ.items() if k not in ENV_CLEARED}, "NO_COLOR": "1",
             "GH_ENTERPRISE_TOKEN": TOKENS[0]},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    validate_json(plan, SCHEMA)
    planned = {
        r["repository"]: {t["tag"] for t in r["tags"] if t["action"] == "delete"}
        for r in plan["repositories"]
    }
    assert planned == expected
    assert sum(len(tags) for tags in planned.values()) == stale_total
    skipped = {(s["repository"].rsplit("/", 1)[1], s["reason"]) for s in plan["discovery"]["skipped"]}
    assert skipped == {(f"tool-{n}-cache", "no-matching-tag") for n in range(TOOLS)} | {
        (f"web-{n}", "excluded-by-glob") for n in range(WEB)
    }
    assert not [r for r in github.requests if r.method == "DELETE"]  # a dry run deletes nothing

    # Round 1: each shard within the budget. Its fourth stale version's DELETE could start 3 s after
    # the first one at the earliest, past the 3 s budget that started before it: every shard stops.
    first = run_shards(base, ["--time-budget", BUDGET])
    deleted: dict[str, list[str]] = {}
    for k, (code, document, stderr) in enumerate(first):
        assert code == 7, stderr
        assert "time budget of 3s reached" in stderr and "rerun to continue" in stderr, stderr
        assert document["budget"]["reached"] is True
        # The shard's packages that match the glob, begun, read and skipped, or not begun, are exactly
        # those the documented rule gives it.
        begun = {r["repository"] for r in document["repositories"]}
        reasons = {s["repository"]: s["reason"] for s in document["discovery"]["skipped"]}
        looked = {r for r, why in reasons.items() if why in ("time-budget", "no-matching-tag")}
        assert not begun & looked
        assert begun | looked == {r for r in matching if shard_of(r) == k}
        for repository, tags in deleted_in(document).items():
            assert shard_of(repository) == k and len(tags) == len(set(tags))
            assert set(tags) <= expected[repository]
            deleted.setdefault(repository, []).extend(tags)
    first_round = sum(len(tags) for tags in deleted.values())
    assert first_round < stale_total  # the budget left a backlog
    for repository in expected:  # nothing kept is gone
        assert "main-buildcache" in tags_of(registry, repository.split("/", 1)[1])

    # Round 2: no budget; each shard plans again (what was deleted is no longer planned) and finishes.
    second = run_shards(base, [])
    for k, (code, document, stderr) in enumerate(second):
        assert code == 0, stderr
        assert "rerun to continue" not in stderr
        assert {r["repository"] for r in document["repositories"]} == {
            r for r in expected if shard_of(r) == k
        }
        for repository, tags in deleted_in(document).items():
            assert not set(tags) & set(deleted.get(repository, []))  # nothing deleted twice
            deleted.setdefault(repository, []).extend(tags)
    assert {r: set(tags) for r, tags in deleted.items() if tags} == {r: t for r, t in expected.items() if t}
    assert sum(len(tags) for tags in deleted.values()) == stale_total  # each exactly once
    # The registry: every svc package holds main-buildcache alone; the other packages are untouched.
    for repository in expected:
        assert tags_of(registry, repository.split("/", 1)[1]) == {"main-buildcache"}
    for name in [f"tool-{n}-cache" for n in range(TOOLS)] + [f"web-{n}" for n in range(WEB)]:
        assert tags_of(registry, f"{owner}/{name}") == {"latest"}
    # The REST side: one DELETE answered 204 per stale version, each version once.
    deletes = [r for r in github.requests if r.method == "DELETE" and r.status == 204]
    assert len(deletes) == len({r.raw_path for r in deletes}) == stale_total
