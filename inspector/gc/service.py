"""The whole ``gc`` run over one or more repositories, returning a value (``GcRun``) the command renders.

The rules that make a multi-repository run safe live here, not in the command:

* every repository is read and planned before anything is deleted anywhere, so a read error (or a
  refusal: ``--untagged`` where no API lists untagged manifests, a branch source that names no
  branch) stops the run while nothing has changed;
* applying, every plan is checked against its ``--max-deletes`` before the first deletion;
* a failure while deleting in one repository is recorded for it and the next repository still runs;
  the combined exit code is the worst of them (``GcRun.exit_code``);
* a reviewed plan (``--apply-plan``) must be bound to the policy it is applied under
  (``bind_plans``) and its untagged caches are selected again before they are deleted;
* a time budget (``--time-budget``, ``gc/budget.py``) is one for the whole run: once it is spent no
  manifest is begun in any repository, and a repository not begun is reported with everything
  ``not-attempted`` (exit 7; a rerun plans again and continues). With a budget, a GHCR rate-limit
  wait that fits in what is left of it is slept rather than stopping the run.

Nothing here prints: progress goes through ``progress`` (a context manager per phase, yielding a
callback or None), warnings through ``warn``, and the plans through ``on_planned`` before anything
is deleted (``--plan-out``). Backends come from a factory the caller builds from its options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path

from inspector.errors import CacheInspectError, ExitCode, UsageError
from inspector.gc.backends.base import DeleteBackend, untagged_hint
from inspector.gc.backends.ecr import EcrBackend, with_push_times
from inspector.gc.backends.ecr import plan_untagged as ecr_plan_untagged
from inspector.gc.backends.ecr import recheck_untagged as ecr_recheck_untagged
from inspector.gc.backends.factory import backend_kind
from inspector.gc.backends.ghcr import GhcrBackend, pacing_note, plan_untagged, recheck_untagged
from inspector.gc.backends.google import GoogleBackend, with_upload_times
from inspector.gc.backends.google import plan_untagged as google_plan_untagged
from inspector.gc.backends.google import recheck_untagged as google_recheck_untagged
from inspector.gc.branches import LiveRefs, git_ls_remote, read_branches_file
from inspector.gc.budget import Backlog, TimeBudget, estimate_backlog
from inspector.gc.discover import (
    DiscoverSource,
    Discovery,
    Lister,
    Shard,
    Skipped,
    has_template_tag,
    parse_discover_source,
    select_names,
    source_kind,
)
from inspector.gc.execute import RegistryTagReader, RepositoryReport, execute_plan
from inspector.gc.inventory import collect_inventory
from inspector.gc.plan import RepositoryPlan, check_max_deletes, plan_repository
from inspector.gc.planfile import Mode, PlanMismatch, check_plan_policy
from inspector.gc.policy import RepositoryPolicy, Settings, load_policy, parse_duration, resolve_policy
from inspector.oci.reference import Repository, parse_repository
from inspector.registry.client import RegistryClient

__all__ = [
    "BackendFactory",
    "GcRun",
    "OnRepository",
    "ProgressFactory",
    "RepositoryOutcome",
    "StreamedRun",
    "Target",
    "apply_reviewed_plan",
    "bind_plans",
    "discover_sources",
    "discovered_policies",
    "plan_targets",
    "resolve_policies",
    "run_gc",
    "run_streamed",
    "run_targets",
]

Progress = Callable[[int, int], None]
#: ``progress(description)``: a context manager around one phase ("reading REPO", "deleting in REPO")
#: that yields a ``(done, total)`` callback, or None for no progress display.
ProgressFactory = Callable[[str], AbstractContextManager[Progress | None]]
#: ``backends(policy, untagged)``: the repository's delete backend; ``untagged``: untagged caches are
#: wanted, which a backend that cannot list them refuses (``UsageError``) before anything is read.
BackendFactory = Callable[[RepositoryPolicy, bool], DeleteBackend]


def _no_progress(description: str) -> AbstractContextManager[Progress | None]:
    return nullcontext(None)


def _no_warning(message: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """One repository's plan and the backend that carries it out."""

    plan: RepositoryPlan
    backend: DeleteBackend
    untagged: bool = False  # untagged caches were looked for (GHCR, ECR)


