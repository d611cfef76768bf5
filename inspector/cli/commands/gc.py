"""The ``gc`` command (registered on ``commands.app`` when ``commands`` is imported)."""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inspector.cli.app import JsonOut, Output, app, console, output_format, report_error, write_tsv
from inspector.cli.options import (
    CaFile,
    Concurrency,
    Connection,
    Insecure,
    PageSize,
    PasswordStdin,
    PlainHttp,
    Timeout,
    Username,
    progress,
)
from inspector.errors import CacheInspectError, ExitCode, UsageError

if TYPE_CHECKING:
    from inspector.gc.backends.base import DeleteBackend
    from inspector.gc.branches import LiveRefs
    from inspector.gc.execute import RepositoryReport
    from inspector.gc.plan import Inventory, Mode, RepositoryPlan
    from inspector.gc.policy import BackendKind, RepositoryPolicy, Settings
    from inspector.registry.client import RegistryClient
    from inspector.registry.credentials import Credentials
    from inspector.registry.ecr import EcrClient
    from inspector.registry.github_packages import GhcrClient

__all__ = ["gc"]


@dataclass(frozen=True, slots=True)
class _Target:
    plan: RepositoryPlan
    inventory: Inventory | None
    backend: DeleteBackend
    untagged: bool = False  # untagged caches were looked for (GHCR)


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
    package: Annotated[
        str | None,
        typer.Option(
            "--package",
            help="GitHub package of the repository (ghcr backend; default: the repository's path).",
            metavar="OWNER/NAME",
        ),
    ] = None,
    github_api_url: Annotated[
        str | None,
        typer.Option(
            "--github-api-url",
            help="GitHub REST API for the ghcr backend (default https://api.github.com).",
            metavar="URL",
        ),
    ] = None,
    unpulled_for: Annotated[
        str | None,
        typer.Option(
            "--unpulled-for",
            help="ECR: delete caches nobody pulled for this long (lastRecordedPullTime; never pulled: push time).",
            metavar="AGE",
        ),
    ] = None,
    aws_region: Annotated[
        str | None,
        typer.Option(
            "--aws-region", help="AWS region of the ECR API (default: the ECR host's).", metavar="REGION"
        ),
    ] = None,
    ecr_registry_id: Annotated[
        str | None,
        typer.Option(
            "--ecr-registry-id",
            help="AWS account id of the ECR registry (default: the ECR host's; lets --backend ecr serve another host).",
            metavar="ACCOUNT",
        ),
    ] = None,
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
    delete_empty_packages: Annotated[
        bool,
        typer.Option(
            "--delete-empty-packages",
            help="GHCR: when a package's last version would go, delete the package (GitHub keeps it 30 days).",
        ),
    ] = False,
    json_out: JsonOut = False,
    output: Output = None,
    page_size: PageSize = None,
    plain_http: PlainHttp = False,
    insecure: Insecure = False,
    ca_file: CaFile = None,
    username: Username = None,
    password_stdin: PasswordStdin = False,
    concurrency: Concurrency = 8,
    timeout: Timeout = 30.0,
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
    if password_stdin and (branches_file == "-"):
        raise UsageError("--password-stdin and --branches-file - both read stdin; put the branches in a file")
    from inspector.oci.reference import parse_repository

    if emit_ecr_lifecycle or emit_gar_cleanup_policy:
        acting = apply or apply_plan is not None or plan_out is not None
        _emit_lifecycle(
            repository, policy, flags, acting, unpulled=unpulled_for is not None, gar=emit_gar_cleanup_policy
        )
        return
    connection = Connection(plain_http, insecure, ca_file, username, password_stdin, concurrency, timeout)
    ecr = _Ecr(ecr_registry_id, aws_region)
    now = datetime.now(UTC)
    if apply_plan is not None:
        # The plan file is not trusted (it travels between jobs): it must have been made under the
        # policy this command is run with, which the job's own checkout or command line provides.
        if apply or plan_out:
            raise UsageError("--apply-plan executes the plan file: give no --apply or --plan-out")
        if repository is None and policy is None:
            raise UsageError(
                "--apply-plan needs the policy the plan was made under: give REPOSITORY and its rules "
                "(-t, --protect, --max-age, --keep-last, --slug), or --policy FILE"
            )
        from inspector.gc.plan import plan_from_json

        try:
            raw = apply_plan.read_bytes()
        except OSError as exc:
            raise UsageError(f"--apply-plan {apply_plan}: {exc.strerror}") from None
        plans = plan_from_json(raw, str(apply_plan))
        policies = _policies(repository, policy, flags)
        if unpulled_for is not None:
            policies = _with_unpulled(policies, unpulled_for)
        bound = _bound(plans, policies)
        first = parse_repository(plans[0].repository).registry if plans else None
        with connection.client(first, ecr.credentials) as client, ExitStack() as stack:
            github = _GitHub(stack, github_token, delete_empty_packages=delete_empty_packages)
            targets = _reviewed(client, plans, bound, flags, github, ecr)
            _finish(client, targets, "apply-plan", now, fmt, plan_out, summary, max_deletes, page_size)
        return
    policies = _policies(repository, policy, flags)
    if unpulled_for is not None:
        policies = _with_unpulled(policies, unpulled_for)
    first = parse_repository(policies[0].repository).registry if policies else None
    with connection.client(first, ecr.credentials) as client, ExitStack() as stack:
        github = _GitHub(stack, github_token, delete_empty_packages=delete_empty_packages)
        targets = _plan_all(client, policies, now, json_out, page_size, github, ecr)
        _finish(
            client,
            targets,
            "apply" if apply else "dry-run",
            now,
            fmt,
            plan_out,
            summary,
            None,
            page_size,
        )


