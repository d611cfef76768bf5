"""The repositories a registry lists: ``GET /v2/_catalog?n=…``, page by page.

The catalog is not in the OCI distribution spec; CNCF distribution (2.8 and 3), Harbor and zot serve it.
Distribution pages it like ``tags/list``: ``n`` caps a page, ``last`` names where the next one starts,
and a ``Link: </v2/_catalog?last=…&n=…>; rel="next"`` header is sent while more remain
(distribution ``registry/handlers/catalog.go``: ``GetCatalog`` sets ``Link`` when the page is full and
the storage walk has more). The body is ``{"repositories": [...]}``.

The same caps as a tag listing hold: each page body at most ``TAG_PAGE_LIMIT`` bytes, at most
``MAX_REPOSITORIES`` names and ``MAX_CATALOG_PAGES`` pages in all, a ``Link`` that loops or points to
another host is ``InvalidContent`` (exit 8).
"""

from __future__ import annotations

from collections.abc import Iterator

from inspector.errors import InvalidContent
from inspector.oci import gojson
from inspector.registry.client import RegistryClient

__all__ = ["MAX_CATALOG_PAGES", "MAX_REPOSITORIES", "iter_catalog", "parse_catalog_page"]

MAX_REPOSITORIES = 100_000
MAX_CATALOG_PAGES = 10_000
#: Names per page asked for: the most distribution 2.8.2 accepts (``n=1000`` answers 200, ``n=1001``
#: 400 ``PAGINATION_NUMBER_INVALID``, measured against /usr/bin/docker-registry; its ``maxEntries``).
DEFAULT_CATALOG_PAGE = 1000


def parse_catalog_page(raw: bytes, what: str) -> list[str]:
    """The names of one ``_catalog`` body (``{"repositories": [...]}``); ``null`` is no names."""
    doc = gojson.load(raw, what)
    fields = gojson.fields(doc, ("repositories",), what)
    return [
        gojson.as_str(n, f"{what}.repositories") for n in gojson.as_list(fields.get("repositories"), what)
    ]


def iter_catalog(client: RegistryClient, registry: str, *, page_size: int | None = None) -> Iterator[str]:
    """Every repository name the registry lists, in its order, following ``Link: rel="next"``."""
    what = f"list the repositories of {registry} (/v2/_catalog)"
    url = client.url(registry, "/v2/_catalog", {"n": str(page_size or DEFAULT_CATALOG_PAGE)})
    count = 0
    for raw in client.iter_linked_bodies(url, what=what, max_pages=MAX_CATALOG_PAGES):
        names = parse_catalog_page(raw, what)
        count += len(names)
        if count > MAX_REPOSITORIES:
            raise InvalidContent(f"{what}: the registry lists more than {MAX_REPOSITORIES:,} repositories")
        yield from names