@dataclass(frozen=True, slots=True)
class GcRun:
    """What a gc run did: each repository's plan (with its notes), its report or its error."""

    mode: Mode
    started_at: datetime
    plans: tuple[RepositoryPlan, ...]
    reports: Mapping[Repository, RepositoryReport]
    errors: Mapping[Repository, CacheInspectError]
    budget: TimeBudget | None = None

    @property
    def applying(self) -> bool:
        return self.mode != "dry-run"

    @property
    def budget_reached(self) -> bool:
        """The time budget stopped the run somewhere: a rerun continues."""
        return any(r.stopped_by == "time-budget" for r in self.reports.values())

    @property
    def deletions(self) -> int:
        return sum(r.deletions for r in self.reports.values())

    @property
    def not_begun(self) -> int:
        """Repositories the budget kept from being read: none here, every plan was made first."""
        return 0

    def backlog(self) -> Backlog:
        """Deletions left over every repository, at the rate observed over all of them."""
        reports = self.reports.values()
        return estimate_backlog(
            sum(r.deletions_left for r in reports),
            sum(r.deletions for r in reports),
            sum(r.seconds for r in reports),
        )

    @property
    def exit_code(self) -> int:
        """The worst outcome: a repository's error, else PARTIAL when a report is not ok, else 0."""
        return _worst_exit(self.errors.values(), any(not r.ok for r in self.reports.values()))


def _worst_exit(errors: Iterable[CacheInspectError], partial: bool) -> int:
    """The highest of the errors' exit codes and PARTIAL (when a report is not ok), else 0."""
    return max([int(e.exit_code) for e in errors] + [int(ExitCode.PARTIAL) if partial else 0])


def resolve_policies(
    repository: str | None,
    policy_file: Path | None,
    flags: Settings,
    *,
    unpulled_for: str | None = None,
    sources: Sequence[tuple[DiscoverSource, Settings]] = (),
) -> list[RepositoryPolicy]:
    """The policy of each repository to collect: REPOSITORY's, or every one of ``--policy FILE``'s.

    REPOSITORY with a file: its ``[[repository]]`` table, else the first of ``sources`` (the file's
    ``[[discover]]`` tables) that would find it, else ``[defaults]``.

    ``unpulled_for`` (``--unpulled-for``) applies to every repository; only the ECR backend knows when
    an image was last pulled, so any other backend refuses it.
    """
    if policy_file is None:
        if repository is None:
            raise UsageError("give a REPOSITORY, or --policy FILE")
        policies = [resolve_policy(parse_repository(repository), [], flags)]
    else:
        loaded = load_policy(policy_file)
        entries = [(parse_repository(name), settings) for name, settings in loaded.repositories]
        if repository is None:
            if flags.package is not None and len(entries) > 1:
                raise UsageError("--package names one repository's package: give that REPOSITORY too")
            policies = [
                resolve_policy(name, [loaded.defaults, settings], flags) for name, settings in entries
            ]
        else:
            wanted = parse_repository(repository)
            own = [settings for name, settings in entries if name == wanted]
            covering = _covering(wanted, sources) if not own else None
            if covering is not None:
                own = [covering[0].settings]
            policies = [resolve_policy(wanted, [loaded.defaults, *own], flags)]
    if unpulled_for is None:
        return policies
    limit = parse_duration(unpulled_for)
    for chosen in policies:
        if backend_kind(chosen.repository, chosen.backend) != "ecr":
            raise UsageError(
                f"{chosen.repository}: --unpulled-for needs pull times, which only the ECR backend has "
                "(DescribeImages lastRecordedPullTime)"
            )
    return [replace(p, rules=replace(p.rules, unpulled_for=limit)) for p in policies]