def _policies(repository: str | None, policy: Path | None, flags: Settings) -> list[RepositoryPolicy]:
    from inspector.gc.policy import load_policy, resolve_policy
    from inspector.oci.reference import parse_repository

    if policy is None:
        if repository is None:
            raise UsageError("give a REPOSITORY, or --policy FILE")
        return [resolve_policy(str(parse_repository(repository)), [], flags)]
    loaded = load_policy(policy)
    entries = [(str(parse_repository(name)), settings) for name, settings in loaded.repositories]
    if repository is None:
        if flags.package is not None and len(entries) > 1:
            raise UsageError("--package names one repository's package: give that REPOSITORY too")
        return [resolve_policy(name, [loaded.defaults, settings], flags) for name, settings in entries]
    wanted = str(parse_repository(repository))
    own = [settings for name, settings in entries if name == wanted]
    return [resolve_policy(wanted, [loaded.defaults, *own], flags)]


def _backend(
    client: RegistryClient,
    repository: str,
    kind: BackendKind,
    github: _GitHub,
    ecr: _Ecr,
    *,
    api_url: str | None,
    package: str | None,
    untagged: bool,
) -> DeleteBackend:
    """The repository's backend; ``--untagged`` is refused where the backend cannot list untagged manifests."""
    from inspector.gc.backends.factory import backend_kind, check_untagged, select_backend
    from inspector.oci.reference import parse_repository

    repo = parse_repository(repository)
    if untagged:
        check_untagged(repo, kind)
    chosen = backend_kind(repo, kind)
    if chosen == "ecr":
        ecr.used_for.add(repo.registry)
    return select_backend(
        client,
        repo,
        kind=kind,
        github=github.client(api_url) if chosen == "ghcr" else None,
        package=package,
        delete_empty_packages=github.delete_empty_packages,
        ecr=ecr.client(repo.registry) if chosen == "ecr" else None,
    )


