"""The ``gc`` command (registered on ``commands.app`` when ``commands`` is imported)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from inspector.cli.app import (
    JsonOut,
    Output,
    app,
    console,
    error_json,
    output_format,
    report_error,
    write_job_summary,
    write_tsv,
)
from inspector.cli.options import (
    AwsRegion,
    Connection,
    EcrRegistryId,
    GitHubApiUrl,
    GitHubPackage,
    PageSize,
    connection_options,
    progress,
)
from inspector.errors import UsageError

if TYPE_CHECKING:
    from inspector.errors import CacheInspectError
    from inspector.gc.backends.base import DeleteBackend
    from inspector.gc.discover import DiscoverSource, Lister
    from inspector.gc.execute import RepositoryReport
    from inspector.gc.plan import RepositoryPlan
    from inspector.gc.planfile import Mode
    from inspector.gc.policy import RepositoryPolicy, Settings
    from inspector.gc.service import BackendFactory, GcRun, StreamedRun
    from inspector.oci.reference import Repository
    from inspector.registry.client import RegistryClient
    from inspector.registry.credentials import Credentials
    from inspector.registry.ecr import EcrClient
    from inspector.registry.github_packages import GhcrClient

__all__ = ["gc"]


class _GitHub:
    """One ``GhcrClient`` per GitHub API URL, opened when first needed and closed with the command."""

    def __init__(self, stack: ExitStack, token: str | None, *, delete_empty_packages: bool = False) -> None:
        self._stack = stack
        self._token = token
        self.delete_empty_packages = delete_empty_packages
        self._clients: dict[str, GhcrClient] = {}

    def client(self, url: str | None) -> GhcrClient:
        from inspector.registry.github_packages import DEFAULT_API_URL, GhcrClient, GhcrOptions

        key = (url or DEFAULT_API_URL).rstrip("/")
        if key not in self._clients:
            self._clients[key] = self._stack.enter_context(
                GhcrClient(GhcrOptions(base_url=key), token=self._token)
            )
        return self._clients[key]


class _Ecr:
    """One ``EcrClient`` per registry id, made when first needed (boto3 is imported only then).

    The registry id and region come from an ECR host (``<id>.dkr.ecr.<region>.amazonaws.com``), or from
    ``--ecr-registry-id`` / ``--aws-region`` (an ECR API behind another host, a test endpoint); the
    endpoint from boto3's own configuration (``AWS_ENDPOINT_URL_ECR``, ``AWS_ENDPOINT_URL``).
    """

    def __init__(self, registry_id: str | None, region: str | None) -> None:
        self._registry_id = registry_id
        self._region = region
        self._clients: dict[str, EcrClient] = {}
        self.used_for: set[str] = set()

    def client(self, host: str) -> EcrClient:
        from inspector.registry.ecr import EcrClient, parse_ecr_host

        parsed = parse_ecr_host(host)
        registry_id = self._registry_id or (parsed[0] if parsed else None)
        if registry_id is None:
            raise UsageError(
                f"{host} is not an ECR host (<account>.dkr.ecr.<region>.amazonaws.com)",
                hint="give --ecr-registry-id ACCOUNT (and --aws-region) to use the ECR backend here",
            )
        if registry_id not in self._clients:
            region = self._region or (parsed[1] if parsed else None)
            self._clients[registry_id] = EcrClient(registry_id, region=region)
        return self._clients[registry_id]

    def credentials(self, host: str) -> Credentials | None:
        """Registry credentials from GetAuthorizationToken for an ECR host without Docker credentials."""
        from inspector.registry.ecr import parse_ecr_host

        if host not in self.used_for and parse_ecr_host(host) is None:
            return None
        found = self.client(host).registry_credentials()
        print(f"cacheinspect: credentials for {host}: {found.source}", file=sys.stderr)
        return found


@app.command()
@connection_options()
def gc(
    repository: Annotated[
        str | None,
        typer.Argument(help="Repository, e.g. ghcr.io/org/app-cache (or every repository of --policy)."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="TOML policy file (several repositories).", metavar="FILE")
    ] = None,
    tag_template: Annotated[
        list[str] | None,
        typer.Option(
            "--tag-template",
            "-t",
            help="Tag <-> branch template, e.g. '{branch}-buildcache', 'pr-{number}-buildcache' (repeatable).",
            metavar="TEMPLATE",
        ),
    ] = None,
    branches_from_git: Annotated[
        str | None,
        typer.Option(
            "--branches-from-git",
            help="Live branches from `git ls-remote REMOTE` (and refs/pull/*/head for {number}).",
            metavar="REMOTE",
        ),
    ] = None,
    branches_file: Annotated[
        str | None,
        typer.Option(
            "--branches-file",
            help="Live branches, one per line or ls-remote output ('-': stdin).",
            metavar="FILE",
        ),
    ] = None,
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age", help="Delete caches whose newest layer is older (14d, 2w, 36h).", metavar="AGE"
        ),
    ] = None,
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last", min=1, help="Delete all but the N newest caches per template.", metavar="N"
        ),
    ] = None,
    protect: Annotated[
        list[str] | None,
        typer.Option(
            "--protect",
            help="Never delete branches matching this glob, e.g. 'release/*' (repeatable).",
            metavar="GLOB",
        ),
    ] = None,
    slug: Annotated[
        str | None,
        typer.Option(
            "--slug", help="Branch slug rule: docker (default), gitlab, github-slug.", metavar="PRESET"
        ),
    ] = None,
    slug_lowercase: Annotated[
        bool | None,
        typer.Option("--slug-lowercase/--no-slug-lowercase", help="Lowercase branch names when slugging."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Delete (default: dry run, print the plan).")
    ] = False,
    apply_plan: Annotated[
        Path | None,
        typer.Option(
            "--apply-plan",
            help="Execute a reviewed --plan-out file (tags that moved are skipped).",
            metavar="FILE",
        ),
    ] = None,
    plan_out: Annotated[
        Path | None, typer.Option("--plan-out", help="Write the plan as JSON to FILE.", metavar="FILE")
    ] = None,
    max_deletes: Annotated[
        int | None,
        typer.Option("--max-deletes", min=0, help="Refuse to act on a plan deleting more tags.", metavar="N"),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option(
            "--summary",
            help="Write a Markdown summary (default: $GITHUB_STEP_SUMMARY if set).",
            metavar="FILE",
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="How to delete: auto (by host: ghcr, ecr, google; else the registry API), oci, ghcr, ecr, google.",
            metavar="KIND",
        ),
    ] = None,
    untagged: Annotated[
        bool | None,
        typer.Option(
            "--untagged/--no-untagged",
            help="Also delete untagged caches (GHCR: untagged package versions whose manifest is a cache).",
        ),
    ] = None,
    package: GitHubPackage = None,
    github_api_url: GitHubApiUrl = None,
    unpulled_for: Annotated[
        str | None,
        typer.Option(
            "--unpulled-for",
            help="ECR: delete caches nobody pulled for this long (lastRecordedPullTime; never pulled: push time).",
            metavar="AGE",
        ),
    ] = None,
    aws_region: AwsRegion = None,
    ecr_registry_id: EcrRegistryId = None,
    emit_ecr_lifecycle: Annotated[
        bool,
        typer.Option(
            "--emit-ecr-lifecycle",
            help="Print the ECR lifecycle policy JSON for the rules ECR can express (stderr: what it cannot); no requests.",
        ),
    ] = False,
    emit_gar_cleanup_policy: Annotated[
        bool,
        typer.Option(
            "--emit-gar-cleanup-policy",
            help="Print the Artifact Registry cleanup policy JSON for the rules it can express (stderr: what it cannot); no requests.",
        ),
    ] = False,
    github_token: Annotated[
        str | None,
        typer.Option(
            "--github-token",
            help="GitHub token for the ghcr backend (default: $GH_TOKEN, else $GITHUB_TOKEN; prefer those).",
            metavar="TOKEN",
            show_default=False,
        ),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            "--time-budget",
            help="Start no deletion after this long (25m, 90s; from the start of the command): the rest is "
            "reported not-attempted, exit 7, rerun to continue.",
            metavar="DURATION",
        ),
    ] = None,
    delete_empty_packages: Annotated[
        bool,
        typer.Option(
            "--delete-empty-packages",
            help="GHCR: when a package's last version would go, delete the package (GitHub keeps it 30 days).",
        ),
    ] = False,
    discover: Annotated[
        str | None,
        typer.Option(
            "--discover",
            help=(
                "Find the repositories: GHCR org/user packages, ECR DescribeRepositories, "
                "an Artifact Registry repository's packages, else /v2/_catalog."
            ),
            metavar="REGISTRY[/PREFIX]",
        ),
    ] = None,
    match: Annotated[
        str | None,
        typer.Option(
            "--match",
            help="With --discover: names below PREFIX/ matching this glob (default '*').",
            metavar="GLOB",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Only the repositories of shard K of N (0-based; a stable hash of the name), e.g. $JOB_COMPLETION_INDEX/4.",
            metavar="K/N",
        ),
    ] = None,
    json_out: JsonOut = False,
    output: Output = None,
    page_size: PageSize = None,
    *,
    connection: Connection,
) -> None:
    """Delete stale branch caches: plan (dry run by default), then --apply; every decision has a reason."""
    fmt = output_format(json_out, output)
    json_out = fmt == "json"
    from inspector.gc.policy import Settings

    flags = Settings(
        tag_templates=tuple(tag_template) if tag_template else None,
        protect=tuple(protect) if protect else None,
        max_age=max_age,
        keep_last=keep_last,
        branches_from_git=branches_from_git,
        branches_file=branches_file,
        max_deletes=max_deletes,
        slug_preset=slug,
        slug_lowercase=slug_lowercase,
        backend=backend,
        github_api_url=github_api_url,
        package=package,
        untagged=untagged,
    )
    if connection.password_stdin and (branches_file == "-"):
        raise UsageError("--password-stdin and --branches-file - both read stdin; put the branches in a file")

    if emit_ecr_lifecycle or emit_gar_cleanup_policy:
        acting = apply or apply_plan is not None or plan_out is not None
        _emit_lifecycle(
            repository, policy, flags, acting, unpulled=unpulled_for is not None, gar=emit_gar_cleanup_policy
        )
        return
    from inspector.gc import service
    from inspector.gc.budget import parse_time_budget

    budget = parse_time_budget(time_budget) if time_budget is not None else None  # the clock starts now
    ecr = _Ecr(ecr_registry_id, aws_region)
    now = datetime.now(UTC)

    def on_progress(description: str) -> AbstractContextManager[Callable[[int, int], None] | None]:
        return progress(not json_out, description)

    def warn(message: str) -> None:
        print(f"cacheinspect: {message}", file=sys.stderr)

    from inspector.gc.discover import parse_shard

    chosen_shard = parse_shard(shard) if shard is not None else None
    if match is not None and discover is None:
        raise UsageError("--match selects the names --discover finds: give --discover REGISTRY[/PREFIX] too")
    sources = service.discover_sources(policy, discover, match or "*", flags)
    if repository is not None and discover is None:  # REPOSITORY: that one only, under the table covering it
        file_sources, sources = sources, []
    else:
        file_sources = sources
    if apply_plan is not None and chosen_shard is not None:
        raise UsageError(
            "--apply-plan carries out the plan file as it is: give no --shard (shard the plan run)"
        )
    if apply_plan is None and (sources or chosen_shard is not None):
        if emit_ecr_lifecycle or emit_gar_cleanup_policy or unpulled_for is not None:
            raise UsageError("--unpulled-for is not supported with --discover, [[discover]] or --shard")
        listed = (
            service.resolve_policies(repository, policy, flags, sources=file_sources)
            if (repository or policy)
            else []
        )
        home = listed[0].repository.registry if listed else sources[0][0].registry
        with connection.client(home, ecr.credentials) as client, ExitStack() as stack:
            github = _GitHub(stack, github_token, delete_empty_packages=delete_empty_packages)
            renderer = _StreamRenderer(fmt, plan_out, now, "apply" if apply else "dry-run")
            streamed = service.run_streamed(
                client,
                listed,
                sources,
                _lister(client, github, ecr, page_size),
                _backends(client, github, ecr),
                flags=flags,
                apply=apply,
                now=now,
                shard=chosen_shard,
                page_size=page_size,
                progress=on_progress,
                on_repository=renderer.repository,
                warn=warn,
                budget=budget,
            )
            renderer.finish(streamed)
        _write_streamed_summary(summary, streamed)
        if streamed.budget_reached:
            print(f"cacheinspect: {_budget_line(streamed)}", file=sys.stderr)
        if streamed.exit_code:
            raise typer.Exit(streamed.exit_code)
        return

    if apply_plan is not None:
        # The plan file is not trusted (it travels between jobs): it must have been made under the
        # policy this command is run with, which the job's own checkout or command line provides.
        if apply or plan_out:
            raise UsageError("--apply-plan executes the plan file: give no --apply or --plan-out")
        if repository is None and policy is None and discover is None:
            raise UsageError(
                "--apply-plan needs the policy the plan was made under: give REPOSITORY and its rules "
                "(-t, --protect, --max-age, --keep-last, --slug), or --policy FILE"
            )
        from inspector.gc.planfile import plan_from_json

        try:
            raw = apply_plan.read_bytes()
        except OSError as exc:
            raise UsageError(f"--apply-plan {apply_plan}: {exc.strerror}") from None
        plans = plan_from_json(raw, str(apply_plan))
        policies = (
            service.resolve_policies(
                repository, policy, flags, unpulled_for=unpulled_for, sources=file_sources
            )
            if repository is not None or policy is not None
            else []
        )
        policies += service.discovered_policies([p.repository for p in plans], policies, file_sources, flags)
        bound = service.bind_plans(plans, policies)
        first = plans[0].repository.registry if plans else None
        with connection.client(first, ecr.credentials) as client, ExitStack() as stack:
            github = _GitHub(stack, github_token, delete_empty_packages=delete_empty_packages)
            run = service.apply_reviewed_plan(
                client,
                plans,
                bound,
                _backends(client, github, ecr),
                now=now,
                package=flags.package,
                max_deletes=max_deletes,
                page_size=page_size,
                progress=on_progress,
                on_planned=_plan_writer(plan_out, now, "apply-plan"),
                warn=warn,
                budget=budget,
            )
    else:
        policies = service.resolve_policies(
            repository, policy, flags, unpulled_for=unpulled_for, sources=file_sources
        )
        first = policies[0].repository.registry if policies else None
        with connection.client(first, ecr.credentials) as client, ExitStack() as stack:
            github = _GitHub(stack, github_token, delete_empty_packages=delete_empty_packages)
            run = service.run_gc(
                client,
                policies,
                _backends(client, github, ecr),
                apply=apply,
                now=now,
                page_size=page_size,
                progress=on_progress,
                on_planned=_plan_writer(plan_out, now, "apply" if apply else "dry-run"),
                warn=warn,
                budget=budget,
            )
    _render(run, fmt)
    _write_summary(summary, run)
    if run.budget_reached:
        print(f"cacheinspect: {_budget_line(run)}", file=sys.stderr)
    if run.exit_code:
        raise typer.Exit(run.exit_code)


def _lister(client: RegistryClient, github: _GitHub, ecr: _Ecr, page_size: int | None) -> Lister:
    """Each discover source's listing, with the GitHub or ECR client or the Google token its backend needs."""
    from inspector.gc.discover import list_source, source_kind

    def names(source: DiscoverSource, settings: Settings) -> Iterable[str]:
        kind = source_kind(source, settings.backend)
        return list_source(
            source,
            settings,
            client=client,
            github=github.client(settings.github_api_url) if kind == "ghcr" else None,
            ecr=ecr.client(source.registry) if kind == "ecr" else None,
            google_token=_google_token(client, source.registry) if kind == "artifact-registry" else None,
            page_size=page_size,
        )

    return names