def discover_sources(
    policy_file: Path | None, discover: str | None, match: str, flags: Settings
) -> list[tuple[DiscoverSource, Settings]]:
    """The discover sources of a run, each with the ``[defaults]`` under it: the policy file's
    ``[[discover]]`` tables, then ``--discover``/``--match`` (whose rules are the flags themselves).
    A source that cannot be listed (GCR, GHCR without an owner) is refused here, before
    any output or request."""
    sources: list[tuple[DiscoverSource, Settings]] = []
    defaults = Settings()
    if policy_file is not None:
        loaded = load_policy(policy_file)
        defaults = loaded.defaults
        for table in loaded.discover:
            where = f"--policy {policy_file}: discover {table.source!r}"
            sources.append(
                (parse_discover_source(table.source, table.match, table.settings, where), defaults)
            )
    if discover is not None:
        sources.append((parse_discover_source(discover, match, Settings(), "--discover"), defaults))
    for source, under in sources:
        source_kind(source, flags.over(source.settings.over(under)).backend)
    return sources


def discovered_policies(
    repositories: Sequence[Repository],
    listed: Sequence[RepositoryPolicy],
    sources: Sequence[tuple[DiscoverSource, Settings]],
    flags: Settings,
) -> list[RepositoryPolicy]:
    """The policy of each repository that ``listed`` does not name but a discover source would find
    (its registry, under its prefix, matching its glob): the first such source's (``--apply-plan``)."""
    named = {p.repository for p in listed}
    found = []
    for repository in dict.fromkeys(repositories):
        covering = _covering(repository, sources) if repository not in named else None
        if covering is not None:
            source, defaults = covering
            found.append(resolve_policy(repository, [defaults, source.settings], flags))
    return found


def _covering(
    repository: Repository, sources: Sequence[tuple[DiscoverSource, Settings]]
) -> tuple[DiscoverSource, Settings] | None:
    """The first source that would find ``repository``: its registry, under its prefix, matching its glob."""
    for source, defaults in sources:
        below = source.below_prefix(repository.path) if source.registry == repository.registry else None
        if below is not None and fnmatchcase(below, source.match):
            return source, defaults
    return None


def bind_plans(
    plans: Sequence[RepositoryPlan], policies: Sequence[RepositoryPolicy]
) -> list[RepositoryPolicy]:
    """The policy of each plan's repository; refuses (exit 2) a plan the policy does not cover or match.

    A plan file travels between jobs and is not trusted: it must have been made under the policy it
    is applied with, which the job's own checkout or command line provides.
    """
    by_name = {p.repository: p for p in policies}
    bound = []
    for plan in plans:
        own = by_name.get(plan.repository)
        if own is None:
            given = ", ".join(sorted(str(name) for name in by_name))
            raise PlanMismatch(
                f"the plan is for {plan.repository}, which the policy given does not name ({given}); "
                "nothing was deleted"
            )
        check_plan_policy(plan, own.rules)
        bound.append(own)
    return bound


def plan_targets(
    client: RegistryClient,
    policies: Sequence[RepositoryPolicy],
    backends: BackendFactory,
    *,
    now: datetime,
    page_size: int | None = None,
    progress: ProgressFactory = _no_progress,
) -> list[Target]:
    """Read the branches and every repository, then plan them all: a read error stops before any deletion."""
    chosen = [backends(p, p.untagged) for p in policies]  # every refusal before anything is read
    sources: dict[tuple[str, str, bool], LiveRefs] = {}
    return [
        _plan_target(client, policy, backend, sources, now=now, page_size=page_size, progress=progress)
        for policy, backend in zip(policies, chosen, strict=True)
    ]