def _bound(plans: tuple[RepositoryPlan, ...], policies: list[RepositoryPolicy]) -> list[RepositoryPolicy]:
    """The policy of each plan's repository; refuses (exit 2) a plan the policy does not cover or match."""
    from inspector.gc.plan import PlanMismatch, check_plan_policy

    by_name = {p.repository: p for p in policies}
    bound = []
    for plan in plans:
        own = by_name.get(plan.repository)
        if own is None:
            given = ", ".join(sorted(by_name))
            raise PlanMismatch(
                f"the plan is for {plan.repository}, which the policy given does not name ({given}); "
                "nothing was deleted"
            )
        check_plan_policy(plan, own.rules)
        bound.append(own)
    return bound


def _reviewed(
    client: RegistryClient,
    plans: tuple[RepositoryPlan, ...],
    policies: list[RepositoryPolicy],
    flags: Settings,
    github: _GitHub,
    ecr: _Ecr,
) -> list[_Target]:
    """Targets of a reviewed plan; untagged caches in it are selected again (GHCR, ECR, Google) or refused."""
    from inspector.gc.backends import ecr as gc_ecr
    from inspector.gc.backends import google as gc_google
    from inspector.gc.backends.ghcr import GhcrBackend, recheck_untagged

    if flags.package is not None and len(plans) > 1:
        raise UsageError("--package names one repository's package; this plan has several repositories")
    targets = []
    for plan, policy in zip(plans, policies, strict=True):
        untagged = bool(plan.untagged_deletions)
        backend = _backend(
            client,
            plan.repository,
            policy.backend,
            github,
            ecr,
            api_url=policy.github_api_url,
            package=policy.package,
            untagged=untagged,
        )
        if isinstance(backend, gc_ecr.EcrBackend):
            if untagged:
                plan = gc_ecr.recheck_untagged(plan, backend)
            backend.allow_tags(d.tag for d in plan.deletions)
        elif isinstance(backend, gc_google.GoogleBackend):
            plan = gc_google.recheck_untagged(plan, backend)
        elif untagged:
            assert isinstance(backend, GhcrBackend)  # _backend refused every other backend
            plan = recheck_untagged(plan, backend)
        targets.append(_Target(plan, None, backend, untagged=untagged))
    return targets


def _plan_all(
    client: RegistryClient,
    policies: list[RepositoryPolicy],
    now: datetime,
    json_out: bool,
    page_size: int | None,
    github: _GitHub,
    ecr: _Ecr,
) -> list[_Target]:
    """Read the branches and every repository, then plan them all: a read error stops before any deletion."""
    from inspector.gc.backends import ecr as gc_ecr
    from inspector.gc.backends import google as gc_google
    from inspector.gc.backends.ghcr import GhcrBackend, plan_untagged
    from inspector.gc.branches import git_ls_remote, read_branches_file
    from inspector.gc.plan import collect_inventory, plan_repository
    from inspector.oci.reference import parse_repository

    backends = [  # every refusal before anything is read
        _backend(
            client,
            p.repository,
            p.backend,
            github,
            ecr,
            api_url=p.github_api_url,
            package=p.package,
            untagged=p.untagged,
        )
        for p in policies
    ]
    sources: dict[tuple[str, str, bool], LiveRefs] = {}
    targets = []
    for policy, backend in zip(policies, backends, strict=True):
        live: LiveRefs | None = None
        pulls = any(t.kind == "number" for t in policy.rules.templates)
        if policy.branches_from_git is not None:
            key = ("git", policy.branches_from_git, pulls)
            if key not in sources:
                sources[key] = git_ls_remote(policy.branches_from_git, pulls=pulls)
            live = sources[key]
        elif policy.branches_file is not None:
            key = ("file", policy.branches_file, False)
            if key not in sources:
                sources[key] = read_branches_file(policy.branches_file)
            live = sources[key]
        repo = parse_repository(policy.repository)
        with progress(not json_out, f"reading {repo}") as on_progress:
            inventory = collect_inventory(client, repo, page_size=page_size, on_progress=on_progress)
        if isinstance(backend, gc_ecr.EcrBackend):  # ages from ECR's push times
            inventory = gc_ecr.with_push_times(inventory, backend.images())
            if policy.untagged:
                inventory = gc_ecr.plan_untagged(backend, inventory)
        elif isinstance(backend, gc_google.GoogleBackend):  # ages from the manifest map's upload times
            inventory = gc_google.with_upload_times(inventory, backend.manifests())
            if policy.untagged:
                inventory = gc_google.plan_untagged(backend, inventory)
        elif policy.untagged:
            assert isinstance(backend, GhcrBackend)  # check_untagged refused every other backend
            inventory = plan_untagged(backend, inventory)
        plan = plan_repository(inventory, policy.rules, live, now, max_deletes=policy.max_deletes)
        if isinstance(backend, gc_ecr.EcrBackend):
            backend.allow_tags(d.tag for d in plan.deletions)
        targets.append(_Target(plan, inventory, backend, untagged=policy.untagged))
    return targets


