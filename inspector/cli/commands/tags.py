"""``cacheinspect tags``: a repository's tags, streamed as the registry pages them."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from inspector.cli.app import JsonOut, Output, app, output_format, write_tsv
from inspector.cli.options import (
    Connection,
    PageSize,
    connection_options,
)

if TYPE_CHECKING:
    pass


@app.command()
@connection_options(fixed={"concurrency": 1})  # one request in flight
def tags(
    repository: Annotated[
        str, typer.Argument(help="Repository, e.g. ghcr.io/org/app or localhost:5000/cache.")
    ],
    json_out: JsonOut = False,
    output: Output = None,
    page_size: PageSize = None,
    *,
    connection: Connection,
) -> None:
    """List the tags of a repository, following pagination."""
    fmt = output_format(json_out, output)
    from inspector.oci.reference import parse_repository

    repo = parse_repository(repository)
    with connection.client(repo.registry) as client:
        if fmt != "table":  # one document: the names are held (at most MAX_TAGS), never the pages
            names = client.list_tags(repo, page_size=page_size)
            if fmt == "json":
                print(json.dumps({"repository": str(repo), "tags": names}, indent=2))
            else:
                write_tsv(("tag",), [(name,) for name in names])
            return
        from inspector._sanitize import sanitize

        printed = 0
        for page in client.iter_tag_pages(repo, page_size=page_size):  # each page printed as it arrives
            sys.stdout.write("".join(sanitize(name) + "\n" for name in page))
            sys.stdout.flush()
            printed += len(page)
    if not printed:
        print(f"{repo}: no tags", file=sys.stderr)
