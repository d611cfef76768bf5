"""The ``probe`` command (registered on ``commands.app`` when ``commands`` is imported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inspector.cli.app import (
    STATE,
    JsonOut,
    Output,
    app,
    console,
    output_format,
    write_job_summary,
    write_tsv,
)
from inspector.cli.options import Connection, connection_options
from inspector.errors import InvalidReference, UsageError
from inspector.oci.reference import Reference, Repository, parse_reference, parse_repository

__all__ = ["probe"]


def _target(text: str) -> tuple[Repository, Reference | None]:
    """REPO, or REPO:TAG / REPO@DIGEST naming an existing cache in it."""
    try:
        return parse_repository(text), None
    except InvalidReference:
        ref = parse_reference(text)
        return ref.repository, ref


@app.command()
@connection_options(fixed={"concurrency": 1})  # one request in flight
def probe(
    repository: Annotated[
        str | None,
        typer.Argument(
            help="The cache repository (REPO, or REPO:TAG of an existing cache); with --offline a registry host. "
            "Default: the repository of --cache-to's ref.",
            metavar="REPO",
        ),
    ] = None,
    cache_to: Annotated[
        str | None,
        typer.Option(
            "--cache-to",
            help="Your --cache-to value (buildx CSV, e.g. 'type=registry,ref=…,mode=max'): "
            "exit 0 if it will work here, 9 if not.",
            metavar="CSV",
        ),
    ] = None,
    buildkit_version: Annotated[
        str,
        typer.Option(
            "--buildkit-version",
            help="BuildKit version of the builder, for --cache-to (e.g. 0.20, v0.21.1; default: latest).",
            metavar="VERSION",
        ),
    ] = "latest",
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Also test deletion semantics (tag delete, digest delete)."),
    ] = False,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave the tags and manifests the probe created (default: remove them)."),
    ] = False,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="No writes: learn what an existing cache ref can tell."),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="No requests: answer from the built-in knowledge base."),
    ] = False,
    family: Annotated[
        str | None,
        typer.Option(
            "--family",
            help="Registry family instead of guessing from the host: ecr, ghcr, gcr, artifact-registry, "
            "docker-hub, quay, acr, gitlab, harbor, artifactory, distribution, distribution-v3, zot, generic.",
            metavar="NAME",
        ),
    ] = None,
    mount_from: Annotated[
        str | None,
        typer.Option(
            "--mount-from",
            help="Also test a cross-repository blob mount from this repository.",
            metavar="REPO",
        ),
    ] = None,
    upload_variants: Annotated[
        bool,
        typer.Option("--upload-variants", help="Also test single-POST and chunked blob uploads."),
    ] = False,
    no_near_limit: Annotated[
        bool,
        typer.Option("--no-near-limit", help="Skip pushing the 1 MiB manifest."),
    ] = False,
    json_out: JsonOut = False,
    output: Output = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write a JUnit XML report (one test case per check).", metavar="FILE"),
    ] = None,
    *,
    connection: Connection,
) -> None:
    """Check that a registry can hold a BuildKit registry cache, and which --cache-to flags work there."""
    fmt = output_format(json_out, output)
    from inspector.probe.cacheto import parse_buildkit_version, parse_cache_to, plan_cache_to
    from inspector.probe.output import (
        CHECKS_TSV_HEADER,
        checks_tsv_rows,
        junit_xml,
        markdown_summary,
        probe_report_to_json,
    )
    from inspector.probe.run import ProbeOptions, offline_report, run_probe

    parse_buildkit_version(buildkit_version)  # a bad version is a usage error before anything else
    plan = plan_cache_to(parse_cache_to(cache_to)) if cache_to is not None else None
    if offline:
        if delete or read_only or mount_from or upload_variants:
            raise UsageError(
                "--offline makes no requests: it excludes --delete, --read-only, --mount-from, --upload-variants"
            )
        target = repository or (
            str(plan.ref.repository) if plan is not None and plan.ref is not None else None
        )
        if target is None:
            raise UsageError("--offline needs a registry host (or a --cache-to with ref=)")
        report = offline_report(target, family=family, cache_to=cache_to, buildkit_version=buildkit_version)
    else:
        if repository is not None:
            repo, ref = _target(repository)
        elif plan is not None and plan.ref is not None:
            repo, ref = plan.ref.repository, None
        else:
            raise UsageError("give the cache repository (REPO) or a --cache-to with ref=")
        if read_only and ref is None and (plan is None or plan.ref is None):
            raise UsageError("--read-only reads an existing cache: give REPO:TAG or --cache-to with ref=")
        options = ProbeOptions(
            repository=repo,
            cache_to=cache_to,
            buildkit_version=buildkit_version,
            ref=ref,
            delete=delete,
            keep=keep,
            read_only=read_only,
            family=family,
            mount_from=parse_repository(mount_from) if mount_from else None,
            upload_variants=upload_variants,
            near_limit=not no_near_limit,
        )
        with connection.client(repo.registry) as client:
            report = run_probe(client, options)
        from inspector.probe.ecr_settings import with_ecr_findings

        report = with_ecr_findings(report, repo)  # ECR hosts: tag mutability, scan on push
    if junit is not None:
        try:
            junit.write_text(junit_xml(report))
        except OSError as exc:
            raise UsageError(f"--junit {junit}: {exc.strerror}") from None
    try:
        write_job_summary(markdown_summary(report))
    except OSError as exc:  # the probe changed nothing: a summary CI asked for and cannot have is exit 2
        raise UsageError(f"GITHUB_STEP_SUMMARY {exc.filename}: {exc.strerror}") from None
    if fmt == "json":
        print(json.dumps(probe_report_to_json(report), indent=2))
    elif fmt == "tsv":
        write_tsv(CHECKS_TSV_HEADER, checks_tsv_rows(report))
    else:
        from inspector.cli.render.probe import render_probe

        console().print(render_probe(report, verbose=STATE.verbose))
    if report.exit_code:
        raise typer.Exit(report.exit_code)
