"""The ``copy`` command (registered on ``commands.app`` when ``commands`` is imported)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from inspector.cli.app import JsonOut, Output, app, output_format
from inspector.cli.options import (
    Connection,
    connection_options,
    progress,
)

__all__ = ["copy"]


@app.command()
@connection_options()
def copy(
    source: Annotated[str, typer.Argument(help="The cache to copy, e.g. ghcr.io/org/app:buildcache.")],
    destination: Annotated[
        str, typer.Argument(help="Where to put it: a tag in another repository or registry.", metavar="DEST")
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Rewrite the wrapper: image-manifest (BuildKit >= 0.12 imports it; ECR, GCR, Quay, Harbor "
            "accept it) or oci-index (for BuildKit < 0.12). Default: keep the source's form, byte for byte.",
            metavar="FORM",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be copied and how many bytes; write nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Point DEST at the copy even when it names another manifest now.")
    ] = False,
    json_out: JsonOut = False,
    output: Output = None,
    *,
    connection: Connection,
) -> None:
    """Copy a cache between repositories or registries (blobs mounted or streamed, manifest last); never deletes."""
    fmt = output_format(json_out, output, no_tsv="copy prints one plan, not rows: use -o json")
    json_out = fmt == "json"
    from inspector.cache.copy import TARGET_FORMS, copy_plan_to_json, execute_copy, plan_copy
    from inspector.cache.report import human_size as _size
    from inspector.errors import UsageError
    from inspector.oci.reference import parse_reference

    if to is not None and to not in TARGET_FORMS:
        raise UsageError(f"--to {to!r}: expected one of {', '.join(TARGET_FORMS)}")
    src, dst = parse_reference(source), parse_reference(destination)
    # One client: credentials are looked up per registry, so the source's and the destination's are each
    # their own (-u/--password-stdin go to SOURCE's registry, or to --registry-auth HOST).
    with connection.client(src.repository.registry) as client:
        plan = plan_copy(client, src, dst, to=to, force=force)
        result = None
        if not dry_run:
            with progress(not json_out, f"copying blobs to {dst}") as on_progress:
                result = execute_copy(client, plan, on_progress)
    if json_out:
        print(json.dumps(copy_plan_to_json(plan, result), indent=2))
        return
    from inspector._sanitize import sanitize

    verb = "would copy" if dry_run else "copied"
    lines = [f"{sanitize(str(src))} -> {sanitize(str(dst))} ({plan.source_form} -> {plan.target_form})"]
    for blob in plan.blobs:
        lines.append(f"  {blob.action:<8} {blob.descriptor.digest.short}  {_size(blob.descriptor.size)}")
    mounts, streams = plan.bytes_for("mount"), plan.bytes_for("stream")
    lines.append(
        f"{verb}: {sum(b.action == 'mount' for b in plan.blobs)} blobs by mount ({_size(mounts)}), "
        f"{sum(b.action == 'stream' for b in plan.blobs)} streamed ({_size(streams)}), "
        f"{sum(b.action == 'present' for b in plan.blobs)} already there ({_size(plan.bytes_for('present'))})"
    )
    if result is not None and result.mount_declined:
        lines.append(f"the registry declined {result.mount_declined} mounts; those blobs were streamed")
    if plan.replaces:
        lines.append(f"{'would move' if dry_run else 'moved'} the tag from {plan.replaces[:19]}")
    lines.append(f"manifest {plan.manifest_digest} ({plan.manifest_media_type})")
    print("\n".join(lines))
