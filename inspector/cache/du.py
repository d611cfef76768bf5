"""``disk_usage``: what every cache tag of a repository costs, and what deleting it would free.

Request budget: the tag list once (following ``Link`` pages), one manifest
HEAD per tag for its digest, then one GET per *distinct* digest, by digest.
Whether a tag is a cache and the sizes of its blobs come from that manifest
alone (``cache.find_cache_config``): no blob, not even the cache config, is
fetched or HEADed. Sizes are the descriptors' sizes.

The numbers (``compute_usage``, pure, so a ``gc`` planner can reuse them):

* **size** of a cache = its distinct layer blobs **plus its cache config blob**
  (size from the config descriptor); a blob listed twice counts once.
* Tags on one manifest digest are one **entry**: deleting one of them frees
  nothing, so bytes are never "unique" to a single tag of a shared digest.
* **unique** bytes of an entry = its blobs that no other cache manifest of the
  repository references (what deleting all its tags, then a registry GC, frees);
  **shared** = size - unique. Non-cache manifests are not considered.
* ``--tag-pattern`` only selects rows: every tag is still read, because a blob
  shared with a tag outside the pattern is not unique (deleting the row frees
  nothing of it). Reading only the matching tags overstated unique bytes.
* **created** of a cache = the newest ``buildkit/createdat`` annotation of its
  layer descriptors (what ``gc --max-age`` ages it by), None where no layer
  carries one; Go's zero time and text that is no RFC 3339 time count as none.
* **total** = the distinct blobs of the listed cache manifests, each once, and
  the bytes only they reference (freed by deleting all of them); the manifests'
  own bytes are reported separately.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, Literal

from inspector.cache.fetch import Form, find_cache_config, form_of
from inspector.errors import InvalidContent, InvalidReference, NotFound, UsageError
from inspector.oci import gojson, mediatypes
from inspector.oci.digest import Digest
from inspector.oci.models import Descriptor, ManifestDocument
from inspector.oci.reference import DOCKER_HUB, Repository
from inspector.registry.client import RegistryClient

__all__ = [
    "SORT_KEYS",
    "USAGE_TSV_HEADER",
    "ManifestUsage",
    "RepositoryUsage",
    "SkippedTag",
    "compute_usage",
    "disk_usage",
    "newest_created_at",
    "parse_sort_key",
    "sort_usage",
    "usage_to_json",
    "usage_tsv_rows",
]

Progress = Callable[[int, int], None]
SortKey = Literal["size", "unique", "age", "tag"]
SORT_KEYS: tuple[SortKey, ...] = ("size", "unique", "age", "tag")


def _valid_time(text: str | None) -> gojson.Timestamp | None:
    if not text:
        return None
    try:
        stamp = gojson.parse_go_time(text, "createdat")
    except InvalidContent:
        return None
    return stamp if stamp.epoch_ns > 0 else None  # Go's zero time (year 1) means "not set"


def newest_created_at(layers: Iterable[Descriptor]) -> gojson.Timestamp | None:
    """The newest valid ``buildkit/createdat`` of ``layers``: a cache's age, for ``du`` and ``gc``."""
    times = [_valid_time(d.annotations.get(mediatypes.ANNOTATION_CREATED)) for d in layers]
    return max((t for t in times if t is not None), default=None)


@dataclass(frozen=True, slots=True)
class SkippedTag:
    """A listed tag whose manifest could not be read (deleted meanwhile, or not a valid document)."""

    tag: str
    reason: str


