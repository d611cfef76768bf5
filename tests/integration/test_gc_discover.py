"""``gc`` over an organisation found through ``/v2/_catalog``, sharded, against a real docker-registry (2.8).

The organisation (``ORG``, seeded once per module on a registry of its own, so the catalog holds exactly it):

* 20 repositories ``acme/svc-NN-cache``, each with ``main-buildcache`` (protected, live), ``feature-a-buildcache``
  (live), ``gone-NN-buildcache`` (its branch is not in ``BRANCHES``) and an image ``app`` (no template);
* 3 repositories ``acme/tool-NN-cache`` holding only an image tagged ``latest``: no tag matches
  ``{branch}-buildcache``, so discovery skips them as ``no-matching-tag``;
* 3 repositories ``acme/web-NN``: the glob ``*-cache`` excludes them;
* ``other/x-cache``: outside the prefix ``acme``, never looked at.

Under ``RULES`` (one template, protect main, branches from ``BRANCHES``) the plan deletes exactly
``gone-NN-buildcache`` in each svc repository (rule 6, branch gone: ``gone-NN`` is no live branch) and
keeps ``main-buildcache`` (rule 3, protected), ``feature-a-buildcache`` (rule 9, ``feature/a`` is live and
slugs to ``feature-a``), ignoring ``app`` (rule 1). So 26 repositories are looked at, 20 planned, 6 skipped.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.cli import run
from inspector.errors import ExitCode, InvalidContent, NotFound
from inspector.gc.backends.base import DeleteBackend
from inspector.gc.backends.factory import select_backend
from inspector.gc.inventory import Inventory
from inspector.gc.plan import RepositoryPlan
from inspector.gc.policy import RepositoryPolicy, Settings
from inspector.gc.service import discover_sources, run_streamed
from inspector.registry.catalog import iter_catalog
from inspector.registry.client import TAG_PAGE_LIMIT, ClientOptions, RegistryClient
from inspector.registry.ecr import EcrClient
from inspector.registry.github_packages import GhcrClient, GhcrOptions
from inspector.registry.google import iter_packages
from tests.harness.ecr_server import ACCOUNT as ECR_ACCOUNT
from tests.harness.ecr_server import REGION as ECR_REGION
from tests.harness.ecr_server import EcrMirror, EcrServer, ecr_server
from tests.harness.evilserver import EvilServer, Reply, Request, Script, json_reply
from tests.harness.faultproxy import FaultProxy, request_kind
from tests.harness.gar_server import LOCATION as GAR_LOCATION
from tests.harness.gar_server import ArtifactRegistryContract, artifact_registry
from tests.harness.ghcr_server import GitHubEmulator, TokenInfo
from tests.harness.paths import schema
from tests.harness.registry import LocalRegistry, start_registry
from tests.harness.support import run_cli, validate_json
from tests.integration.test_gc import Seeder
from tests.integration.test_gc_ecr import Pusher as EcrPusher
from tests.integration.test_gc_ecr import seed as ecr_seed

SCHEMA = schema("gc-plan")
BRANCHES = "main\nfeature/a\n"
SERVICES = [f"acme/svc-{n:02d}-cache" for n in range(20)]
TOOLS = [f"acme/tool-{n:02d}-cache" for n in range(3)]
WEB = [f"acme/web-{n:02d}" for n in range(3)]
OUTSIDE = ["other/x-cache"]


def _gone(repository: str) -> str:
    return f"gone-{repository.split('-')[1]}-buildcache"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    registry = start_registry(tmp_path_factory.mktemp("org-registry"))
    try:
        for name in SERVICES:
            seeder = Seeder(registry.host, name)
            base = name.encode()
            seeder.cache("main-buildcache", layers=[base + b"main"], age=timedelta(days=1))
            seeder.cache("feature-a-buildcache", layers=[base + b"feature-a"], age=timedelta(days=2))
            seeder.cache(_gone(name), layers=[base + b"gone"], age=timedelta(days=3))
            seeder.image("app", [base + b"app"])
            seeder.http.close()
        for name in TOOLS + WEB + OUTSIDE:
            seeder = Seeder(registry.host, name)
            seeder.image("latest", [name.encode()])
            seeder.http.close()
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    path = tmp_path / "branches.txt"
    path.write_text(BRANCHES)
    return path


def rules(branches: Path) -> list[str]:
    return ["-t", "{branch}-buildcache", "--protect", "main", "--branches-file", str(branches)]


def tags_of(registry: LocalRegistry, name: str) -> set[str]:
    answer = httpx.get(f"{registry.url}/v2/{name}/tags/list", timeout=10)
    if answer.status_code == 404:
        return set()
    return set(answer.json().get("tags") or [])


def planned(document: dict[str, Any]) -> dict[str, set[str]]:
    """Repository -> the tags its plan deletes."""
    return {
        r["repository"]: {t["tag"] for t in r["tags"] if t["action"] == "delete"}
        for r in document["repositories"]
    }


def test_distribution_pages_the_catalog_with_link_and_every_name_is_read(org: LocalRegistry) -> None:
    # distribution 2.8 registry/handlers/catalog.go: a page of n names, and Link rel="next" while more remain.
    first = httpx.get(f"{org.url}/v2/_catalog", params={"n": "5"}, timeout=10)
    assert first.status_code == 200
    assert len(first.json()["repositories"]) == 5
    assert 'rel="next"' in first.headers["Link"]
    everything = sorted(SERVICES + TOOLS + WEB + OUTSIDE)
    with RegistryClient(ClientOptions()) as client:
        listed = list(iter_catalog(client, org.host, page_size=5))
    # 27 names at 5 a page: all of them only if every Link was followed; distribution walks its storage
    # in lexical order, so the pages join up sorted.
    assert listed == everything


def test_discovery_plan_says_what_it_looked_at_and_why_each_was_skipped(
    org: LocalRegistry, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["gc", "--discover", f"{org.host}/acme", "--match", "*-cache", *rules(branches), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    validate_json(document, SCHEMA)
    assert planned(document) == {f"{org.host}/{name}": {_gone(name)} for name in SERVICES}
    discovery = document["discovery"]
    assert discovery["lookedAt"] == 26 and discovery["planned"] == 20
    reasons = {s["repository"]: s["reason"] for s in discovery["skipped"]}
    assert reasons == {
        **{f"{org.host}/{name}": "no-matching-tag" for name in TOOLS},
        **{f"{org.host}/{name}": "excluded-by-glob" for name in WEB},
    }


def test_four_shards_split_the_plan_and_their_applies_keep_everything_kept(
    org: LocalRegistry, branches: Path
) -> None:
    """Each shard a real CLI process; the four applies run at the same time against the one registry."""
    discover = ["gc", "--discover", f"{org.host}/acme", "--match", "*-cache", *rules(branches), "--json"]
    whole = run_cli(*discover)
    assert whole.returncode == 0, whole.stderr
    unsharded = planned(json.loads(whole.stdout))
    shards = [run_cli(*discover, "--shard", f"{k}/4") for k in range(4)]
    parts = []
    for result in shards:
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        validate_json(document, SCHEMA)
        parts.append(planned(document))
        # Every shard lists the whole organisation; what it does not plan, it says why.
        assert document["discovery"]["lookedAt"] == 26
    names = [set(p) for p in parts]
    assert sum(len(n) for n in names) == len(set().union(*names))  # disjoint
    assert {k: v for p in parts for k, v in p.items()} == unsharded  # union == the unsharded plan
    assert len(unsharded) == 20

    env_free = [sys.executable, "-m", "inspector", *discover[:-1]]  # text output, applying
    workers = [
        subprocess.Popen(
            [*env_free, "--apply", "--shard", f"{k}/4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"DOCKER_CONFIG": "/nonexistent-docker-config", "PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
        )
        for k in range(4)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err
    for name in SERVICES:
        assert tags_of(org, name) == {"main-buildcache", "feature-a-buildcache", "app"}, name
    for name in TOOLS + WEB + OUTSIDE:
        assert tags_of(org, name) == {"latest"}, name
    again = run_cli(*discover)  # replanning finds nothing left to delete
    assert again.returncode == 0
    assert all(not tags for tags in planned(json.loads(again.stdout)).values())


@pytest.mark.parametrize("value", ["3/3", "a/b", "0/0", "-1/2", "1", "1/2/3"])
def test_a_bad_shard_is_a_usage_error_in_one_line(
    value: str, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["gc", "--discover", "127.0.0.1:9/acme", *rules(branches), "--shard", value])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") <= 2 and "--shard" in err and "Traceback" not in err


def test_a_discovered_repository_costs_one_tag_listing_and_one_without_a_matching_tag_nothing_more(
    org: LocalRegistry, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = FaultProxy(org.url)  # rate 0: a counting proxy
    try:
        code = run(
            ["gc", "--discover", f"{proxy.host}/acme", "--match", "*-cache", *rules(branches), "--json"]
        )
        assert code == 0, capsys.readouterr().out[-3000:]
        per_repository = Counter((s.method, s.kind, request_kind(s.path)[1]) for s in proxy.seen)
    finally:
        proxy.close()
    for name in SERVICES:
        assert per_repository[("GET", "tags", name)] == 1, name
    for name in TOOLS:  # the one listing decides: no manifest is read
        assert {k: n for k, n in per_repository.items() if k[2] == name} == {("GET", "tags", name): 1}
    assert not any(k[2] in WEB + OUTSIDE for k in per_repository)  # the glob and the prefix decide unread


def test_a_repository_that_cannot_be_read_is_reported_and_the_others_still_run(
    org: LocalRegistry, branches: Path
) -> None:
    """The listing names a repository that is gone when it is read (a real 404 from the registry, as when
    it is deleted between the catalog and its tag listing): reported, and the next one is still planned."""
    flags = Settings(tag_templates=("{branch}-buildcache",), protect=("main",), branches_file=str(branches))
    sources = discover_sources(None, f"{org.host}/acme", "*-cache", flags)
    planned_in_order: list[str] = []
    with RegistryClient(ClientOptions()) as client:

        def backends(policy: RepositoryPolicy, untagged: bool) -> DeleteBackend:
            return select_backend(client, policy.repository, kind=policy.backend)

        result = run_streamed(
            client,
            [],
            sources,
            lambda source, settings: ["acme/svc-00-cache", "acme/ghost-cache", "acme/svc-01-cache"],
            backends,
            flags=flags,
            apply=False,
            now=datetime.now(UTC),
            on_repository=lambda plan, report, error: planned_in_order.append(plan.repository.path),
        )
    assert planned_in_order == ["acme/svc-00-cache", "acme/svc-01-cache"]
    ghost = f"{org.host}/acme/ghost-cache"
    assert [(s.repository, s.reason) for s in result.discovery.skipped] == [(ghost, "error")]
    assert (result.discovery.looked_at, result.discovery.planned) == (3, 2)
    assert isinstance(result.errors[ghost], NotFound)
    assert result.exit_code == ExitCode.NOT_FOUND


# -- GHCR: an organisation's container packages over the GitHub REST contract server ----------------

ADMIN = "ghp_discover0000000000000000000000000000"


@pytest.fixture
def ghcr_org(
    registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GitHubEmulator, str]]:
    """An org (a fresh name on the shared registry) with packages app-cache, web-cache and site, and a user
    ``solo-…`` with one package: app-cache holds main-buildcache and gone-buildcache, the others an image."""
    for name in (
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITHUB_ENTERPRISE_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_STEP_SUMMARY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "GH_ENTERPRISE_TOKEN", ADMIN
    )  # the emulator is no github.com: gh's Enterprise variable
    suffix = uuid.uuid4().hex[:8]
    org, user = f"acme-{suffix}", f"solo-{suffix}"
    app = Seeder(registry.host, f"{org}/app-cache")
    app.cache("main-buildcache", layers=[org.encode() + b"main"], age=timedelta(days=1))
    app.cache("gone-buildcache", layers=[org.encode() + b"gone"], age=timedelta(days=1))
    app.http.close()
    for name in (f"{org}/web-cache", f"{org}/site", f"{user}/tool-cache"):
        seeder = Seeder(registry.host, name)
        seeder.image("latest", [name.encode()])
        seeder.http.close()
    with GitHubEmulator(
        registry.host, owners={org: "org", user: "user"}, tokens={ADMIN: TokenInfo("gc-bot")}
    ) as github:
        yield github, org
        assert github.errors == []


@pytest.mark.parametrize("with_link", [True, False])
def test_ghcr_packages_of_an_org_are_listed_page_by_page(
    ghcr_org: tuple[GitHubEmulator, str], with_link: bool
) -> None:
    github, org = ghcr_org
    github.packages_link = with_link  # False: as github.com answers (no Link), pages are asked by number
    with GhcrClient(GhcrOptions(base_url=github.url, page_size=1), token=ADMIN) as client:
        names = list(client.iter_container_packages(org))
    assert names == ["app-cache", "site", "web-cache"]
    listed = [r for r in github.requests if r.raw_path == f"/orgs/{org}/packages"]
    # One package a page: three pages; without Link the third is full, so a fourth (empty) one ends it.
    pages = [r.query.get("page", ["1"])[0] for r in listed]
    assert pages == (["1", "2", "3"] if with_link else ["1", "2", "3", "4"])
    assert all(r.query["package_type"] == ["container"] for r in listed)


def test_ghcr_packages_of_a_user_are_listed_after_the_org_endpoint_says_404(
    ghcr_org: tuple[GitHubEmulator, str],
) -> None:
    github, org = ghcr_org
    user = org.replace("acme-", "solo-")
    with GhcrClient(GhcrOptions(base_url=github.url), token=ADMIN) as client:
        assert list(client.iter_container_packages(user)) == ["tool-cache"]
    assert [p for p in github.paths("GET") if p.endswith("/packages")] == [
        f"/orgs/{user}/packages",
        f"/users/{user}/packages",
    ]


def test_ghcr_org_discovery_plans_and_deletes_through_the_rest_api(
    ghcr_org: tuple[GitHubEmulator, str],
    registry: LocalRegistry,
    branches: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    github, org = ghcr_org
    args = [
        "gc",
        "--discover",
        f"{registry.host}/{org}",
        "--match",
        "*-cache",
        "--backend",
        "ghcr",
        "--github-api-url",
        github.url,
        *rules(branches),
    ]
    code = run([*args, "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    validate_json(document, SCHEMA)
    # app-cache: gone-buildcache's branch is not in BRANCHES (delete), main is protected (keep);
    # web-cache holds only `latest` (no template reads it); site does not match *-cache.
    assert planned(document) == {f"{registry.host}/{org}/app-cache": {"gone-buildcache"}}
    assert {(s["repository"], s["reason"]) for s in document["discovery"]["skipped"]} == {
        (f"{registry.host}/{org}/web-cache", "no-matching-tag"),
        (f"{registry.host}/{org}/site", "excluded-by-glob"),
    }
    assert run([*args, "--apply"]) == 0
    assert tags_of(registry, f"{org}/app-cache") == {"main-buildcache"}
    assert tags_of(registry, f"{org}/web-cache") == tags_of(registry, f"{org}/site") == {"latest"}
    assert any(
        p.startswith(f"/orgs/{org}/packages/container/app-cache/versions/") for p in github.paths("DELETE")
    )


# -- ECR: DescribeRepositories (moto for the ECR API, the real registry for the OCI side) ----------


@pytest.fixture(scope="module")
def ecr() -> Iterator[EcrServer]:
    pytest.importorskip("boto3")
    with ecr_server() as started:
        yield started


def test_ecr_repositories_are_listed_page_by_page() -> None:
    """moto answers DescribeRepositories in one page whatever maxResults says, so the pages here are
    botocore's Stubber (checked against the ECR API model): ``nextToken`` is followed, and a token that
    comes back is a loop (ECR API reference, DescribeRepositories: maxResults 1..1000, nextToken)."""
    boto3 = pytest.importorskip("boto3")
    from botocore.stub import Stubber

    raw = boto3.client("ecr", region_name=ECR_REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(raw)

    def page(names: list[str], token: str | None) -> dict[str, Any]:
        return {
            "repositories": [{"repositoryName": n} for n in names],
            **({"nextToken": token} if token else {}),
        }

    stub.add_response(
        "describe_repositories", page(["a/x", "a/y"], "t1"), {"registryId": ECR_ACCOUNT, "maxResults": 2}
    )
    stub.add_response(
        "describe_repositories",
        page(["b/z"], None),
        {"registryId": ECR_ACCOUNT, "maxResults": 2, "nextToken": "t1"},
    )
    stub.add_response(
        "describe_repositories", page(["a/x"], "t1"), {"registryId": ECR_ACCOUNT, "maxResults": 2}
    )
    stub.add_response(
        "describe_repositories",
        page(["a/y"], "t1"),
        {"registryId": ECR_ACCOUNT, "maxResults": 2, "nextToken": "t1"},
    )
    with stub:
        client = EcrClient(ECR_ACCOUNT, client=raw)
        assert list(client.iter_repository_names(page_size=2)) == ["a/x", "a/y", "b/z"]
        with pytest.raises(InvalidContent, match="repeated a nextToken"):
            list(client.iter_repository_names(page_size=2))
        stub.assert_no_pending_responses()


def test_ecr_discovery_plans_each_repository_under_the_prefix(
    ecr: EcrServer,
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    branches = tmp_path / "branches.txt"
    branches.write_text("main\nfeature/a\nold\nyoung\nshared-live\n")
    for key, value in ecr.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-docker-config")
    prefix = f"disc-{uuid.uuid4().hex[:8]}"
    ecr_seed(registry, ecr, f"{prefix}/app-cache")
    tool = EcrMirror(ecr, f"{prefix}/tool-cache")
    with httpx.Client(timeout=10) as http:
        EcrPusher(registry, tool, http).image("latest", b"tool")
    code = run(
        [
            "gc",
            "--discover",
            f"{registry.host}/{prefix}",
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
            ECR_ACCOUNT,
            "--aws-region",
            ECR_REGION,
            "--json",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    validate_json(document, SCHEMA)
    [plan] = document["repositories"]
    assert plan["repository"] == f"{registry.host}/{prefix}/app-cache"
    actions = {t["tag"]: (t["action"], t["rule"]) for t in plan["tags"]}
    # test_gc_ecr's scenario under these rules: the ECR push times (DescribeImages) are 1 day ago,
    # old's 40 days; main is protected; gone and shared-stale have no live branch (rule 6); old's
    # branch lives but it was pushed 40 days ago > 30d (rule 7); v1 matches no template (rule 1).
    assert actions == {
        "main-buildcache": ("keep", "protected"),
        "feature-a-buildcache": ("keep", "kept"),
        "young-buildcache": ("keep", "kept"),
        "shared-live-buildcache": ("keep", "kept"),
        "gone-buildcache": ("delete", "branch-gone"),
        "shared-stale-buildcache": ("delete", "branch-gone"),
        "old-buildcache": ("delete", "max-age"),
        "v1": ("ignore", "no-template"),
    }
    assert [(s["repository"], s["reason"]) for s in document["discovery"]["skipped"]] == [
        (f"{registry.host}/{prefix}/tool-cache", "no-matching-tag")
    ]


def seed_two(registry: LocalRegistry, prefix: str) -> None:
    """PREFIX/a-cache and PREFIX/b-cache, each with main-buildcache and gone-buildcache."""
    for name in ("a-cache", "b-cache"):
        seeder = Seeder(registry.host, f"{prefix}/{name}")
        seeder.cache("main-buildcache", layers=[prefix.encode() + name.encode()], age=timedelta(days=1))
        seeder.cache(
            "gone-buildcache", layers=[prefix.encode() + name.encode() + b"g"], age=timedelta(days=1)
        )
        seeder.http.close()


def test_a_discovery_plan_file_is_applied_under_the_policy_that_discovers(
    registry: LocalRegistry, tmp_path: Path, branches: Path
) -> None:
    """--plan-out of a discovery run (written one repository at a time) is a plan file that --apply-plan
    binds to the [[discover]] table whose prefix and glob cover each repository."""
    prefix = f"plan-{uuid.uuid4().hex[:8]}"
    seed_two(registry, prefix)
    policy = tmp_path / "gc.toml"
    policy.write_text(
        f'[defaults]\ntag-templates = ["{{branch}}-buildcache"]\nprotect = ["main"]\nbranches-file = "{branches}"\n'
        f'[[discover]]\nsource = "{registry.host}/{prefix}"\nmatch = "*-cache"\n',
        encoding="utf-8",
    )
    plan_file = tmp_path / "plan.json"
    planned_run = run_cli("gc", "--policy", str(policy), "--plan-out", str(plan_file))
    assert planned_run.returncode == 0, planned_run.stderr
    document = json.loads(plan_file.read_text())
    validate_json(document, SCHEMA)
    expected = {f"{registry.host}/{prefix}/{n}": {"gone-buildcache"} for n in ("a-cache", "b-cache")}
    assert planned(document) == expected  # gone: no live branch; main: protected
    applied = run_cli("gc", "--apply-plan", str(plan_file), "--policy", str(policy))
    assert applied.returncode == 0, applied.stderr
    for name in ("a-cache", "b-cache"):
        assert tags_of(registry, f"{prefix}/{name}") == {"main-buildcache"}


def test_a_source_that_cannot_be_listed_is_refused_before_any_output(
    branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["gc", "--discover", "gcr.io/project", *rules(branches), "--json"])
    out = capsys.readouterr().out
    assert code == 2
    assert (
        "GCR discovery is not supported" in json.loads(out)["error"]["message"]
    )  # one document: no plan was begun


def test_a_bad_shard_in_a_real_process_is_one_line_and_exit_2(branches: Path) -> None:
    result = run_cli("gc", "--discover", "127.0.0.1:9/acme", *rules(branches), "--shard", "-1/2")
    assert result.returncode == 2
    assert (
        result.stderr.startswith("cacheinspect: error: --shard '-1/2'") and "Traceback" not in result.stderr
    )


def test_shards_partition_listed_repositories_too(
    org: LocalRegistry, branches: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "gc.toml"
    policy.write_text(
        '[defaults]\ntag-templates = ["{branch}-buildcache"]\n'
        + "".join(f'[[repository]]\nname = "{org.host}/{name}"\n' for name in SERVICES[:8]),
        encoding="utf-8",
    )
    parts = []
    for k in range(3):
        assert (
            run(
                [
                    "gc",
                    "--policy",
                    str(policy),
                    "--branches-file",
                    str(branches),
                    "--shard",
                    f"{k}/3",
                    "--json",
                ]
            )
            == 0
        )
        document = json.loads(capsys.readouterr().out)
        parts.append({r["repository"] for r in document["repositories"]})
        assert document["discovery"]["lookedAt"] == 8
        others = {s["repository"] for s in document["discovery"]["skipped"] if s["reason"] == "other-shard"}
        assert others | parts[-1] == {f"{org.host}/{name}" for name in SERVICES[:8]}
    assert sum(map(len, parts)) == 8 and set().union(*parts) == {f"{org.host}/{n}" for n in SERVICES[:8]}


def test_a_plan_over_max_deletes_refuses_its_repository_only(
    registry: LocalRegistry, tmp_path: Path, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A streamed run checks --max-deletes per repository, before that repository's own deletions."""
    prefix = f"limit-{uuid.uuid4().hex[:8]}"
    seed_two(registry, prefix)
    policy = tmp_path / "gc.toml"
    policy.write_text(
        f'[defaults]\ntag-templates = ["{{branch}}-buildcache"]\nprotect = ["main"]\nbranches-file = "{branches}"\n'
        f'[[repository]]\nname = "{registry.host}/{prefix}/a-cache"\nmax-deletes = 0\n'
        f'[[discover]]\nsource = "{registry.host}/{prefix}"\n',
        encoding="utf-8",
    )
    summary = tmp_path / "summary.md"
    code = run(["gc", "--policy", str(policy), "--apply", "--summary", str(summary)])
    err = capsys.readouterr().err
    assert code == 2  # a-cache's plan deletes 1 tag > max-deletes 0: refused, nothing deleted there
    assert "max-deletes" in err or "--max-deletes" in err
    assert tags_of(registry, f"{prefix}/a-cache") == {"main-buildcache", "gone-buildcache"}
    assert tags_of(registry, f"{prefix}/b-cache") == {"main-buildcache"}  # discovered, applied
    text = summary.read_text()
    # a-cache: listed (its own table); b-cache: discovered; a-cache is named by the catalog too.
    assert "2 repositories looked at, 2 planned, 0 skipped." in text
    assert f"| `{registry.host}/{prefix}/b-cache` | 1 | 1 |" in text


