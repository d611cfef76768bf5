"""The ``du`` and ``diff`` commands (registered on ``commands.app`` when ``commands`` is imported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inspector.cli.app import JsonOut, Output, app, console, output_format, write_tsv
from inspector.cli.options import (
    BuildArg,
    Connection,
    PageSize,
    Target,
    connection_options,
    dockerfile_recipe,
    progress,
)
from inspector.errors import ExitCode
from inspector.oci.reference import Reference

if TYPE_CHECKING:
    from inspector.cache.report import CacheReport
    from inspector.cache.source import LayoutReference
    from inspector.registry.client import RegistryClient

__all__ = ["DIFFERENT", "diff", "du"]

# Like `git diff --exit-code`: with --exit-code, diff exits 1 when the caches differ.
DIFFERENT = int(ExitCode.DIFFERENT)


@app.command()
@connection_options()
def du(
    repository: Annotated[
        str, typer.Argument(help="Repository, e.g. ghcr.io/org/app or localhost:5000/cache.")
    ],
    tag_pattern: Annotated[
        str | None,
        typer.Option(
            "--tag-pattern", help="Only tags matching this glob (fnmatch: *, ?, [...]).", metavar="GLOB"
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            metavar="KEY",
            help="Order rows by size, unique (the default: largest first), age (oldest first) or tag.",
        ),
    ] = None,
    json_out: JsonOut = False,
    output: Output = None,
    page_size: PageSize = None,
    *,
    connection: Connection,
) -> None:
    """Disk usage of every cache tag in a repository: size, bytes unique to it, bytes shared, age, total."""
    fmt = output_format(json_out, output)
    json_out = fmt == "json"
    from inspector.cache.du import (
        USAGE_TSV_HEADER,
        disk_usage,
        parse_sort_key,
        sort_usage,
        usage_to_json,
        usage_tsv_rows,
    )
    from inspector.oci.reference import parse_repository

    order = parse_sort_key(sort) if sort is not None else None  # a bad key is exit 2 before any request
    repo = parse_repository(repository)
    with (
        connection.client(repo.registry) as client,
        progress(not json_out, "reading manifests") as on_progress,
    ):
        usage = disk_usage(
            client, repo, tag_pattern=tag_pattern, page_size=page_size, on_progress=on_progress
        )
    if order is not None:
        usage = sort_usage(usage, order)
    if fmt == "json":
        print(json.dumps(usage_to_json(usage), indent=2))
    elif fmt == "tsv":
        write_tsv(USAGE_TSV_HEADER, usage_tsv_rows(usage))
    else:
        from inspector.cli.render.repo import render_usage

        console().print(render_usage(usage))


def _inspect(
    target: Reference | LayoutReference, client: RegistryClient | None, check_blobs: bool, json_out: bool
) -> CacheReport:
    from inspector.cache.report import inspect_cache
    from inspector.cache.source import LayoutSource, RegistrySource

    with progress(not json_out and check_blobs, f"checking blobs of {target}") as on_progress:
        if isinstance(target, Reference):
            assert client is not None
            return inspect_cache(
                RegistrySource(client, target), check_blobs=check_blobs, on_progress=on_progress
            )
        return inspect_cache(LayoutSource(target), check_blobs=check_blobs, on_progress=on_progress)


@app.command()
@connection_options()
def diff(
    ref_a: Annotated[
        str,
        typer.Argument(help="The cache to compare from (e.g. main's), or oci:DIR[:TAG].", metavar="REF_A"),
    ],
    ref_b: Annotated[
        str, typer.Argument(help="The cache to compare with (e.g. the branch's).", metavar="REF_B")
    ],
    json_out: JsonOut = False,
    output: Output = None,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help=f"Exit {DIFFERENT} when the caches differ (like git diff).")
    ] = False,
    no_check_blobs: Annotated[
        bool, typer.Option("--no-check-blobs", help="Skip the HEAD request per layer blob.")
    ] = False,
    dockerfile: Annotated[
        Path | None,
        typer.Option(
            "--dockerfile",
            "-f",
            help="Name each stage's first differing step by its instruction (the Dockerfile of B's build).",
            metavar="PATH",
        ),
    ] = None,
    target: Target = None,
    build_arg: BuildArg = None,
    *,
    connection: Connection,
) -> None:
    """Compare two caches: layers added/removed/shared, records, and per stage the first step that differs."""
    no_tsv = "diff compares two caches stage by stage, not rows: use -o json"
    json_out = output_format(json_out, output, no_tsv=no_tsv) == "json"
    from inspector.cache.diff import diff_caches, diff_to_json
    from inspector.cache.naming.align import label_report
    from inspector.cache.source import parse_source

    recipe = dockerfile_recipe(dockerfile, target, build_arg)

    target_a, target_b = parse_source(ref_a), parse_source(ref_b)  # both parse before any request
    check = not no_check_blobs
    if isinstance(target_a, Reference) or isinstance(target_b, Reference):
        first = target_a if isinstance(target_a, Reference) else target_b
        assert isinstance(first, Reference)
        with connection.client(first.repository.registry) as client:
            report_a = _inspect(target_a, client, check, json_out)
            report_b = _inspect(target_b, client, check, json_out)
    else:
        report_a = _inspect(target_a, None, check, json_out)
        report_b = _inspect(target_b, None, check, json_out)
    if recipe is not None:  # show's naming, on both sides: the same instruction gets the same label
        report_a = label_report(report_a, dockerfile=recipe)
        report_b = label_report(report_b, dockerfile=recipe)
    result = diff_caches(report_a, report_b)
    if json_out:
        print(json.dumps(diff_to_json(result), indent=2))
    else:
        from inspector.cli.render.repo import render_diff

        console().print(render_diff(result))
    if exit_code and not result.identical:
        raise typer.Exit(DIFFERENT)
