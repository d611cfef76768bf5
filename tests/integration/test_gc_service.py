"""``gc.service`` without the command line, against real docker-registry instances (CNCF distribution 2.8).

The scenario is ``test_gc``'s (``seed_scenario``): under its rules (``RULES`` there, written out below as
``Settings``) and ``BRANCHES``, ``DELETED`` lists the 7 tags a plan deletes and ``KEPT`` the 8 it keeps;
the reasoning per tag is written beside those sets. Here the point is the workflow across repositories:
what is checked before the first deletion, and what one repository's failure does to the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inspector.errors import ExitCode
from inspector.gc.backends.base import DeleteBackend
from inspector.gc.backends.factory import select_backend
from inspector.gc.execute import CannotDelete
from inspector.gc.plan import PlanRefused, RepositoryPlan
from inspector.gc.planfile import PlanMismatch
from inspector.gc.policy import RepositoryPolicy, Settings
from inspector.gc.service import BackendFactory, bind_plans, resolve_policies, run_gc
from inspector.oci.reference import parse_repository
from inspector.registry.client import RegistryClient
from tests.harness.registry import LocalRegistry, start_registry
from tests.integration.test_gc import BRANCHES, DELETED, KEPT, Seeder, seed_scenario


def settings(branches: Path, **overrides: object) -> Settings:
    """``test_gc.RULES`` as settings: two templates, protect main and release/*, 14 days, keep 3."""
    values: dict[str, object] = {
        "tag_templates": ("{branch}-buildcache", "pr-{number}-buildcache"),
        "protect": ("main", "release/*"),
        "max_age": "14d",
        "keep_last": 3,
        "branches_file": str(branches),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def backends(client: RegistryClient) -> BackendFactory:
    def backend(policy: RepositoryPolicy, untagged: bool) -> DeleteBackend:
        return select_backend(client, policy.repository, kind=policy.backend)

    return backend


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    path = tmp_path / "branches.txt"
    path.write_text(BRANCHES)
    return path


@pytest.fixture
def seeders() -> Iterator[list[Seeder]]:
    made: list[Seeder] = []
    yield made
    for seeder in made:
        seeder.http.close()


def seeded(made: list[Seeder], host: str, repository: str) -> Seeder:
    seeder = seed_scenario(Seeder(host, repository))
    made.append(seeder)
    return seeder


def test_a_refused_plan_in_the_second_repository_stops_deletion_in_the_first(
    registry: LocalRegistry, branches: Path, seeders: list[Seeder]
) -> None:
    first = seeded(seeders, registry.host, "service/refuse-a")
    second = seeded(seeders, registry.host, "service/refuse-b")
    before = (first.state(), second.state())
    # The second repository's plan deletes 7 tags (DELETED); a limit of 6 refuses it. The first has no limit.
    policies = [
        *resolve_policies(f"{registry.host}/service/refuse-a", None, settings(branches)),
        *resolve_policies(f"{registry.host}/service/refuse-b", None, settings(branches, max_deletes=6)),
    ]
    handed_out: list[Sequence[RepositoryPlan]] = []
    with RegistryClient() as client, pytest.raises(PlanRefused, match="more than --max-deletes 6"):
        run_gc(
            client,
            policies,
            backends(client),
            apply=True,
            now=datetime.now(UTC),
            on_planned=handed_out.append,
        )
    assert (first.state(), second.state()) == before  # nothing deleted anywhere
    # Both plans were handed out (``--plan-out``) before the check refused: the first would delete 7.
    ((plan_a, plan_b),) = handed_out
    assert {d.tag for d in plan_a.deletions} == set(DELETED) == {d.tag for d in plan_b.deletions}


def test_a_failing_repository_does_not_stop_the_next_and_sets_the_exit_code(
    registry: LocalRegistry, branches: Path, seeders: list[Seeder], tmp_path: Path
) -> None:
    readonly = start_registry(tmp_path / "readonly", delete=False)
    try:
        refusing = seeded(seeders, readonly.host, "service/isolated")
        deleting = seeded(seeders, registry.host, "service/isolated")
        refused_before = refusing.state()
        kept_digests = {tag: digest for tag, digest in deleting.state().items() if tag in KEPT}
        names = [f"{readonly.host}/service/isolated", f"{registry.host}/service/isolated"]
        policies = [p for name in names for p in resolve_policies(name, None, settings(branches))]
        with RegistryClient() as client:
            run = run_gc(client, policies, backends(client), apply=True, now=datetime.now(UTC))
        refused_repo, deleting_repo = (parse_repository(name) for name in names)
        # distribution without storage.delete.enabled answers DELETE 405 UNSUPPORTED: CannotDelete, exit 5.
        assert set(run.errors) == {refused_repo}
        assert isinstance(run.errors[refused_repo], CannotDelete)
        assert refusing.state() == refused_before
        # The second repository still ran to completion: exactly the DELETED tags are gone.
        assert set(run.reports) == {deleting_repo} and run.reports[deleting_repo].ok
        assert deleting.state() == kept_digests
        assert run.exit_code == int(ExitCode.REFUSED) == 5
        assert [p.repository for p in run.plans] == [refused_repo, deleting_repo]
    finally:
        readonly.stop()


def test_a_dry_run_plans_every_repository_and_changes_nothing(
    registry: LocalRegistry, branches: Path, seeders: list[Seeder]
) -> None:
    seeder = seeded(seeders, registry.host, "service/dry")
    before = seeder.state()
    policies = resolve_policies(f"{registry.host}/service/dry", None, settings(branches))
    phases: list[str] = []

    @contextmanager
    def progress(description: str) -> Iterator[None]:
        phases.append(description)
        yield None

    with RegistryClient() as client:
        run = run_gc(
            client, policies, backends(client), apply=False, now=datetime.now(UTC), progress=progress
        )
    assert seeder.state() == before
    assert (run.mode, run.applying, run.exit_code, dict(run.reports), dict(run.errors)) == (
        "dry-run",
        False,
        0,
        {},
        {},
    )
    assert {d.tag: d.rule for d in run.plans[0].deletions} == DELETED
    assert phases == [f"reading {registry.host}/service/dry"]  # no "deleting in" phase in a dry run


def test_a_plan_for_a_repository_the_policy_does_not_name_is_refused_before_any_request(
    registry: LocalRegistry, branches: Path, seeders: list[Seeder]
) -> None:
    seeded(seeders, registry.host, "service/bound")
    planned_for = resolve_policies(f"{registry.host}/service/bound", None, settings(branches))
    with RegistryClient() as client:
        run = run_gc(client, planned_for, backends(client), apply=False, now=datetime.now(UTC))
    other = resolve_policies(f"{registry.host}/service/other", None, settings(branches))
    with pytest.raises(PlanMismatch, match="which the policy given does not name"):
        bind_plans(run.plans, other)
    assert bind_plans(run.plans, planned_for) == planned_for