@dataclass(frozen=True, slots=True)
class ManifestUsage:
    """One distinct cache manifest and every tag on it."""

    digest: Digest
    tags: tuple[str, ...]
    media_type: str
    form: Form
    manifest_size: int
    config: Descriptor
    layers: tuple[Descriptor, ...]
    unique_size: int
    unique_blobs: int

    @property
    def layer_size(self) -> int:
        """Bytes of the distinct layer blobs (the config blob not included)."""
        return sum(layer.size for layer in self.layers)

    @property
    def size(self) -> int:
        """Distinct layer blobs plus the cache config blob, each once."""
        if any(layer.digest == self.config.digest for layer in self.layers):
            return self.layer_size
        return self.layer_size + self.config.size

    @property
    def shared_size(self) -> int:
        return self.size - self.unique_size

    @property
    def blobs(self) -> frozenset[Digest]:
        return frozenset({self.config.digest, *(layer.digest for layer in self.layers)})

    @property
    def created_at(self) -> gojson.Timestamp | None:
        """The newest ``buildkit/createdat`` of its layers (None when none carries one)."""
        return newest_created_at(self.layers)


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    """Disk usage of the cache tags of one repository; ``entries`` sorted by unique bytes, largest first.

    ``entries`` are the rows ``tag_pattern`` selects; ``blob_sizes`` and ``referrers`` cover every cache
    manifest of the repository, so unique bytes and ``freed_by`` account for tags outside the pattern.
    """

    repository: str
    tag_pattern: str | None
    tags_listed: int
    tags_matched: int
    entries: tuple[ManifestUsage, ...]
    non_cache_tags: tuple[str, ...]
    skipped_tags: tuple[SkippedTag, ...]
    blob_sizes: Mapping[Digest, int]
    referrers: Mapping[Digest, frozenset[Digest]]

    @property
    def cache_tags(self) -> int:
        return sum(len(entry.tags) for entry in self.entries)

    @property
    def blobs(self) -> frozenset[Digest]:
        """Distinct blobs (layers and configs) of the listed cache manifests."""
        return frozenset(blob for entry in self.entries for blob in entry.blobs)

    @property
    def total_size(self) -> int:
        """Distinct blobs of the listed cache manifests, each counted once."""
        return sum(self.blob_sizes[blob] for blob in self.blobs)

    @property
    def unique_size(self) -> int:
        """Bytes only the listed cache manifests reference: what deleting all of them frees."""
        return self.freed_by(entry.digest for entry in self.entries)

    @property
    def manifest_size(self) -> int:
        """Bytes of the distinct cache manifests themselves."""
        return sum(entry.manifest_size for entry in self.entries)

    def freed_by(self, manifests: Iterable[Digest]) -> int:
        """Blob bytes no remaining cache manifest would reference once ``manifests`` are deleted."""
        gone = frozenset(manifests)
        return sum(
            size for blob, size in self.blob_sizes.items() if self.referrers.get(blob, frozenset()) <= gone
        )


def _distinct(descriptors: Iterable[Descriptor]) -> tuple[Descriptor, ...]:
    out: dict[Digest, Descriptor] = {}
    for descriptor in descriptors:
        out.setdefault(descriptor.digest, descriptor)
    return tuple(out.values())