def _live_refs(policy: RepositoryPolicy, sources: dict[tuple[str, str, bool], LiveRefs]) -> LiveRefs | None:
    """The policy's live branches, each branch source read once per run (``sources`` caches them)."""
    pulls = any(t.kind == "number" for t in policy.rules.templates)
    if policy.branches_from_git is not None:
        key = ("git", policy.branches_from_git, pulls)
        if key not in sources:
            sources[key] = git_ls_remote(policy.branches_from_git, pulls=pulls)
        return sources[key]
    if policy.branches_file is not None:
        key = ("file", policy.branches_file, False)
        if key not in sources:
            sources[key] = read_branches_file(policy.branches_file)
        return sources[key]
    return None


def _plan_target(
    client: RegistryClient,
    policy: RepositoryPolicy,
    backend: DeleteBackend,
    sources: dict[tuple[str, str, bool], LiveRefs],
    *,
    now: datetime,
    page_size: int | None,
    progress: ProgressFactory,
    tags: Sequence[str] | None = None,
) -> Target:
    """Read one repository (``tags``: its listing, when already made) and plan it; the inventory is
    dropped once planned."""
    live = _live_refs(policy, sources)
    with progress(f"reading {policy.repository}") as on_progress:
        inventory = collect_inventory(
            client, policy.repository, page_size=page_size, on_progress=on_progress, listed_tags=tags
        )
    if isinstance(backend, EcrBackend):  # ages from ECR's push times
        inventory = with_push_times(inventory, backend.images())
        if policy.untagged:
            inventory = ecr_plan_untagged(backend, inventory)
    elif isinstance(backend, GoogleBackend):  # ages from the manifest map's upload times
        inventory = with_upload_times(inventory, backend.manifests())
        if policy.untagged:
            inventory = google_plan_untagged(backend, inventory)
    elif policy.untagged:
        assert isinstance(backend, GhcrBackend)  # check_untagged refused every other backend
        inventory = plan_untagged(backend, inventory)
    plan = plan_repository(inventory, policy.rules, live, now, max_deletes=policy.max_deletes)
    if isinstance(backend, EcrBackend):
        backend.allow_tags(d.tag for d in plan.deletions)
    return Target(plan, backend, untagged=policy.untagged)


def reviewed_targets(
    plans: Sequence[RepositoryPlan],
    policies: Sequence[RepositoryPolicy],
    backends: BackendFactory,
    *,
    package: str | None = None,
) -> list[Target]:
    """Targets of a reviewed plan (``policies`` from ``bind_plans``); its untagged caches are selected
    again (GHCR, ECR, Google) or refused. ``package``: ``--package``, which names one repository's package."""
    if package is not None and len(plans) > 1:
        raise UsageError("--package names one repository's package; this plan has several repositories")
    targets = []
    for plan, policy in zip(plans, policies, strict=True):
        untagged = bool(plan.untagged_deletions)
        backend = backends(policy, untagged)
        if isinstance(backend, EcrBackend):
            if untagged:
                plan = ecr_recheck_untagged(plan, backend)
            backend.allow_tags(d.tag for d in plan.deletions)
        elif isinstance(backend, GoogleBackend):
            plan = google_recheck_untagged(plan, backend)
        elif untagged:
            assert isinstance(backend, GhcrBackend)  # the factory refused every other backend
            plan = recheck_untagged(plan, backend)
        targets.append(Target(plan, backend, untagged=untagged))
    return targets