def test_a_repository_named_with_a_discovering_policy_is_planned_alone_under_its_discover_table(
    registry: LocalRegistry, tmp_path: Path, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"one-{uuid.uuid4().hex[:8]}"
    seed_two(registry, prefix)
    policy = tmp_path / "gc.toml"
    policy.write_text(
        f'[defaults]\ntag-templates = ["{{branch}}-buildcache"]\nbranches-file = "{branches}"\n'
        f'[[discover]]\nsource = "{registry.host}/{prefix}"\nprotect = ["main"]\nkeep-last = 7\n',
        encoding="utf-8",
    )
    assert run(["gc", "--policy", str(policy), f"{registry.host}/{prefix}/b-cache", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    # Only the repository given (no discovery ran), under the [[discover]] table that covers it.
    assert "discovery" not in document
    [plan] = document["repositories"]
    assert plan["repository"] == f"{registry.host}/{prefix}/b-cache"
    assert (plan["rules"]["protect"], plan["rules"]["keepLast"]) == (["main"], 7)


# -- a catalog that lies ---------------------------------------------------------------------------


def _catalog_script(link: Callable[[str], str | None], names: Callable[[str], list[str]]) -> Script:
    def script(request: Request) -> Reply | None:
        if request.path != "/v2/_catalog":
            return json_reply(200, "{}")  # /v2/ and anything else
        headers = {"Link": found} if (found := link(request.query)) else {}
        return json_reply(200, json.dumps({"repositories": names(request.query)}), **headers)

    return script


@pytest.mark.parametrize(
    ("link", "message"),
    [
        (lambda query: '</v2/_catalog?n=1000>; rel="next"', "loops back"),  # page 1 names itself again
        (lambda query: '<http://127.0.0.2:1/v2/_catalog?last=x>; rel="next"', "another host"),
    ],
)
def test_a_catalog_whose_links_loop_or_leave_the_host_is_refused(
    link: Callable[[str], str], message: str, branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EvilServer(_catalog_script(link, lambda query: ["acme/a-cache"])) as evil:
        code = run(["gc", "--discover", f"{evil.host}/acme", *rules(branches), "--json"])
        document = json.loads(capsys.readouterr().out)
    # The source's error is reported in the plan and sets the exit code (8: the registry's answer is invalid).
    assert code == ExitCode.INVALID_CONTENT
    [source] = document["discovery"]["sources"]
    assert message in source["error"]


def test_a_catalog_body_that_is_not_a_name_list_is_refused(
    branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def script(request: Request) -> Reply | None:
        if request.path == "/v2/_catalog":
            return json_reply(200, '{"repositories": [1, 2]}')
        return json_reply(200, "{}")

    with EvilServer(script) as evil:
        code = run(["gc", "--discover", f"{evil.host}/acme", *rules(branches), "--json"])
        document = json.loads(capsys.readouterr().out)
    assert code == ExitCode.INVALID_CONTENT
    assert "expected a string" in document["discovery"]["sources"][0]["error"]


def test_a_streamed_run_holds_one_repository_plan_at_a_time(org: LocalRegistry, branches: Path) -> None:
    """Counted on the heap when each repository is handed over: at most the plan being handed over and the
    target's unfinished copy of it are alive, however many repositories came before (the flat memory
    ``python -m bench --only gc-org`` measures); no inventory survives its planning."""
    flags = Settings(tag_templates=("{branch}-buildcache",), protect=("main",), branches_file=str(branches))
    sources = discover_sources(None, f"{org.host}/acme", "svc-0[0-5]-cache", flags)
    alive: list[tuple[int, int]] = []

    def count(plan: RepositoryPlan, report: object, error: object) -> None:
        gc.collect()
        objects = gc.get_objects()
        alive.append(
            (
                sum(isinstance(o, RepositoryPlan) for o in objects),
                sum(isinstance(o, Inventory) for o in objects),
            )
        )

    with RegistryClient(ClientOptions()) as client:

        def backends(policy: RepositoryPolicy, untagged: bool) -> DeleteBackend:
            return select_backend(client, policy.repository, kind=policy.backend)

        result = run_streamed(
            client,
            [],
            sources,
            lambda source, settings: iter_catalog(client, source.registry),
            backends,
            flags=flags,
            apply=False,
            now=datetime.now(UTC),
            on_repository=count,
        )
    assert result.discovery.planned == 6
    assert len(alive) == 6
    assert max(plans for plans, _ in alive) <= 2
    assert max(inventories for _, inventories in alive) == 0


# Artifact Registry: the packages of one repository (REST packages.list) through tests.harness.gar_server,
# in front of a real docker-registry. Each test seeds a project of its own (the upstream is shared):
#
# * PROJECT/caches/app-cache: main-buildcache (protected), feature-a-buildcache (live), gone-buildcache;
# * PROJECT/caches/team/api-cache (a nested image: its package id is "team%2Fapi-cache"):
#   main-buildcache, gone-api-buildcache;
# * PROJECT/caches/tool-cache: an image tagged latest, no cache tag;
# * PROJECT/caches/web: an image tagged latest;
# * PROJECT/other/x-cache: main-buildcache and gone-buildcache, in another AR repository.
#
# Under ``rules`` with --match '*-cache': web is excluded by the glob, tool-cache has no tag
# {branch}-buildcache reads (no-matching-tag), app-cache deletes gone-buildcache (branch gone; main
# protected, feature/a live), team/api-cache deletes gone-api-buildcache (branch gone-api is no live
# branch); x-cache is in another repository, which packages.list of PROJECT/caches never names. So 4
# packages are looked at, 2 planned, 2 skipped.

GAR_TOKEN = "ya29.test-access-token"


@pytest.fixture(scope="module")
def gar_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    registry = start_registry(tmp_path_factory.mktemp("gar-discover-registry"))
    yield registry
    registry.stop()


@pytest.fixture
def gar(
    gar_upstream: LocalRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, ArtifactRegistryContract, str]]:
    """(the contract server's host, its state, a project seeded as above); the API and location env set."""
    project = f"p{uuid.uuid4().hex[:8]}"
    with artifact_registry(gar_upstream.host) as (proxy, contract):
        monkeypatch.setenv("CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY", f"http://{proxy.host}/")
        monkeypatch.setenv("CLOUDSDK_ARTIFACTS_LOCATION", GAR_LOCATION)
        caches = {
            "caches/app-cache": ("main-buildcache", "feature-a-buildcache", "gone-buildcache"),
            "caches/team/api-cache": ("main-buildcache", "gone-api-buildcache"),
            "other/x-cache": ("main-buildcache", "gone-buildcache"),
        }
        for name, tags in caches.items():
            seeder = Seeder(proxy.host, f"{project}/{name}")
            for n, tag in enumerate(tags):
                seeder.cache(tag, layers=[f"{project}/{name}/{tag}".encode()], age=timedelta(days=n + 1))
            seeder.http.close()
        for name in ("caches/tool-cache", "caches/web"):
            seeder = Seeder(proxy.host, f"{project}/{name}")
            seeder.image("latest", [f"{project}/{name}".encode()])
            seeder.http.close()
        yield proxy.host, contract, project


def _gar_env(host: str) -> dict[str, str]:
    return {
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY": f"http://{host}",
        "CLOUDSDK_ARTIFACTS_LOCATION": GAR_LOCATION,
    }


def test_artifact_registry_packages_are_listed_page_by_page_nested_names_decoded(
    gar: tuple[str, ArtifactRegistryContract, str],
) -> None:
    host, contract, project = gar
    with RegistryClient(ClientOptions(plain_http=True)) as client:
        listed = list(
            iter_packages(client, f"http://{host}", project, GAR_LOCATION, "caches", token=None, page_size=3)
        )
    # By hand: the 4 images of PROJECT/caches, sorted, 3 a page: the first page's token is "3", the
    # second page (1 package) has none. team%2Fapi-cache decodes to team/api-cache.
    assert listed == ["app-cache", "team/api-cache", "tool-cache", "web"]
    assert contract.package_requests == ["", "3"]


def test_artifact_registry_pages_that_loop_or_exceed_the_cap_are_refused(
    gar: tuple[str, ArtifactRegistryContract, str],
) -> None:
    host, contract, project = gar
    contract.loop_token = True  # every page names "1" next: the second page repeats the first's token
    with RegistryClient(ClientOptions(plain_http=True)) as client:
        with pytest.raises(InvalidContent, match="page token it had sent before"):
            list(
                iter_packages(
                    client, f"http://{host}", project, GAR_LOCATION, "caches", token=None, page_size=1
                )
            )
        assert contract.package_requests == ["", "1"]
        contract.loop_token = False
        contract.pad_page = TAG_PAGE_LIMIT + 1  # one byte over the cap on a page body
        with pytest.raises(InvalidContent, match="over the 33554432 byte limit"):
            list(iter_packages(client, f"http://{host}", project, GAR_LOCATION, "caches", token=None))


def test_artifact_registry_discovery_plans_by_glob_and_prefix_and_skips_a_package_without_a_cache_tag(
    gar: tuple[str, ArtifactRegistryContract, str], branches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, contract, project = gar
    source = f"{host}/{project}/caches"
    args = ["gc", "--backend", "google", "--plain-http", "--match", "*-cache", *rules(branches), "--json"]
    code = run([*args[:1], "--discover", source, *args[1:], "--page-size", "2"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0, document
    validate_json(document, SCHEMA)
    assert planned(document) == {
        f"{source}/app-cache": {"gone-buildcache"},
        f"{source}/team/api-cache": {"gone-api-buildcache"},
    }
    discovery = document["discovery"]
    assert (discovery["lookedAt"], discovery["planned"]) == (4, 2)
    assert {s["repository"]: s["reason"] for s in discovery["skipped"]} == {
        f"{source}/tool-cache": "no-matching-tag",
        f"{source}/web": "excluded-by-glob",
    }
    assert contract.package_requests == ["", "2"]  # 4 packages at 2 a page: the second page was asked for

    # PREFIX: only the images under PROJECT/caches/team are looked at.
    code = run([*args[:1], "--discover", f"{source}/team", *args[1:]])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert planned(document) == {f"{source}/team/api-cache": {"gone-api-buildcache"}}
    assert (document["discovery"]["lookedAt"], document["discovery"]["planned"]) == (1, 1)


def test_artifact_registry_discovery_in_a_real_process_sends_the_token_and_applies(
    gar: tuple[str, ArtifactRegistryContract, str], gar_upstream: LocalRegistry, branches: Path
) -> None:
    host, contract, project = gar
    contract.token = GAR_TOKEN  # the packages API answers 401 without this Bearer token
    source = f"{host}/{project}/caches"
    args = ["gc", "--discover", source, "--match", "*-cache", *rules(branches), "--backend", "google"]
    login = ["--plain-http", "--username", "oauth2accesstoken", "--password-stdin"]
    dry = run_cli(*args, *login, "--json", env=_gar_env(host), stdin=GAR_TOKEN + "\n")
    assert dry.returncode == 0, dry.stderr
    assert planned(json.loads(dry.stdout)) == {
        f"{source}/app-cache": {"gone-buildcache"},
        f"{source}/team/api-cache": {"gone-api-buildcache"},
    }
    assert tags_of(gar_upstream, f"{project}/caches/app-cache") == {
        "main-buildcache",
        "feature-a-buildcache",
        "gone-buildcache",
    }  # a dry run deletes nothing

    applied = run_cli(*args, *login, "--apply", env=_gar_env(host), stdin=GAR_TOKEN + "\n")
    assert applied.returncode == 0, applied.stderr
    # By hand (above): exactly the two gone tags go; the skipped packages and the other AR repository
    # are untouched.
    assert tags_of(gar_upstream, f"{project}/caches/app-cache") == {"main-buildcache", "feature-a-buildcache"}
    assert tags_of(gar_upstream, f"{project}/caches/team/api-cache") == {"main-buildcache"}
    assert tags_of(gar_upstream, f"{project}/caches/tool-cache") == {"latest"}
    assert tags_of(gar_upstream, f"{project}/caches/web") == {"latest"}
    assert tags_of(gar_upstream, f"{project}/other/x-cache") == {"main-buildcache", "gone-buildcache"}

    anonymous = run_cli(*args, "--plain-http", "--json", env=_gar_env(host))
    # Without the token the API answers 401: the source's error, exit 4 (auth), nothing looked at.
    assert anonymous.returncode == ExitCode.AUTH, anonymous.stderr
    discovery = json.loads(anonymous.stdout)["discovery"]
    assert "401" in discovery["sources"][0]["error"] and discovery["lookedAt"] == 0