def compute_usage(
    repository: str,
    documents: Mapping[str, ManifestDocument],
    *,
    tags_listed: int | None = None,
    tag_pattern: str | None = None,
    skipped: Iterable[SkippedTag] = (),
) -> RepositoryUsage:
    """The numbers for ``{tag: manifest}`` (every readable tag of the repository); tags whose manifest is not
    a cache are listed and left out. ``tag_pattern`` selects the rows: manifests with a matching tag.

    A blob whose descriptors disagree on its size is counted with the size of
    the first descriptor met in manifest-digest order.
    """
    skipped = tuple(skipped)

    def selected(tag: str) -> bool:
        return tag_pattern is None or fnmatchcase(tag, tag_pattern)

    tags_by_digest: dict[Digest, list[str]] = {}
    by_digest: dict[Digest, ManifestDocument] = {}
    non_cache: list[str] = []
    for tag in sorted(documents):
        document = documents[tag]
        if find_cache_config(document) is None:
            if selected(tag):
                non_cache.append(tag)
            continue
        tags_by_digest.setdefault(document.digest, []).append(tag)
        by_digest[document.digest] = document

    parts: dict[Digest, tuple[Descriptor, tuple[Descriptor, ...]]] = {}
    sizes: dict[Digest, int] = {}
    referrers: dict[Digest, set[Digest]] = {}
    for digest in sorted(by_digest):
        found = find_cache_config(by_digest[digest])
        assert found is not None
        config, layers = found[0], _distinct(found[1])
        parts[digest] = (config, layers)
        for blob in (config, *layers):
            sizes.setdefault(blob.digest, blob.size)
            referrers.setdefault(blob.digest, set()).add(digest)

    entries = []
    for digest, (config, layers) in parts.items():
        if not any(selected(tag) for tag in tags_by_digest[digest]):
            continue
        document = by_digest[digest]
        own = {config.digest, *(layer.digest for layer in layers)}
        unique = [blob for blob in own if referrers[blob] == {digest}]
        entries.append(
            ManifestUsage(
                digest=digest,
                tags=tuple(tags_by_digest[digest]),
                media_type=document.media_type,
                form=form_of(document),
                manifest_size=document.size,
                config=config,
                layers=layers,
                unique_size=sum(sizes[blob] for blob in unique),
                unique_blobs=len(unique),
            )
        )
    entries.sort(key=lambda e: (-e.unique_size, -e.size, e.tags[0]))
    return RepositoryUsage(
        repository=repository,
        tag_pattern=tag_pattern,
        tags_listed=len(documents) + len(skipped) if tags_listed is None else tags_listed,
        tags_matched=sum(1 for tag in [*documents, *(s.tag for s in skipped)] if selected(tag)),
        entries=tuple(entries),
        non_cache_tags=tuple(non_cache),
        skipped_tags=tuple(sorted(skipped, key=lambda s: s.tag)),
        blob_sizes=MappingProxyType(sizes),
        referrers=MappingProxyType({blob: frozenset(users) for blob, users in referrers.items()}),
    )