def run_targets(
    client: RegistryClient,
    targets: Sequence[Target],
    mode: Mode,
    *,
    now: datetime,
    max_deletes: int | None = None,
    page_size: int | None = None,
    progress: ProgressFactory = _no_progress,
    on_planned: Callable[[Sequence[RepositoryPlan]], None] | None = None,
    warn: Callable[[str], None] = _no_warning,
    budget: TimeBudget | None = None,
) -> GcRun:
    """Finish the plans (notes), hand them to ``on_planned``, then (unless a dry run) check every plan and
    delete, repository by repository. ``max_deletes`` overrides each plan's own limit; ``budget``: the
    run's time budget (module docstring)."""
    plans = [_finish_plan(target, mode, warn, budget) for target in targets]
    if on_planned is not None:
        on_planned(tuple(plans))
    reports: dict[Repository, RepositoryReport] = {}
    errors: dict[Repository, CacheInspectError] = {}
    if mode != "dry-run":
        for plan in plans:  # every plan is checked before anything is deleted anywhere
            check_max_deletes(plan, max_deletes if max_deletes is not None else plan.max_deletes)
        for target, plan in zip(targets, plans, strict=True):
            if not plan.manifests:
                continue
            try:
                with progress(f"deleting in {plan.repository}") as on_progress:
                    reports[plan.repository] = execute_plan(
                        plan,
                        target.backend,
                        RegistryTagReader(client, plan.repository, page_size),
                        on_progress=on_progress,
                        budget=budget,
                    )
            except CacheInspectError as exc:  # reported with the rest; later repositories still run
                errors[plan.repository] = exc
    return GcRun(mode, now, tuple(plans), reports, errors, budget)


def _finish_plan(
    target: Target, mode: Mode, warn: Callable[[str], None], budget: TimeBudget | None = None
) -> RepositoryPlan:
    """The target's plan with its notes (untagged caches, GHCR pacing); a GHCR backend learns the plan."""
    ghcr = isinstance(target.backend, GhcrBackend)
    plan = target.plan
    listed = ghcr or isinstance(target.backend, EcrBackend | GoogleBackend)
    if not (listed and target.untagged):  # else the untagged images were looked at: the notes say how
        plan = _with_note(plan, untagged_hint(plan.repository.registry, ghcr=ghcr))
    if isinstance(target.backend, GhcrBackend):
        pacing = pacing_note(plan, target.backend.github.options.pace)
        if pacing is not None:
            plan = _with_note(plan, pacing)
            if mode != "dry-run":
                warn(f"{plan.repository}: {pacing}")
        target.backend.expect(plan)
        if budget is not None:  # a rate-limit wait that fits in the budget is waited out
            target.backend.github.limit_waits(budget.remaining)
    return plan


def run_gc(
    client: RegistryClient,
    policies: Sequence[RepositoryPolicy],
    backends: BackendFactory,
    *,
    apply: bool,
    now: datetime,
    page_size: int | None = None,
    progress: ProgressFactory = _no_progress,
    on_planned: Callable[[Sequence[RepositoryPlan]], None] | None = None,
    warn: Callable[[str], None] = _no_warning,
    budget: TimeBudget | None = None,
) -> GcRun:
    """Plan every repository of ``policies`` and, with ``apply``, carry the plans out (module docstring)."""
    targets = plan_targets(client, policies, backends, now=now, page_size=page_size, progress=progress)
    return run_targets(
        client,
        targets,
        "apply" if apply else "dry-run",
        now=now,
        page_size=page_size,
        progress=progress,
        on_planned=on_planned,
        warn=warn,
        budget=budget,
    )


def apply_reviewed_plan(
    client: RegistryClient,
    plans: Sequence[RepositoryPlan],
    policies: Sequence[RepositoryPolicy],
    backends: BackendFactory,
    *,
    now: datetime,
    package: str | None = None,
    max_deletes: int | None = None,
    page_size: int | None = None,
    progress: ProgressFactory = _no_progress,
    on_planned: Callable[[Sequence[RepositoryPlan]], None] | None = None,
    warn: Callable[[str], None] = _no_warning,
    budget: TimeBudget | None = None,
) -> GcRun:
    """Carry out a reviewed plan file (``--apply-plan``); ``policies`` are ``bind_plans(plans, ...)``'s."""
    targets = reviewed_targets(plans, policies, backends, package=package)
    return run_targets(
        client,
        targets,
        "apply-plan",
        now=now,
        max_deletes=max_deletes,
        page_size=page_size,
        progress=progress,
        on_planned=on_planned,
        warn=warn,
        budget=budget,
    )


def _with_note(plan: RepositoryPlan, note: str) -> RepositoryPlan:
    return plan if note in plan.notes else replace(plan, notes=(*plan.notes, note))