def _finish(
    client: RegistryClient,
    targets: list[_Target],
    mode: Mode,
    now: datetime,
    fmt: str,
    plan_out: Path | None,
    summary: Path | None,
    max_deletes: int | None,
    page_size: int | None,
) -> None:
    from inspector.gc.backends.base import untagged_hint
    from inspector.gc.backends.ecr import EcrBackend
    from inspector.gc.backends.ghcr import GhcrBackend, pacing_note
    from inspector.gc.backends.google import GoogleBackend
    from inspector.gc.execute import RegistryTagReader, execute_plan, report_to_json
    from inspector.gc.plan import check_max_deletes, plan_to_json
    from inspector.oci.reference import parse_repository

    plans = []
    for target in targets:
        ghcr = isinstance(target.backend, GhcrBackend)
        plan = target.plan
        listed = ghcr or isinstance(target.backend, EcrBackend | GoogleBackend)
        if not (listed and target.untagged):  # else the untagged images were looked at: the notes say how
            plan = _with_note(plan, untagged_hint(parse_repository(plan.repository).registry, ghcr=ghcr))
        if isinstance(target.backend, GhcrBackend):
            pacing = pacing_note(plan, target.backend.github.options.pace)
            if pacing is not None:
                plan = _with_note(plan, pacing)
                if mode != "dry-run":
                    print(f"cacheinspect: {plan.repository}: {pacing}", file=sys.stderr)
            target.backend.expect(plan)
        plans.append(plan)
    if plan_out is not None:
        _write(plan_out, json.dumps(plan_to_json(plans, created_at=now, mode=mode), indent=2) + "\n")
    reports: dict[str, RepositoryReport] = {}
    errors: dict[str, CacheInspectError] = {}
    applying = mode != "dry-run"
    if applying:
        for plan in plans:  # every plan is checked before anything is deleted anywhere
            check_max_deletes(plan, max_deletes if max_deletes is not None else plan.max_deletes)
        for target, plan in zip(targets, plans, strict=True):
            if not plan.manifests:
                continue
            repo = parse_repository(plan.repository)
            try:
                with progress(fmt != "json", f"deleting in {repo}") as on_progress:
                    reports[plan.repository] = execute_plan(
                        plan,
                        target.backend,
                        RegistryTagReader(client, repo, page_size),
                        on_progress=on_progress,
                    )
            except CacheInspectError as exc:  # reported with the rest; later repositories still run
                errors[plan.repository] = exc
    if fmt == "tsv":
        from inspector.cli.render.gc import PLAN_TSV_HEADER, plan_tsv_rows

        write_tsv(PLAN_TSV_HEADER, plan_tsv_rows(plans, reports))
        for error in errors.values():
            report_error(error)
    elif fmt == "json":
        documents: dict[str, dict[str, Any]] = {name: report_to_json(r) for name, r in reports.items()}
        for name, error in errors.items():
            documents[name] = {"error": _error_json(error)}
        print(json.dumps(plan_to_json(plans, created_at=now, mode=mode, reports=documents), indent=2))
    else:
        from inspector.cli.render.gc import render_plan, render_report

        out = console()
        for plan in plans:
            out.print(render_plan(plan, applying=applying))
            if plan.repository in reports:
                out.print(render_report(reports[plan.repository]))
            elif applying and not plan.manifests:
                out.print("nothing to delete")
            out.print()
        for error in errors.values():
            report_error(error)
    _write_summary(summary, plans, reports, errors, mode)
    code = max(
        [int(e.exit_code) for e in errors.values()]
        + [int(ExitCode.PARTIAL) for r in reports.values() if not r.ok]
        + [0]
    )
    if code:
        raise typer.Exit(code)


