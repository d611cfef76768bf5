"""``cacheinspect show``: one cache, its stages, layers, sizes and health."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inspector.cli.app import JsonOut, Output, app, console, output_format, write_tsv
from inspector.cli.options import (
    BuildArg,
    Connection,
    Target,
    connection_options,
    dockerfile_recipe,
    progress,
)
from inspector.errors import ExitCode, UsageError
from inspector.oci.reference import Reference

if TYPE_CHECKING:
    from inspector.registry.client import RegistryClient


@app.command()
@connection_options()
def show(
    ref: Annotated[
        str,
        typer.Argument(
            help="Cache reference (registry/repo:tag, @sha256:…) or oci:DIR[:TAG] for a local cache."
        ),
    ],
    json_out: JsonOut = False,
    output: Output = None,
    top: Annotated[
        int | None,
        typer.Option(
            "--top",
            min=1,
            metavar="N",
            help="List the N largest layers with their stage and step (why is this cache big?).",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help=f"Exit {int(ExitCode.UNHEALTHY)} when the cache is unhealthy.")
    ] = False,
    no_check_blobs: Annotated[
        bool, typer.Option("--no-check-blobs", help="Skip the HEAD request per layer blob.")
    ] = False,
    dockerfile: Annotated[
        Path | None,
        typer.Option(
            "--dockerfile", "-f", help="Name stages and steps from this Dockerfile.", metavar="PATH"
        ),
    ] = None,
    target: Target = None,
    build_arg: BuildArg = None,
    resolve_bases: Annotated[
        bool,
        typer.Option(
            "--resolve-bases",
            help="Resolve each external FROM image in its registry and name bases exactly by their root keys.",
        ),
    ] = False,
    base: Annotated[
        list[str] | None,
        typer.Option(
            "--base",
            help="A base image reference to resolve (repeatable; implies --resolve-bases).",
            metavar="REF",
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help="The image the same build pushed: its history and provenance (mode=max) give exact step names.",
            metavar="REF",
        ),
    ] = None,
    expect_platform: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-platform",
            help="Platforms the cache must cover (os/arch[/variant], comma-separated or repeated): a "
            "platform-missing problem for each one not proven (with --strict: exit 10).",
            metavar="PLATFORMS",
        ),
    ] = None,
    graph: Annotated[
        str | None,
        typer.Option(
            "--graph",
            help="Print the stage graph as 'mermaid' or 'dot' instead of the tables.",
            metavar="FORMAT",
        ),
    ] = None,
    *,
    connection: Connection,
) -> None:
    """Show a cache: layers per Dockerfile stage, sizes, dates and a health verdict."""
    no_tsv = None if top else "show prints a report, not rows: give --top N (the largest layers as rows)"
    fmt = output_format(json_out, output, no_tsv=no_tsv)
    json_out = fmt == "json"
    from inspector.cache.coverage import parse_expected_platforms
    from inspector.cache.naming.align import label_report
    from inspector.cache.report import expect_platforms, inspect_cache, report_to_json
    from inspector.cache.source import LayoutSource, RegistrySource, parse_source
    from inspector.oci.reference import parse_reference

    if graph is not None and graph not in ("mermaid", "dot"):
        raise UsageError(f"--graph {graph!r}: expected 'mermaid' or 'dot'")
    if graph is not None and fmt != "table":
        raise UsageError(f"--graph prints a diagram: it excludes --output {fmt}")
    expected_platforms = parse_expected_platforms(expect_platform or [])
    recipe = dockerfile_recipe(dockerfile, target, build_arg)
    base_refs = list(base or [])
    if resolve_bases and recipe is None and not base_refs:
        raise UsageError("--resolve-bases needs --dockerfile (for its FROM lines) or --base REF")
    image_ref = parse_reference(image) if image else None
    # Parsed once, here: a bad reference is a usage error before any request.
    bases = {candidate: parse_reference(candidate) for candidate in base_refs}

    target_ref = parse_source(ref)
    with ExitStack() as stack:
        opened: list[RegistryClient] = []

        def client() -> RegistryClient:
            if not opened:
                registry = target_ref.repository.registry if isinstance(target_ref, Reference) else None
                opened.append(stack.enter_context(connection.client(registry)))
            return opened[0]

        with progress(not json_out and not no_check_blobs, "checking blobs") as on_progress:
            source = (
                RegistrySource(client(), target_ref)
                if isinstance(target_ref, Reference)
                else LayoutSource(target_ref)
            )
            report = inspect_cache(source, check_blobs=not no_check_blobs, on_progress=on_progress)
        report = label_report(
            report,
            client=client,
            dockerfile=recipe,
            image=image_ref,
            bases=bases,
            resolve_bases=resolve_bases or bool(bases),
        )
    if expected_platforms:
        report = expect_platforms(report, expected_platforms)
    if report.graph is not None:
        from inspector._sanitize import sanitize as _sanitize_line

        for warning in report.graph.warnings:
            print(f"cacheinspect: warning: {_sanitize_line(warning)}", file=sys.stderr)
    if graph is not None:
        from inspector._sanitize import sanitize
        from inspector.cache.graph import render_graph

        sys.stdout.write(
            sanitize(render_graph(report, "mermaid" if graph == "mermaid" else "dot"), keep_newlines=True)
        )
    else:
        from inspector.cache.top import TOP_TSV_HEADER, largest_layers, top_layers_json, top_layers_tsv_rows

        largest = largest_layers(report, top) if top else None
        if fmt == "json":
            document = report_to_json(report)
            if largest is not None:
                document["largestLayers"] = top_layers_json(largest)
            print(json.dumps(document, indent=2))
        elif fmt == "tsv":
            assert largest is not None
            write_tsv(TOP_TSV_HEADER, top_layers_tsv_rows(largest))
        else:
            from inspector.cli.render.cache import render_report

            console().print(render_report(report, largest))
    if strict and not report.health.ok:
        raise typer.Exit(int(ExitCode.UNHEALTHY))