@dataclass(frozen=True, slots=True)
class RepositoryOutcome:
    """What a streamed run keeps of one planned repository once its plan went to ``on_repository``."""

    repository: Repository
    deletions: int
    manifests: int
    reclaimable_bytes: int
    report_ok: bool | None = None  # None: nothing was deleted (a dry run, or nothing to delete)
    error: CacheInspectError | None = None
    deleted: int = 0  # destructive requests done (``RepositoryReport.deletions``)
    left: int = 0  # and still needed when the run stopped
    seconds: float = 0.0  # spent deleting
    stopped_by: str | None = None


@dataclass(frozen=True, slots=True)
class StreamedRun:
    """A gc run over discovered (or sharded) repositories: what discovery saw and each repository's outcome.

    Read errors are in ``discovery.skipped`` (reason ``error``) and in ``errors``; a source that could
    not be listed is in ``errors`` under its source text.
    """

    mode: Mode
    started_at: datetime
    discovery: Discovery
    outcomes: tuple[RepositoryOutcome, ...]
    errors: Mapping[str, CacheInspectError]
    budget: TimeBudget | None = None

    @property
    def applying(self) -> bool:
        return self.mode != "dry-run"

    @property
    def budget_reached(self) -> bool:
        """The time budget stopped a repository or kept one from starting: a rerun continues."""
        return any(o.stopped_by == "time-budget" for o in self.outcomes) or bool(self.not_begun)

    @property
    def deletions(self) -> int:
        return sum(o.deleted for o in self.outcomes)

    @property
    def not_begun(self) -> int:
        """Repositories the budget kept from being read, so from being planned: their deletions are unknown."""
        return self.discovery.count("time-budget")

    def backlog(self) -> Backlog:
        """Deletions left in the repositories begun (those not begun were not planned: not counted)."""
        return estimate_backlog(
            sum(o.left for o in self.outcomes), self.deletions, sum(o.seconds for o in self.outcomes)
        )

    @property
    def exit_code(self) -> int:
        """The worst outcome, as ``GcRun.exit_code``: an error's code, else PARTIAL when a report is not ok
        or the time budget kept a repository from starting."""
        partial = any(o.report_ok is False for o in self.outcomes) or bool(self.not_begun)
        return _worst_exit(self.errors.values(), partial)


#: ``on_repository(plan, report, error)``: one repository is done (planned; applied, or failed applying).
OnRepository = Callable[[RepositoryPlan, RepositoryReport | None, CacheInspectError | None], None]


def _ignore_repository(
    plan: RepositoryPlan, report: RepositoryReport | None, error: CacheInspectError | None
) -> None:
    return None