def _with_unpulled(policies: list[RepositoryPolicy], text: str) -> list[RepositoryPolicy]:
    """``--unpulled-for`` on every repository; only the ECR backend knows when an image was last pulled."""
    from inspector.gc.backends.factory import backend_kind
    from inspector.gc.policy import parse_duration
    from inspector.oci.reference import parse_repository

    limit = parse_duration(text)
    for chosen in policies:
        if backend_kind(parse_repository(chosen.repository), chosen.backend) != "ecr":
            raise UsageError(
                f"{chosen.repository}: --unpulled-for needs pull times, which only the ECR backend has "
                "(DescribeImages lastRecordedPullTime)"
            )
    return [replace(p, rules=replace(p.rules, unpulled_for=limit)) for p in policies]


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
    from inspector.oci.reference import parse_repository

    flag, vendor = (
        ("--emit-gar-cleanup-policy", "Artifact Registry") if gar else ("--emit-ecr-lifecycle", "ECR")
    )
    if acting:
        raise UsageError(f"{flag} only prints a policy: give no --apply, --apply-plan or --plan-out")
    policies = _policies(repository, policy, flags)
    if len(policies) != 1:
        raise UsageError(f"{flag} prints one repository's policy: give the REPOSITORY too")
    chosen = policies[0]
    document: Any
    if gar:
        package = package_name(parse_repository(chosen.repository))
        document, missing = cleanup_policy(chosen.rules, untagged=chosen.untagged, package=package)
    else:
        document, missing = lifecycle_policy(chosen.rules, untagged=chosen.untagged)
    if unpulled:
        missing.append("--unpulled-for: not emitted (the policy has no pull times)")
    print(json.dumps(document, indent=2))
    for line in missing:
        print(f"cacheinspect: not in the {vendor} policy: {line}", file=sys.stderr)


def _with_note(plan: RepositoryPlan, note: str) -> RepositoryPlan:
    return plan if note in plan.notes else replace(plan, notes=(*plan.notes, note))


def _error_json(exc: CacheInspectError) -> dict[str, Any]:
    return {
        "code": type(exc).__name__,
        "exitCode": int(exc.exit_code),
        "message": exc.message,
        "hint": exc.hint,
    }


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _write_summary(
    summary: Path | None,
    plans: list[RepositoryPlan],
    reports: dict[str, RepositoryReport],
    errors: dict[str, CacheInspectError],
    mode: Mode,
) -> None:
    """``--summary FILE`` (written), else ``$GITHUB_STEP_SUMMARY`` (appended, as GitHub expects)."""
    from inspector.cli.render.gc import plan_markdown

    target = summary or (
        Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None
    )
    if target is None:
        return
    text = plan_markdown(plans, reports, errors, mode=mode)
    try:
        with target.open("w" if summary is not None else "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:  # the deletions happened; a summary that cannot be written must not hide that
        print(f"cacheinspect: warning: cannot write the summary to {target}: {exc.strerror}", file=sys.stderr)
