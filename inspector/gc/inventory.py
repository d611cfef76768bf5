"""``gc`` inventory: read a repository once, so planning (``plan``) never touches the registry.

Reading (``collect_inventory``) reuses ``du``: the tag list and one manifest GET
per tag (on Docker Hub a HEAD per tag and a GET per distinct digest, since GETs
count as pulls there); whether a tag is a cache and which blobs
it holds come from the manifest alone. On top of that, gc reads

* the cache config of a cache whose manifest carries no ``buildkit/createdat``
  annotation (its results' ``createdAt`` give the age), one GET each;
* each non-cache tag's manifest by tag, one GET each (``du`` keeps no
  non-cache document; gc needs its digest and blobs, and recognises the
  placeholders an interrupted gc run left behind);
* the manifest a placeholder replaced, by digest, one GET each.

Untagged caches a vendor API can list (GHCR's untagged package versions, ECR's images,
``gc --untagged``) enter the inventory through ``add_untagged``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from inspector.cache.config import parse_cache_config
from inspector.cache.du import disk_usage, newest_created_at
from inspector.cache.fetch import find_cache_config, form_of
from inspector.errors import InvalidContent, InvalidReference, NotFound
from inspector.gc.placeholder import PlaceholderInfo, parse_placeholder
from inspector.oci import gojson
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor, ManifestDocument
from inspector.oci.reference import Repository
from inspector.registry.client import MANIFEST_LIMIT, RegistryClient

__all__ = [
    "CacheInfo",
    "Inventory",
    "TagInfo",
    "TagKind",
    "UntaggedCache",
    "add_untagged",
    "collect_inventory",
]

Progress = Callable[[int, int], None]
TagKind = Literal["cache", "other", "placeholder", "unreadable"]


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One listed tag; ``digest`` is None when it could not be read (``note`` says why)."""

    tag: str
    digest: Digest | None
    kind: TagKind
    note: str = ""


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """A cache manifest: its blobs (config and distinct layers, with sizes) and its age."""

    digest: Digest
    manifest_size: int
    form: str
    blobs: Mapping[Digest, int]
    created_at: gojson.Timestamp | None
    age_source: Literal["annotation", "config", "pushed", "unknown"]  # pushed: a vendor API's push time
    age_note: str = ""
    last_pulled: gojson.Timestamp | None = None  # a vendor API's last recorded pull (ECR)


@dataclass(frozen=True, slots=True)
class UntaggedCache:
    """An untagged cache manifest a vendor API listed (its ``CacheInfo`` is in ``Inventory.caches``)."""

    digest: Digest
    detail: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """What the registry said about one repository, read once; the planner's only input from it."""

    repository: Repository
    tags: tuple[TagInfo, ...]
    caches: Mapping[Digest, CacheInfo]
    other_blobs: frozenset[Digest] = frozenset()
    placeholders: Mapping[Digest, PlaceholderInfo] = field(default_factory=lambda: MappingProxyType({}))
    untagged: tuple[UntaggedCache, ...] = ()
    notes: tuple[str, ...] = ()

    def resolutions(self) -> dict[str, Digest | None]:
        """Tag -> digest as read (None: unknown, to be resolved again before any deletion)."""
        return {info.tag: info.digest for info in self.tags}


def _config_age(raw: bytes) -> gojson.Timestamp | None:
    config = parse_cache_config(raw)
    times: list[gojson.Timestamp] = [r.created_at for rec in config.records for r in rec.results]
    times += [c.created_at for rec in config.records for c in rec.chains]
    times += [
        layer.annotations.created_at
        for layer in config.layers
        if layer.annotations is not None and layer.annotations.created_at is not None
    ]
    return max((t for t in times if t.epoch_ns > 0), default=None)


def _read_cache(
    client: RegistryClient,
    repository: Repository,
    document: tuple[Digest, int, str],
    config: Descriptor,
    layers: Sequence[Descriptor],
    sizes: Mapping[Digest, int],
) -> CacheInfo:
    """Blobs and age of one cache; the config is fetched only when no layer carries ``buildkit/createdat``."""
    digest, manifest_size, form = document
    blobs = MappingProxyType({d.digest: sizes.get(d.digest, d.size) for d in (config, *layers)})

    def info(
        created: gojson.Timestamp | None, source: Literal["annotation", "config", "unknown"], note: str = ""
    ) -> CacheInfo:
        return CacheInfo(digest, manifest_size, form, blobs, created, source, note)

    created = newest_created_at(layers)
    if created is not None:
        return info(created, "annotation")
    if config.size > MANIFEST_LIMIT:
        return info(None, "unknown", f"cache config is {config.size} bytes")
    try:
        created = _config_age(client.get_blob(repository, config, limit=MANIFEST_LIMIT))
    except (NotFound, InvalidContent) as exc:
        return info(None, "unknown", f"cache config unreadable: {exc.message}")
    if created is None:
        return info(None, "unknown", "no creation time in the manifest or its config")
    return info(created, "config")