def run_streamed(
    client: RegistryClient,
    listed: Sequence[RepositoryPolicy],
    sources: Sequence[tuple[DiscoverSource, Settings]],
    lister: Lister,
    backends: BackendFactory,
    *,
    flags: Settings,
    apply: bool,
    now: datetime,
    shard: Shard | None = None,
    page_size: int | None = None,
    progress: ProgressFactory = _no_progress,
    on_repository: OnRepository = _ignore_repository,
    warn: Callable[[str], None] = _no_warning,
    budget: TimeBudget | None = None,
) -> StreamedRun:
    """Plan (and with ``apply`` carry out) one repository at a time: the listed ones, then each source's.

    ``sources``: each discover source with the ``[defaults]`` under it. Unlike ``run_gc``, a repository
    is planned, handed to ``on_repository`` and applied before the next one is read, so memory holds one
    inventory and one plan at a time (``RepositoryOutcome`` is all that is kept), and a repository
    that cannot be read, listed or applied (or whose plan exceeds its ``max-deletes``) is reported and
    the run goes on; the exit code is the worst outcome. ``shard`` keeps the repositories it holds.
    ``budget``: once spent (applying), no further repository is begun; each is skipped ``time-budget``.
    """
    mode: Mode = "apply" if apply else "dry-run"
    branch_sources: dict[tuple[str, str, bool], LiveRefs] = {}
    outcomes: list[RepositoryOutcome] = []
    skipped: list[Skipped] = []
    errors: dict[str, CacheInspectError] = {}
    done: set[str] = set()  # registry/path of each repository looked at
    looked_at = 0

    def handle(policy: RepositoryPolicy, discovered: bool) -> None:
        if apply and budget is not None and budget.reached():  # not even read: a rerun plans it
            skipped.append(Skipped(str(policy.repository), "time-budget", f"not begun: {budget.reason}"))
            return
        try:
            backend = backends(policy, policy.untagged)
            tags: list[str] | None = None
            if discovered:  # the one tag listing decides, and planning reuses it
                tags = client.list_tags(policy.repository, page_size=page_size)
                if not has_template_tag(tags, policy.rules.templates):
                    templates = ", ".join(str(t) for t in policy.rules.templates)
                    skipped.append(
                        Skipped(str(policy.repository), "no-matching-tag", f"no tag matches {templates}")
                    )
                    return
            target = _plan_target(
                client,
                policy,
                backend,
                branch_sources,
                now=now,
                page_size=page_size,
                progress=progress,
                tags=tags,
            )
            del tags
        except CacheInspectError as exc:  # reported; the next repository still runs
            skipped.append(Skipped(str(policy.repository), "error", exc.message))
            errors[str(policy.repository)] = exc
            return
        plan = _finish_plan(target, mode, warn, budget)
        report: RepositoryReport | None = None
        error: CacheInspectError | None = None
        if apply and plan.manifests:
            try:
                check_max_deletes(plan, plan.max_deletes)
                with progress(f"deleting in {plan.repository}") as on_progress:
                    report = execute_plan(
                        plan,
                        target.backend,
                        RegistryTagReader(client, plan.repository, page_size),
                        on_progress=on_progress,
                        budget=budget,
                    )
            except CacheInspectError as exc:
                error = exc
                errors[str(plan.repository)] = exc
        on_repository(plan, report, error)
        outcomes.append(
            RepositoryOutcome(
                plan.repository,
                len(plan.deletions),
                len(plan.manifests),
                plan.reclaimable_bytes,
                None if report is None else report.ok,
                error,
                *(
                    (report.deletions, report.deletions_left, report.seconds, report.stopped_by)
                    if report is not None
                    else ()
                ),
            )
        )

    for policy in listed:
        looked_at += 1
        done.add(str(policy.repository))
        if shard is not None and not shard.holds(policy.repository):
            skipped.append(Skipped(str(policy.repository), "other-shard", f"not in shard {shard}"))
            continue
        handle(policy, discovered=False)
    merged = [flags.over(source.settings.over(defaults)) for source, defaults in sources]
    for (source, _), settings in zip(sources, merged, strict=True):
        source_kind(source, settings.backend)  # a source that cannot be listed is refused before any request
    for (source, defaults), settings in zip(sources, merged, strict=True):
        try:
            for found in select_names(source, lister(source, settings), shard):
                chosen = found.repository if isinstance(found, Skipped) else str(found)
                if chosen in done:  # named by an earlier source too
                    continue
                done.add(chosen)
                looked_at += 1
                if isinstance(found, Skipped):
                    skipped.append(found)
                    continue
                try:
                    policy = resolve_policy(found, [defaults, source.settings], flags)
                except CacheInspectError as exc:
                    skipped.append(Skipped(str(found), "error", exc.message))
                    errors[str(found)] = exc
                    continue
                handle(policy, discovered=True)
        except CacheInspectError as exc:  # the source itself could not be listed (further)
            errors[source.source] = exc
    discovery = Discovery(
        tuple(source.source for source, _ in sources), shard, looked_at, len(outcomes), tuple(skipped)
    )
    return StreamedRun(mode, now, discovery, tuple(outcomes), errors, budget)
