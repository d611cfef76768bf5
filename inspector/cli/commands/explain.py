"""``cacheinspect explain``: will the next build hit these caches, step by step, and why not where it misses."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inspector.cli.app import JsonOut, Output, app, console, output_format, write_job_summary
from inspector.cli.options import BuildArg, Connection, Target, connection_options, dockerfile_recipe
from inspector.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from inspector.cache.contextdiff import LayerFetch
    from inspector.cache.explain import ImportedCache
    from inspector.cache.naming.bases import ResolvedBase
    from inspector.cache.naming.dockerfile import BaseConfig, BuildPlan
    from inspector.cache.source import CacheSource, LayoutReference
    from inspector.oci.digest import Digest
    from inspector.oci.reference import Reference
    from inspector.registry.client import RegistryClient


@app.command()
@connection_options()
def explain(
    refs: Annotated[
        list[str],
        typer.Argument(
            help="The --cache-from caches, in the build's order (registry/repo:tag or oci:DIR[:TAG]).",
            metavar="REF...",
        ),
    ],
    dockerfile: Annotated[
        Path,
        typer.Option("--dockerfile", "-f", help="The Dockerfile the next build runs.", metavar="PATH"),
    ],
    target: Target = None,
    build_arg: BuildArg = None,
    platform: Annotated[
        str,
        typer.Option(
            "--platform", help="The build's target platform (os/arch[/variant]).", metavar="PLATFORM"
        ),
    ] = "linux/amd64",
    context: Annotated[
        Path | None,
        typer.Option(
            "--context",
            help="The build context: compare the files each COPY takes with the cached versions' layers.",
            metavar="DIR",
        ),
    ] = None,
    resolve_bases: Annotated[
        bool,
        typer.Option(
            "--resolve-bases",
            help="Resolve each FROM image: check the cache was built on it, and key RUN steps with its config.",
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help=f"Exit {int(ExitCode.UNHEALTHY)} when the build will run some step (a miss, or no layer to load).",
        ),
    ] = False,
    json_out: JsonOut = False,
    output: Output = None,
    *,
    connection: Connection,
) -> None:
    """Say, step by step, whether the next build will hit these caches, and why the first miss misses."""
    fmt = output_format(json_out, output, no_tsv="explain prints one verdict per step, not rows")
    from inspector.cache.explain import explain_build, explanation_markdown, explanation_to_json
    from inspector.cache.naming.keys import step_keys
    from inspector.cache.source import parse_source
    from inspector.oci.reference import Reference

    recipe = dockerfile_recipe(dockerfile, target, build_arg)
    assert recipe is not None
    _check_platform(platform)
    if context is not None and not context.is_dir():
        raise UsageError(f"--context {context}: not a directory")
    targets = [parse_source(ref) for ref in refs]  # a bad reference is exit 2 before any request
    plan = recipe.plan(platform)
    first_registry = next((t.repository.registry for t in targets if isinstance(t, Reference)), None)
    with ExitStack() as stack:
        opened: list[RegistryClient] = []

        def client() -> RegistryClient:
            if not opened:
                opened.append(stack.enter_context(connection.client(first_registry)))
            return opened[0]

        notes: list[str] = []
        base_roots: dict[str, frozenset[Digest]] = {}
        configs: dict[str, BaseConfig] = {}
        if resolve_bases:
            for ref, base in _resolve_bases(client, plan, platform, notes).items():
                base_roots[ref] = frozenset(base.record_keys)
                configs[ref] = base.config
            plan = recipe.plan(platform, configs)
        keys = step_keys(plan, platform=platform, base_configs=configs)
        pairs = list(zip(refs, targets, strict=True))
        if first_registry is not None:  # the caches are fetched side by side, like BuildKit's imports
            imported = client().map_bounded(lambda pair: _import(pair[0], pair[1], client), pairs)
        else:
            imported = [_import(ref, parsed, client) for ref, parsed in pairs]
        caches: list[ImportedCache] = [cache for cache, _ in imported]
        fetchers: dict[str, LayerFetch] = {c.ref: f for c, f in imported if f is not None}
        check = None
        if context is not None:
            from inspector.cache.contextdiff import make_content_check

            workdirs = {ref: config.workdir for ref, config in configs.items()}
            check = make_content_check(context, fetchers, workdirs)
        result = explain_build(
            plan, keys, caches, platform=platform, base_roots=base_roots, content_check=check, notes=notes
        )
    try:
        write_job_summary(explanation_markdown(result))
    except OSError as exc:  # explain changed nothing: a summary CI asked for and cannot have is exit 2
        raise UsageError(f"GITHUB_STEP_SUMMARY {exc.filename}: {exc.strerror}") from None
    if fmt == "json":
        print(json.dumps(explanation_to_json(result), indent=2))
    else:
        from inspector.cli.render.explain import render_explanation

        console().print(render_explanation(result))
    if strict and result.runs_from is not None:  # a miss, or hits whose layers no cache holds
        raise typer.Exit(int(ExitCode.UNHEALTHY))


def _check_platform(platform: str) -> None:
    parts = platform.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise UsageError(f"--platform {platform!r}: expected os/arch[/variant], e.g. linux/amd64")


def _resolve_bases(
    client: Callable[[], RegistryClient], plan: BuildPlan, platform: str, notes: list[str]
) -> dict[str, ResolvedBase]:
    """Each external FROM reference, resolved for ``platform``; one that fails is a note (its steps then
    have no verified base and RUN keys stay unknown), as ``show --resolve-bases`` does."""
    from inspector.cache.naming.bases import resolve_base
    from inspector.errors import CacheInspectError
    from inspector.oci.reference import parse_reference

    out: dict[str, ResolvedBase] = {}
    for ref in dict.fromkeys(s.base_ref for s in plan.stages if s.base_kind == "image" and s.base_ref):
        try:
            found = resolve_base(client(), parse_reference(ref), display=ref)
        except CacheInspectError as exc:
            notes.append(f"could not resolve base {ref}: {exc.message}")
            continue
        chosen = [b for b in found if str(b.platform) == platform] or (found if len(found) == 1 else [])
        if chosen:
            out[ref] = chosen[0]
        else:
            notes.append(f"base {ref} has no {platform} image")
    return out


def _import(
    ref: str, parsed: Reference | LayoutReference, client: Callable[[], RegistryClient]
) -> tuple[ImportedCache, LayerFetch | None]:
    """One cache as BuildKit's importer sees it. A cache that is missing or that BuildKit would refuse is a
    failed import (the build goes on without it); auth and network errors stop here, since what BuildKit
    would see is then not known."""
    from inspector.cache.contextdiff import LAYER_LIMIT
    from inspector.cache.explain import ImportedCache
    from inspector.cache.fetch import load_cache
    from inspector.cache.source import LayoutSource, RegistrySource
    from inspector.errors import InvalidContent, MissingContent, NotACache, NotFound
    from inspector.oci.reference import Reference

    source: CacheSource = (
        RegistrySource(client(), parsed) if isinstance(parsed, Reference) else LayoutSource(parsed)
    )
    try:
        documents = load_cache(source)
    except NotACache as exc:
        # An image with inline cache metadata: BuildKit imports it (its own layers' keys), explain does not
        # read that form, so the verdict there is unknown rather than a miss.
        inline = "inline cache" in exc.message
        reason = "an image with inline cache (explain reads registry caches only)" if inline else exc.message
        return ImportedCache(ref, None, reason, unread=inline), None
    except (NotFound, MissingContent, InvalidContent) as exc:
        return ImportedCache(ref, None, exc.message), None
    if documents.config is None:
        return ImportedCache(ref, None, documents.config_error or "no cache config"), None
    descriptors = {d.digest: d for d in documents.layer_descriptors}

    def fetch(blob: Digest) -> tuple[bytes, str] | None:
        descriptor = descriptors.get(blob)
        if descriptor is None or descriptor.size > LAYER_LIMIT:
            return None
        try:
            return source.fetch_blob(descriptor, limit=LAYER_LIMIT), descriptor.media_type
        except (NotFound, MissingContent):
            return None

    return ImportedCache(ref, documents.config), fetch