def _referenced(document: ManifestDocument) -> frozenset[Digest]:
    """Every digest a non-cache document names (config, layers, or index entries)."""
    named = [*document.layers, *document.manifests]
    if document.config is not None:
        named.append(document.config)
    return frozenset(d.digest for d in named)


def _describe_other(document: ManifestDocument) -> str:
    if document.kind == "index":
        return f"not a cache: an index ({document.media_type}) of {len(document.manifests)} entries"
    config = document.config.media_type if document.config is not None else "no config"
    return f"not a cache: config {config}"


def collect_inventory(
    client: RegistryClient,
    repository: Repository,
    *,
    page_size: int | None = None,
    on_progress: Progress | None = None,
    listed_tags: Sequence[str] | None = None,
) -> Inventory:
    """Read one repository for planning (request budget in the module docstring); ``listed_tags``: its
    tag listing when the caller already has it."""
    usage = disk_usage(
        client, repository, page_size=page_size, on_progress=on_progress, listed_tags=listed_tags
    )
    sizes = usage.blob_sizes

    def read_tag(tag: str) -> ManifestDocument | str:
        try:
            return client.get_manifest(repository.tag(tag))
        except (NotFound, InvalidContent, InvalidReference) as exc:
            return exc.message

    caches = {
        info.digest: info
        for info in client.map_bounded(
            lambda e: _read_cache(
                client, repository, (e.digest, e.manifest_size, e.form), e.config, e.layers, sizes
            ),
            list(usage.entries),
        )
    }
    tags: list[TagInfo] = [
        TagInfo(tag, entry.digest, "cache") for entry in usage.entries for tag in entry.tags
    ]
    tags += [TagInfo(s.tag, None, "unreadable", s.reason) for s in usage.skipped_tags]

    other_blobs: set[Digest] = set()
    placeholders: dict[Digest, PlaceholderInfo] = {}
    others = client.map_bounded(read_tag, list(usage.non_cache_tags))
    for tag, document in zip(usage.non_cache_tags, others, strict=True):
        if isinstance(document, str):
            tags.append(TagInfo(tag, None, "unreadable", document))
            continue
        if find_cache_config(document) is not None:
            tags.append(TagInfo(tag, None, "unreadable", "changed from a non-cache to a cache while reading"))
            continue
        placeholder = parse_placeholder(document)
        if placeholder is not None:
            placeholders[document.digest] = placeholder
            tags.append(TagInfo(tag, document.digest, "placeholder", f"gc placeholder for {placeholder.tag}"))
        else:
            other_blobs |= _referenced(document)
            tags.append(TagInfo(tag, document.digest, "other", _describe_other(document)))

    # Manifests that placeholders replaced: untagged, so only reachable through the placeholder.
    replaced = sorted({p.replaces for p in placeholders.values() if p.replaces and p.replaces not in caches})

    def read_replaced(digest: Digest) -> CacheInfo | None:
        try:
            document = client.get_manifest(repository.at(digest))
        except (NotFound, InvalidContent):
            return None
        found = find_cache_config(document)
        if found is None:
            return None
        identity = (document.digest, document.size, form_of(document))
        return _read_cache(client, repository, identity, found[0], found[1], sizes)

    for info_or_none in client.map_bounded(read_replaced, replaced):
        if info_or_none is not None:
            caches[info_or_none.digest] = info_or_none
    return Inventory(
        repository=repository,
        tags=tuple(sorted(tags, key=lambda t: t.tag)),
        caches=MappingProxyType(caches),
        other_blobs=frozenset(other_blobs),
        placeholders=MappingProxyType(placeholders),
    )


def add_untagged(
    inventory: Inventory, found: Sequence[tuple[ManifestDocument, str]], notes: Sequence[str] = ()
) -> Inventory:
    """``inventory`` plus untagged caches (each manifest with a detail for its reason); pure.

    Their blobs and sizes come from the manifests' descriptors and their age from
    ``buildkit/createdat`` (no config is read: no rule ages an untagged cache). A document that is
    not a cache is left out.
    """
    caches = dict(inventory.caches)
    untagged = list(inventory.untagged)
    for document, detail in found:
        config_and_layers = find_cache_config(document)
        if config_and_layers is None or any(u.digest == document.digest for u in untagged):
            continue
        config, layers = config_and_layers
        if document.digest not in caches:
            created = newest_created_at(layers)
            caches[document.digest] = CacheInfo(
                document.digest,
                document.size,
                form_of(document),
                MappingProxyType({d.digest: d.size for d in (config, *layers)}),
                created,
                "annotation" if created is not None else "unknown",
            )
        untagged.append(UntaggedCache(document.digest, detail))
    return replace(
        inventory,
        caches=MappingProxyType(caches),
        untagged=tuple(untagged),
        notes=(*inventory.notes, *notes),
    )