def _google_token(client: RegistryClient, host: str) -> str | None:
    """The access token the registry gets (user ``oauth2accesstoken``: ADC or ``--password-stdin``), for
    the Artifact Registry API; None (anonymous) for other credentials."""
    found = client.credentials_for(host)
    return found.password if found is not None and found.username == "oauth2accesstoken" else None


class _StreamRenderer:
    """A streamed run's output, one repository at a time: text, TSV or one JSON document (written as it
    grows, so no plan is held), and ``--plan-out`` the same way."""

    def __init__(self, fmt: str, plan_out: Path | None, now: datetime, mode: Mode) -> None:
        from inspector.gc.planfile import plan_to_json

        self.fmt = fmt
        self.mode = mode
        self.errors: list[CacheInspectError] = []
        head = json.dumps(plan_to_json([], created_at=now, mode=mode), indent=2)
        self._head = head[: head.rindex("[")] + "["  # '... "repositories": ['
        self._first = True
        self._plan_file: TextIO | None = None
        if plan_out is not None:
            try:
                self._plan_file = plan_out.open("w", encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {plan_out}: {exc.strerror}") from None
            self._plan_file.write(self._head)
        if fmt == "json":
            sys.stdout.write(self._head)
        elif fmt == "tsv":
            from inspector.cli.render.gc import PLAN_TSV_HEADER

            write_tsv(PLAN_TSV_HEADER, [])

    def repository(
        self, plan: RepositoryPlan, report: RepositoryReport | None, error: CacheInspectError | None
    ) -> None:
        from inspector.gc.planfile import repository_plan_to_json

        entry = repository_plan_to_json(plan)
        separator = "\n    " if self._first else ",\n    "
        if self._plan_file is not None:
            self._plan_file.write(separator + _indented({**entry, "report": None}))
            self._plan_file.flush()
        if error is not None:
            self.errors.append(error)
        if self.fmt == "json":
            from inspector.gc.execute import gc_report_to_json

            shown = (
                {"error": error_json(error, sanitized=False)}
                if error is not None
                else (gc_report_to_json(report) if report is not None else None)
            )
            sys.stdout.write(separator + _indented({**entry, "report": shown}))
            sys.stdout.flush()
        elif self.fmt == "tsv":
            from inspector.cli.render.gc import PLAN_TSV_HEADER, plan_tsv_rows
            from inspector.cli.tsv import tsv

            rows = plan_tsv_rows([plan], {plan.repository: report} if report else {})
            sys.stdout.write(tsv(PLAN_TSV_HEADER, rows).split("\n", 1)[1])  # the header went first
        else:
            from inspector.cli.render.gc import render_gc_report, render_plan

            out = console()
            out.print(render_plan(plan, applying=self.mode != "dry-run"))
            if report is not None:
                out.print(render_gc_report(report))
            elif self.mode != "dry-run" and not plan.manifests:
                out.print("nothing to delete")
            out.print()
        self._first = False

    def finish(self, run: StreamedRun) -> None:
        from inspector.gc.discover import discovery_to_json

        tail = json.dumps(
            discovery_to_json(run.discovery, {k: e.message for k, e in run.errors.items()}), indent=2
        )
        members = ',\n  "discovery": ' + tail.replace("\n", "\n  ")
        if run.budget is not None and run.applying:
            members += ',\n  "budget": ' + json.dumps(_budget_json(run), indent=2).replace("\n", "\n  ")
        closing = ("\n  ]" if not self._first else "]") + members + "\n}\n"
        if self._plan_file is not None:
            self._plan_file.write(closing)
            self._plan_file.close()
        if self.fmt == "json":
            sys.stdout.write(closing)
            return
        if self.fmt != "tsv":
            from inspector.cli.render.gc import render_discovery

            console().print(render_discovery(run.discovery))
        for error in run.errors.values():
            report_error(error)


def _indented(entry: dict[str, Any]) -> str:
    return json.dumps(entry, indent=2).replace("\n", "\n    ")


def _write_streamed_summary(summary: Path | None, run: StreamedRun) -> None:
    from inspector.cli.render.gc import discovery_markdown

    try:
        write_job_summary(discovery_markdown(run), summary)
    except OSError as exc:  # the deletions happened; a summary that cannot be written must not hide that
        print(
            f"cacheinspect: warning: cannot write the summary to {exc.filename}: {exc.strerror}",
            file=sys.stderr,
        )


def _backends(client: RegistryClient, github: _GitHub, ecr: _Ecr) -> BackendFactory:
    """Each repository's backend from its policy; ``--untagged`` is refused where the backend cannot list
    untagged manifests."""
    from inspector.gc.backends.factory import backend_kind, check_untagged, select_backend

    def backend(policy: RepositoryPolicy, untagged: bool) -> DeleteBackend:
        repo = policy.repository
        if untagged:
            check_untagged(repo, policy.backend)
        chosen = backend_kind(repo, policy.backend)
        if chosen == "ecr":
            ecr.used_for.add(repo.registry)
        return select_backend(
            client,
            repo,
            kind=policy.backend,
            github=github.client(policy.github_api_url) if chosen == "ghcr" else None,
            package=policy.package,
            delete_empty_packages=github.delete_empty_packages,
            ecr=ecr.client(repo.registry) if chosen == "ecr" else None,
        )

    return backend


def _plan_writer(
    plan_out: Path | None, now: datetime, mode: Mode
) -> Callable[[Sequence[RepositoryPlan]], None]:
    """``--plan-out FILE``: the plans, written before anything is deleted."""

    def write(plans: Sequence[RepositoryPlan]) -> None:
        from inspector.gc.planfile import plan_to_json

        if plan_out is not None:
            _write(plan_out, json.dumps(plan_to_json(plans, created_at=now, mode=mode), indent=2) + "\n")

    return write


def _render(run: GcRun, fmt: str) -> None:
    """The plans and what applying them did, as JSON, TSV or for people; errors on stderr."""
    from inspector.gc.execute import gc_report_to_json
    from inspector.gc.planfile import plan_to_json

    if fmt == "tsv":
        from inspector.cli.render.gc import PLAN_TSV_HEADER, plan_tsv_rows

        write_tsv(PLAN_TSV_HEADER, plan_tsv_rows(run.plans, run.reports))
        for error in run.errors.values():
            report_error(error)
    elif fmt == "json":
        documents: dict[Repository, dict[str, Any]] = {
            name: gc_report_to_json(r) for name, r in run.reports.items()
        }
        for name, error in run.errors.items():
            documents[name] = {"error": error_json(error, sanitized=False)}
        document = plan_to_json(run.plans, created_at=run.started_at, mode=run.mode, reports=documents)
        if run.budget is not None and run.applying:
            document["budget"] = _budget_json(run)
        print(json.dumps(document, indent=2))
    else:
        from inspector.cli.render.gc import render_gc_report, render_plan

        out = console()
        for plan in run.plans:
            out.print(render_plan(plan, applying=run.applying))
            if plan.repository in run.reports:
                out.print(render_gc_report(run.reports[plan.repository]))
            elif run.applying and not plan.manifests:
                out.print("nothing to delete")
            out.print()
        for error in run.errors.values():
            report_error(error)


def _budget_line(run: GcRun | StreamedRun) -> str:
    """``time budget of 25m reached: 312 deletions left: about 9 min at the observed 35/min; rerun to continue``."""
    assert run.budget is not None
    left = run.backlog().describe()
    if run.not_begun:
        noun = "repository" if run.not_begun == 1 else "repositories"
        left += f", and {run.not_begun} {noun} not begun (not read yet)"
    return f"{run.budget.reason}: {left}; rerun to continue"


def _budget_json(run: GcRun | StreamedRun) -> dict[str, Any]:
    """The ``budget`` member of ``gc --json`` (``inspector/schemas/gc-plan.schema.json``)."""
    assert run.budget is not None
    backlog = run.backlog()
    return {
        "limit": run.budget.text,
        "seconds": run.budget.seconds,
        "reached": run.budget_reached,
        "deletions": run.deletions,
        "deletionsLeft": backlog.left,
        "repositoriesNotBegun": run.not_begun,
        "perMinute": round(backlog.per_minute, 2) if backlog.per_minute is not None else None,
        "backlogSeconds": round(backlog.seconds, 1) if backlog.seconds is not None else None,
        "hint": "rerun to continue" if backlog.left or run.not_begun else None,
    }


def _emit_lifecycle(
    repository: str | None,
    policy: Path | None,
    flags: Settings,
    acting: bool,
    *,
    unpulled: bool,
    gar: bool = False,
) -> None:
    """``--emit-ecr-lifecycle`` / ``--emit-gar-cleanup-policy``: the policy JSON on stdout, what the
    vendor's policy cannot express on stderr."""
    from inspector.gc.backends.ecr import lifecycle_policy
    from inspector.gc.backends.google import cleanup_policy, package_name

    flag, vendor = (
        ("--emit-gar-cleanup-policy", "Artifact Registry") if gar else ("--emit-ecr-lifecycle", "ECR")
    )
    if acting:
        raise UsageError(f"{flag} only prints a policy: give no --apply, --apply-plan or --plan-out")
    from inspector.gc.service import resolve_policies

    policies = resolve_policies(repository, policy, flags)
    if len(policies) != 1:
        raise UsageError(f"{flag} prints one repository's policy: give the REPOSITORY too")
    chosen = policies[0]
    document: Any
    if gar:
        package = package_name(chosen.repository)
        document, missing = cleanup_policy(chosen.rules, untagged=chosen.untagged, package=package)
    else:
        document, missing = lifecycle_policy(chosen.rules, untagged=chosen.untagged)
    if unpulled:
        missing.append("--unpulled-for: not emitted (the policy has no pull times)")
    print(json.dumps(document, indent=2))
    for line in missing:
        print(f"cacheinspect: not in the {vendor} policy: {line}", file=sys.stderr)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _write_summary(summary: Path | None, run: GcRun) -> None:
    """``--summary FILE`` (written), else ``$GITHUB_STEP_SUMMARY`` (appended, as GitHub expects)."""
    from inspector.cli.render.gc import plan_markdown

    try:
        write_job_summary(plan_markdown(run.plans, run.reports, run.errors, mode=run.mode), summary)
    except OSError as exc:  # the deletions happened; a summary that cannot be written must not hide that
        print(
            f"cacheinspect: warning: cannot write the summary to {exc.filename}: {exc.strerror}",
            file=sys.stderr,
        )
