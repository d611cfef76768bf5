"""``cacheinspect history``: the manifests that held one cache tag, newest first, and who wrote them."""

from __future__ import annotations

import json
import sys
from typing import Annotated, cast

import typer

from inspector._sanitize import sanitize
from inspector.cli.app import JsonOut, app, console, output_format
from inspector.cli.options import (
    AwsRegion,
    Connection,
    EcrRegistryId,
    GitHubApiUrl,
    GitHubPackage,
    connection_options,
)
from inspector.errors import CacheInspectError, UsageError

__all__ = ["history"]


@app.command()
@connection_options()
def history(
    ref: Annotated[str, typer.Argument(help="Cache tag, e.g. ghcr.io/org/app-cache:main.")],
    json_out: JsonOut = False,
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, max=500, metavar="N", help="Show at most N caches (newest first)."),
    ] = 20,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            metavar="API",
            help="Which API lists the versions: auto (by host: ghcr.io, ECR, gcr.io, *-docker.pkg.dev), ghcr, "
            "ecr, google.",
        ),
    ] = "auto",
    package: GitHubPackage = None,
    github_api_url: GitHubApiUrl = None,
    aws_region: AwsRegion = None,
    ecr_registry_id: EcrRegistryId = None,
    base: Annotated[
        list[str] | None,
        typer.Option(
            "--base",
            metavar="REF",
            help="A FROM image to resolve (repeatable): proves each version's platforms by its root keys.",
        ),
    ] = None,
    *,
    connection: Connection,
) -> None:
    """List the caches a tag held recently (vendor APIs only), and say when writers alternate."""
    fmt = output_format(json_out, None, no_tsv="history prints a report, not rows")
    from inspector.cache.history import (
        HistoryApi,
        HistoryUnavailable,
        cache_history,
        ecr_versions,
        ghcr_versions,
        google_versions,
        history_tag,
        history_to_json,
    )
    from inspector.cache.naming.bases import resolve_base
    from inspector.cli.commands.gc import _Ecr
    from inspector.gc.backends.factory import backend_kind
    from inspector.gc.policy import BackendKind
    from inspector.oci.reference import parse_reference

    if backend not in ("auto", "ghcr", "ecr", "google"):
        raise UsageError(f"--backend {backend!r}: expected auto, ghcr, ecr or google")
    reference = parse_reference(ref)
    history_tag(reference)
    base_refs = {text: parse_reference(text) for text in base or []}
    registry = reference.repository.registry
    # The same choice by host as gc's backends: only the vendor APIs list untagged manifests.
    chosen = backend_kind(reference.repository, cast(BackendKind, backend))
    if package is not None and chosen != "ghcr":
        raise UsageError("--package names a GitHub package: it needs the ghcr backend (--backend ghcr)")
    if chosen == "oci":
        raise HistoryUnavailable(
            f"{reference.repository}: this registry cannot list a tag's earlier manifests (the registry API "
            "lists tags, not untagged manifests or push times); history needs a vendor API that lists them "
            "(--backend ghcr|ecr|google)"
        )
    # gc's ECR helper: the API client by host or --ecr-registry-id, and registry credentials from
    # GetAuthorizationToken for an ECR host without Docker credentials.
    ecr = _Ecr(ecr_registry_id, aws_region)
    with connection.client(registry, ecr.credentials if chosen == "ecr" else None) as client:
        resolved = []
        for text, parsed in base_refs.items():
            try:
                resolved.extend(resolve_base(client, parsed, display=text))
            except CacheInspectError as exc:  # as in show: one base that cannot be read proves nothing
                print(
                    f"cacheinspect: warning: {sanitize(f'could not resolve base {text}: {exc.message}')}",
                    file=sys.stderr,
                )
        if chosen == "ghcr":
            from inspector.registry.github_packages import DEFAULT_API_URL, GhcrClient, GhcrOptions

            owner, _, name = (package or reference.repository.path).partition("/")
            if not name:
                raise UsageError(
                    f"{package or reference.repository}: expected OWNER/NAME for the GitHub package"
                )
            with GhcrClient(GhcrOptions(base_url=github_api_url or DEFAULT_API_URL)) as github:
                versions = ghcr_versions(github, github.package(owner, name, host=registry))
        elif chosen == "ecr":
            versions = ecr_versions(ecr.client(registry), reference.repository.path)
        else:
            versions = google_versions(client, reference.repository)
        api: HistoryApi = "ghcr" if chosen == "ghcr" else "ecr" if chosen == "ecr" else "google"
        found = cache_history(client, reference, versions, api=api, limit=limit, bases=resolved)
    if fmt == "json":
        print(json.dumps(history_to_json(found), indent=2))
        return
    from inspector.cli.render.history import render_history

    console().print(render_history(found))