def disk_usage(
    client: RegistryClient,
    repository: Repository,
    *,
    tag_pattern: str | None = None,
    page_size: int | None = None,
    on_progress: Progress | None = None,
    listed_tags: Sequence[str] | None = None,
) -> RepositoryUsage:
    """List the tags, read every tag's manifest, and report the rows ``tag_pattern`` (an fnmatch glob) selects.

    One GET per tag; on Docker Hub, where GETs count as pulls, a HEAD per tag and one GET per distinct digest.
    Tags outside the pattern are read too: their blobs decide what is unique to the selected rows.

    A tag that vanishes between listing and reading (404), or whose manifest is
    not a valid document, is reported in ``skipped_tags``; other errors raise.
    """
    if listed_tags is None:  # else a listing the caller already made (gc discovery): not made again
        listed_tags = [tag for page in client.iter_tag_pages(repository, page_size=page_size) for tag in page]
    listed = list(dict.fromkeys(listed_tags))

    documents: dict[str, ManifestDocument] = {}
    skipped: list[SkippedTag] = []
    if repository.registry != DOCKER_HUB:
        # One GET by tag per tag: its body hashes to the digest, so a HEAD first would only add a round trip
        # per tag (it pays off only when many tags share manifests).
        def get(tag: str) -> ManifestDocument | SkippedTag:
            try:
                return client.get_manifest(repository.tag(tag))
            except (NotFound, InvalidContent, InvalidReference) as exc:
                return SkippedTag(tag, exc.message)

        for tag, got in zip(listed, client.map_bounded(get, listed, on_progress), strict=True):
            if isinstance(got, SkippedTag):
                skipped.append(got)
            else:
                documents[tag] = got
        return compute_usage(
            str(repository), documents, tags_listed=len(listed), tag_pattern=tag_pattern, skipped=skipped
        )

    # Docker Hub counts every manifest GET as a pull (rate-limited); HEADs are free: HEAD each tag, GET each
    # distinct digest once.
    def resolve(tag: str) -> Digest | SkippedTag:
        try:
            return client.head_manifest(repository.tag(tag)).digest
        except (NotFound, InvalidContent, InvalidReference) as exc:
            return SkippedTag(tag, exc.message)

    heads = client.map_bounded(resolve, listed, on_progress)
    digests = list(dict.fromkeys(d for d in heads if isinstance(d, Digest)))

    def fetch(digest: Digest) -> ManifestDocument | str:
        try:
            return client.get_manifest(repository.at(digest))
        except (NotFound, InvalidContent) as exc:
            return exc.message

    def fetched(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(len(listed) + done, len(listed) + total)

    bodies = dict(zip(digests, client.map_bounded(fetch, digests, fetched), strict=True))
    for tag, head in zip(listed, heads, strict=True):
        if isinstance(head, SkippedTag):
            skipped.append(head)
            continue
        body = bodies[head]
        if isinstance(body, str):
            skipped.append(SkippedTag(tag, body))
        else:
            documents[tag] = body
    return compute_usage(
        str(repository), documents, tags_listed=len(listed), tag_pattern=tag_pattern, skipped=skipped
    )


def parse_sort_key(text: str) -> SortKey:
    for key in SORT_KEYS:
        if text == key:
            return key
    raise UsageError(f"--sort {text!r}: expected one of {', '.join(SORT_KEYS)}")


def sort_usage(usage: RepositoryUsage, key: SortKey) -> RepositoryUsage:
    """The rows in ``--sort`` order: ``size``/``unique`` largest first, ``age`` oldest first (caches with no
    ``buildkit/createdat`` last), ``tag`` by first tag; ties by the default order (unique, size, tag)."""
    entries = list(usage.entries)  # already in the default order; sorted() is stable
    if key == "size":
        entries.sort(key=lambda e: -e.size)
    elif key == "age":
        entries.sort(key=lambda e: (e.created_at is None, e.created_at.epoch_ns if e.created_at else 0))
    elif key == "tag":
        entries.sort(key=lambda e: e.tags[0])
    return replace(usage, entries=tuple(entries))


USAGE_TSV_HEADER = ("tags", "digest", "form", "layers", "size", "unique", "shared", "created")


def usage_tsv_rows(usage: RepositoryUsage) -> list[tuple[object, ...]]:
    """``du -o tsv``: one row per cache manifest (its tags comma-separated), sizes in bytes, ISO time."""
    return [
        (
            ",".join(entry.tags),
            str(entry.digest),
            entry.form,
            len(entry.layers),
            entry.size,
            entry.unique_size,
            entry.shared_size,
            entry.created_at.text if entry.created_at is not None else "",
        )
        for entry in usage.entries
    ]


def usage_to_json(usage: RepositoryUsage) -> dict[str, Any]:
    """The stable ``du --json`` document (schema: ``inspector/schemas/du.schema.json``)."""
    return {
        "repository": usage.repository,
        "tagPattern": usage.tag_pattern,
        "tags": {
            "listed": usage.tags_listed,
            "matched": usage.tags_matched,
            "cache": usage.cache_tags,
            "nonCache": list(usage.non_cache_tags),
            "skipped": [{"tag": s.tag, "reason": s.reason} for s in usage.skipped_tags],
        },
        "configCounted": True,
        "manifests": [
            {
                "digest": str(entry.digest),
                "tags": list(entry.tags),
                "mediaType": entry.media_type,
                "form": entry.form,
                "manifestSize": entry.manifest_size,
                "config": {"digest": str(entry.config.digest), "size": entry.config.size},
                "layers": len(entry.layers),
                "layerSize": entry.layer_size,
                "size": entry.size,
                "uniqueSize": entry.unique_size,
                "uniqueBlobs": entry.unique_blobs,
                "sharedSize": entry.shared_size,
                "createdAt": entry.created_at.text if entry.created_at is not None else None,
            }
            for entry in usage.entries
        ],
        "total": {
            "blobs": len(usage.blobs),
            "size": usage.total_size,
            "uniqueSize": usage.unique_size,
            "manifests": len(usage.entries),
            "manifestSize": usage.manifest_size,
        },
    }
